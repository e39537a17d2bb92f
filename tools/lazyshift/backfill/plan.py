"""The backfill's plan: the string `_id` key space split into ranges, kept in MySQL.

Planning reads no documents: the lowest and highest string `_id` come from two sorted,
limited queries (answered from FerretDB's `_id` text index, see tools/bootstrap/ferretdb.sh;
on MongoDB from the `_id` index), and the split points are interpolated between them in code
point order (= MongoDB's UTF-8 byte order). A partition that turns out empty costs one
indexed query. One 'other' partition follows the ranges for documents with a non-string
`_id` (they cannot be mapped and are dead-lettered); it is scanned only if the collection
holds more documents than the ranges found (worker.py). The plan is stored in
`backfill_partition`, once per database under a MySQL named lock, so several hosts can start
the same command. Also here: the operator's pause/resume/reset and the progress read from
the partitions.
"""

from __future__ import annotations

import bisect
import os
import string
import uuid
from typing import Any

from mysql.connector.abstracts import MySQLConnectionAbstract

from lazyshift import logs
from lazyshift.backfill.options import BackfillError, BackfillOptions, Progress
from lazyshift.config import Settings
from lazyshift.core import mysql_store as store
from lazyshift.core.mongo_store import MongoStore, collection_count, key_filter
from lazyshift.core.mysql import connect

PLAN_LOCK_TIMEOUT_S = 3600


def _check_schema(cur: Any) -> None:
    if not store.backfill_schema_ready(cur):
        raise BackfillError("backfill tables are missing or old: run `lazyshift schema migrate`")


# Split points are numbers over the first few characters after the two ends' common prefix,
# in the alphabet those characters come from (whole ASCII classes: digits, letters), so keys
# such as `acme:0000042` are cut where keys actually are.
_SPLIT_WIDTH = 4
_CLASSES = (string.digits, string.ascii_lowercase, string.ascii_uppercase)


def _alphabet(*texts: str) -> list[str]:
    chars: set[str] = set()
    for text in texts:
        for ch in text[:_SPLIT_WIDTH]:
            cls = next((c for c in _CLASSES if ch in c), ch)
            chars.update(cls)
    return sorted(chars)


def _number(text: str, alphabet: list[str]) -> int:
    n = 0
    for i in range(_SPLIT_WIDTH):
        d = max(0, bisect.bisect_right(alphabet, text[i]) - 1) if i < len(text) else 0
        n = n * len(alphabet) + d
    return n


def _text(n: int, alphabet: list[str]) -> str:
    chars = []
    for _ in range(_SPLIT_WIDTH):
        n, d = divmod(n, len(alphabet))
        chars.append(alphabet[d])
    return "".join(reversed(chars)).rstrip(alphabet[0])


def _utf8(key: str) -> bytes:
    return key.encode("utf-8", "surrogatepass")


def boundaries(lowest: str, highest: str, partitions: int) -> list[str]:
    """At most partitions-1 increasing split keys in (lowest, highest), evenly spaced in
    the key space after the two keys' common prefix."""
    if partitions <= 1 or _utf8(lowest) >= _utf8(highest):
        return []
    common = len(os.path.commonprefix([lowest, highest]))
    prefix = lowest[:common]
    alphabet = _alphabet(lowest[common:], highest[common:])
    if len(alphabet) < 2:
        return []
    lo, hi = _number(lowest[common:], alphabet), _number(highest[common:], alphabet)
    cuts: list[str] = []
    for i in range(1, partitions):
        cut = prefix + _text(lo + (hi - lo) * i // partitions, alphabet)
        if _utf8(lowest) < _utf8(cut) < _utf8(highest) and (
            not cuts or _utf8(cut) > _utf8(cuts[-1])
        ):
            cuts.append(cut)
    return cuts


def _key_span(settings: Settings) -> tuple[str | None, str | None, int]:
    """(lowest string _id, highest string _id, documents estimated): no document is read
    beyond the two ends."""
    mongo = MongoStore.open(settings, scan=True, timeout_ms=10_000)
    try:
        coll = mongo.shipments
        ends = []
        for direction in (1, -1):
            found = list(
                coll.find(key_filter(None, None), {"_id": 1}).sort("_id", direction).limit(1)
            )
            ends.append(found[0]["_id"] if found else None)
        return ends[0], ends[1], collection_count(coll)
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
            lowest, highest, estimate = _key_span(settings)
            cuts = boundaries(lowest, highest, options.partitions) if lowest and highest else []
            lowers: list[str | None] = [None, *cuts]
            uppers: list[str | None] = [*cuts, None]
            n = len(lowers)
            rows: list[tuple[Any, ...]] = [
                (i + 1, "range", lo, up, estimate // n + (1 if i < estimate % n else 0))
                for i, (lo, up) in enumerate(zip(lowers, uppers, strict=True))
            ]
            rows.append((n + 1, "other", None, None, 0))
            run_id = uuid.uuid4().hex
            conn.start_transaction()
            store.insert_partitions(cur, rows, run_id)
            conn.commit()
            logs.event("backfill.planned", partitions=len(rows), total=estimate, run_id=run_id)
            return {"created": True, "partitions": len(rows), "total": estimate}
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
