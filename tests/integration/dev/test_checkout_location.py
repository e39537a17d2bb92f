"""The local stack starts wherever a checkout lives, and two checkouts run side by side.

Real MariaDB, FerretDB and mock source, started by the project's own code: from a copy of
the checkout under a private (mode 700) folder, on a path with spaces and too long for a
unix socket; and two stacks from two state folders at once. Every stack a test starts is
stopped in `finally`, and the test checks its ports are free again.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import mysql.connector
import pymongo
import pytest

from lazyshift.dev.stack import (
    MAX_SOCKET_PATH,
    REPO_ROOT,
    DevStack,
    ferretdb_bin,
    port_free,
    port_open,
)

LAZYSHIFT = Path(sys.executable).parent / "lazyshift"
RUN_CLI = "import sys; from lazyshift.cli import main; sys.exit(main())"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYSHIFT_")}
    env["LAZYSHIFT_FERRETDB_BIN"] = str(ferretdb_bin())
    env.update(extra)
    return env


def _copy_checkout(dest: Path) -> None:
    """The code a checkout runs (tools/), copied; the mock's node_modules linked."""
    shutil.copytree(
        REPO_ROOT / "tools",
        dest / "tools",
        ignore=shutil.ignore_patterns("node_modules", "__pycache__", "*.egg-info"),
    )
    modules = Path("tools") / "mock-source" / "node_modules"
    (dest / modules).symlink_to(REPO_ROOT / modules, target_is_directory=True)


