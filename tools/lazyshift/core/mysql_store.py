"""MySQL side: every query lazyshift runs, except the guarded write itself (guarded_write.py)
and the schema migrations (schema_migrate.py). The counterpart of mongo_store.py.

Functions take a cursor and run inside the caller's transaction (the caller decides where a
transaction begins and ends; `core.mysql.run_in_transaction` retries whole ones). SQL text
is kept in named constants, each with a note on locking where it matters. Sections:
documents, the control row, client heartbeats, stream offsets, dead letters, backfill
partitions, verify runs, archives, counts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import json_util

from lazyshift.core.document import Document, any_document_json
from lazyshift.core.mapping import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    PARTY_COLUMNS,
    ROOT_COLUMNS,
    Rows,
    rows_to_document,
)
from lazyshift.core.mysql import (
    chunks,
    dump_json,
    execute_script,
    parse_json,
    placeholders,
    rows_as_dicts,
)
from lazyshift.errors import NotMigrated

DEDUP_MAX = 191  # dead_letter.dedup_key: VARCHAR(191), the utf8mb4 index limit
KEY_MAX = 96  # shipment_key: VARCHAR(96)


def _rows(cur: Any, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur.execute(sql, tuple(params))
    return rows_as_dicts(cur, cur.fetchall()) if cur.with_rows else []


def _scalar(cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
    cur.execute(sql, tuple(params))
    rows = cur.fetchall()
    return rows[0][0] if rows else None


# -- documents -----------------------------------------------------------------------------------

ROOT_SELECT = "SELECT " + ", ".join(ROOT_COLUMNS) + " FROM shipment"
CHILD_TABLES: tuple[tuple[str, tuple[str, ...], str, str], ...] = (
    # table, columns, order within a shipment, Rows attribute
    ("shipment_party", PARTY_COLUMNS, "role", "parties"),
    ("shipment_item", ITEM_COLUMNS, "position", "items"),
    ("shipment_event", EVENT_COLUMNS, "position", "events"),
)


def _assemble(cur: Any, roots: list[dict[str, Any]]) -> list[Document]:
    """Documents for root rows, in the roots' order: one query per child table."""
    if not roots:
        return []
    keys = [r["shipment_key"] for r in roots]
    children: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for table, columns, order, attr in CHILD_TABLES:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for row in _rows(
            cur,
            f"SELECT {', '.join(columns)} FROM {table} WHERE shipment_key "
            f"IN ({placeholders(len(keys))}) ORDER BY shipment_key, {order}",
            keys,
        ):
            by_key.setdefault(row["shipment_key"], []).append(row)
        children[attr] = by_key
    return [
        rows_to_document(
            Rows(
                root=root,
                **{attr: children[attr].get(root["shipment_key"], []) for *_, attr in CHILD_TABLES},
            )
        )
        for root in roots
    ]


def load_documents(cur: Any, keys: Iterable[str], *, batch_size: int = 500) -> dict[str, Document]:
    """Documents for `keys` (absent keys are left out), four queries per batch of keys.

    For a consistent view across the four tables run it inside one transaction
    (`core.mysql.read_snapshot`): REPEATABLE READ gives one snapshot to all four queries.
    """
    out: dict[str, Document] = {}
    for chunk in chunks(list(dict.fromkeys(keys)), batch_size):
        roots = _rows(
            cur, f"{ROOT_SELECT} WHERE shipment_key IN ({placeholders(len(chunk))})", chunk
        )
        for doc in _assemble(cur, roots):
            out[doc["key"]] = doc
    return out


def iter_documents(
    cur: Any,
    after_key: str | None = None,
    limit: int | None = None,
    *,
    upper_key: str | None = None,
    batch_size: int = 500,
) -> Iterator[Document]:
    """Documents in key order (binary = MongoDB's order) with after_key < key <= upper_key
    (None = unbounded), at most `limit` of them; four queries per batch (keyset paging)."""
    remaining = limit
    while remaining is None or remaining > 0:
        n = batch_size if remaining is None else min(batch_size, remaining)
        where, params = [], []
        if after_key is not None:
            where.append("shipment_key > %s")
            params.append(after_key)
        if upper_key is not None:
            where.append("shipment_key <= %s")
            params.append(upper_key)
        sql = ROOT_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        roots = _rows(cur, f"{sql} ORDER BY shipment_key LIMIT {int(n)}", params)
        yield from _assemble(cur, roots)
        if len(roots) < n:
            return
        after_key = roots[-1]["shipment_key"]
        if remaining is not None:
            remaining -= len(roots)


