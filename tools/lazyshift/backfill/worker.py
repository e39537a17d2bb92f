"""A backfill worker: lease a partition, read it from MongoDB, write it into MySQL.

Workers lease partitions with `SELECT ... FOR UPDATE SKIP LOCKED`; a lease expires after
`lease_seconds` unless renewed. A lease keeper thread renews it (on its own connection) every
quarter lease whatever the pace of the batches, so a batch slower than the lease is not taken
over (issue 9, hole 13); a dead worker's lease does expire, and its partition is taken over
from its checkpoint. The keeper gives up on a worker that made no progress for
`STALL_LEASES` leases (at least `STALL_MIN_S`), so a hung worker does not hold a partition
forever.

A partition is read with ONE MongoDB cursor `find({_id: {$gt: checkpoint, $lte: upper}})
.sort(_id)` iterated in batches, one batch read ahead while the previous one is written:
FerretDB (patched, tools/bootstrap/ferretdb.sh) answers it from its `_id` index and streams.
Each batch is one MySQL transaction: lock the partition row and check the lease and
checkpoint, `apply_batch` (never overwrites newer rows), dead-letter the unmappable documents,
move the checkpoint. A crash at any point leaves either all of a batch or none of it, so a
rerun neither loses nor re-applies a document (DESIGN.md invariant 3).

The 'other' partition (non-string `_id`s) waits for the ranges; it is scanned only if the
collection holds more documents than the ranges found.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pymongo.errors

from lazyshift import logs
from lazyshift.backfill import throttle
from lazyshift.backfill.options import ORIGIN, BackfillOptions
from lazyshift.config import Settings
from lazyshift.core import mysql_store as store
from lazyshift.core.guarded_write import apply_batch, map_or_reject
from lazyshift.core.mongo_store import MongoStore, collection_count, key_filter
from lazyshift.core.mysql import connect, run_in_transaction
from lazyshift.core.mysql_store import document_dead_letter
from lazyshift.read_ahead import ReadAhead

PAUSE_POLL_S = 0.25
IDLE_POLL_S = 0.5
MONGO_RETRIES = 5


class LeaseLost(Exception):
    """Another worker owns the partition now (our lease expired)."""


@dataclass
class Partition:
    id: int
    kind: str
    upper: str | None
    checkpoint: str | None


@dataclass
class Timings:
    """Where a worker's wall time went (seconds), logged per partition and per worker so a
    slow run says whether it waited on MongoDB, mapped, or waited on MySQL."""

    docs: int = 0
    read_wait: float = 0.0  # blocked on the read-ahead: MongoDB slower than map + write
    map: float = 0.0  # mapping documents to rows (client CPU)
    write: float = 0.0  # the batch's MySQL transaction
    other: float = 0.0  # throttle checks, pacing, leases

    def add(self, other: Timings) -> None:
        self.docs += other.docs
        self.read_wait += other.read_wait
        self.map += other.map
        self.write += other.write
        self.other += other.other

    def as_fields(self) -> dict[str, Any]:
        return {
            "docs": self.docs,
            "read_wait_s": round(self.read_wait, 3),
            "map_s": round(self.map, 3),
            "write_s": round(self.write, 3),
            "other_s": round(self.other, 3),
        }


STALL_LEASES = 20
STALL_MIN_S = 600.0


class LeaseKeeper:
    """Renews the lease of the partition a worker holds, independently of its progress."""

    def __init__(self, settings: Settings, owner: str, lease_s: float) -> None:
        self.settings = settings
        self.owner = owner
        self.lease_s = lease_s
        self.stall_s = max(STALL_MIN_S, STALL_LEASES * lease_s)
        self.lost = threading.Event()
        self._part: int | None = None
        self._progress = time.monotonic()
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
        self._thread.start()

    def hold(self, part_id: int) -> None:
        self.lost.clear()
        self._progress = time.monotonic()
        self._part = part_id

    def release(self) -> None:
        self._part = None

    def progressed(self) -> None:
        self._progress = time.monotonic()

    def _renew(self, part_id: int) -> bool:
        if self._conn is None:
            self._conn = connect(self.settings.mysql, autocommit=True)
        cur = self._conn.cursor()
        try:
            return store.renew_partition_lease(cur, part_id, self.owner, self.lease_s)
        finally:
            cur.close()

    def _run(self) -> None:
        while not self._stop.wait(max(0.05, self.lease_s / 4)):
            part = self._part
            if part is None or time.monotonic() - self._progress > self.stall_s:
                continue
            try:
                ok = self._renew(part)
            except Exception as exc:  # noqa: BLE001 - MySQL away: retried next tick
                logs.event("backfill.lease_renew_failed", logging.WARNING, error=str(exc))
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
                continue
            if not ok and self._part == part:
                self.lost.set()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()


def die_with_parent() -> None:
    """Linux: SIGKILL this worker when the command that started it dies (e.g. kill -9)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Worker:
    def __init__(self, settings: Settings, options: BackfillOptions, name: str) -> None:
        self.settings = settings
        self.options = options
        self.owner = f"{socket.gethostname()[:40]}:{os.getpid()}:{name}"[:64]
        self.stop = False
        self.conn = connect(settings.mysql)
        self.mongo = MongoStore.open(settings, scan=True, timeout_ms=10_000)
        self.pacer = throttle.Pacer(options.per_worker_rate())
        self.scanned = 0
        self.last_renew = 0.0
        self.keeper = LeaseKeeper(settings, self.owner, options.lease_seconds)
        self.timings = Timings()  # the current partition's
        self.total = Timings()
        self.started = time.monotonic()
        self.idle = 0.0  # waiting for a partition to lease

    def close(self) -> None:
        self.keeper.close()
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.mongo.close()

    # one short transaction, retried on retryable errors
    def _tx(self, fn: Callable[[Any], Any]) -> Any:
        return run_in_transaction(self.conn, fn)

    def lease(self) -> Partition | None | bool:
        """A leased partition; None if none is free now; False if every partition is done."""
        got = self._tx(
            lambda cur: store.lease_partition(cur, self.owner, self.options.lease_seconds)
        )
        if not isinstance(got, dict):
            return got
        part = Partition(int(got["id"]), got["kind"], got["upper_key"], got["checkpoint_key"])
        self.last_renew = time.monotonic()
        self.keeper.hold(part.id)
        logs.event(
            "backfill.lease", partition=part.id, owner=self.owner, checkpoint=part.checkpoint
        )
        return part

    def _set_state(self, part: Partition, status: str, release: bool = False) -> bool:
        ok = bool(
            self._tx(
                lambda cur: store.set_partition_state(
                    cur, part.id, self.owner, status, self.options.lease_seconds, release
                )
            )
        )
        self.last_renew = time.monotonic()
        return ok

    def _signals(self) -> throttle.Signals:
        def read(cur: Any) -> throttle.Signals:
            busy = store.threads_running(cur) if self.options.max_threads_running else 0
            return throttle.Signals(store.backfill_paused(cur), busy)

        return self._tx(read)

    def wait_if_needed(self, part: Partition | None) -> None:
        """Obey the operator's pause and the Threads_running limit (renewing the lease)."""
        state = None
        while not self.stop:
            want = throttle.reason(self._signals(), self.options.max_threads_running)
            self.keeper.progressed()  # waiting as told is not a stall
            if want is None:
                break
            if want != state:
                state = want
                logs.event(f"backfill.{want}", owner=self.owner)
                if part is not None and not self._set_state(part, want):
                    raise LeaseLost()
            elif part is not None and (
                time.monotonic() - self.last_renew > self.options.lease_seconds / 3
            ):
                if not self._set_state(part, want):
                    raise LeaseLost()
            time.sleep(PAUSE_POLL_S)
        if state is not None and part is not None and not self._set_state(part, "running"):
            raise LeaseLost()

    def pace(self) -> None:
        while not self.stop and (delay := self.pacer.delay(self.scanned)) > 0:
            time.sleep(min(delay, PAUSE_POLL_S))

    def commit_batch(self, part: Partition, docs: list[dict[str, Any]]) -> None:
        if self.keeper.lost.is_set():
            raise LeaseLost()
        t0 = time.monotonic()
        last = docs[-1]["_id"] if part.kind == "range" else part.checkpoint
        rows_by_key, rejected = map_or_reject(docs)
        rows = list(rows_by_key.values())
        letters = [document_dead_letter(ORIGIN, doc, why) for doc, why in rejected]

        def tx(cur: Any) -> None:
            found = store.lock_partition(cur, part.id)
            if found is None or found[1] != self.owner:
                raise LeaseLost()
            if found[0] != part.checkpoint:
                if part.kind == "range" and found[0] == last:
                    return  # committed before the connection was lost: nothing to redo
                raise LeaseLost()
            # A copy of MongoDB: not stamped as a live write (rollback need not carry it back).
            result = apply_batch(cur, rows, epoch=None)
            store.insert_dead_letters(cur, letters)
            store.advance_checkpoint(
                cur,
                part.id,
                self.owner,
                last,
                len(docs),
                len(result.applied_keys),
                len(rejected),
                self.options.lease_seconds,
            )

        t1 = time.monotonic()
        self._tx(tx)
        self.timings.map += t1 - t0
        self.timings.write += time.monotonic() - t1
        self.timings.docs += len(docs)
        part.checkpoint = last
        self.scanned += len(docs)
        self.last_renew = time.monotonic()
        self.keeper.progressed()

    def _cursor(self, part: Partition) -> Iterator[dict[str, Any]]:
        # Naive datetimes (UTC): pymongo then builds no tzinfo per time and the mapping,
        # which takes naive as UTC (mapping.py), converts none (~10 us a document).
        coll = self.mongo.shipments
        coll = coll.with_options(codec_options=coll.codec_options.with_options(tz_aware=False))
        if part.kind == "other":
            # Non-string _ids: unordered, no checkpoint; each batch is idempotent (dedup key).
            flt: dict[str, Any] = {"_id": {"$not": {"$type": "string"}}}
            return iter(coll.find(flt, batch_size=self.options.batch_size))
        cur = coll.find(key_filter(part.checkpoint, part.upper))
        return iter(cur.sort("_id", 1).batch_size(self.options.batch_size))

    def other_needed(self, part: Partition) -> bool | None:
        """For the 'other' partition: None while ranges are still running (it is handed
        back), False if the ranges found every document (it is done), True to scan it."""
        left, scanned = self._tx(store.range_partitions_scanned)
        if left:
            self._set_state(part, "pending", release=True)
            return None
        if collection_count(self.mongo.shipments) <= scanned:
            self._set_state(part, "done", release=True)
            return False
        return True

    def run_partition(self, part: Partition) -> bool:
        """Backfill one leased partition; True when it is done."""
        if part.kind == "other" and not self.other_needed(part):
            return False
        batch_size = self.options.batch_size
        rate = self.options.per_worker_rate()
        if rate:
            batch_size = max(1, min(batch_size, int(rate)))  # about a batch per second
        failures = 0
        started = time.monotonic()
        self.timings = Timings()
        while not self.stop:
            try:
                self.wait_if_needed(part)
                ahead = ReadAhead(self._cursor(part), batch_size, name="backfill-read-ahead")
                try:
                    batches = iter(ahead)
                    while True:
                        t0 = time.monotonic()
                        docs = next(batches, None)
                        self.timings.read_wait += time.monotonic() - t0
                        if docs is None:
                            break
                        self.commit_batch(part, docs)
                        failures = 0
                        t0 = time.monotonic()
                        self.pace()
                        self.wait_if_needed(part)
                        self.timings.other += time.monotonic() - t0
                        if self.stop:
                            break
                finally:
                    ahead.close()
                if self.stop:
                    break
                done = self._set_state(part, "done", release=True)
                self._partition_done(part, started)
                return done
            except (
                pymongo.errors.AutoReconnect,
                pymongo.errors.CursorNotFound,
                pymongo.errors.ExecutionTimeout,
            ) as exc:
                failures += 1
                if failures > MONGO_RETRIES:
                    raise
                logs.event(
                    "backfill.mongo_retry",
                    logging.WARNING,
                    partition=part.id,
                    error=str(exc),
                    checkpoint=part.checkpoint,
                )
                time.sleep(min(5.0, 0.2 * 2**failures))  # back-off before reopening
        self._set_state(part, "pending", release=True)
        return False

    def _partition_done(self, part: Partition, started: float) -> None:
        self.total.add(self.timings)
        logs.event(
            "backfill.partition_done",
            partition=part.id,
            owner=self.owner,
            s=round(time.monotonic() - started, 3),
            **self.timings.as_fields(),
        )

    def _report(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        logs.event(
            "backfill.worker_done",
            owner=self.owner,
            s=round(time.monotonic() - self.started, 3),
            idle_s=round(self.idle, 3),
            cpu_user_s=round(usage.ru_utime, 3),
            cpu_sys_s=round(usage.ru_stime, 3),
            **self.total.as_fields(),
        )

    def run(self) -> int:
        try:
            while not self.stop:
                self.wait_if_needed(None)
                got = self.lease()
                if got is False:
                    self._report()
                    return 0
                if got is None:
                    t0 = time.monotonic()
                    time.sleep(IDLE_POLL_S)  # others hold the rest: wait for them or expiry
                    self.idle += time.monotonic() - t0
                    continue
                assert isinstance(got, Partition)
                try:
                    if not self.run_partition(got) and got.kind == "other":
                        time.sleep(IDLE_POLL_S)  # handed back until the ranges are done
                except LeaseLost:
                    logs.event(
                        "backfill.lease_lost", logging.WARNING, partition=got.id, owner=self.owner
                    )
                finally:
                    self.keeper.release()
            return 0
        finally:
            self.close()


def worker_main(settings: Settings, options: BackfillOptions, name: str) -> int:
    """Entry point of a worker process."""
    die_with_parent()
    logs.setup(os.environ.get("LAZYSHIFT_LOG_LEVEL", "INFO"))
    worker = Worker(settings, options, name)

    def _stop(*_: Any) -> None:
        worker.stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        return worker.run()
    except Exception as exc:  # noqa: BLE001 - reported, and the exit code says it failed
        logs.event(
            "backfill.worker_failed",
            logging.ERROR,
            owner=worker.owner,
            error=f"{type(exc).__name__}: {exc}",
        )
        return 1