def _cli_in(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`lazyshift ARGS` run from `checkout` with that checkout's own code."""
    return subprocess.run(
        [sys.executable, "-c", RUN_CLI, *args],
        cwd=checkout,
        env=_env(PYTHONPATH=str(checkout / "tools")),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _server_uid(pidfile: Path) -> int:
    return os.stat(f"/proc/{int(pidfile.read_text())}").st_uid


def test_stack_starts_from_a_private_folder_with_spaces(tmp_path: Path) -> None:
    private = tmp_path / "private dir"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    checkout = private / "a checkout named so long that its socket path cannot fit in sun_path"
    _copy_checkout(checkout)
    state = checkout / ".state" / "dev"
    assert len(os.fsencode(state / "run" / "mysqld.sock")) > MAX_SOCKET_PATH  # precondition
    ports: list[int] = []
    try:
        # The copy's own code runs, not the installed package's.
        where = subprocess.run(
            [sys.executable, "-c", "import lazyshift; print(lazyshift.__file__)"],
            cwd=checkout,
            env=_env(PYTHONPATH=str(checkout / "tools")),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert where.stdout.strip().startswith(str(checkout)), where.stdout + where.stderr

        up = _cli_in(checkout, "--json", "dev", "up")
        assert up.returncode == 0 and "Traceback" not in up.stderr, up.stderr
        endpoints = json.loads(up.stdout)
        assert Path(endpoints["config"]) == state / "lazyshift.toml"
        cfg = tomllib.loads(Path(endpoints["config"]).read_text())
        ports = [
            cfg["mysql"]["port"],
            int(cfg["mongo"]["uri"].rsplit(":", 1)[1].strip("/")),
            cfg["source"]["port"],
        ]
        assert endpoints["mysql"] == f"127.0.0.1:{ports[0]}"
        assert cfg["state_dir"] == str(state)

        # MariaDB: data inside the checkout, the config's account over TCP, the admin over
        # a socket that is short enough (so not in the state folder).
        assert (state / "mysql" / "data" / "mysql").is_dir()
        conn = mysql.connector.connect(
            host="127.0.0.1",
            port=ports[0],
            user=cfg["mysql"]["user"],
            password=cfg["mysql"]["password"],
            database="lazyshift",
        )
        cur = conn.cursor()
        cur.execute("SELECT DATABASE(), @@port")
        assert cur.fetchone() == ("lazyshift", ports[0])
        conn.close()
        stack = DevStack(state)
        assert len(os.fsencode(stack.mysql_socket)) <= MAX_SOCKET_PATH
        assert stack.root_sql("SELECT @@datadir").strip().startswith(str(state))
        # The servers run as the user who started them, so nothing needs the private
        # folder opened up: it is still mode 700.
        assert _server_uid(stack.mysql.pidfile) == os.geteuid()
        assert stat.S_IMODE(private.stat().st_mode) == 0o700

        client = pymongo.MongoClient(cfg["mongo"]["uri"], serverSelectionTimeoutMS=10_000)
        client.lzt_location.probe.insert_one({"_id": "k", "where": str(checkout)})
        assert client.lzt_location.probe.find_one({"_id": "k"})["where"] == str(checkout)
        client.close()
        assert (state / "ferretdb" / "lzt_location.sqlite").is_file()
        assert port_open(ports[2])

        status = _cli_in(checkout, "--json", "dev", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert [r["port"] for r in json.loads(status.stdout)] == ports

        down = _cli_in(checkout, "--json", "dev", "down")
        assert down.returncode == 0, down.stderr
        assert sorted(json.loads(down.stdout)["stopped"]) == ["mongo", "mysql", "source"]
        assert all(port_free(p) for p in ports), ports
    finally:
        _cli_in(checkout, "dev", "down")
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_two_stacks_run_side_by_side(tmp_path: Path) -> None:
    first = DevStack(tmp_path / "first checkout" / ".state", with_source=False)
    second = DevStack(tmp_path / "second checkout" / ".state", with_source=False)
    third = tmp_path / "third checkout" / ".state"
    try:
        first.up()
        a = first.ports
        # The second stack last ran on the ports the first one holds now (as after a
        # reboot, or a checkout copied with its .state): it must move, and say why.
        (second.state_dir).mkdir(parents=True)
        (second.state_dir / "stack.json").write_text(
            json.dumps({"ports": {"mysql": a.mysql, "mongo": a.mongo}})
        )
        second.up()
        b = second.ports
        assert {a.mysql, a.mongo}.isdisjoint({b.mysql, b.mongo})
        notes = " ".join(second.notes)
        assert f"port {a.mysql} is taken by pid {first.mysql.pid()}" in notes, notes
        assert f"port {a.mongo} is taken by pid {first.mongo.pid()}" in notes, notes
        for stack in (first, second):
            assert stack.root_sql("SELECT @@port").strip() == str(stack.ports.mysql)
            client = pymongo.MongoClient(port=stack.ports.mongo, serverSelectionTimeoutMS=10_000)
            assert client.admin.command("ping")["ok"] == 1
            client.close()

        # `dev status --state-dir` checks that stack's recorded ports, not the defaults.
        status = subprocess.run(
            [
                str(LAZYSHIFT),
                "--json",
                "dev",
                "status",
                "--no-source",
                "--state-dir",
                str(first.state_dir),
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert [(r["port"], r["answering"]) for r in json.loads(status.stdout)] == [
            (a.mysql, True),
            (a.mongo, True),
        ]

        # A port asked for by number that another stack holds: exit 3, says who, starts
        # nothing.
        taken = subprocess.run(
            [
                str(LAZYSHIFT),
                "dev",
                "up",
                "--no-source",
                "--state-dir",
                str(third),
                "--mysql-port",
                str(b.mysql),
            ],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode == 3, taken.stdout + taken.stderr
        assert f"port {b.mysql} (mysql) is taken by pid {second.mysql.pid()}" in taken.stderr
        assert "--mysql-port" in taken.stderr and "Traceback" not in taken.stderr
        assert all(c.pid() is None for c in DevStack(third, with_source=False).components())

        assert sorted(first.down()) == ["mongo", "mysql"]
        assert port_free(a.mysql) and port_free(a.mongo)
        assert second.root_sql("SELECT 1").strip() == "1"
    finally:
        first.down()
        second.down()
    assert port_free(b.mysql) and port_free(b.mongo)


@pytest.mark.parametrize("case", ["ferretdb missing", "state folder not creatable"])
def test_what_cannot_start_is_exit_3_with_the_fix(tmp_path: Path, case: str) -> None:
    state = tmp_path / "state dir"
    env = _env()
    if case == "ferretdb missing":
        env["LAZYSHIFT_FERRETDB_BIN"] = str(tmp_path / "no such" / "ferretdb")
        fix = "make deps-ferretdb"
    else:
        state.mkdir()
        (state / "run").write_text("a file where the stack wants a folder")
        fix = "choose a state folder this user can write"
    try:
        proc = subprocess.run(
            [str(LAZYSHIFT), "dev", "up", "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert fix in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert all(c.pid() is None for c in DevStack(state).components())
    finally:
        DevStack(state).down()
