"""Eager backfill: copy every MongoDB shipment into MySQL through the guarded write.

Plan: the string `_id` key space is split into N ranges from a reservoir sample of every
`_id` (one scan), stored in `backfill_partition` (plus one 'other' partition if documents
with a non-string `_id` exist: they cannot be mapped and are dead-lettered). Planning runs
once per database under a MySQL named lock, so several hosts can start the same command.

Work: W worker processes per command lease partitions with `SELECT ... FOR UPDATE SKIP
LOCKED`; a lease expires after `lease_seconds` unless renewed (every batch renews it), so a
dead worker's partition is taken over from its checkpoint. A partition is read with ONE
MongoDB cursor `find({_id: {$gt: checkpoint, $lte: upper}}).sort(_id)` iterated in batches:
FerretDB evaluates any range filter over a full scan, so repeated range queries would rescan
the collection per page. Each batch is one MySQL transaction: lock the partition row and check
the lease and checkpoint, `apply_batch` (never overwrites newer rows), dead-letter the
unmappable documents, move the checkpoint. A crash at any point leaves either all of a batch
or none of it, so a rerun neither loses nor re-applies a document (DESIGN.md invariant 3).

Throttle: `max_rate` docs/s per command (split between its workers), a pause while MySQL's
`Threads_running` exceeds a limit, and the operator's `backfill_control.paused` flag, read
before every batch and twice a second while paused.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import queue
import random
import re
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import pymongo.errors
from mysql.connector.abstracts import MySQLConnectionAbstract

from lazyshift import logs
from lazyshift.config import Settings
from lazyshift.core import mapping
from lazyshift.core.document import InvalidDocument
from lazyshift.core.guarded_write import apply_batch, map_or_reject
from lazyshift.core.mysql import (
    connect,
    rows_as_dicts,
    run_in_transaction,
)
from lazyshift.dataops import (
    insert_dead_letters,
    key_filter,
    mongo_client,
    path_pattern,
    shipments,
)

ORIGIN = "backfill"
PLAN_LOCK_TIMEOUT_S = 3600
PAUSE_POLL_S = 0.25
IDLE_POLL_S = 0.5
MONGO_RETRIES = 5


class BackfillError(RuntimeError):
    """The backfill cannot run as asked; the message says why and what to do."""


class LeaseLost(Exception):
    """Another worker owns the partition now (our lease expired)."""


@dataclass(frozen=True)
class BackfillOptions:
    workers: int = 1
    partitions: int = 8
    batch_size: int = 500
    lease_seconds: float = 60.0
    max_rate: float | None = None  # docs/s for this command, all its workers together
    max_threads_running: int = 0  # 0 = no check
    sample_size: int = 20_000

    def per_worker_rate(self) -> float | None:
        return None if not self.max_rate else self.max_rate / max(1, self.workers)


@dataclass
class Progress:
    partitions: int = 0
    partitions_done: int = 0
    total: int = 0  # MongoDB documents when planned
    done: int = 0  # scanned by the backfill
    written: int = 0  # applied by the backfill (the rest were already as new in MySQL)
    dead: int = 0
    mysql_rows: int = 0
    left_to_migrate: int = 0  # MongoDB documents not in MySQL yet, lazy migration included
    paused: bool = False
    states: dict[str, int] = field(default_factory=dict)
    rate: float | None = None  # docs/s, set by the caller that samples over time
    eta_s: float | None = None

    @property
    def complete(self) -> bool:
        return self.partitions > 0 and self.partitions_done == self.partitions

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}


# -- small SQL helpers ---------------------------------------------------------------------


def _mysql(settings: Settings, **kw: Any) -> MySQLConnectionAbstract:
    return connect(settings.mysql, **kw)


def _query(conn: MySQLConnectionAbstract, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return rows_as_dicts(cur, cur.fetchall()) if cur.with_rows else []
    finally:
        cur.close()


def _check_schema(conn: MySQLConnectionAbstract) -> None:
    rows = _query(conn, "SELECT COUNT(*) AS n FROM information_schema.columns WHERE "
                        "table_schema = DATABASE() AND table_name = 'backfill_partition' "
                        "AND column_name = 'docs_dead'")
    if not rows or not rows[0]["n"]:
        raise BackfillError("backfill tables are missing or old: run `lazyshift schema migrate`")


def _interval_us(seconds: float) -> int:
    return max(1, int(seconds * 1_000_000))


# -- plan ----------------------------------------------------------------------------------


def boundaries(sample: list[str], partitions: int) -> list[str]:
    """At most partitions-1 distinct split keys: quantiles of the sorted sample."""
    if partitions <= 1 or not sample:
        return []
    ordered = sorted(set(sample), key=lambda k: k.encode("utf-8", "surrogatepass"))
    cuts: list[str] = []
    for i in range(1, partitions):
        k = ordered[min(len(ordered) - 1, (i * len(ordered)) // partitions)]
        if not cuts or k != cuts[-1]:
            cuts.append(k)
    return cuts[: partitions - 1]


def _sample_ids(settings: Settings, sample_size: int, seed: int | None = None
                ) -> tuple[list[str], int, int]:
    """(reservoir sample of string _ids, string _id count, non-string _id count): one scan."""
    rng = random.Random(seed)
    client = mongo_client(settings)
    try:
        sample: list[str] = []
        strings = others = 0
        for doc in shipments(client, settings).find({}, {"_id": 1}, batch_size=10_000):
            doc_id = doc["_id"]
            if not isinstance(doc_id, str):
                others += 1
                continue
            strings += 1
            if len(sample) < sample_size:
                sample.append(doc_id)
            else:
                j = rng.randrange(strings)
                if j < sample_size:
                    sample[j] = doc_id
        return sample, strings, others
    finally:
        client.close()


def plan(settings: Settings, options: BackfillOptions) -> dict[str, Any]:
    """Create the partitions unless a plan exists; {"created", "partitions", "total"}."""
    conn = _mysql(settings, autocommit=True)
    lock = f"lazyshift.backfill.plan.{settings.mysql.database}"[:64]
    try:
        _check_schema(conn)
        got = _query(conn, "SELECT GET_LOCK(%s, %s) AS got", (lock, PLAN_LOCK_TIMEOUT_S))
        if not got or got[0]["got"] != 1:
            raise BackfillError(f"another backfill is still planning (lock {lock!r})")
        try:
            existing = _query(conn, "SELECT COUNT(*) AS n, COALESCE(SUM(docs_estimate), 0) AS t "
                                    "FROM backfill_partition")[0]
            if existing["n"]:
                return {"created": False, "partitions": int(existing["n"]),
                        "total": int(existing["t"])}
            sample, strings, others = _sample_ids(settings, options.sample_size)
            cuts = boundaries(sample, options.partitions)
            lowers: list[str | None] = [None, *cuts]
            uppers: list[str | None] = [*cuts, None]
            n = len(lowers)
            run_id = uuid.uuid4().hex
            rows: list[tuple[Any, ...]] = []
            for i, (lo, up) in enumerate(zip(lowers, uppers, strict=True)):
                estimate = strings // n + (1 if i < strings % n else 0)
                rows.append((i + 1, "range", lo, up, lo, estimate, run_id))
            if others:
                rows.append((n + 1, "other", None, None, None, others, run_id))
            conn.start_transaction()
            cur = conn.cursor()
            cur.executemany(
                "INSERT INTO backfill_partition (id, kind, lower_key, upper_key, checkpoint_key, "
                "docs_estimate, run_id, status, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', UTC_TIMESTAMP(6))", rows)
            cur.execute("UPDATE backfill_control SET run_id = %s WHERE id = 1", (run_id,))
            cur.close()
            conn.commit()
            logs.event("backfill.planned", partitions=len(rows), total=strings + others,
                       run_id=run_id)
            return {"created": True, "partitions": len(rows), "total": strings + others}
        finally:
            _query(conn, "SELECT RELEASE_LOCK(%s) AS r", (lock,))
    finally:
        conn.close()


# -- operator controls ---------------------------------------------------------------------


def set_paused(settings: Settings, paused: bool) -> None:
    conn = _mysql(settings, autocommit=True)
    try:
        _query(conn, "UPDATE backfill_control SET paused = %s WHERE id = 1", (paused,))
    finally:
        conn.close()


def reset(settings: Settings) -> int:
    """Forget the plan and its checkpoints (rows in MySQL stay); partitions removed."""
    conn = _mysql(settings, autocommit=True)
    try:
        _check_schema(conn)
        cur = conn.cursor()
        cur.execute("DELETE FROM backfill_partition")
        removed = cur.rowcount
        cur.execute("UPDATE backfill_control SET run_id = NULL, paused = FALSE WHERE id = 1")
        cur.close()
        return removed
    finally:
        conn.close()


def progress(settings: Settings, conn: MySQLConnectionAbstract | None = None) -> Progress:
    own = conn is None
    conn = conn or _mysql(settings, autocommit=True)
    try:
        _check_schema(conn)
        agg = _query(conn, "SELECT COUNT(*) AS n, COALESCE(SUM(status = 'done'), 0) AS d, "
                           "COALESCE(SUM(docs_estimate), 0) AS t, COALESCE(SUM(docs_done), 0) AS "
                           "done, COALESCE(SUM(docs_written), 0) AS w, "
                           "COALESCE(SUM(docs_dead), 0) AS dead FROM backfill_partition")[0]
        states = {r["status"]: int(r["n"]) for r in _query(
            conn, "SELECT status, COUNT(*) AS n FROM backfill_partition GROUP BY status")}
        paused = _query(conn, "SELECT paused FROM backfill_control WHERE id = 1")
        rows = int(_query(conn, "SELECT COUNT(*) AS n FROM shipment")[0]["n"])
        total, done = int(agg["t"]), int(agg["done"])
        # Rows created in MySQL only (after the flip) also count as present: an estimate.
        left = min(max(0, total - done), max(0, total - rows))
        return Progress(partitions=int(agg["n"]), partitions_done=int(agg["d"]), total=total,
                        done=done, written=int(agg["w"]), dead=int(agg["dead"]),
                        mysql_rows=rows, left_to_migrate=left,
                        paused=bool(paused and paused[0]["paused"]), states=states)
    finally:
        if own:
            conn.close()


def partitions(settings: Settings) -> list[dict[str, Any]]:
    conn = _mysql(settings, autocommit=True)
    try:
        _check_schema(conn)
        return _query(conn, "SELECT id, kind, lower_key, upper_key, checkpoint_key, status, "
                            "lease_owner, lease_expires, docs_estimate, docs_done, docs_written, "
                            "docs_dead, attempts FROM backfill_partition ORDER BY id")
    finally:
        conn.close()


def dead_letters(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    conn = _mysql(settings, autocommit=True)
    try:
        return _query(conn, "SELECT dedup_key, reason FROM dead_letter WHERE origin = %s "
                            "ORDER BY id LIMIT %s", (ORIGIN, limit))
    finally:
        conn.close()


# -- the worker ----------------------------------------------------------------------------


@dataclass
class _Partition:
    id: int
    kind: str
    upper: str | None
    checkpoint: str | None


_END = object()


class _ReadAhead:
    """Reads a MongoDB cursor one batch ahead in a thread, so the server's scan (FerretDB
    decodes every document it scans) overlaps with mapping and the MySQL transaction.

    At most `depth` batches wait in memory, so the backfill's memory stays flat whatever
    the collection's size. Batches read but not committed when a worker stops or a cursor
    fails are simply dropped: the checkpoint says where the next cursor starts.
    """

    def __init__(self, docs: Iterator[dict[str, Any]], batch_size: int, depth: int = 2) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(docs, batch_size),
                                        name="backfill-read-ahead", daemon=True)
        self._thread.start()

    def _read(self, docs: Iterator[dict[str, Any]], batch_size: int) -> None:
        try:
            batch: list[dict[str, Any]] = []
            for doc in docs:
                batch.append(doc)
                if len(batch) >= batch_size:
                    self._put(batch)
                    batch = []
                if self._stop.is_set():
                    return
            if batch:
                self._put(batch)
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _die_with_parent() -> None:
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
        self.conn = _mysql(settings)
        self.client = mongo_client(settings)
        self.coll = shipments(self.client, settings)
        self.started = time.monotonic()
        self.scanned = 0
        self.last_renew = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.client.close()

    # one short transaction, retried on retryable errors
    def _tx(self, fn: Callable[[Any], Any]) -> Any:
        return run_in_transaction(self.conn, fn)

    def lease(self) -> _Partition | None | bool:
        """A leased partition; None if none is free now; False if every partition is done."""

        def take(cur: Any) -> _Partition | None | bool:
            cur.execute(
                "SELECT id, kind, upper_key, checkpoint_key FROM backfill_partition "
                "WHERE status <> 'done' AND (lease_owner IS NULL OR "
                "lease_expires < UTC_TIMESTAMP(6)) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED")
            found = rows_as_dicts(cur, cur.fetchall())
            if not found:
                cur.execute("SELECT COUNT(*) FROM backfill_partition WHERE status <> 'done'")
                return None if cur.fetchall()[0][0] else False
            row = found[0]
            cur.execute(
                "UPDATE backfill_partition SET lease_owner = %s, status = 'running', "
                "lease_expires = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND, "
                "attempts = attempts + 1, updated_at = UTC_TIMESTAMP(6) WHERE id = %s",
                (self.owner, _interval_us(self.options.lease_seconds), row["id"]))
            return _Partition(int(row["id"]), row["kind"], row["upper_key"],
                              row["checkpoint_key"])

        got = self._tx(take)
        if isinstance(got, _Partition):
            self.last_renew = time.monotonic()
            logs.event("backfill.lease", partition=got.id, owner=self.owner,
                       checkpoint=got.checkpoint)
        return got

    def _set_state(self, part: _Partition, status: str, release: bool = False) -> bool:
        def upd(cur: Any) -> bool:
            extra = ", lease_owner = NULL, lease_expires = NULL" if release else (
                ", lease_expires = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND")
            params: tuple[Any, ...] = (status,)
            if not release:
                params += (_interval_us(self.options.lease_seconds),)
            if status == "done":
                extra += ", finished_at = UTC_TIMESTAMP(6)"
            cur.execute(f"UPDATE backfill_partition SET status = %s{extra}, "
                        "updated_at = UTC_TIMESTAMP(6) WHERE id = %s AND lease_owner = %s",
                        (*params, part.id, self.owner))
            return cur.rowcount == 1

        ok = bool(self._tx(upd))
        self.last_renew = time.monotonic()
        return ok

    def _paused(self) -> bool:
        return bool(self._tx(lambda cur: _fetch_one(
            cur, "SELECT paused FROM backfill_control WHERE id = 1")))

    def _threads_running(self) -> int:
        row = self._tx(lambda cur: _fetch_row(cur, "SHOW GLOBAL STATUS LIKE 'Threads_running'"))
        return int(row[1]) if row else 0

    def wait_if_needed(self, part: _Partition | None) -> None:
        """Obey the operator's pause and the Threads_running limit (renewing the lease)."""
        state = None
        while not self.stop:
            if self._paused():
                want = "paused"
            elif (self.options.max_threads_running
                  and self._threads_running() > self.options.max_threads_running):
                want = "throttled"
            else:
                break
            if want != state:
                state = want
                logs.event(f"backfill.{want}", owner=self.owner)
                if part is not None and not self._set_state(part, want):
                    raise LeaseLost()
            elif part is not None and (time.monotonic() - self.last_renew
                                       > self.options.lease_seconds / 3):
                if not self._set_state(part, want):
                    raise LeaseLost()
            time.sleep(PAUSE_POLL_S)
        if state is not None and part is not None and not self._set_state(part, "running"):
            raise LeaseLost()

    def throttle(self) -> None:
        rate = self.options.per_worker_rate()
        if not rate:
            return
        while not self.stop:
            ahead = self.scanned / rate - (time.monotonic() - self.started)
            if ahead <= 0:
                return
            time.sleep(min(ahead, PAUSE_POLL_S))

    def commit_batch(self, part: _Partition, docs: list[dict[str, Any]]) -> None:
        last = docs[-1]["_id"] if part.kind == "range" else part.checkpoint
        rows_by_key, rejected = map_or_reject(docs)
        rows = list(rows_by_key.values())

        def tx(cur: Any) -> None:
            cur.execute("SELECT checkpoint_key, lease_owner FROM backfill_partition "
                        "WHERE id = %s FOR UPDATE", (part.id,))
            found = cur.fetchall()
            if not found or found[0][1] != self.owner:
                raise LeaseLost()
            if found[0][0] != part.checkpoint:
                if part.kind == "range" and found[0][0] == last:
                    return  # committed before the connection was lost: nothing to redo
                raise LeaseLost()
            cur.execute("SELECT epoch FROM lazyshift_control WHERE id = 1")
            epoch_row = cur.fetchall()
            epoch = int(epoch_row[0][0]) if epoch_row else None
            result = apply_batch(cur, rows, epoch=None, written_epoch=epoch)
            insert_dead_letters(cur, ORIGIN, rejected)
            cur.execute(
                "UPDATE backfill_partition SET checkpoint_key = %s, docs_done = docs_done + %s, "
                "docs_written = docs_written + %s, docs_dead = docs_dead + %s, "
                "lease_expires = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND, "
                "updated_at = UTC_TIMESTAMP(6) WHERE id = %s AND lease_owner = %s",
                (last, len(docs), len(result.applied_keys), len(rejected),
                 _interval_us(self.options.lease_seconds), part.id, self.owner))

        self._tx(tx)
        part.checkpoint = last
        self.scanned += len(docs)
        self.last_renew = time.monotonic()

    def _cursor(self, part: _Partition) -> Iterator[dict[str, Any]]:
        if part.kind == "other":
            # Non-string _ids: unordered, no checkpoint; each batch is idempotent (dedup key).
            flt: dict[str, Any] = {"_id": {"$not": {"$type": "string"}}}
            return iter(self.coll.find(flt, batch_size=self.options.batch_size))
        cur = self.coll.find(key_filter(part.checkpoint, part.upper))
        return iter(cur.sort("_id", 1).batch_size(self.options.batch_size))

    def run_partition(self, part: _Partition) -> bool:
        """Backfill one leased partition; True when it is done."""
        batch_size = self.options.batch_size
        rate = self.options.per_worker_rate()
        if rate:
            batch_size = max(1, min(batch_size, int(rate)))  # about a batch per second
        failures = 0
        while not self.stop:
            try:
                self.wait_if_needed(part)
                ahead = _ReadAhead(self._cursor(part), batch_size)
                try:
                    for docs in ahead:
                        self.commit_batch(part, docs)
                        failures = 0
                        self.throttle()
                        self.wait_if_needed(part)
                        if self.stop:
                            break
                finally:
                    ahead.close()
                if self.stop:
                    break
                return self._set_state(part, "done", release=True)
            except (pymongo.errors.AutoReconnect, pymongo.errors.CursorNotFound,
                    pymongo.errors.ExecutionTimeout) as exc:
                failures += 1
                if failures > MONGO_RETRIES:
                    raise
                logs.event("backfill.mongo_retry", logging.WARNING, partition=part.id,
                           error=str(exc), checkpoint=part.checkpoint)
                time.sleep(min(5.0, 0.2 * 2**failures))  # back-off before reopening
        self._set_state(part, "pending", release=True)
        return False

    def run(self) -> int:
        try:
            while not self.stop:
                self.wait_if_needed(None)
                got = self.lease()
                if got is False:
                    return 0
                if got is None:
                    time.sleep(IDLE_POLL_S)  # others hold the rest: wait for them or expiry
                    continue
                assert isinstance(got, _Partition)
                try:
                    self.run_partition(got)
                except LeaseLost:
                    logs.event("backfill.lease_lost", logging.WARNING, partition=got.id,
                               owner=self.owner)
            return 0
        finally:
            self.close()


