"""The backfill's plan: the string `_id` key space split into ranges, kept in MySQL.

The split points are quantiles of a reservoir sample of every `_id` (one scan), stored in
`backfill_partition` (plus one 'other' partition if documents with a non-string `_id`
exist: they cannot be mapped and are dead-lettered). Planning runs once per database under
a MySQL named lock, so several hosts can start the same command. Also here: the operator's
pause/resume/reset and the progress read from the partitions.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from mysql.connector.abstracts import MySQLConnectionAbstract

from lazyshift import logs
from lazyshift.backfill.options import BackfillError, BackfillOptions, Progress
from lazyshift.config import Settings
from lazyshift.core import mysql_store as store
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.mysql import connect

PLAN_LOCK_TIMEOUT_S = 3600


def _check_schema(cur: Any) -> None:
    if not store.backfill_schema_ready(cur):
        raise BackfillError("backfill tables are missing or old: run `lazyshift schema migrate`")


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


def _sample_ids(
    settings: Settings, sample_size: int, seed: int | None = None
) -> tuple[list[str], int, int]:
    """(reservoir sample of string _ids, string _id count, non-string _id count): one scan."""
    rng = random.Random(seed)
    mongo = MongoStore.open(settings, scan=True, timeout_ms=10_000)
    try:
        sample: list[str] = []
        strings = others = 0
        for doc in mongo.shipments.find({}, {"_id": 1}, batch_size=10_000):
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
        mongo.close()


def plan(settings: Settings, options: BackfillOptions) -> dict[str, Any]:
    """Create the partitions unless a plan exists; {"created", "partitions", "total"}."""
    conn = connect(settings.mysql, autocommit=True)
    lock = f"lazyshift.backfill.plan.{settings.mysql.database}"[:64]
    try:
        cur = conn.cursor()
        _check_schema(cur)
        if not store.named_lock(cur, lock, PLAN_LOCK_TIMEOUT_S):
            raise BackfillError(f"another backfill is still planning (lock {lock!r})")
        try:
            n, total = store.partition_totals(cur)
            if n:
                return {"created": False, "partitions": n, "total": total}
            sample, strings, others = _sample_ids(settings, options.sample_size)
            cuts = boundaries(sample, options.partitions)
            lowers: list[str | None] = [None, *cuts]
            uppers: list[str | None] = [*cuts, None]
            n = len(lowers)
            rows: list[tuple[Any, ...]] = [
                (i + 1, "range", lo, up, strings // n + (1 if i < strings % n else 0))
                for i, (lo, up) in enumerate(zip(lowers, uppers, strict=True))
            ]
            if others:
                rows.append((n + 1, "other", None, None, others))
            run_id = uuid.uuid4().hex
            conn.start_transaction()
            store.insert_partitions(cur, rows, run_id)
            conn.commit()
            logs.event(
                "backfill.planned", partitions=len(rows), total=strings + others, run_id=run_id
            )
            return {"created": True, "partitions": len(rows), "total": strings + others}
        finally:
            store.release_named_lock(cur, lock)
    finally:
        conn.close()


def set_paused(settings: Settings, paused: bool) -> None:
    conn = connect(settings.mysql, autocommit=True)
    try:
        store.set_backfill_paused(conn.cursor(), paused)
    finally:
        conn.close()


def reset(settings: Settings) -> int:
    """Forget the plan and its checkpoints (rows in MySQL stay); partitions removed."""
    conn = connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        _check_schema(cur)
        return store.delete_partitions(cur)
    finally:
        conn.close()


def progress(settings: Settings, conn: MySQLConnectionAbstract | None = None) -> Progress:
    own = conn is None
    conn = conn or connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        _check_schema(cur)
        agg = store.backfill_progress(cur)
        total, done, rows = int(agg["t"]), int(agg["done"]), int(agg["shipments"])
        # Rows created in MySQL only (after the flip) also count as present: an estimate.
        left = min(max(0, total - done), max(0, total - rows))
        return Progress(
            partitions=int(agg["n"]),
            partitions_done=int(agg["d"]),
            total=total,
            done=done,
            written=int(agg["w"]),
            dead=int(agg["dead"]),
            mysql_rows=rows,
            left_to_migrate=left,
            paused=agg["paused"],
            states=agg["states"],
        )
    finally:
        if own:
            conn.close()


def partitions(settings: Settings) -> list[dict[str, Any]]:
    conn = connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        _check_schema(cur)
        return store.list_partitions(cur)
    finally:
        conn.close()
