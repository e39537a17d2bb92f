"""The whole ladder on the lab, the way users run it: `make site`, then `make stage1` ..
`make stage5` (the commands the Jenkinsfile calls) against real systemd hosts over SSH, with
the mock streaming. On the way: a client unit killed with SIGKILL mid-stream is restarted by
systemd, the host tests (tests/hosts, testinfra) pass on the migrated hosts, `lazyshift
verify` finds zero differences, the flip commits only once stage 3 has revoked MongoDB's
writes and released it (`mode set --hold`), re-running stages 1 and 2 after the flip
changes nothing that matters, and at the end MySQL holds every shipment the source emitted
at its latest version.

Run through `make test-lab-e2e` (part of `make test`): it boots the lab `e2e` first and
powers it off afterwards whatever happens. Collected only then (tests/infra/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from lazyshift.config import MySQLSettings
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.mapping import stored_form
from lazyshift.dev import expected as source_log

ROOT = Path(__file__).resolve().parents[2]
LAB_NAME = os.environ.get("LAB_NAME", "e2e")
# A finite log at a slow rate: it is still flowing while stages 1 to 3 run, and ends before
# the final reconciliation waits for the clients to drain it.
SOURCE_ARGS = ["--seed", "11", "--count", "3000", "--rate", "12"]
PLAYBOOK_TIMEOUT_S = 1500  # a hang guard only (a cold lab downloads MariaDB, Node, ...)
DRAIN_TIMEOUT_S = 600
TOOLS_CLI = ["/opt/lazyshift/venv/bin/lazyshift", "--config", "/etc/lazyshift/tools.toml"]


def _lab_env() -> dict[str, str]:
    out = subprocess.run(
        ["bash", "tools/lab/lab.sh", "env"],
        cwd=ROOT,
        env={**os.environ, "LAB_NAME": LAB_NAME},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _secrets() -> dict[str, str]:
    text = (ROOT / ".state/lab/secrets.env").read_text()
    pairs = (line.removeprefix("export ").split("=", 1) for line in text.splitlines() if line)
    return dict(pairs)


def _make(target: str, extra_vars: Path, ansible_args: str = "") -> str:
    args = f"-e @{extra_vars} {ansible_args}".strip()
    proc = subprocess.run(
        ["make", "-s", target, "INVENTORY=lab", f"LAB_NAME={LAB_NAME}", f"ANSIBLE_ARGS={args}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PLAYBOOK_TIMEOUT_S,
    )
    tail = f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"make {target} failed:\n{tail}"
    return proc.stdout


def _recap_changed(output: str) -> dict[str, int]:
    changed = {}
    for line in output.splitlines():
        if " : ok=" in line and "changed=" in line:
            host = line.split(":")[0].strip()
            changed[host] = int(line.split("changed=")[1].split()[0])
    return changed


def _ssh(lab: dict[str, str], host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", lab["LAB_SSH_CONFIG"], host, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _poll(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def _unit(lab: dict[str, str], host: str, unit: str) -> dict[str, str]:
    out = _ssh(lab, host, "systemctl", "show", unit, "-p", "MainPID,NRestarts,ActiveState").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _mysql(lab: dict[str, str]) -> MySQLSettings:
    inventory = yaml.safe_load(Path(lab["LAB_INVENTORY"]).read_text())
    ip = inventory["all"]["hosts"]["mysql"]["ansible_host"]
    return MySQLSettings(host=ip, port=3306, password=_secrets()["LAZYSHIFT_MYSQL_APP_PASSWORD"])


def _mysql_docs(settings: MySQLSettings) -> dict[str, dict[str, Any]]:
    conn = my.connect(settings, autocommit=True)
    try:
        return {d["key"]: d for d in store.iter_documents(conn.cursor())}
    finally:
        conn.close()


def _kill_client_and_see_it_restarted(lab: dict[str, str]) -> None:
    unit = "lazyshift-client@0.service"
    before = _unit(lab, "client-1", unit)
    assert before["ActiveState"] == "active", before
    killed = _ssh(lab, "client-1", "systemctl", "kill", "--signal=KILL", unit)
    assert killed.returncode == 0, killed.stderr

    def restarted() -> bool:
        now = _unit(lab, "client-1", unit)
        return (
            now["ActiveState"] == "active"
            and int(now["NRestarts"]) > int(before["NRestarts"])
            and now["MainPID"] not in ("0", before["MainPID"])
        )

    _poll(restarted, 120, f"systemd to restart {unit} after SIGKILL")


def _host_tests(lab: dict[str, str]) -> None:
    if not (ROOT / "tests/hosts").is_dir():
        return
    proc = subprocess.run(
        [
            str(ROOT / ".venv-ansible/bin/pytest"),
            "-q",
            "-c",
            "tests/hosts/pytest.ini",
            "tests/hosts",
            f"--ansible-inventory={lab['LAB_INVENTORY']}",
            "--hosts=ansible://all",
        ],
        cwd=ROOT,
        # testinfra's ansible backend runs ansible-inventory/ansible from PATH: the Ansible venv.
        env={
            **os.environ,
            **_secrets(),
            "ANSIBLE_CONFIG": str(ROOT / "ansible/ansible.cfg"),
            "PATH": f"{ROOT / '.venv-ansible/bin'}:{os.environ.get('PATH', '')}",
        },
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"host tests failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"


def _verify_on_tools(lab: dict[str, str]) -> dict[str, Any]:
    proc = _ssh(lab, "tools", *TOOLS_CLI, "verify", "--json", "--full", "--truth", "mysql")
    assert proc.returncode == 0, f"verify found differences:\n{proc.stdout[-4000:]}{proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def lab() -> dict[str, str]:
    env = _lab_env()
    assert Path(env["LAB_INVENTORY"]).is_file(), "boot the lab first: make test-lab-e2e"
    return env


@pytest.fixture(scope="module")
def extra_vars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("e2e") / "vars.json"
    path.write_text(json.dumps({"lazyshift_mock_source_args": SOURCE_ARGS}))
    return path


# A hang guard for the whole ladder (seven playbooks, a cold lab downloads its packages), not
# the suite's 600 s per test: each step has its own guard (PLAYBOOK_TIMEOUT_S, _poll).
@pytest.mark.timeout(5400)
def test_the_ladder_on_the_lab(lab: dict[str, str], extra_vars: Path) -> None:
    _make("site", extra_vars)
    _make("stage1", extra_vars)
    _make("stage2", extra_vars)
    # Mid-stream, in dual-write: SIGKILL a client; systemd brings it back, nothing is lost
    # (checked at the end against the source's own log).
    _kill_client_and_see_it_restarted(lab)
    _make("gate", extra_vars, "-e lazyshift_gate_require_advance=false")
    # The flip is held until the playbook revoked MongoDB's writes and released it.
    flip = _make("stage3", extra_vars)
    assert "held until released" in flip, flip[-3000:]

    # Re-running stages 1 and 2 after the flip: no client goes back to MongoDB-only, no
    # mode change, MongoDB stays read-only (the mode is still mysql-primary afterwards).
    _make("stage1", extra_vars)
    rerun2 = _make("stage2", extra_vars)
    assert all(n == 0 for n in _recap_changed(rerun2).values()), rerun2[-3000:]
    for host in ("client-1", "client-2"):
        conf = _ssh(lab, host, "cat", "/etc/lazyshift/client.toml").stdout
        assert 'mode = "mongo"' not in conf, conf

    _make("stage4", extra_vars)
    _verify_on_tools(lab)
    _host_tests(lab)
    _make("stage5", extra_vars)
    # A finished stage 5 run again: nothing to do but check that MongoDB is gone.
    _make("stage5", extra_vars)
    status = _ssh(lab, "tools", *TOOLS_CLI, "--json", "status")
    assert json.loads(status.stdout)["mode"] == "mysql", status.stdout

    # Everything the source emitted reaches MySQL at its latest version, the killed
    # client's partition included.
    expected = source_log.expected_state(source_log.dump(SOURCE_ARGS))
    settings = _mysql(lab)
    docs: dict[str, dict[str, Any]] = {}

    def latest() -> bool:
        nonlocal docs
        docs = _mysql_docs(settings)
        return all(k in docs and docs[k] == stored_form(d) for k, d in expected.docs.items())

    _poll(latest, DRAIN_TIMEOUT_S, "every shipment at its latest version in MySQL")
    assert set(docs) == set(expected.docs)
