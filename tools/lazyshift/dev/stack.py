"""Local stack: MariaDB, FerretDB and the Node mock source as ordinary processes.

No systemd and no Docker on the machines this runs on, so every server is started with
start-stop-daemon and a pid file under one state folder; `down` stops only what that pid
file names, never a server somebody else started.

Every server runs as the user who starts the stack, MariaDB included. A checkout can live
anywhere that user can write (root's mode-700 home, a `mktemp -d` folder, a path with
spaces): a server running as `mysql` could not even enter such a folder, and the data must
stay inside the checkout so that `make clean` (or deleting the checkout) removes it.

Ports: a number is that port (an error naming the holder if it is taken), 0 is any free
port, and no number is the usual port if it is free, else any free port. The ports in use
are recorded in `<state dir>/stack.json` and the config file, so `down`, `status`, the CLI
and the tests find this stack wherever it landed, and a second checkout on the same machine
never collides with the first.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lazyshift.config import MONGO_PORT, MYSQL_PORT, SOURCE_PORT
from lazyshift.errors import Unavailable

REPO_ROOT = Path(__file__).resolve().parents[3]
MOCK_SOURCE = REPO_ROOT / "tools" / "mock-source" / "bin" / "mock-source.js"
MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = Path("/usr/bin/mariadb-install-db")

DEFAULT_PORTS = {"mysql": MYSQL_PORT, "mongo": MONGO_PORT, "source": SOURCE_PORT}
PORT_FLAGS = {"mysql": "--mysql-port", "mongo": "--mongo-port", "source": "--source-port"}
RECORD_FILE = "stack.json"
# sun_path holds 108 bytes including the trailing NUL; MariaDB refuses longer socket paths.
MAX_SOCKET_PATH = 107
LOCK_FILE = Path(tempfile.gettempdir()) / "lazyshift-ports.lock"


class StackError(Unavailable):
    """A component could not be started or checked; the message says what to do."""


@dataclass(frozen=True)
class StackPorts:
    """Requested ports: N is that port, 0 any free port, None the usual one if free."""

    mysql: int | None = None
    mongo: int | None = None
    source: int | None = None

    def get(self, name: str) -> int | None:
        return getattr(self, name)


@dataclass(frozen=True)
class Component:
    name: str
    pidfile: Path
    log: Path

    def pid(self) -> int | None:
        """The pid in the pid file, if that process still runs. A process that started
        well after the pid file was written is a later one that reused the pid: not ours."""
        try:
            pid = int(self.pidfile.read_text().strip())
            written = self.pidfile.stat().st_mtime
        except (OSError, ValueError):
            return None
        started = _start_time(pid)
        if started is None:
            return None
        # A server's command line names its data under this stack's folder: that settles it
        # whatever the clocks say (a wall clock stepped after a process started moves its
        # start time as computed from /proc by as much: 70 s here once, and `dev down` then
        # left the servers running).
        if abs(started - written) > 5 and not _names_dir(pid, self.pidfile.parent.parent):
            return None
        return pid


def _names_dir(pid: int, folder: Path) -> bool:
    """Does the command line of `pid` name a path inside `folder`?"""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    inside = f"{folder.resolve()}/"
    return any(inside in arg for arg in args)


def _start_time(pid: int) -> float | None:
    """When a live process started (epoch seconds); None if gone or a zombie (an init that
    does not reap leaves those)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _listen_port(pid: int | None) -> int | None:
    """The port a stack server was started on, from its command line (--port=N, --port N,
    --listen-addr=host:N): the truth for a running server, whatever a file says."""
    if pid is None:
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for arg, following in zip(args, [*args[1:], ""], strict=True):
        value = None
        if arg.startswith(("--port=", "--listen-addr=")):
            value = arg.rsplit("=", 1)[1].rsplit(":", 1)[-1]
        elif arg == "--port":
            value = following
        if value and value.isdigit():
            return int(value)
    return None