def _fetch_one(cur: Any, sql: str) -> Any:
    cur.execute(sql)
    rows = cur.fetchall()
    return rows[0][0] if rows else None


def _fetch_row(cur: Any, sql: str) -> Any:
    cur.execute(sql)
    rows = cur.fetchall()
    return rows[0] if rows else None


def worker_main(settings: Settings, options: BackfillOptions, name: str) -> int:
    """Entry point of a worker process."""
    _die_with_parent()
    logs.setup(os.environ.get("LAZYSHIFT_LOG_LEVEL", "INFO"))
    worker = Worker(settings, options, name)

    def _stop(*_: Any) -> None:
        worker.stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        return worker.run()
    except Exception as exc:  # noqa: BLE001 - reported, and the exit code says it failed
        logs.event("backfill.worker_failed", logging.ERROR, owner=worker.owner,
                   error=f"{type(exc).__name__}: {exc}")
        return 1


def _worker_process(settings: Settings, options: BackfillOptions, name: str) -> None:
    raise SystemExit(worker_main(settings, options, name))


@dataclass
class RunResult:
    progress: Progress
    worker_exit_codes: list[int]
    dead_samples: list[dict[str, Any]]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return (self.progress.complete and self.progress.dead == 0
                and not any(self.worker_exit_codes))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "elapsed_s": round(self.elapsed_s, 3),
                "worker_exit_codes": self.worker_exit_codes, "dead_letters": self.dead_samples,
                **self.progress.as_dict()}


