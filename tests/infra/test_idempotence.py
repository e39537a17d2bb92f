"""A real Ansible run against localhost (connection local): lazyshift_common and the client
configuration, every path under a temporary folder. The second run must change nothing, and
the rendered file must be a configuration lazyshift itself accepts."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import stat
import tomllib
from pathlib import Path

import pytest
from infrahelpers import INFRA_TESTS, REPO, explain, run, tool

PLAYBOOK = INFRA_TESTS / "playbooks" / "common-and-client-config.yml"
RECAP = re.compile(
    r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)
APP_PASSWORD = "test-only-not-a-secret"


def _extra_vars(root: Path, mode: str) -> dict[str, object]:
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    return {
        "ansible_python_interpreter": "/usr/bin/python3",
        "lazyshift_common_manage_user": False,
        "lazyshift_common_manage_packages": False,
        "lazyshift_common_user": user,
        "lazyshift_common_group": group,
        "lazyshift_common_home": str(root / "home"),
        "lazyshift_common_config_dir": str(root / "etc"),
        "lazyshift_common_state_dir": str(root / "lib"),
        "lazyshift_client_mode": mode,
        "lazyshift_client_start": False,
        "lazyshift_client_install": False,
        "lazyshift_client_mysql_port": 23306,
    }


def _play(tmp_path: Path, env: dict[str, str], root: Path, mode: str):
    vars_file = tmp_path / f"vars-{mode}.json"
    vars_file.write_text(json.dumps(_extra_vars(root, mode)))
    return run(
        [
            tool("ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{vars_file}",
            str(PLAYBOOK),
        ],
        env=env,
        timeout=120,
    )


def _env_file(path: Path) -> dict[str, str]:
    lines = [x for x in path.read_text().splitlines() if x and not x.startswith("#")]
    return dict(x.split("=", 1) for x in lines)


def _recap(proc) -> tuple[int, int, int, int]:
    m = RECAP.search(proc.stdout)
    assert m, explain(proc)
    return tuple(int(x) for x in m.groups())  # type: ignore[return-value]


@pytest.mark.parametrize("mode", ["mongo", "control"])
def test_second_run_changes_nothing(tmp_path, ansible_environ, mode):
    root = tmp_path / "target"
    env = {**ansible_environ, "LAZYSHIFT_MYSQL_APP_PASSWORD": APP_PASSWORD}

    first = _play(tmp_path, env, root, mode)
    assert first.returncode == 0, explain(first)
    ok, changed, unreachable, failed = _recap(first)
    assert changed > 0 and failed == 0 and unreachable == 0, explain(first)

    second = _play(tmp_path, env, root, mode)
    assert second.returncode == 0, explain(second)
    assert _recap(second)[1:] == (0, 0, 0), "second run changed something:\n" + explain(second)

    for sub in ("home", "etc", "lib", "lib/client-0"):
        assert (root / sub).is_dir(), sub
    assert stat.S_IMODE((root / "etc").stat().st_mode) == 0o750
    config = root / "etc" / "client.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    doc = tomllib.loads(config.read_text())
    assert doc["client"]["mode"] == mode
    assert "state_dir" not in doc, "each unit's state folder comes from its environment file"
    env = _env_file(root / "etc" / "client-0.env")
    assert stat.S_IMODE((root / "etc" / "client-0.env").stat().st_mode) == 0o600
    assert env["LAZYSHIFT_STATE_DIR"] == str(root / "lib" / "client-0")
    assert env["LAZYSHIFT_CLIENT_PARTITION"] == "0/1"
    if mode == "control":
        assert doc["mysql"]["password"] == APP_PASSWORD
        assert doc["mysql"]["port"] == 23306
    else:
        assert "mysql" not in doc, "stage 1 (mongo) has no MySQL"


def test_rendered_config_is_accepted_by_lazyshift(tmp_path, ansible_environ):
    root = tmp_path / "target"
    env = {**ansible_environ, "LAZYSHIFT_MYSQL_APP_PASSWORD": APP_PASSWORD}
    proc = _play(tmp_path, env, root, "control")
    assert proc.returncode == 0, explain(proc)
    check = run(
        [
            str(REPO / ".venv" / "bin" / "python"),
            "-c",
            "from lazyshift.config import load_settings; s = load_settings(); "
            "print(s.client.mode, s.mysql.port, s.mysql.password, s.state_dir)",
        ],
        # As systemd starts unit 0: its environment file over the shared configuration.
        env={
            **os.environ,
            **_env_file(root / "etc" / "client-0.env"),
            "LAZYSHIFT_CONFIG": str(root / "etc" / "client.toml"),
        },
    )
    assert check.returncode == 0, explain(check)
    assert check.stdout.split() == [
        "control",
        "23306",
        APP_PASSWORD,
        str(root / "lib" / "client-0"),
    ]


def test_control_mode_without_password_fails_saying_what_to_set(tmp_path, ansible_environ):
    proc = _play(tmp_path, ansible_environ, tmp_path / "target", "control")
    assert proc.returncode != 0
    assert "LAZYSHIFT_MYSQL_APP_PASSWORD" in proc.stdout + proc.stderr, explain(proc)
    assert not (tmp_path / "target" / "etc" / "client.toml").exists()