# Locks the row (or, under REPEATABLE READ, the gap where it would be) so the caller's
# version check and its write are one step: mysql-primary's live write.
VERSION_FOR_UPDATE = "SELECT version, source_rev FROM shipment WHERE shipment_key = %s FOR UPDATE"


def lock_version(cur: Any, key: str) -> tuple[int, int] | None:
    """(version, source_rev) of `key`, row-locked to the end of the transaction."""
    cur.execute(VERSION_FOR_UPDATE, (key,))
    row = cur.fetchone()
    return None if row is None else (int(row[0]), int(row[1]))


LOCK_CHUNK = 500  # keys per statement


def lock_versions(cur: Any, keys: Iterable[str]) -> dict[str, tuple[int, int]]:
    """`lock_version` for many keys: {key: (version, source_rev)} of the stored ones, all
    row-locked (and, under REPEATABLE READ, the gaps of the absent ones) to the end of the
    transaction, in key order so that every writer takes them in the same order."""
    return _versions(cur, keys, " FOR UPDATE")


def lock_versions_unlocked(cur: Any, keys: Iterable[str]) -> dict[str, tuple[int, int]]:
    """`lock_versions` as a plain consistent read: no lock, for a look before the write."""
    return _versions(cur, keys, "")


def _versions(cur: Any, keys: Iterable[str], lock: str) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for chunk in chunks(sorted(set(keys)), LOCK_CHUNK):
        cur.execute(
            "SELECT shipment_key, version, source_rev FROM shipment WHERE shipment_key IN "
            f"({placeholders(len(chunk))}) ORDER BY shipment_key{lock}",
            tuple(chunk),
        )
        for key, version, rev in cur.fetchall():
            found[key] = (int(version), int(rev))
    return found


def delete_shipment(cur: Any, key: str) -> None:
    """Children go with it (ON DELETE CASCADE). Only repair deletes."""
    cur.execute("DELETE FROM shipment WHERE shipment_key = %s", (key,))


# Only live writes stamp written_epoch (guarded_write.py): copies of MongoDB (backfill, lazy
# migration) leave it NULL, so this reads what rollback must carry back and nothing else.
WRITTEN_SINCE = (
    "SELECT shipment_key, version FROM shipment WHERE written_epoch >= %s "
    "AND shipment_key > %s ORDER BY shipment_key LIMIT %s"
)


def written_since(cur: Any, epoch: int, after: str, limit: int) -> list[tuple[str, int]]:
    """(key, version) of shipments written live at or after `epoch`, in key order after
    `after`."""
    cur.execute(WRITTEN_SINCE, (epoch, after, limit))
    return [(k, int(v)) for k, v in cur.fetchall()]


def random_keys(cur: Any, n: int) -> list[str]:
    return [
        r[0]
        for r in _fetch(cur, "SELECT shipment_key FROM shipment ORDER BY RAND() LIMIT %s", (n,))
    ]