class RateMeter:
    """Docs/s over a sliding window of (time, done) samples."""

    def __init__(self, window_s: float = 15.0) -> None:
        self.window_s = window_s
        self.samples: list[tuple[float, int]] = []

    def update(self, p: Progress) -> Progress:
        now = time.monotonic()
        self.samples.append((now, p.done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.pop(0)
        t0, d0 = self.samples[0]
        if now - t0 > 0.2 and p.done >= d0:
            p.rate = (p.done - d0) / (now - t0)
            remaining = max(0, p.total - p.done)
            p.eta_s = remaining / p.rate if p.rate > 0 else None
        return p


def run(settings: Settings, options: BackfillOptions, *,
        on_progress: Callable[[Progress], None] | None = None,
        progress_interval: float = 1.0) -> RunResult:
    """Plan if needed, run `options.workers` worker processes to completion."""
    started = time.monotonic()
    plan(settings, options)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(max(1, options.workers)):
        proc = ctx.Process(target=_worker_process, args=(settings, options, f"w{i}"),
                           name=f"lazyshift-backfill-w{i}")
        proc.start()
        procs.append(proc)
    conn = _mysql(settings, autocommit=True)
    meter = RateMeter()
    try:
        while any(p.is_alive() for p in procs):
            if on_progress is not None:
                on_progress(meter.update(progress(settings, conn)))
            deadline = time.monotonic() + progress_interval
            for p in procs:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join()
    try:
        final = meter.update(progress(settings, conn))
    finally:
        conn.close()
    if on_progress is not None:
        on_progress(final)
    codes = [p.exitcode if p.exitcode is not None else -1 for p in procs]
    samples = dead_letters(settings) if final.dead else []
    return RunResult(final, codes, samples, time.monotonic() - started)


# -- dry run -------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _walk_types(node: Any, path: str, out: dict[str, Counter]) -> None:
    out.setdefault(path or "(document)", Counter())[_type_name(node)] += 1
    if isinstance(node, dict):
        for k, v in node.items():
            _walk_types(v, f"{path}/{k}" if path else str(k), out)
    elif isinstance(node, list | tuple):
        for v in node:
            _walk_types(v, f"{path}/*" if path else "*", out)


def _coercions(before: Any, after: Any, path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for k in before:
            if k in after:
                _coercions(before[k], after[k], f"{path}/{k}" if path else str(k), out)
        return
    if isinstance(before, list | tuple) and isinstance(after, list | tuple):
        for i, (b, a) in enumerate(zip(before, after, strict=False)):
            _coercions(b, a, f"{path}/{i}", out)
        return
    tb, ta = _type_name(before), _type_name(after)
    if tb != ta:
        out.append((path, f"{tb} -> {ta}"))
    elif (isinstance(before, float) and before == 0.0
          and math.copysign(1.0, before) != math.copysign(1.0, after)):
        out.append((path, "-0.0 -> 0.0"))
    elif isinstance(before, datetime) and isinstance(after, datetime):
        if before.tzinfo is None:
            out.append((path, "naive date -> UTC"))
        elif before != after:
            out.append((path, "date truncated to milliseconds"))
    elif before != after:
        out.append((path, "value changed"))


_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|-?\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b")


@dataclass
class DryRunReport:
    docs: int = 0
    would_write: int = 0
    would_reject: int = 0
    type_drift: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    coercions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def dry_run(settings: Settings, *, on_progress: Callable[[int], None] | None = None,
            examples: int = 3) -> DryRunReport:
    """Map every document without writing; drift, rejections and coercions, grouped."""
    report = DryRunReport()
    types: dict[str, Counter] = {}
    type_examples: dict[tuple[str, str], str] = {}
    rejections: dict[tuple[str, str], dict[str, Any]] = {}
    coercions: dict[tuple[str, str], dict[str, Any]] = {}
    client = mongo_client(settings)
    try:
        for doc in shipments(client, settings).find({}, batch_size=1000):
            report.docs += 1
            key = str(doc.get("_id"))
            per_doc: dict[str, Counter] = {}
            _walk_types(doc, "", per_doc)
            for path, counts in per_doc.items():
                for t in counts:
                    types.setdefault(path, Counter())[t] += 1
                    type_examples.setdefault((path, t), key)
            try:
                normalized = mapping.normalize(doc)
            except InvalidDocument as exc:
                report.would_reject += 1
                where, _, message = exc.reason.partition(": ")
                group = (path_pattern(where), _VALUES.sub("…", message))
                entry = rejections.setdefault(group, {"path": group[0], "problem": group[1],
                                                      "count": 0, "examples": []})
                entry["count"] += 1
                if len(entry["examples"]) < examples:
                    entry["examples"].append({"key": key, "reason": exc.reason})
                continue
            report.would_write += 1
            found: list[tuple[str, str]] = []
            _coercions(doc, normalized, "", found)
            for path, kind in found:
                group = (path_pattern(path), kind)
                entry = coercions.setdefault(group, {"path": group[0], "coercion": kind,
                                                     "count": 0, "examples": []})
                entry["count"] += 1
                if len(entry["examples"]) < examples and key not in entry["examples"]:
                    entry["examples"].append(key)
            if on_progress is not None and report.docs % 1000 == 0:
                on_progress(report.docs)
    finally:
        client.close()
    for path, counts in sorted(types.items()):
        non_null = [t for t in counts if t != "null"]
        if len(non_null) > 1:
            report.type_drift.append({
                "path": path, "types": dict(counts.most_common()),
                "examples": {t: type_examples[(path, t)] for t in counts},
            })
    report.rejections = sorted(rejections.values(), key=lambda e: -e["count"])
    report.coercions = sorted(coercions.values(), key=lambda e: -e["count"])
    return report
