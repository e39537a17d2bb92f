"""The workload of a fault run: the mock source, the client processes, readers, and the
poller that records every offset the clients store (their acknowledgements).

Everything here is a real process or a real connection: `node mock-source.js serve`,
`lazyshift client run --mode control`, HTTP reads of the clients' read API, and reads of the
offset tables in MongoDB and MySQL. `Cluster` is what the nemesis breaks and mends.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO

import pymongo

from lazyshift.config import Settings, as_environment
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.mongo_store import OFFSETS
from lazyshift.dev.history import History
from lazyshift.dev.stack import MOCK_SOURCE, DevStack, any_free_port

LAZYSHIFT = Path(sys.executable).parent / "lazyshift"
READ_TIMEOUT_S = 5.0
START_TIMEOUT_S = 120.0


def cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYSHIFT_")}
    env.update(as_environment(settings))
    env["LAZYSHIFT_LOG_LEVEL"] = "WARNING"
    return env


def _wait(check: Any, what: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout_s:.0f}s")
        time.sleep(0.05)


def mock_supports(flag: str) -> bool:
    """Whether this checkout's mock source knows `flag` (e.g. --hostile-fraction)."""
    out = subprocess.run(
        ["node", str(MOCK_SOURCE), "--help"], capture_output=True, text=True, check=False
    )
    return flag in out.stdout


