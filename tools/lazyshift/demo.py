"""`make demo`: the main job on the local stack, reconciled against what the source emitted.

`run_stage1`: the client consumes the live stream into MongoDB (FerretDB) and the store is
compared with the source's own log. `run_ladder`: all five stages with the stream flowing,
ending with MySQL holding every shipment at its latest version and every malformed message
in the dead-letter table.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lazyshift import sourcelog
from lazyshift.client.consumer import Consumer, ConsumerOptions
from lazyshift.client.source import Partition
from lazyshift.config import Settings, as_environment
from lazyshift.core.mongo_store import DEAD_LETTERS, OFFSETS, MongoStore, connect
from lazyshift.router import Router


@dataclass
class Check:
    what: str
    expected: int
    actual: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


def run_stage1(settings: Settings, source_args: list[str], console: Console) -> list[Check]:
    messages = sourcelog.dump(source_args)
    expected = sourcelog.expected_state(messages)
    client = connect(settings.mongo.uri)
    db = client[settings.mongo.database]
    # A demo run starts from an empty store so its counts can be reconciled exactly.
    for name in (settings.mongo.collection, DEAD_LETTERS, OFFSETS):
        db.drop_collection(name)
    consumer = Consumer(
        Router(settings, MongoStore(client, settings.mongo.database, settings.mongo.collection)),
        ConsumerOptions(settings.source.host, settings.source.port, Partition(0, 1),
                        exit_at_end=True),
    )
    worker = threading.Thread(target=consumer.run, daemon=True)
    with Progress(TextColumn("stage 1 [bold]mongo[/bold]: ingesting"), BarColumn(),
                  TextColumn("{task.completed}/{task.total} messages"), TimeRemainingColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("ingest", total=len(messages))
        worker.start()
        while worker.is_alive():
            worker.join(timeout=0.2)
            progress.update(task, completed=consumer.counters.received)
        progress.update(task, completed=consumer.counters.received)
    c = consumer.counters
    stored_docs = db[settings.mongo.collection].count_documents({})
    stored_dead = db[DEAD_LETTERS].count_documents({})
    latest = sum(
        1 for doc in db[settings.mongo.collection].find({}, {"version": 1, "source_rev": 1})
        if (e := expected.docs.get(doc["_id"])) is not None
        and (doc["version"], doc["source_rev"]) == (e["version"], e["source_rev"])
    )
    client.close()
    return [
        Check("messages emitted by the source / received", expected.emitted, c.received),
        Check("shipments in MongoDB", len(expected.docs), stored_docs),
        Check("shipments at their latest version", len(expected.docs), latest),
        Check("dead letters (malformed messages)", len(expected.dead_seqs), stored_dead),
        Check("late or repeated messages ignored", expected.stale, c.stale),
    ]


def print_checks(checks: list[Check], console: Console) -> None:
    table = Table("check", "source says", "lazyshift has", "", title="stage 1 reconciliation")
    for ch in checks:
        table.add_row(ch.what, str(ch.expected), str(ch.actual),
                      "[green]ok[/green]" if ch.ok else "[red]MISMATCH[/red]")
    console.print(table)


# -- the whole ladder --------------------------------------------------------------------------
@dataclass
class StageResult:
    stage: str
    what: str
    seconds: float
    ok: bool


def run_ladder(settings: Settings, source_args: list[str], console: Console) -> list[StageResult]:
    """Stages 1 to 5 on the dev stack with the stream flowing: stage 1 takes the first half
    of the log, a client in control mode takes the rest while the mode climbs the ladder."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from lazyshift import archive, backfill, schema_migrate, verify
    from lazyshift.core import mysql as my
    from lazyshift.core.mapping import load_documents, normalize
    from lazyshift.devstack import DevStack, StackPorts
    from lazyshift.transitions import change_mode

    messages = sourcelog.dump(source_args)
    expected = sourcelog.expected_state(messages)
    total = len(messages)
    out: list[StageResult] = []

    def step(stage: str, what: str, fn: Any) -> Any:
        started = time.monotonic()
        with console.status(f"{stage}: {what}"):
            value, ok = fn()
        out.append(StageResult(stage, what if ok else f"{what} [FAILED]",
                               time.monotonic() - started, ok))
        console.print(f"[bold]{stage}[/bold] {what}: "
                      + ("[green]ok[/green]" if ok else "[red]failed[/red]"))
        return value

    # A clean slate, so the reconciliation at the end is exact.
    stack = DevStack(Path(settings.state_dir), StackPorts())
    db = settings.mysql.database
    stack.root_sql(f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    client = connect(settings.mongo.uri)
    mdb = client[settings.mongo.database]
    for name in (settings.mongo.collection, DEAD_LETTERS, OFFSETS, "mysql_backlog"):
        mdb.drop_collection(name)

    def stage1() -> tuple[Any, bool]:
        stop = threading.Event()
        consumer = Consumer(Router(settings, MongoStore(client, settings.mongo.database)),
                            ConsumerOptions(settings.source.host, settings.source.port,
                                            Partition(0, 1)), stop=stop)
        worker = threading.Thread(target=consumer.run, daemon=True)
        worker.start()
        while worker.is_alive() and consumer.counters.last_seq < total // 2:
            worker.join(timeout=0.05)
        stop.set()
        worker.join()
        return consumer.counters, consumer.counters.last_seq >= total // 2

    step("stage 1 mongo", f"ingest the first half of {total} messages into MongoDB",
         stage1)

    def migrate() -> tuple[Any, bool]:
        return schema_migrate.migrate(settings), True

    step("stage 2 dual", "lazyshift schema migrate", migrate)
    cmd = [str(Path(sys.executable).parent / "lazyshift"), "client", "run", "--mode", "control",
           "--http-port", "-1", "--client-id", "demo-client"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYSHIFT_")}
    env.update(as_environment(settings))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        def beat() -> bool:
            conn = my.connect(settings.mysql, autocommit=True)
            cur = conn.cursor()
            cur.execute("SELECT COUNT(*) FROM client_heartbeat")
            (n,) = cur.fetchone()
            conn.close()
            return bool(n)

        deadline = time.monotonic() + 30
        while not beat() and time.monotonic() < deadline:
            time.sleep(0.05)

        def transition(target: str) -> Any:
            def run() -> tuple[Any, bool]:
                r = change_mode(settings, target)
                console.print(f"  writes paused {r.paused_s:.3f}s; acknowledged by "
                              f"{', '.join(r.acknowledged) or 'no client'}")
                return r, True
            return run

        step("stage 2 dual", "lazyshift mode set dual (client running)", transition("dual"))
        step("stage 3 mysql-primary", "lazyshift mode set mysql-primary (the flip)",
             transition("mysql-primary"))

        def run_backfill() -> tuple[Any, bool]:
            r = backfill.run(settings, backfill.BackfillOptions(workers=2, partitions=2))
            return r, r.ok

        step("stage 4 backfill", "lazyshift backfill (2 workers)", run_backfill)

        def drained() -> tuple[Any, bool]:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                conn = my.connect(settings.mysql, autocommit=True)
                cur = conn.cursor()
                cur.execute("SELECT COALESCE(MAX(seq), 0) FROM client_offset")
                (seq,) = cur.fetchone()
                conn.close()
                if seq >= total:
                    return seq, True
                time.sleep(0.2)
            return None, False

        step("stage 4 backfill", "the client consumes the rest of the stream", drained)

        def run_verify() -> tuple[Any, bool]:
            report = verify.verify(settings, truth="mysql")
            console.print(f"  {report.counts} differences: {report.differences}")
            return report, report.ok

        step("stage 4 backfill", "lazyshift verify --full --truth mysql", run_verify)

        def run_archive() -> tuple[Any, bool]:
            target = Path(settings.state_dir) / "archive" / time.strftime("%Y%m%dT%H%M%S")
            manifest = archive.archive(settings, str(target))
            console.print(f"  {manifest.get('count')} documents -> {target}")
            return manifest, True

        step("stage 5 mysql", "lazyshift archive --to .state/dev/archive/...", run_archive)
        step("stage 5 mysql", "lazyshift mode set mysql", transition("mysql"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    def reconcile() -> tuple[Any, bool]:
        conn = my.connect(settings.mysql)
        cur = conn.cursor()
        cur.execute("SELECT shipment_key FROM shipment")
        docs = load_documents(cur, [r[0] for r in cur.fetchall()])
        cur.execute("SELECT source_seq FROM dead_letter WHERE origin = 'stream'")
        dead = {r[0] for r in cur.fetchall()}
        conn.close()
        dead |= {d["source_seq"] for d in mdb[DEAD_LETTERS].find({})}
        same = all(k in docs and docs[k] == normalize(d) for k, d in expected.docs.items())
        console.print(f"  MySQL holds {len(docs)} shipments (source: {len(expected.docs)}), "
                      f"dead letters {len(dead)} (source: {len(expected.dead_seqs)})")
        return None, same and len(docs) == len(expected.docs) and dead == expected.dead_seqs

    step("end", "every shipment in MySQL at its latest version, every bad message "
         "dead-lettered", reconcile)
    client.close()
    return out


def print_ladder(results: list[StageResult], console: Console) -> None:
    table = Table("stage", "step", "seconds", "", title="the ladder, end to end")
    for r in results:
        table.add_row(r.stage, r.what, f"{r.seconds:.2f}",
                      "[green]ok[/green]" if r.ok else "[red]FAILED[/red]")
    console.print(table)
