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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lazyshift.config import Settings
from lazyshift.core.normalise import Malformed, normalise, parse_message

REPO = Path(__file__).resolve().parents[1]
MOCK = REPO / "tools" / "mock-source" / "bin" / "mock-source.js"
LAZYSHIFT = Path(sys.executable).parent / "lazyshift"
MAX_MESSAGE_BYTES = 1 << 20


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


class MockSource:
    def __init__(self, *args: str, port: int = 0) -> None:
        self.args = list(args)
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> MockSource:
        self.proc = subprocess.Popen(
            ["node", str(MOCK), "serve", "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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
    gen_args = _generation_args(list(args))
    if partition:
        gen_args += ["--partition", partition]
    out = subprocess.run(["node", str(MOCK), "dump", *gen_args], capture_output=True,
                         text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line]


def _generation_args(args: list[str]) -> list[str]:
    keep = {"--seed", "--count", "--sources", "--update-fraction", "--replay-fraction",
            "--malformed-fraction"}
    out = []
    for flag, value in zip(args[::2], args[1::2], strict=False):
        if flag in keep:
            out += [flag, value]
    return out


@dataclass
class Expected:
    """What the store must hold after the whole log was consumed."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> doc with version
    dead_seqs: set[int] = field(default_factory=set)
    emitted: int = 0


def expected_state(messages: list[dict[str, Any]]) -> Expected:
    exp = Expected(emitted=len(messages))
    for m in messages:
        raw = m["payload"].encode()
        if len(raw) > MAX_MESSAGE_BYTES:
            exp.dead_seqs.add(m["seq"])
            continue
        try:
            doc = normalise(parse_message(raw))
        except Malformed:
            exp.dead_seqs.add(m["seq"])
            continue
        current = exp.docs.get(doc["key"])
        if current is None or doc["source_rev"] > current["source_rev"]:
            version = 1 if current is None else current["version"] + 1
            exp.docs[doc["key"]] = {**doc, "version": version}
    return exp


def run_cli(*args: str, settings: Settings | None = None, check: bool = True,
            timeout: float = 300, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(LAZYSHIFT), *args], capture_output=True, text=True,
                          timeout=timeout, env=cli_env(settings, env))
    if check and proc.returncode != 0:
        raise AssertionError(f"lazyshift {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def start_cli(*args: str, settings: Settings | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([str(LAZYSHIFT), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(settings, env))


def cli_env(settings: Settings | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYSHIFT_")}
    env["LAZYSHIFT_LOG_LEVEL"] = "WARNING"
    if settings is not None:
        env.update(settings_env(settings))
    env.update(extra or {})
    return env


def settings_env(settings: Settings) -> dict[str, str]:
    """Settings as LAZYSHIFT_* variables (the way an operator would pass them)."""
    env = {"LAZYSHIFT_STATE_DIR": str(settings.state_dir),
           "LAZYSHIFT_CONFIG": ""}
    for section in ("mysql", "mongo", "source", "client"):
        for name, value in getattr(settings, section).model_dump().items():
            env[f"LAZYSHIFT_{section.upper()}__{name.upper()}"] = str(value)
    env.pop("LAZYSHIFT_CONFIG")
    return env


def kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(timeout=30)