def _stop_pid(pid: int, deadline_s: float = 20.0) -> None:
    """SIGTERM (a clean shutdown), SIGKILL if it is still there after the deadline."""
    for sig, wait_s in ((signal.SIGTERM, deadline_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _start_time(pid) is None:
                return
            time.sleep(0.02)


# -- ports ------------------------------------------------------------------------------------
def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """Something answers TCP on host:port."""
    if port <= 0:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """A server could listen on 127.0.0.1:port now (a listener on any address blocks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The servers set SO_REUSEADDR too, so a closed connection in TIME_WAIT is no obstacle.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def any_free_port(exclude: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port


def _listening_inodes(port: int) -> set[str]:
    """The socket inodes listening on `port`, from /proc/net/tcp{,6}."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for fields in (line.split() for line in lines):
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _holds(proc: Path, inodes: set[str]) -> bool:
    try:
        return any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir())
    except OSError:
        return False


def port_holder(port: int) -> str:
    """Who listens on a TCP port, from /proc: 'pid N (command line)' when this user can see."""
    inodes = _listening_inodes(port)
    if not inodes:
        return "a socket that is bound but not listening (a server starting or closing)"
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and _holds(proc, inodes):
            try:
                text = (
                    (proc / "cmdline")
                    .read_bytes()
                    .replace(b"\0", b" ")
                    .strip()
                    .decode(errors="replace")
                )
            except OSError:
                continue
            return f"pid {proc.name} ({text[:160]}{'...' if len(text) > 160 else ''})"
    return "a process this user cannot see (another user's, or in another namespace)"


@contextlib.contextmanager
def _port_lock(deadline_s: float = 120.0) -> Iterator[None]:
    """One `dev up` at a time on this machine chooses ports and starts servers, so two
    checkouts starting together cannot both pick the same free port."""
    try:
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError:
        yield  # no shared lock possible (e.g. another user's file): ports are still checked
        return
    try:
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackError(
                        f"another `lazyshift dev up` has held {LOCK_FILE} for "
                        f"{deadline_s:.0f}s; wait for it to finish, or stop it"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


# -- binaries ---------------------------------------------------------------------------------
# FerretDB decodes and re-encodes every document it scans; with Go's default GOGC=100 a
# quarter of its CPU per scanned document is garbage collection. GOGC=300 alone cut its CPU
# per document ~23% (0.56 -> 0.43 ms), but its heap target is 4x a live heap that grows a
# little with the collection: peak RSS 195 MB at 100k documents and 264 MB at 1M (GOGC=100:
# 125 and 133 MB), which breaks the flat-memory goal. GOMEMLIMIT=128MiB caps the heap: peak
# RSS 176 MB at 100k and 171 MB at 1M, FerretDB CPU ~0.31 ms per document (quiet 100k run).
FERRETDB_GC_ENV = {"GOGC": "300", "GOMEMLIMIT": "128MiB"}


def ferretdb_env() -> dict[str, str]:
    """FerretDB's environment: ours, with FERRETDB_GC_ENV unless the caller set its own."""
    return {**FERRETDB_GC_ENV, **os.environ}


def ferretdb_bin() -> Path:
    env = os.environ.get("LAZYSHIFT_FERRETDB_BIN")
    if env:
        return Path(env)
    try:
        gopath = subprocess.run(
            ["go", "env", "GOPATH"], capture_output=True, text=True, check=False
        ).stdout.strip()
    except FileNotFoundError:
        gopath = ""
    return Path(gopath or Path.home() / "go") / "bin" / "ferretdb"


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n--- last lines of {log} ---\n" + "\n".join(text)


class DevStack:
    def __init__(
        self,
        state_dir: Path,
        ports: StackPorts | None = None,
        with_source: bool = True,
        source_args: list[str] | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.requested = ports or StackPorts()
        self.with_source = with_source
        self.source_args = source_args or []
        self.notes: list[str] = []  # ports that were taken and what was used instead
        logs = self.state_dir / "log"
        run = self.state_dir / "run"
        self.mysql = Component("mysql", run / "mysql.pid", logs / "mysql.err")
        self.mongo = Component("mongo", run / "ferretdb.pid", logs / "ferretdb.log")
        self.source = Component("source", run / "source.pid", logs / "source.log")
        self.config_file = self.state_dir / "lazyshift.toml"
        # The MariaDB account the stack administers itself with: socket auth as this OS user.
        self.admin_user = pwd.getpwuid(os.geteuid()).pw_name

    # -- where things are ------------------------------------------------------------------
    @property
    def ports(self) -> StackPorts:
        """The ports of this stack: a running server's own, else as requested, else as
        recorded by `up`, else the usual ones."""
        recorded = self._recorded_ports()

        def port(comp: Component) -> int:
            running = _listen_port(comp.pid())
            if running:
                return running
            want = self.requested.get(comp.name)
            if want:
                return want
            return recorded.get(comp.name, DEFAULT_PORTS[comp.name] if want is None else 0)

        return StackPorts(port(self.mysql), port(self.mongo), port(self.source))

    @property
    def mysql_socket(self) -> Path:
        """In the state folder, unless that path is too long for a unix socket: then in a
        private folder of this user under the temp dir, named after the state folder."""
        local = self.state_dir / "run" / "mysqld.sock"
        if len(os.fsencode(local)) <= MAX_SOCKET_PATH:
            return local
        digest = hashlib.sha256(os.fsencode(self.state_dir)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"lazyshift-{os.geteuid()}" / f"{digest}.sock"

    def _recorded_ports(self) -> dict[str, int]:
        try:
            data = json.loads((self.state_dir / RECORD_FILE).read_text())
            return {k: int(v) for k, v in data.get("ports", {}).items() if v}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}

    def _write_record(self, ports: dict[str, int]) -> None:
        record = {
            "ports": {**self._recorded_ports(), **ports},
            "mysql_socket": str(self.mysql_socket),
            "user": self.admin_user,
        }
        (self.state_dir / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")

    # -- lifecycle -------------------------------------------------------------------------
    def components(self) -> list[Component]:
        comps = [self.mysql, self.mongo]
        if self.with_source:
            comps.append(self.source)
        return comps

    def _starters(self) -> dict[str, Callable[[], None]]:
        return {
            "mysql": self._start_mysql,
            "mongo": self._start_ferretdb,
            "source": self._start_source,
        }

    def up(self) -> dict[str, str]:
        """Start what is not running and wait until every part answers. If anything fails
        (or the caller is interrupted), what this call started is stopped again."""
        started: list[Component] = []
        try:
            self._make_dirs()
            self._check_binaries()
            with _port_lock():
                self._write_record(self._choose_ports())
                for comp in self.components():
                    if comp.pid() is None:
                        started.append(comp)
                        self._starters()[comp.name]()
            self._provision_mysql()
        except BaseException:
            for comp in reversed(started):
                self._stop(comp)
            raise
        return self.endpoints()

    def down(self) -> list[str]:
        stopped = []
        for comp in reversed(self.components()):
            if self._stop(comp):
                stopped.append(comp.name)
        return stopped

    def _stop(self, comp: Component) -> bool:
        pid = comp.pid()
        if pid is None:
            return False
        _stop_pid(pid)
        comp.pidfile.unlink(missing_ok=True)
        return True

    def stop_component(self, name: str) -> bool:
        """Stop one component this stack started (fault injection in tests, maintenance)."""
        return self._stop({c.name: c for c in self.components()}[name])

    def start_component(self, name: str) -> None:
        self._starters()[name]()

    def status(self) -> list[dict[str, object]]:
        ports = self.ports
        recorded = self._recorded_ports()
        rows = []
        for comp in self.components():
            pid = comp.pid()
            if comp.name == "source" and recorded and "source" not in recorded and pid is None:
                continue  # this stack was started without the mock source
            port = ports.get(comp.name) or 0
            rows.append(
                {
                    "component": comp.name,
                    "port": port,
                    "pid": pid,
                    # Somebody else's server on this port is not this stack answering.
                    "answering": pid is not None and port_open(port),
                }
            )
        return rows

    def endpoints(self) -> dict[str, str]:
        ports = self.ports
        eps = {
            "mysql": f"127.0.0.1:{ports.mysql}",
            "mongo": f"mongodb://127.0.0.1:{ports.mongo}/",
        }
        if self.with_source:
            eps["source"] = f"127.0.0.1:{ports.source}"
        eps["config"] = str(self.config_file)
        return eps

    # -- preparation -----------------------------------------------------------------------
    def _make_dirs(self) -> None:
        for sub in ("log", "run", "mysql", "ferretdb"):
            path = self.state_dir / sub
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StackError(
                    f"cannot create {path}: {exc.strerror}; choose a state folder this user "
                    "can write (--state-dir or LAZYSHIFT_STATE_DIR)"
                ) from None

    def _check_binaries(self) -> None:
        """Everything needed exists before anything starts (so a failure starts nothing)."""
        needs = [
            (MARIADBD, "install it with `make deps-apt` (apt-get install mariadb-server)"),
            (INSTALL_DB, "install it with `make deps-apt` (apt-get install mariadb-server)"),
            (ferretdb_bin(), "build it with `make deps-ferretdb` (needs Go)"),
        ]
        missing = [f"{path} not found: {fix}" for path, fix in needs if not path.exists()]
        if shutil.which("mariadb") is None:
            missing.append(
                "mariadb (client) not found: install it with `make deps-apt` "
                "(apt-get install mariadb-client)"
            )
        if self.with_source and shutil.which("node") is None:
            missing.append("node not found: install Node.js 20 (`make deps-apt`)")
        if missing:
            raise StackError("; ".join(missing))

    def _choose_ports(self) -> dict[str, int]:
        recorded = self._recorded_ports()
        chosen: dict[str, int] = {}
        for comp in self.components():
            name, want = comp.name, self.requested.get(comp.name)
            pid = comp.pid()
            if pid is not None:  # already running: it keeps its port
                port = _listen_port(pid) or recorded.get(name)
                if not port:
                    raise StackError(
                        f"{name} of this stack runs (pid {pid}) on a port neither its command "
                        f"line nor {self.state_dir / RECORD_FILE} says: stop it with "
                        f"`lazyshift dev down --state-dir {self.state_dir}` and start again"
                    )
                if want and want != port:
                    raise StackError(
                        f"{name} of this stack already runs on port {port}, not {want}: "
                        f"`lazyshift dev down --state-dir {self.state_dir}` first to move it"
                    )
                chosen[name] = port
                continue
            if want:
                if not port_free(want):
                    raise StackError(
                        f"port {want} ({name}) is taken by {port_holder(want)}; stop that, "
                        f"choose another port with {PORT_FLAGS[name]}, or pass 0 (any free "
                        "port)"
                    )
                chosen[name] = want
                continue
            candidates = [recorded.get(name)]
            if want is None:
                candidates.append(DEFAULT_PORTS[name])
            taken = set(chosen.values())
            port = next((p for p in candidates if p and p not in taken and port_free(p)), None)
            if port is None:
                port = any_free_port(taken)
                usual = next((p for p in candidates if p), None)
                if usual is not None:
                    self.notes.append(
                        f"{name}: port {usual} is taken by {port_holder(usual)}; using {port}"
                    )
            chosen[name] = port
        return chosen

    def _wait_ready(
        self, comp: Component, check: Callable[[], bool], what: str, deadline_s: float
    ) -> None:
        """Poll `check` until true; fail at once if the process dies, with its log's tail."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if check():
                return
            if comp.pid() is None:
                raise StackError(f"{what} exited while starting{_log_tail(comp.log)}")
            time.sleep(0.05)
        raise StackError(f"{what} did not answer within {deadline_s:.0f}s{_log_tail(comp.log)}")

    def _daemon(
        self,
        comp: Component,
        argv: list[str],
        output: bool = True,
        env: dict[str, str] | None = None,
    ) -> None:
        cmd = [
            "start-stop-daemon",
            "--start",
            "--background",
            "--make-pidfile",
            "--pidfile",
            str(comp.pidfile),
        ]
        if output:
            cmd += ["--output", str(comp.log)]
        proc = subprocess.run(
            [*cmd, "--exec", argv[0], "--", *argv[1:]],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        # start-stop-daemon says "already running" only when the process named in OUR pid
        # file runs OUR executable: this stack's server is up (`Component.pid` may have
        # disowned it when, on a loaded machine, the pid file was written more than its
        # tolerance after the process started). Its readiness is waited for as after a start.
        if proc.returncode == 1 and "already running" in (proc.stdout + proc.stderr):
            return
        if proc.returncode != 0:
            raise StackError(
                f"start-stop-daemon could not start {comp.name}: "
                f"{(proc.stderr or proc.stdout).strip()}"
            )

    # -- MariaDB -----------------------------------------------------------------------------
    def _mysql_datadir(self) -> Path:
        return self.state_dir / "mysql" / "data"

    def _socket_dir(self) -> None:
        folder = self.mysql_socket.parent
        if folder == self.state_dir / "run":
            return
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise StackError(
                f"{folder} must be a folder private to this user (it holds the "
                "MariaDB socket): remove it and start again"
            )

    def _install_db(self, datadir: Path) -> None:
        created = not datadir.exists()
        datadir.mkdir(parents=True, exist_ok=True)
        # No --user: it would chown the system's auth_pam_tool_dir to this user (and breaks
        # on paths with spaces); the server bootstraps as whoever runs this.
        proc = subprocess.run(
            [
                str(INSTALL_DB),
                "--no-defaults",
                f"--datadir={datadir}",
                "--auth-root-authentication-method=socket",
                f"--auth-root-socket-user={self.admin_user}",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            if created:
                shutil.rmtree(datadir, ignore_errors=True)  # so the next try starts clean
            out = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise StackError(
                f"mariadb-install-db could not create the MariaDB data folder {datadir} "
                f"(exit {proc.returncode}):\n{out}\nIf it names a permission problem, choose "
                "a --state-dir this user can write; if the folder is damaged, remove it"
            )

    def _start_mysql(self) -> None:
        if self.mysql.pid() is not None:
            return
        port = self.ports.mysql or 0
        datadir = self._mysql_datadir()
        self._socket_dir()
        if not (datadir / "mysql").is_dir():
            self._install_db(datadir)
        # mariadbd refuses to run as root unless told to; as anyone else it runs as itself.
        as_root = ["--user=root"] if os.geteuid() == 0 else []
        self._daemon(
            self.mysql,
            [
                str(MARIADBD),
                "--no-defaults",
                *as_root,
                f"--datadir={datadir}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.mysql_socket}",
                f"--log-error={self.mysql.log}",
                "--skip-name-resolve",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
                "--innodb-buffer-pool-size=512M",
                "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=500",
                "--local-infile=1",
                "--default-time-zone=+00:00",
            ],
            output=False,
        )
        self._wait_ready(
            self.mysql,
            lambda: self.mysql_socket.exists() and port_open(port),
            f"MariaDB (port {port})",
            60,
        )

    def root_sql(self, sql: str) -> str:
        """Run SQL as the stack's administrator over the unix socket (socket auth)."""
        try:
            proc = subprocess.run(
                [
                    "mariadb",
                    f"--socket={self.mysql_socket}",
                    f"-u{self.admin_user}",
                    "--batch",
                    "--skip-column-names",
                    "-e",
                    sql,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise StackError(
                "mariadb (client) not found: install it with `make deps-apt`"
            ) from None
        if proc.returncode != 0:
            raise StackError(f"MariaDB admin command failed: {proc.stderr.strip()}")
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
                (creds["app_user"], creds["app_password"], "SELECT, INSERT, UPDATE, DELETE"),
                (
                    creds["migrate_user"],
                    creds["migrate_password"],
                    "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES",
                ),
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
        ports = self.ports

        def q(value: object) -> str:  # a TOML basic string (JSON escapes are valid TOML)
            return json.dumps(str(value))

        text = (
            "# Written by `lazyshift dev up`; holds generated local passwords: never commit.\n"
            f"state_dir = {q(self.state_dir)}\n\n"
            "[mysql]\n"
            f'host = "127.0.0.1"\nport = {ports.mysql}\ndatabase = "lazyshift"\n'
            f"user = {q(creds['app_user'])}\npassword = {q(creds['app_password'])}\n"
            f"migrate_user = {q(creds['migrate_user'])}\n"
            f"migrate_password = {q(creds['migrate_password'])}\n\n"
            "[mongo]\n"
            f'uri = "mongodb://127.0.0.1:{ports.mongo}/"\n\n'
            "[source]\n"
            f'host = "127.0.0.1"\nport = {ports.source or DEFAULT_PORTS["source"]}\n'
        )
        self.config_file.write_text(text)
        self.config_file.chmod(0o600)

    # -- FerretDB ----------------------------------------------------------------------------
    def _start_ferretdb(self) -> None:
        if self.mongo.pid() is not None:
            return
        port = self.ports.mongo or 0
        self._daemon(
            self.mongo,
            [
                str(ferretdb_bin()),
                # WAL + synchronous=NORMAL: durable across process crashes (what the tests
                # kill), not across power loss; FULL fsyncs every write and is ~5x slower.
                "--handler=sqlite",
                f"--sqlite-url=file:{self.state_dir / 'ferretdb'}/?_pragma=synchronous(normal)",
                f"--listen-addr=127.0.0.1:{port}",
                # The default debug listener is 127.0.0.1:8088 for every instance: disable it
                # so two stacks can run side by side.
                "--debug-addr=-",
                "--telemetry=disable",
                "--log-level=warn",
                f"--state-dir={self.state_dir / 'ferretdb'}",
            ],
            env=ferretdb_env(),
        )
        self._wait_ready(self.mongo, lambda: self._mongo_ping(port), f"FerretDB (port {port})", 60)

    @staticmethod
    def _mongo_ping(port: int) -> bool:
        import pymongo

        try:
            client = pymongo.MongoClient(port=port, serverSelectionTimeoutMS=300)
            client.admin.command("ping")
            client.close()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False

    # -- Node mock source -----------------------------------------------------------------------
    def _start_source(self) -> None:
        if self.source.pid() is not None:
            return
        port = self.ports.source or 0
        node = shutil.which("node")
        if node is None:
            raise StackError("node not found: install Node.js 20 (`make deps-apt`)")
        self._daemon(
            self.source,
            [
                node,
                str(MOCK_SOURCE),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *self.source_args,
            ],
        )
        self._wait_ready(self.source, lambda: port_open(port), f"mock source (port {port})", 30)
