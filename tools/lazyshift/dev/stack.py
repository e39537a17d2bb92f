"""Local stack: MariaDB, FerretDB and the Node mock source as ordinary processes.

No systemd and no Docker on the machines this runs on, so every server is started with
start-stop-daemon and a pid file under one state folder; `down` stops only what that pid
file names, never a server somebody else started.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lazyshift.config import MONGO_PORT, MYSQL_PORT, SOURCE_PORT
from lazyshift.errors import Unavailable

REPO_ROOT = Path(__file__).resolve().parents[3]
MOCK_SOURCE = REPO_ROOT / "tools" / "mock-source" / "bin" / "mock-source.js"
MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = Path("/usr/bin/mariadb-install-db")


class StackError(Unavailable):
    """A component could not be started or checked; the message says what to do."""


@dataclass(frozen=True)
class StackPorts:
    mysql: int = MYSQL_PORT
    mongo: int = MONGO_PORT
    source: int = SOURCE_PORT


@dataclass(frozen=True)
class Component:
    name: str
    port: int
    pidfile: Path
    log: Path

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid


def ferretdb_bin() -> Path:
    env = os.environ.get("LAZYSHIFT_FERRETDB_BIN")
    if env:
        return Path(env)
    gopath = subprocess.run(
        ["go", "env", "GOPATH"], capture_output=True, text=True, check=False
    ).stdout.strip() or str(Path.home() / "go")
    return Path(gopath) / "bin" / "ferretdb"


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check, what: str, deadline_s: float, log: Path | None = None) -> None:
    """Poll `check` until it is true; fail with the log's tail if the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    tail = ""
    if log is not None and log.exists():
        tail = "\n--- last lines of " + str(log) + " ---\n" + "\n".join(
            log.read_text(errors="replace").splitlines()[-15:]
        )
    raise StackError(f"{what} did not become ready within {deadline_s:.0f}s{tail}")


