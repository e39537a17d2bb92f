"""`make demo`: the main job on the local stack, reconciled against what the source emitted.

`run_stage1`: the client consumes the live stream into MongoDB (FerretDB) and the store is
compared with the source's own log. `run_ladder`: all five stages with the stream flowing,
ending with MySQL holding every shipment at its latest version and every malformed message
in the dead-letter table. Neither prints: the caller (cli/dev.py) shows progress through
the `Reporter` it passes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lazyshift import archive, backfill, schema_migrate, verify
from lazyshift.client.consumer import Consumer, ConsumerOptions
from lazyshift.client.source import Partition
from lazyshift.config import Settings, as_environment
from lazyshift.control.plane import set_mode
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.mapping import stored_form
from lazyshift.core.mongo_store import BACKLOG, DEAD_LETTERS, OFFSETS, MongoStore
from lazyshift.dev import expected as source_log
from lazyshift.dev.stack import DevStack, StackPorts
from lazyshift.router import Router

CLIENT_START_S = 30.0
CATCH_UP_S = 300.0


@dataclass
class Check:
    what: str
    expected: int
    actual: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass
class StageResult:
    stage: str
    what: str
    seconds: float
    ok: bool


class Reporter(Protocol):
    def step(self, stage: str, what: str) -> contextlib.AbstractContextManager[None]: ...

    def done(self, result: StageResult) -> None: ...

    def note(self, text: str) -> None: ...


def run_stage1(
    settings: Settings,
    source_args: list[str],
    on_progress: Callable[[int, int], None] | None = None,
) -> list[Check]:
    """Stage 1 alone: the whole log into MongoDB, then counted against the source's log."""
    expected = source_log.expected_state(source_log.dump(source_args))
    mongo = MongoStore.open(settings)
    # A demo run starts from an empty store so its counts can be reconciled exactly.
    for name in (settings.mongo.collection, DEAD_LETTERS, OFFSETS):
        mongo.db.drop_collection(name)
    consumer = Consumer(
        Router(settings, mongo),
        ConsumerOptions(
            settings.source.host, settings.source.port, Partition(0, 1), exit_at_end=True
        ),
    )
    worker = threading.Thread(target=consumer.run, daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(timeout=0.2)
        if on_progress is not None:
            on_progress(consumer.counters.received, expected.emitted)
    c = consumer.counters
    latest = sum(
        1
        for doc in mongo.shipments.find({}, {"version": 1, "source_rev": 1})
        if (e := expected.docs.get(doc["_id"])) is not None
        and (doc["version"], doc["source_rev"]) == (e["version"], e["source_rev"])
    )
    stored = mongo.counts()
    mongo.close()
    return [
        Check("messages emitted by the source / received", expected.emitted, c.received),
        Check("shipments in MongoDB", len(expected.docs), stored["shipments"]),
        Check("shipments at their latest version", len(expected.docs), latest),
        Check("dead letters (malformed messages)", len(expected.dead_seqs), stored["dead_letters"]),
        Check("late or repeated messages ignored", expected.stale, c.stale),
    ]


def _query(settings: Settings, fn: Callable[[Any], Any]) -> Any:
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        return fn(conn.cursor())
    finally:
        conn.close()


def _poll(check: Callable[[], Any], timeout_s: float, every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(every_s)
    return value


@contextlib.contextmanager
def _control_client(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """A `lazyshift client run --mode control` process, stopped cleanly at the end."""
    cmd = [
        str(Path(sys.executable).parent / "lazyshift"),
        "client",
        "run",
        "--mode",
        "control",
        "--http-port",
        "-1",
        "--client-id",
        "demo-client",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYSHIFT_")}
    env.update(as_environment(settings))
    # Its JSON log goes beside the stack's own logs: what to read when a step fails.
    log_dir = Path(settings.state_dir) / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "demo-client.log").open("ab") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, env=env)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


class _Ladder:
    """The steps of `run_ladder`; each returns (value, ok)."""

    def __init__(self, settings: Settings, source_args: list[str], reporter: Reporter) -> None:
        self.settings = settings
        self.reporter = reporter
        self.expected = source_log.expected_state(source_log.dump(source_args))
        self.total = self.expected.emitted
        self.results: list[StageResult] = []

    def step(self, stage: str, what: str, fn: Callable[[], tuple[Any, bool]]) -> Any:
        started = time.monotonic()
        with self.reporter.step(stage, what):
            value, ok = fn()
        result = StageResult(
            stage, what if ok else f"{what} [FAILED]", time.monotonic() - started, ok
        )
        self.results.append(result)
        self.reporter.done(result)
        return value

    def wipe(self) -> None:
        """A clean slate, so the reconciliation at the end is exact."""
        stack = DevStack(Path(self.settings.state_dir), StackPorts())
        db = self.settings.mysql.database
        stack.root_sql(
            f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4"
        )
        mongo = MongoStore.open(self.settings)
        for name in (self.settings.mongo.collection, DEAD_LETTERS, OFFSETS, BACKLOG):
            mongo.db.drop_collection(name)
        mongo.close()

    def stage1(self) -> tuple[Any, bool]:
        stop = threading.Event()
        mongo = MongoStore.open(self.settings)
        consumer = Consumer(
            Router(self.settings, mongo),
            ConsumerOptions(self.settings.source.host, self.settings.source.port, Partition(0, 1)),
            stop=stop,
        )
        worker = threading.Thread(target=consumer.run, daemon=True)
        worker.start()
        while worker.is_alive() and consumer.counters.last_seq < self.total // 2:
            worker.join(timeout=0.05)
        stop.set()
        worker.join()
        mongo.close()
        return consumer.counters, consumer.counters.last_seq >= self.total // 2

    def transition(self, target: str) -> Callable[[], tuple[Any, bool]]:
        def run() -> tuple[Any, bool]:
            r = set_mode(self.settings, target)
            self.reporter.note(
                f"writes paused {r.paused_s:.3f}s; acknowledged by "
                f"{', '.join(r.acknowledged) or 'no client'}"
            )
            return r, True

        return run

    def backfill(self) -> tuple[Any, bool]:
        r = backfill.run(self.settings, backfill.BackfillOptions(workers=2, partitions=2))
        return r, r.ok

    def caught_up(self) -> tuple[Any, bool]:
        seq = _poll(
            lambda: (s := _query(self.settings, store.max_offset)) >= self.total and s,
            CATCH_UP_S,
            0.2,
        )
        return seq, bool(seq)

    def verify(self) -> tuple[Any, bool]:
        report = verify.verify(self.settings, truth="mysql")
        self.reporter.note(f"{report.counts} differences: {report.differences}")
        return report, report.ok

    def archive(self) -> tuple[Any, bool]:
        target = Path(self.settings.state_dir) / "archive" / time.strftime("%Y%m%dT%H%M%S")
        manifest = archive.archive(self.settings, str(target))
        self.reporter.note(f"{manifest.get('count')} documents -> {target}")
        return manifest, True

    def reconcile(self) -> tuple[Any, bool]:
        def read(cur: Any) -> tuple[dict[str, Any], set[int]]:
            docs = {d["key"]: d for d in store.iter_documents(cur)}
            return docs, store.dead_letter_seqs(cur, "stream")

        docs, dead = _query(self.settings, read)
        mongo = MongoStore.open(self.settings)
        dead |= {d["source_seq"] for d in mongo.dead_letters.find({})}
        mongo.close()
        exp = self.expected
        same = all(k in docs and docs[k] == stored_form(d) for k, d in exp.docs.items())
        self.reporter.note(
            f"MySQL holds {len(docs)} shipments (source: {len(exp.docs)}), "
            f"dead letters {len(dead)} (source: {len(exp.dead_seqs)})"
        )
        return None, same and len(docs) == len(exp.docs) and dead == exp.dead_seqs


def run_ladder(settings: Settings, source_args: list[str], reporter: Reporter) -> list[StageResult]:
    """Stages 1 to 5 on the dev stack with the stream flowing: stage 1 takes the first half
    of the log, a client in control mode takes the rest while the mode climbs the ladder."""
    ladder = _Ladder(settings, source_args, reporter)
    ladder.wipe()
    ladder.step(
        "stage 1 mongo",
        f"ingest the first half of {ladder.total} messages into MongoDB",
        ladder.stage1,
    )
    ladder.step(
        "stage 2 dual", "lazyshift schema migrate", lambda: (schema_migrate.migrate(settings), True)
    )
    with _control_client(settings):
        _poll(
            lambda: _query(settings, lambda cur: store.clients(cur, CLIENT_START_S)),
            CLIENT_START_S,
            0.05,
        )
        ladder.step(
            "stage 2 dual", "lazyshift mode set dual (client running)", ladder.transition("dual")
        )
        ladder.step(
            "stage 3 mysql-primary",
            "lazyshift mode set mysql-primary (the flip)",
            ladder.transition("mysql-primary"),
        )
        ladder.step("stage 4 backfill", "lazyshift backfill (2 workers)", ladder.backfill)
        ladder.step(
            "stage 4 backfill", "the client consumes the rest of the stream", ladder.caught_up
        )
        ladder.step("stage 4 backfill", "lazyshift verify --full --truth mysql", ladder.verify)
        ladder.step(
            "stage 5 mysql", "lazyshift archive --to .state/dev/archive/...", ladder.archive
        )
        ladder.step("stage 5 mysql", "lazyshift mode set mysql", ladder.transition("mysql"))
    ladder.step(
        "end",
        "every shipment in MySQL at its latest version, every bad message dead-lettered",
        ladder.reconcile,
    )
    return ladder.results
