"""Test helpers: the real Node mock source, the real CLI, and the expected end state.

The expected state is computed from the mock's own `dump` of the same log, so a test
compares what the pipeline stored with what the source actually emitted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lazyshift.config import Settings, as_environment
from lazyshift.dev import expected
from lazyshift.dev.expected import Expected, expected_state  # noqa: F401 (re-exported for tests)

REPO = Path(__file__).resolve().parents[1]
MOCK = REPO / "tools" / "mock-source" / "bin" / "mock-source.js"
LAZYSHIFT = Path(sys.executable).parent / "lazyshift"


def poll(check: Callable[[], Any], what: str, timeout: float = 60.0, every: float = 0.05):
    """Poll until `check()` is truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def start_in_thread(results: dict[str, Any], name: str, fn: Callable[[], Any]) -> threading.Thread:
    """Run `fn` on a daemon thread; its result, or what it raised, lands in `results[name]`
    (for the assertions of the test that joins it)."""

    def target() -> None:
        try:
            results[name] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported by the test's assertions
            results[name] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def running_statements(mysql_root: Any) -> list[str]:
    """The statements other connections are running right now, from the processlist
    (MariaDB's INNODB_TRX may leave out a transaction waiting in its first locking read)."""
    mysql_root.commit()
    cur = mysql_root.cursor()
    cur.execute(
        "SELECT COALESCE(info, '') FROM information_schema.PROCESSLIST "
        "WHERE command = 'Query' AND id <> CONNECTION_ID()"
    )
    out = [r[0] for r in cur.fetchall()]
    cur.close()
    return out


class MockSource:
    def __init__(self, *args: str, port: int = 0) -> None:
        self.args = list(args)
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> MockSource:
        self.proc = subprocess.Popen(
            ["node", str(MOCK), "serve", "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"mock source did not start: {self.proc.stderr.read()}")
        info = json.loads(line)
        assert info["event"] == "listening", info
        self.port = info["port"]
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)

    def dump(self, partition: str | None = None) -> list[dict[str, Any]]:
        return dump(*self.args, partition=partition)


def dump(*args: str, partition: str | None = None) -> list[dict[str, Any]]:
    return expected.dump(list(args), partition=partition)


def run_cli(
    *args: str,
    settings: Settings | None = None,
    check: bool = True,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(LAZYSHIFT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=cli_env(settings, env),
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"lazyshift {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def start_cli(
    *args: str, settings: Settings | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(LAZYSHIFT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(settings, env),
    )


def cli_env(settings: Settings | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYSHIFT_")}
    env["LAZYSHIFT_LOG_LEVEL"] = "WARNING"
    if settings is not None:
        env.update(settings_env(settings))
    env.update(extra or {})
    return env


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as LAZYSHIFT_* variables (the way an operator would pass them)."""
    return as_environment(settings)


def kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, dict[str, Any], dict]:
    """(status, JSON body, headers) from a client's read API."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)
