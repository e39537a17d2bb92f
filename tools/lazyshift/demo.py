"""`make demo`: the main job on the local stack, reconciled against what the source emitted.

Stage 1 (`mongo`): the client consumes the live stream into MongoDB (FerretDB); the demo
then compares the store with the source's own log: every message is either the latest
version of its shipment or a dead letter.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lazyshift import sourcelog
from lazyshift.client.consumer import Consumer, ConsumerOptions
from lazyshift.client.source import Partition
from lazyshift.config import Settings
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