class SourceProcess:
    """The Node mock on a free port, started and paused (SIGSTOP) by the run."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> SourceProcess:
        self.port = any_free_port(set())
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                ["node", str(MOCK_SOURCE), "serve", "--port", str(self.port), *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait(lambda: self._listening(), "the mock source to listen", 60)
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"mock source exited {self.proc.returncode}; see {self.log}")
        return '"listening"' in self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


class ClientProcess:
    """`lazyshift client run --mode control` for one partition, with its read API."""

    def __init__(
        self, name: str, partition: str, settings: Settings, source_port: int, log_dir: Path
    ) -> None:
        self.name, self.partition, self.settings = name, partition, settings
        self.source_port = source_port
        self.http_port = any_free_port(set())
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.up = threading.Event()  # answering reads (not killed, not stopped)
        self.starts = 0

    def start(self) -> None:
        cmd = [
            str(LAZYSHIFT),
            "client",
            "run",
            "--mode",
            "control",
            "--partition",
            self.partition,
            "--source-port",
            str(self.source_port),
            "--http-port",
            str(self.http_port),
            "--client-id",
            self.name,
        ]
        out: BinaryIO
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env=cli_env(self.settings)
            )
        self.starts += 1
        _wait(self._healthy, f"client {self.name} to answer on :{self.http_port}")
        self.up.set()

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"client {self.name} exited {self.proc.returncode}; see {self.log}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.http_port}/healthz", timeout=2
            ) as resp:
                return resp.status == 200
        except OSError:
            return False

    def signal(self, sig: int) -> None:
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            self.up.clear()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        if sig == signal.SIGKILL and self.proc is not None:
            self.proc.wait(timeout=30)
        if sig == signal.SIGCONT:
            self.up.set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.up.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        return self.proc.returncode


class Cluster:
    """The processes a fault run breaks and mends (faults.Targets)."""

    def __init__(
        self, stack: DevStack, source: SourceProcess, clients: dict[str, ClientProcess]
    ) -> None:
        self.stack, self.source, self.clients = stack, source, clients

    def kill_client(self, name: str) -> None:
        self.clients[name].signal(signal.SIGKILL)

    def restart_client(self, name: str) -> None:
        self.clients[name].start()

    def stop_client(self, name: str) -> None:
        self.clients[name].signal(signal.SIGSTOP)

    def cont_client(self, name: str) -> None:
        self.clients[name].signal(signal.SIGCONT)

    def kill_store(self, name: str) -> None:
        comp = {"mysql": self.stack.mysql, "mongo": self.stack.mongo}[name]
        pid = comp.pid()
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: comp.pid() is None, f"{name} (pid {pid}) to die", 30)

    def restart_store(self, name: str) -> None:
        self.stack.start_component(name)

    def pause_source(self) -> None:
        self.source.signal(signal.SIGSTOP)

    def resume_source(self) -> None:
        self.source.signal(signal.SIGCONT)

    def heal(self) -> None:
        """Whatever state a fault left: everything running and answering again."""
        self.source.signal(signal.SIGCONT)
        for name in ("mysql", "mongo"):
            if {"mysql": self.stack.mysql, "mongo": self.stack.mongo}[name].pid() is None:
                self.stack.start_component(name)
        for client in self.clients.values():
            if client.alive():
                client.signal(signal.SIGCONT)
            else:
                client.start()


class Readers:
    """Threads reading random shipments through random clients, every read recorded."""

    def __init__(
        self, history: History, clients: dict[str, ClientProcess], keys: list[str], seed: int
    ) -> None:
        self.history, self.clients, self.keys = history, clients, keys
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(seed * 100 + i,), daemon=True)
            for i in range(3)
        ]

    def start(self) -> Readers:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=READ_TIMEOUT_S * 3)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        names = sorted(self.clients)
        while not self._stop.is_set():
            name = rng.choice(names)
            client = self.clients[name]
            if not client.up.is_set():
                self._stop.wait(0.05)  # a reader of a killed client waits for it, as an app would
                continue
            if not self.read(name, client.http_port, rng.choice(self.keys)):
                self._stop.wait(0.05)  # as an application would, not in a hot loop

    def read(self, name: str, port: int, key: str) -> bool:
        """One read, recorded; True if it was answered (found or not)."""
        start = self.history.now()
        fields: dict[str, Any] = {"status": 0, "source_rev": None}
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/shipments/{key}", timeout=READ_TIMEOUT_S
            ) as resp:
                body = json.loads(resp.read())
                fields = {
                    "status": resp.status,
                    "source_rev": body.get("source_rev"),
                    "version": body.get("version"),
                    "store": resp.headers.get("X-Lazyshift-Store"),
                }
        except urllib.error.HTTPError as err:
            fields["status"] = err.code
            with contextlib.suppress(Exception):
                fields["error"] = json.loads(err.read()).get("error", "")[:200]
        except (OSError, ValueError) as exc:
            fields["error"] = f"{type(exc).__name__}: {exc}"[:200]
        self.history.add("read", invoke_t=start, key=key, client=name, **fields)
        return fields["status"] in (200, 404)


class AckPoller:
    """Records each partition's stored offset (MongoDB and MySQL, the higher wins) as it moves,
    and samples progress for the timeline."""

    def __init__(
        self,
        history: History,
        settings: Settings,
        partition_seqs: dict[str, list[int]],
        rate: float,
        every_s: float = 0.25,
    ) -> None:
        self.history, self.settings = history, settings
        self.partition_seqs = partition_seqs  # "k/n" -> sorted seqs of that partition
        self.total = sum(len(s) for s in partition_seqs.values())
        self.rate = rate
        self.every_s = every_s
        self.offsets: dict[str, int] = dict.fromkeys(partition_seqs, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ack-poller", daemon=True)
        self._mongo = pymongo.MongoClient(
            settings.mongo.uri, serverSelectionTimeoutMS=500, socketTimeoutMS=2000
        )
        self._mysql: Any = None
        self._started = 0.0

    def start(self, source_started_at: float) -> AckPoller:
        self._started = source_started_at
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.poll_once()
        self._mongo.close()
        if self._mysql is not None:
            with contextlib.suppress(Exception):
                self._mysql.close()

    def caught_up(self) -> bool:
        return all(
            self.offsets[p] >= (seqs[-1] if seqs else 0) for p, seqs in self.partition_seqs.items()
        )

    def acked(self) -> int:
        return sum(
            bisect.bisect_right(seqs, self.offsets[p]) for p, seqs in self.partition_seqs.items()
        )

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.poll_once()

    def _read_offsets(self) -> dict[str, int]:
        seen: dict[str, int] = {}
        with contextlib.suppress(Exception):
            coll = self._mongo[self.settings.mongo.database][OFFSETS]
            for row in coll.find({}):
                seen[row["_id"]] = int(row.get("seq", 0))
        try:
            if self._mysql is None:
                self._mysql = my.connect(self.settings.mysql, autocommit=True, connect_timeout=2)
            cur = self._mysql.cursor()
            for part in self.partition_seqs:
                seen[part] = max(seen.get(part, 0), store.load_offset(cur, part))
        except Exception:  # noqa: BLE001 - MySQL down (a fault) or not migrated yet
            with contextlib.suppress(Exception):
                self._mysql.close()
            self._mysql = None
        return seen

    def poll_once(self) -> None:
        seen = self._read_offsets()
        for part in self.partition_seqs:
            if seen.get(part, 0) > self.offsets[part]:
                self.offsets[part] = seen[part]
                self.history.add("ack", partition=part, seq=seen[part])
        elapsed = self.history.now() - self._started
        available = self.total if self.rate <= 0 else min(self.total, int(elapsed * self.rate))
        self.history.add("sample", acked=self.acked(), available=available)