def _fetch(cur: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    cur.execute(sql, tuple(params))
    return cur.fetchall()


# -- the control row (mode, epoch) ---------------------------------------------------------------


@dataclass(frozen=True)
class ControlState:
    mode: str
    epoch: int
    state: str
    target_mode: str | None
    flip_epoch: int | None
    changed_at: datetime | None

    @property
    def stable(self) -> bool:
        return self.state == "stable"


CONTROL_SELECT = (
    "SELECT mode, epoch, state, target_mode, flip_epoch, changed_at "
    "FROM lazyshift_control WHERE id = 1"
)
# The drain starts under the row's exclusive lock: it waits for every in-flight write, which
# holds the row's share lock (guarded_write.check_epoch) until it commits.
BEGIN_DRAIN = (
    "UPDATE lazyshift_control SET state = 'draining', target_mode = %s, epoch = %s, "
    "changed_at = UTC_TIMESTAMP(6) WHERE id = 1 AND epoch = %s AND state = 'stable'"
)
# flip_epoch: set by the flip (dual -> mysql-primary), kept while MySQL is primary, cleared
# when MongoDB is the truth again.
COMMIT_MODE = (
    "UPDATE lazyshift_control SET mode = %s, state = 'stable', target_mode = NULL, "
    "flip_epoch = COALESCE(%s, CASE WHEN %s IN ('mongo', 'dual') THEN NULL "
    "ELSE flip_epoch END), changed_at = UTC_TIMESTAMP(6), note = %s "
    "WHERE id = 1 AND epoch = %s AND state = 'draining'"
)
RESTORE_MODE = (
    "UPDATE lazyshift_control SET mode = %s, state = 'stable', target_mode = NULL, "
    "epoch = %s, changed_at = UTC_TIMESTAMP(6), note = 'transition aborted' "
    "WHERE id = 1 AND epoch = %s"
)


def read_control(cur: Any) -> ControlState:
    """The control row; NotMigrated if the schema is not there yet."""
    from mysql.connector import Error as MySQLError

    try:
        rows = _rows(cur, CONTROL_SELECT)
    except MySQLError as exc:
        if getattr(exc, "errno", None) == 1146:  # ER_NO_SUCH_TABLE
            raise NotMigrated(str(exc)) from exc
        raise
    return _control_state(rows)


def _control_state(rows: list[dict[str, Any]]) -> ControlState:
    """The control row read by CONTROL_SELECT; NotMigrated if there is none."""
    if not rows:
        raise NotMigrated("no control row")
    r = rows[0]
    return ControlState(
        r["mode"], int(r["epoch"]), r["state"], r["target_mode"], r["flip_epoch"], r["changed_at"]
    )


# The read API's one round trip: the control row and one shipment's four tables in one
# consistent read-only snapshot, sent as one multi-statement query (`core.mysql.execute_script`)
# and closed by its own COMMIT. One snapshot for both means the mode a read acts on and the
# document it returns are of the same instant.
SNAPSHOT_BEGIN = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
DOCUMENT_STATEMENTS = (
    f"{ROOT_SELECT} WHERE shipment_key = %s",
    *(
        f"SELECT {', '.join(columns)} FROM {table} WHERE shipment_key = %s ORDER BY {order}"
        for table, columns, order, _ in CHILD_TABLES
    ),
)
_SNAPSHOT_HEAD = [SNAPSHOT_BEGIN.encode(), CONTROL_SELECT.encode()]
_DOCUMENT_PARTS = [s.encode().split(b"%s") for s in DOCUMENT_STATEMENTS]


def read_control_and_document(
    conn: Any, cur: Any, key: str | None
) -> tuple[ControlState, Document | None]:
    """The control row and, if `key` is given, its document (None if absent), in one round
    trip. `conn` must have no transaction open; it has none when this returns or raises.
    (`cur` is unused: the results are read on the connection.)"""
    from mysql.connector import Error as MySQLError

    statements = list(_SNAPSHOT_HEAD)
    if key:
        literal = conn.prepare_for_mysql((key,))[0]  # core.mysql.connect: the C extension
        statements += [literal.join(parts) for parts in _DOCUMENT_PARTS]
    statements.append(b"COMMIT")
    try:
        results = [
            [dict(zip(names, row, strict=True)) for row in rows]
            for names, rows in filter(None, execute_script(conn, statements))
        ]
    except MySQLError as exc:
        with contextlib.suppress(Exception):  # the original error matters
            conn.rollback()
        if getattr(exc, "errno", None) == 1146:  # ER_NO_SUCH_TABLE
            raise NotMigrated(str(exc)) from exc
        raise
    control = _control_state(results[0] if results else [])
    if not key or not results[1]:
        return control, None
    root, parties, items, events = results[1:]
    return control, rows_to_document(
        Rows(root=root[0], parties=parties, items=items, events=events)
    )


def begin_drain(cur: Any, target: str, new_epoch: int, old_epoch: int) -> bool:
    cur.execute(BEGIN_DRAIN, (target, new_epoch, old_epoch))
    return cur.rowcount == 1


def commit_mode(cur: Any, target: str, flip_epoch: int | None, note: str, epoch: int) -> bool:
    cur.execute(COMMIT_MODE, (target, flip_epoch, target, note, epoch))
    return cur.rowcount == 1


def restore_mode(cur: Any, mode: str, epoch: int) -> None:
    """Back to `mode` under a fresh epoch (epoch + 1), from a draining `epoch`."""
    cur.execute(RESTORE_MODE, (mode, epoch + 1, epoch))


# `mode set --hold`: the flip commits only once someone released its draining epoch (the
# stage 3 playbook, after MongoDB's writes are revoked). A release may come before the hold
# begins; one for an older epoch releases nothing.
def release_draining(cur: Any) -> int | None:
    """Release the transition draining now; its epoch, or None if none is draining."""
    cur.execute(
        "UPDATE lazyshift_control SET released_epoch = epoch WHERE id = 1 AND state = 'draining'"
    )
    # Read back rather than trust rowcount: a second release changes no row but is no error.
    rows = _rows(cur, "SELECT epoch, state FROM lazyshift_control WHERE id = 1")
    return int(rows[0]["epoch"]) if rows and rows[0]["state"] == "draining" else None


def begin_hold(cur: Any, epoch: int) -> None:
    cur.execute(
        "UPDATE lazyshift_control SET held_epoch = %s WHERE id = 1 AND epoch = %s", (epoch, epoch)
    )


def released(cur: Any, epoch: int) -> bool:
    value = _scalar(cur, "SELECT released_epoch FROM lazyshift_control WHERE id = 1")
    return value is not None and int(value) == epoch


def held_epoch(cur: Any) -> int | None:
    """The draining epoch a `mode set --hold` waits to be released for (None: none)."""
    value = _scalar(
        cur,
        "SELECT epoch FROM lazyshift_control WHERE id = 1 AND state = 'draining' "
        "AND held_epoch = epoch AND NOT released_epoch <=> epoch",
    )
    return None if value is None else int(value)


# Re-entering dual after mongo: MySQL's copies are stale until a reconcile has run.
def mark_reconcile_needed(cur: Any, epoch: int) -> None:
    cur.execute(
        "UPDATE lazyshift_control SET reconcile_epoch = COALESCE(reconcile_epoch, %s) WHERE id = 1",
        (epoch,),
    )


def reconcile_needed(cur: Any) -> int | None:
    """The epoch since which MySQL missed writes made in mongo mode (None: it did not)."""
    value = _scalar(cur, "SELECT reconcile_epoch FROM lazyshift_control WHERE id = 1")
    return None if value is None else int(value)


def clear_reconcile(cur: Any, epoch: int) -> bool:
    """Cleared only if the mode has stayed dual at `epoch` the whole reconcile long."""
    cur.execute(
        "UPDATE lazyshift_control SET reconcile_epoch = NULL WHERE id = 1 AND epoch = %s "
        "AND mode = 'dual' AND state = 'stable'",
        (epoch,),
    )
    return cur.rowcount == 1 or reconcile_needed(cur) is None


def current_epoch(cur: Any) -> int | None:
    value = _scalar(cur, "SELECT epoch FROM lazyshift_control WHERE id = 1")
    return None if value is None else int(value)


# -- client heartbeats ---------------------------------------------------------------------------

CLIENTS = (
    "SELECT client_id, host, pid, partition_spec, mode, acked_epoch, mysql_connection_id, "
    "stats, last_seen, TIMESTAMPDIFF(MICROSECOND, last_seen, UTC_TIMESTAMP(6)) / 1e6 "
    "AS age_s FROM client_heartbeat ORDER BY client_id"
)
BEAT = (
    "INSERT INTO client_heartbeat (client_id, host, pid, partition_spec, mode, acked_epoch, "
    "mysql_connection_id, last_seen, stats) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6), %s) ON DUPLICATE KEY UPDATE "
    "host = VALUES(host), pid = VALUES(pid), partition_spec = VALUES(partition_spec), "
    "mode = VALUES(mode), acked_epoch = VALUES(acked_epoch), "
    "mysql_connection_id = VALUES(mysql_connection_id), last_seen = VALUES(last_seen), "
    "stats = VALUES(stats)"
)


def clients(cur: Any, heartbeat_timeout_s: float) -> list[dict[str, Any]]:
    """Every client row, with `age_s` (server clock) and `live` (younger than the timeout)."""
    rows = _rows(cur, CLIENTS)
    for r in rows:
        r["stats"] = parse_json(r["stats"]) if r.get("stats") is not None else None
        r["age_s"] = float(r["age_s"])
        r["live"] = r["age_s"] <= heartbeat_timeout_s
    return rows


@dataclass(frozen=True)
class Heartbeat:
    client_id: str
    host: str
    pid: int
    partition: str
    mode: str | None
    acked_epoch: int
    connection_id: int | None
    stats: dict[str, Any]


def beat(cur: Any, hb: Heartbeat) -> None:
    cur.execute(
        BEAT,
        (
            hb.client_id,
            hb.host,
            hb.pid,
            hb.partition,
            hb.mode,
            hb.acked_epoch,
            hb.connection_id,
            json.dumps(hb.stats, default=str),
        ),
    )


def remove_client(cur: Any, client_id: str) -> None:
    cur.execute("DELETE FROM client_heartbeat WHERE client_id = %s", (client_id,))


def kill_connection(cur: Any, connection_id: int) -> None:
    cur.execute(f"KILL CONNECTION {int(connection_id)}")


# -- stream offsets ------------------------------------------------------------------------------

# GREATEST: a slower writer can never move an offset backwards.
SAVE_OFFSET = (
    "INSERT INTO client_offset (partition_spec, seq, updated_at) VALUES "
    "(%s, %s, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE "
    "seq = GREATEST(seq, VALUES(seq)), updated_at = VALUES(updated_at)"
)


def load_offset(cur: Any, partition: str) -> int:
    value = _scalar(cur, "SELECT seq FROM client_offset WHERE partition_spec = %s", (partition,))
    return int(value) if value is not None else 0


def save_offset(cur: Any, partition: str, seq: int) -> None:
    cur.execute(SAVE_OFFSET, (partition, seq))


def max_offset(cur: Any) -> int:
    """The highest sequence any partition has stored (the demo's "caught up" check)."""
    return int(_scalar(cur, "SELECT COALESCE(MAX(seq), 0) FROM client_offset"))


# -- dead letters --------------------------------------------------------------------------------

# One row per (origin, dedup_key): a replayed message or a re-read document is recorded once.
# Characters per multi-row dead-letter INSERT, well below the default 16 MiB max_allowed_packet
# (a payload counts once, the escaped SQL text can be twice as long).
DEAD_LETTER_STATEMENT_BYTES = 2 * 1024 * 1024
INSERT_DEAD_LETTER = (
    "INSERT INTO dead_letter (origin, dedup_key, source_seq, shipment_key, "
    "reason, payload, created_at) VALUES {rows} "
    "ON DUPLICATE KEY UPDATE id = id"
)


@dataclass(frozen=True)
class DeadLetter:
    origin: str  # stream, dual, lazy, backfill
    dedup_key: str
    reason: str
    payload: str
    seq: int | None = None
    key: str | None = None


def message_dead_letter(
    origin: str, raw: bytes, reason: str, seq: int | None, key: str | None
) -> DeadLetter:
    """A stream message that could not be applied: deduplicated by its sequence number."""
    text = raw.decode("utf-8", errors="replace")
    dedup = f"seq:{seq}" if seq is not None else "sha256:" + hashlib.sha256(raw).hexdigest()
    return DeadLetter(origin, dedup, reason, text, seq, key)


def document_dead_letter(origin: str, doc: Any, reason: str) -> DeadLetter:
    """A document (from MongoDB or a message) MySQL cannot hold: deduplicated by its _id."""
    doc_id = doc.get("_id") if isinstance(doc, dict) else None
    text = f"_id:{doc_id}" if isinstance(doc_id, str) else f"_id:{json_util.dumps(doc_id)}"
    if len(text) > DEDUP_MAX:
        text = "_id:sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    key = doc_id if isinstance(doc_id, str) and len(doc_id) <= KEY_MAX else None
    payload = any_document_json(doc).encode("utf-8", "replace").decode("utf-8")
    return DeadLetter(origin, text, reason, payload, None, key)


def insert_dead_letters(cur: Any, letters: Sequence[DeadLetter]) -> int:
    """Insert `letters` (each once per origin and dedup key); rows inserted.

    Statements are cut at DEAD_LETTER_STATEMENT_BYTES: a malformed message can be megabytes,
    and one multi-row INSERT of hundreds of them would pass max_allowed_packet."""
    inserted = 0
    chunk: list[DeadLetter] = []
    size = 0
    for d in letters:
        weight = len(d.payload) + len(d.reason) + len(d.dedup_key) + 64
        if chunk and size + weight > DEAD_LETTER_STATEMENT_BYTES:
            inserted += _insert_dead_letter_rows(cur, chunk)
            chunk, size = [], 0
        chunk.append(d)
        size += weight
    if chunk:
        inserted += _insert_dead_letter_rows(cur, chunk)
    return inserted


def _insert_dead_letter_rows(cur: Any, letters: Sequence[DeadLetter]) -> int:
    params: list[Any] = []
    for d in letters:
        params += [
            d.origin,
            d.dedup_key[:DEDUP_MAX],
            d.seq,
            d.key[:KEY_MAX] if d.key else None,
            d.reason,
            d.payload,
        ]
    row = "(" + placeholders(6) + ", UTC_TIMESTAMP(6))"
    cur.execute(INSERT_DEAD_LETTER.format(rows=", ".join([row] * len(letters))), tuple(params))
    return max(0, cur.rowcount)


def dead_letter_keys(cur: Any) -> set[str]:
    return {
        r[0]
        for r in _fetch(
            cur, "SELECT DISTINCT shipment_key FROM dead_letter WHERE shipment_key IS NOT NULL"
        )
    }


def has_dead_letter(cur: Any, dedup_key: str) -> bool:
    """Whether any origin dead-lettered `dedup_key` (e.g. `_id:{"$oid": ...}`)."""
    return bool(_fetch(cur, "SELECT 1 FROM dead_letter WHERE dedup_key = %s LIMIT 1", (dedup_key,)))


def dead_letter_seqs(cur: Any, origin: str) -> set[int]:
    return {
        int(r[0])
        for r in _fetch(
            cur,
            "SELECT source_seq FROM dead_letter WHERE origin = %s AND source_seq IS NOT NULL",
            (origin,),
        )
    }


def dead_letter_seq_counts(cur: Any, origin: str) -> dict[int | None, int]:
    """Dead-letter rows of `origin` per source seq (None: rows without one)."""
    return {
        (None if r[0] is None else int(r[0])): int(r[1])
        for r in _fetch(
            cur,
            "SELECT source_seq, COUNT(*) FROM dead_letter WHERE origin = %s GROUP BY source_seq",
            (origin,),
        )
    }


def dead_letter_payloads_without_seq(cur: Any, origin: str) -> list[str]:
    """Payloads of `origin`'s dead letters that carry no source seq (the seq was unusable)."""
    return [
        r[0] or ""
        for r in _fetch(
            cur,
            "SELECT payload FROM dead_letter WHERE origin = %s AND source_seq IS NULL",
            (origin,),
        )
    ]


def dead_letter_samples(cur: Any, origin: str, limit: int = 20) -> list[dict[str, Any]]:
    return _rows(
        cur,
        "SELECT dedup_key, reason FROM dead_letter WHERE origin = %s ORDER BY id LIMIT %s",
        (origin, limit),
    )


# -- backfill ------------------------------------------------------------------------------------

PARTITION_COLUMNS = (
    "id, kind, lower_key, upper_key, checkpoint_key, status, lease_owner, "
    "lease_expires, docs_estimate, docs_done, docs_written, docs_dead, attempts"
)
# SKIP LOCKED: workers on every host lease different partitions without waiting on each other;
# an expired lease (a dead worker) is taken over from its checkpoint.
LEASE_FREE = (
    "SELECT id, kind, upper_key, checkpoint_key FROM backfill_partition "
    "WHERE status <> 'done' AND (lease_owner IS NULL OR "
    "lease_expires < UTC_TIMESTAMP(6)) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
TAKE_LEASE = (
    "UPDATE backfill_partition SET lease_owner = %s, status = 'running', "
    "lease_expires = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND, "
    "attempts = attempts + 1, updated_at = UTC_TIMESTAMP(6) WHERE id = %s"
)
# The batch's transaction locks its partition row first: a worker whose lease was taken over
# finds another owner (or another checkpoint) and writes nothing.
LOCK_PARTITION = (
    "SELECT checkpoint_key, lease_owner FROM backfill_partition WHERE id = %s FOR UPDATE"
)
ADVANCE_CHECKPOINT = (
    "UPDATE backfill_partition SET checkpoint_key = %s, docs_done = docs_done + %s, "
    "docs_written = docs_written + %s, docs_dead = docs_dead + %s, "
    "lease_expires = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND, "
    "updated_at = UTC_TIMESTAMP(6) WHERE id = %s AND lease_owner = %s"
)
PROGRESS = (
    "SELECT COUNT(*) AS n, COALESCE(SUM(status = 'done'), 0) AS d, "
    "COALESCE(SUM(docs_estimate), 0) AS t, COALESCE(SUM(docs_done), 0) AS done, "
    "COALESCE(SUM(docs_written), 0) AS w, COALESCE(SUM(docs_dead), 0) AS dead, "
    "MAX(finished_at) AS finished FROM backfill_partition"
)


def _interval_us(seconds: float) -> int:
    return max(1, int(seconds * 1_000_000))


def backfill_schema_ready(cur: Any) -> bool:
    return bool(
        _scalar(
            cur,
            "SELECT COUNT(*) FROM information_schema.columns WHERE "
            "table_schema = DATABASE() AND table_name = 'backfill_partition' "
            "AND column_name = 'docs_dead'",
        )
    )


def named_lock(cur: Any, name: str, timeout_s: float) -> bool:
    return _scalar(cur, "SELECT GET_LOCK(%s, %s)", (name, timeout_s)) == 1


def release_named_lock(cur: Any, name: str) -> None:
    _scalar(cur, "SELECT RELEASE_LOCK(%s)", (name,))


def partition_totals(cur: Any) -> tuple[int, int]:
    """(partitions, documents estimated) of the current plan."""
    n, t = _fetch(cur, "SELECT COUNT(*), COALESCE(SUM(docs_estimate), 0) FROM backfill_partition")[
        0
    ]
    return int(n), int(t)


def insert_partitions(cur: Any, rows: Sequence[tuple[Any, ...]], run_id: str) -> None:
    """rows: (id, kind, lower_key, upper_key, docs_estimate)."""
    cur.executemany(
        "INSERT INTO backfill_partition (id, kind, lower_key, upper_key, checkpoint_key, "
        "docs_estimate, run_id, status, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', UTC_TIMESTAMP(6))",
        [(i, kind, lo, up, lo, est, run_id) for i, kind, lo, up, est in rows],
    )
    cur.execute("UPDATE backfill_control SET run_id = %s WHERE id = 1", (run_id,))


def delete_partitions(cur: Any) -> int:
    cur.execute("DELETE FROM backfill_partition")
    removed = cur.rowcount
    cur.execute("UPDATE backfill_control SET run_id = NULL, paused = FALSE WHERE id = 1")
    return removed


def set_backfill_paused(cur: Any, paused: bool) -> None:
    cur.execute("UPDATE backfill_control SET paused = %s WHERE id = 1", (paused,))


def backfill_paused(cur: Any) -> bool:
    return bool(_scalar(cur, "SELECT paused FROM backfill_control WHERE id = 1"))


def threads_running(cur: Any) -> int:
    rows = _fetch(cur, "SHOW GLOBAL STATUS LIKE 'Threads_running'")
    return int(rows[0][1]) if rows else 0


def backfill_progress(cur: Any) -> dict[str, Any]:
    """Totals over the plan: n, d (done), t (estimate), done, w (written), dead, finished,
    states {status: partitions}, paused, shipments (MySQL rows)."""
    agg = _rows(cur, PROGRESS)[0]
    agg["states"] = {
        r["status"]: int(r["n"])
        for r in _rows(cur, "SELECT status, COUNT(*) AS n FROM backfill_partition GROUP BY status")
    }
    agg["paused"] = backfill_paused(cur)
    agg["shipments"] = shipment_count(cur)
    return agg


def list_partitions(cur: Any) -> list[dict[str, Any]]:
    return _rows(cur, f"SELECT {PARTITION_COLUMNS} FROM backfill_partition ORDER BY id")


def lease_partition(cur: Any, owner: str, lease_s: float) -> dict[str, Any] | None | bool:
    """A free partition, now leased to `owner`; None if none is free now; False if all done."""
    found = _rows(cur, LEASE_FREE)
    if not found:
        left = _scalar(cur, "SELECT COUNT(*) FROM backfill_partition WHERE status <> 'done'")
        return None if left else False
    cur.execute(TAKE_LEASE, (owner, _interval_us(lease_s), found[0]["id"]))
    return found[0]


def set_partition_state(
    cur: Any, pid: int, owner: str, status: str, lease_s: float, release: bool
) -> bool:
    """Set the status (renewing the lease, or releasing it); False if `owner` lost it."""
    sets = ["status = %s"]
    params: list[Any] = [status]
    if release:
        sets.append("lease_owner = NULL, lease_expires = NULL")
    else:
        sets.append("lease_expires = UTC_TIMESTAMP(6) + INTERVAL %s MICROSECOND")
        params.append(_interval_us(lease_s))
    if status == "done":
        sets.append("finished_at = UTC_TIMESTAMP(6)")
    cur.execute(
        f"UPDATE backfill_partition SET {', '.join(sets)}, "
        "updated_at = UTC_TIMESTAMP(6) WHERE id = %s AND lease_owner = %s",
        (*params, pid, owner),
    )
    return cur.rowcount == 1


def lock_partition(cur: Any, pid: int) -> tuple[str | None, str | None] | None:
    """(checkpoint_key, lease_owner) of the partition, row-locked; None if it is gone."""
    rows = _fetch(cur, LOCK_PARTITION, (pid,))
    return (rows[0][0], rows[0][1]) if rows else None


def renew_partition_lease(cur: Any, pid: int, owner: str, lease_s: float) -> bool:
    """Extend `owner`'s lease of partition `pid` (the backfill's lease keeper); False if it
    is not `owner`'s any more. Touches neither status nor checkpoint."""
    cur.execute(
        "UPDATE backfill_partition SET lease_expires = UTC_TIMESTAMP(6) + INTERVAL %s "
        "MICROSECOND WHERE id = %s AND lease_owner = %s",
        (_interval_us(lease_s), pid, owner),
    )
    return cur.rowcount == 1


def range_partitions_scanned(cur: Any) -> tuple[int, int]:
    """(range partitions not done, documents the range partitions scanned)."""
    left, done = _fetch(
        cur,
        "SELECT COALESCE(SUM(status <> 'done'), 0), COALESCE(SUM(docs_done), 0) "
        "FROM backfill_partition WHERE kind = 'range'",
    )[0]
    return int(left), int(done)


def advance_checkpoint(
    cur: Any,
    pid: int,
    owner: str,
    checkpoint: str | None,
    done: int,
    written: int,
    dead: int,
    lease_s: float,
) -> None:
    cur.execute(
        ADVANCE_CHECKPOINT, (checkpoint, done, written, dead, _interval_us(lease_s), pid, owner)
    )


# -- verify runs ---------------------------------------------------------------------------------

LAST_FULL_VERIFY = (
    "SELECT differences, started_at, finished_at FROM verify_run "
    "WHERE scope = 'full' AND source LIKE 'mongo:%' ORDER BY id DESC LIMIT 1"
)


def record_verify_run(
    cur: Any,
    source: str,
    truth: str,
    scope: str,
    differences: int,
    summary: dict[str, Any],
    started_at: datetime,
) -> None:
    cur.execute(
        "INSERT INTO verify_run (source, truth, scope, differences, summary, "
        "started_at, finished_at) VALUES (%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (source[:255], truth, scope, differences, json.dumps(summary, default=str), started_at),
    )


def last_full_verify(cur: Any) -> dict[str, Any] | None:
    rows = _rows(cur, LAST_FULL_VERIFY)
    return rows[0] if rows else None


# -- archives ------------------------------------------------------------------------------------


def record_archive(
    cur: Any, location: str, count: int, sha256: str, manifest: dict[str, Any]
) -> int:
    cur.execute(
        "INSERT INTO archive_record (location, doc_count, sha256, manifest, created_at) "
        "VALUES (%s, %s, %s, %s, UTC_TIMESTAMP(6))",
        (location, count, sha256, dump_json(manifest)),
    )
    return int(cur.lastrowid)


def mark_archive_verified(cur: Any, record_id: int, count: int) -> None:
    cur.execute(
        "UPDATE archive_record SET verified_at = UTC_TIMESTAMP(6), verified_count = %s "
        "WHERE id = %s",
        (count, record_id),
    )


def last_verified_archive(cur: Any) -> dict[str, Any] | None:
    """The newest archive that was read back and matched its manifest."""
    rows = _rows(
        cur,
        "SELECT id, location, created_at, verified_at FROM archive_record "
        "WHERE verified_at IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    return rows[0] if rows else None


# -- dead letters across stores (they follow the primary store) ----------------------------------


def dead_letters_since(cur: Any, after_id: int, limit: int) -> list[dict[str, Any]]:
    return _rows(
        cur,
        "SELECT id, origin, dedup_key, source_seq, shipment_key, reason, payload, created_at "
        "FROM dead_letter WHERE id > %s ORDER BY id LIMIT %s",
        (after_id, limit),
    )


# -- counts --------------------------------------------------------------------------------------


def shipment_count(cur: Any) -> int:
    return int(_scalar(cur, "SELECT COUNT(*) FROM shipment") or 0)


def dead_letter_count(cur: Any) -> int:
    return int(_scalar(cur, "SELECT COUNT(*) FROM dead_letter") or 0)


def archive_count(cur: Any) -> int:
    return int(_scalar(cur, "SELECT COUNT(*) FROM archive_record") or 0)