class DevStack:
    def __init__(self, state_dir: Path, ports: StackPorts, with_source: bool = True,
                 source_args: list[str] | None = None) -> None:
        self.state_dir = state_dir.resolve()
        self.ports = ports
        self.with_source = with_source
        self.source_args = source_args or []
        logs = self.state_dir / "log"
        run = self.state_dir / "run"
        self.mysql = Component("mysql", ports.mysql, run / "mysql.pid", logs / "mysql.err")
        self.mongo = Component("mongo", ports.mongo, run / "ferretdb.pid", logs / "ferretdb.log")
        self.source = Component("source", ports.source, run / "source.pid", logs / "source.log")
        self.mysql_socket = run / "mysqld.sock"
        self.config_file = self.state_dir / "lazyshift.toml"

    # -- lifecycle -------------------------------------------------------------------------
    def components(self) -> list[Component]:
        comps = [self.mysql, self.mongo]
        if self.with_source:
            comps.append(self.source)
        return comps

    def up(self) -> dict[str, str]:
        for sub in ("log", "run", "mysql", "ferretdb"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        self._start_mysql()
        self._start_ferretdb()
        if self.with_source:
            self._start_source()
        self._provision_mysql()
        return self.endpoints()

    def down(self) -> list[str]:
        stopped = []
        for comp in reversed(self.components()):
            if comp.pid() is None:
                continue
            subprocess.run(
                ["start-stop-daemon", "--stop", "--pidfile", str(comp.pidfile),
                 "--remove-pidfile", "--retry", "TERM/20/KILL/5", "--quiet"],
                check=False,
            )
            stopped.append(comp.name)
        return stopped

    def stop_component(self, name: str) -> bool:
        """Stop one component this stack started (fault injection in tests, maintenance)."""
        comp = {c.name: c for c in self.components()}[name]
        if comp.pid() is None:
            return False
        subprocess.run(
            ["start-stop-daemon", "--stop", "--pidfile", str(comp.pidfile), "--remove-pidfile",
             "--retry", "TERM/20/KILL/5", "--quiet"], check=False,
        )
        return True

    def start_component(self, name: str) -> None:
        {"mysql": self._start_mysql, "mongo": self._start_ferretdb,
         "source": self._start_source}[name]()

    def status(self) -> list[dict[str, object]]:
        rows = []
        for comp in self.components():
            rows.append({
                "component": comp.name,
                "port": comp.port,
                "pid": comp.pid(),
                "answering": port_open(comp.port),
            })
        return rows

    def endpoints(self) -> dict[str, str]:
        eps = {
            "mysql": f"127.0.0.1:{self.ports.mysql}",
            "mongo": f"mongodb://127.0.0.1:{self.ports.mongo}/",
        }
        if self.with_source:
            eps["source"] = f"127.0.0.1:{self.ports.source}"
        eps["config"] = str(self.config_file)
        return eps

    # -- MariaDB -----------------------------------------------------------------------------
    def _mysql_datadir(self) -> Path:
        return self.state_dir / "mysql" / "data"

    def _start_mysql(self) -> None:
        if self.mysql.pid() is not None:
            return
        if not MARIADBD.exists():
            raise StackError(
                f"{MARIADBD} not found: install it with `make deps-apt` "
                "(apt-get install -y mariadb-server)"
            )
        if port_open(self.ports.mysql):
            raise StackError(
                f"port {self.ports.mysql} is taken by a process this stack did not start; "
                "pick another with --mysql-port or LAZYSHIFT_DEV_MYSQL_PORT"
            )
        datadir = self._mysql_datadir()
        for path in (self.state_dir / "mysql", self.state_dir / "run", self.state_dir / "log"):
            shutil.chown(path, "mysql", "mysql")
        if not (datadir / "mysql").exists():
            datadir.mkdir(parents=True, exist_ok=True)
            shutil.chown(datadir, "mysql", "mysql")
            subprocess.run(
                [str(INSTALL_DB), "--no-defaults", "--user=mysql", f"--datadir={datadir}",
                 "--auth-root-authentication-method=socket", "--skip-test-db"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
        subprocess.run(
            ["start-stop-daemon", "--start", "--background", "--make-pidfile",
             "--pidfile", str(self.mysql.pidfile), "--chuid", "mysql",
             "--exec", str(MARIADBD), "--",
             "--no-defaults", f"--datadir={datadir}", f"--port={self.ports.mysql}",
             "--bind-address=127.0.0.1", f"--socket={self.mysql_socket}",
             f"--log-error={self.mysql.log}", "--skip-name-resolve",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
             "--innodb-buffer-pool-size=512M", "--innodb-flush-log-at-trx-commit=2",
             "--max-connections=500", "--local-infile=1", "--default-time-zone=+00:00"],
            check=True,
        )
        wait_until(lambda: self.mysql_socket.exists() and port_open(self.ports.mysql),
                   "MariaDB", 60, self.mysql.log)

    def root_sql(self, sql: str) -> str:
        """Run SQL as the server's root over the unix socket (socket auth, no password)."""
        proc = subprocess.run(
            ["mariadb", f"--socket={self.mysql_socket}", "-uroot", "--batch", "--skip-column-names",
             "-e", sql],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0:
            raise StackError(f"MariaDB root command failed: {proc.stderr.strip()}")
        return proc.stdout

    def _provision_mysql(self) -> None:
        """Project database and two least-privilege users, passwords kept in the state folder."""
        creds = self._credentials()
        db = "lazyshift"
        stmts = [f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4"]
        # Over TCP 127.0.0.1 maps to user@localhost under skip-name-resolve only for the
        # socket; create both hosts so either way of connecting gets the same grants.
        for host in ("localhost", "127.0.0.1"):
            for user, pw, privs in (
                (creds["app_user"], creds["app_password"],
                 "SELECT, INSERT, UPDATE, DELETE"),
                (creds["migrate_user"], creds["migrate_password"],
                 "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES"),
            ):
                stmts.append(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{pw}'")
                stmts.append(f"ALTER USER '{user}'@'{host}' IDENTIFIED BY '{pw}'")
                stmts.append(f"GRANT {privs} ON `{db}`.* TO '{user}'@'{host}'")
            # Reading Threads_running for backfill throttling needs no grant; the backfill
            # checks the server's load, not other sessions' queries.
        self.root_sql(";\n".join(stmts) + ";")
        self._write_config(creds)

    def _credentials(self) -> dict[str, str]:
        path = self.state_dir / "secrets.env"
        if path.exists():
            values = dict(
                line.split("=", 1) for line in path.read_text().splitlines() if "=" in line
            )
            return values
        values = {
            "app_user": "lazyshift_app",
            "app_password": secrets.token_urlsafe(18),
            "migrate_user": "lazyshift_migrate",
            "migrate_password": secrets.token_urlsafe(18),
        }
        path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
        path.chmod(0o600)
        return values

    def _write_config(self, creds: dict[str, str]) -> None:
        text = (
            "# Written by `lazyshift dev up`; holds generated local passwords: never commit.\n"
            f'state_dir = "{self.state_dir}"\n\n'
            "[mysql]\n"
            f'host = "127.0.0.1"\nport = {self.ports.mysql}\ndatabase = "lazyshift"\n'
            f'user = "{creds["app_user"]}"\npassword = "{creds["app_password"]}"\n'
            f'migrate_user = "{creds["migrate_user"]}"\n'
            f'migrate_password = "{creds["migrate_password"]}"\n\n'
            "[mongo]\n"
            f'uri = "mongodb://127.0.0.1:{self.ports.mongo}/"\n\n'
            "[source]\n"
            f'host = "127.0.0.1"\nport = {self.ports.source}\n'
        )
        self.config_file.write_text(text)
        self.config_file.chmod(0o600)

    # -- FerretDB ----------------------------------------------------------------------------
    def _start_ferretdb(self) -> None:
        if self.mongo.pid() is not None:
            return
        binary = ferretdb_bin()
        if not binary.exists():
            raise StackError(f"{binary} not found: build it with `make deps-ferretdb`")
        if port_open(self.ports.mongo):
            raise StackError(
                f"port {self.ports.mongo} is taken by a process this stack did not start; "
                "pick another with --mongo-port or LAZYSHIFT_DEV_MONGO_PORT"
            )
        subprocess.run(
            ["start-stop-daemon", "--start", "--background", "--make-pidfile",
             "--pidfile", str(self.mongo.pidfile), "--output", str(self.mongo.log),
             "--exec", str(binary), "--",
             # WAL + synchronous=NORMAL: durable across process crashes (what the tests
             # kill), not across power loss; FULL fsyncs every write and is ~5x slower.
             "--handler=sqlite",
             f"--sqlite-url=file:{self.state_dir / 'ferretdb'}/?_pragma=synchronous(normal)",
             f"--listen-addr=127.0.0.1:{self.ports.mongo}",
             # The default debug listener is 127.0.0.1:8088 for every instance: disable it
             # so two stacks can run side by side.
             "--debug-addr=-", "--telemetry=disable", "--log-level=warn",
             f"--state-dir={self.state_dir / 'ferretdb'}"],
            check=True,
        )
        wait_until(self._mongo_ping, "FerretDB", 60, self.mongo.log)

    def _mongo_ping(self) -> bool:
        import pymongo

        try:
            client = pymongo.MongoClient(port=self.ports.mongo, serverSelectionTimeoutMS=300)
            client.admin.command("ping")
            client.close()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False

    # -- Node mock source -----------------------------------------------------------------------
    def _start_source(self) -> None:
        if self.source.pid() is not None:
            return
        node = shutil.which("node")
        if node is None:
            raise StackError("node not found: install Node.js 20 (apt-get install nodejs)")
        if port_open(self.ports.source):
            raise StackError(
                f"port {self.ports.source} is taken by a process this stack did not start; "
                "pick another with --source-port or LAZYSHIFT_DEV_SOURCE_PORT"
            )
        subprocess.run(
            ["start-stop-daemon", "--start", "--background", "--make-pidfile",
             "--pidfile", str(self.source.pidfile), "--output", str(self.source.log),
             "--exec", node, "--", str(MOCK_SOURCE), "serve",
             "--host", "127.0.0.1", "--port", str(self.ports.source), *self.source_args],
            check=True,
        )
        wait_until(lambda: port_open(self.ports.source), "mock source", 30, self.source.log)
