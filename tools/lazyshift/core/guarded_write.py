"""THE version-guarded write into MySQL. Live dual-write, lazy migration, backfill and repair
all go through `apply_batch` (or `guarded_write` for one document), so no path can overwrite
newer data (DESIGN.md, invariant 1) or write in a stale epoch (invariant 2).

Inside the caller's transaction, `apply_batch`:
1. (if an epoch is given) share-locks the control row and raises `Fenced` unless the epoch is
   current and no transition is draining; the lock is held to commit, so `mode set` (which
   updates that row) waits for in-flight writes;
2. locks the existing root rows of the batch (FOR UPDATE, in key order);
3. for documents strictly newer than the stored one: upserts the root row, deletes its
   child rows and inserts the new ones;
4. for documents whose key was absent when locked (nearly all of a backfill): a plain
   multi-row INSERT of the root rows and of their children, no child DELETE (a child needs
   its root row: foreign keys) and no re-read.

"Newer" is the pair (source_rev, version), compared in that order. `version` is a counter
each store keeps for itself, so after `dual -> mongo -> dual` (MongoDB counted on while MySQL
stood still) or after the flip (MySQL counts on from its own copy) the two stores' versions of
one shipment no longer say which content is newer: a document copied from MongoDB can carry a
higher version than a newer write MySQL took since the flip. `source_rev` (the per-shipment
revision of the last applied source message, DESIGN §2) is the same number in every store for
the same content, so it decides; the version only breaks ties between copies of the same
revision.

`written_epoch` marks a row as written by a live write (mysql-primary) at that epoch: rollback
writes back exactly those (control/steps.py). Copies of MongoDB's data (dual-write, backfill,
lazy migration, repair, reconcile) leave it NULL: MongoDB has them already.

The upsert's UPDATE part is itself guarded by the same pair. Under REPEATABLE READ the
locking read gap-locks the absent keys, so no one else can insert them before we commit.
Under READ COMMITTED (no gap locks) a concurrent first insert of one of them can win the
race: the plain INSERT then fails with a duplicate key, which rolls back that statement only
(InnoDB), and those keys take the slower path that makes no assumption: the guarded upsert,
then a re-read of who won, then their children replaced only where we did. So a concurrent
first insert cannot lead to older data or mixed children, and the caller sees no error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter
from typing import Any

from mysql.connector import Error as MySQLError
from mysql.connector import errorcode
from mysql.connector.abstracts import MySQLConnectionAbstract
from tenacity import Retrying

from lazyshift.core.document import Document, InvalidDocument
from lazyshift.core.mapping import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    PARTY_COLUMNS,
    ROOT_COLUMNS,
    Rows,
    document_to_rows,
)
from lazyshift.core.mysql import (
    SHARE_LOCK,
    RetryableConflict,
    chunks,
    execute_script,
    placeholders,
    rows_as_dicts,
    run_in_transaction,
    sql_literals,
)

CHUNK = 500  # rows per statement: keeps packets well under max_allowed_packet
DUPLICATE_KEY = errorcode.ER_DUP_ENTRY  # 1062


class Fenced(Exception):
    """The write's epoch is not the current one, or a mode transition is draining."""

    def __init__(
        self,
        message: str,
        *,
        epoch: int | None = None,
        current_epoch: int | None = None,
        state: str | None = None,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.current_epoch = current_epoch
        self.state = state


@dataclass
class BatchResult:
    applied_keys: list[str] = field(default_factory=list)
    skipped_keys: list[str] = field(default_factory=list)  # stored version was newer or equal


def _key_of(doc: Any) -> Any:
    return doc.get("key") if isinstance(doc, dict) else None


def map_or_reject(docs: Iterable[Document]) -> tuple[dict[str, Rows], list[tuple[Document, str]]]:
    """Map every document; (rows by key keeping each key's highest version, rejected docs with
    the reason). For callers that dead-letter rejects and write the rest."""
    rows_by_key: dict[str, Rows] = {}
    rejected: list[tuple[Document, str]] = []
    for doc in docs:
        try:
            rows = document_to_rows(doc)
        except InvalidDocument as exc:
            rejected.append((doc, exc.reason))
            continue
        _keep_newest(rows_by_key, rows)
    return rows_by_key, rejected


def order_key(rows: Rows) -> tuple[int, int]:
    """What "newer" means for two copies of one shipment: (source_rev, version)."""
    return int(rows.root["source_rev"]), rows.version


def _keep_newest(rows_by_key: dict[str, Rows], rows: Rows) -> None:
    current = rows_by_key.get(rows.key)
    if current is None or order_key(rows) > order_key(current):
        rows_by_key[rows.key] = rows


def _map_all(docs: Iterable[Document | Rows]) -> dict[str, Rows]:
    rows_by_key: dict[str, Rows] = {}
    for doc in docs:
        if isinstance(doc, Rows):
            rows = doc
        else:
            try:
                rows = document_to_rows(doc)
            except InvalidDocument as exc:
                raise InvalidDocument(f"document {_key_of(doc)!r}: {exc.reason}") from exc
        _keep_newest(rows_by_key, rows)
    return rows_by_key


CONTROL_LOCK = f"SELECT epoch, state FROM lazyshift_control WHERE id = 1 {SHARE_LOCK}"


def check_epoch(cursor: Any, epoch: int) -> None:
    """Share-lock the control row; raise Fenced unless `epoch` is current and stable."""
    cursor.execute(CONTROL_LOCK)
    _check_control(cursor.fetchall(), epoch)


def _check_control(found: Sequence[Any], epoch: int) -> None:
    """Raise Fenced unless the control row read by CONTROL_LOCK says `epoch`, stable."""
    if not found:
        raise Fenced(
            "no control row (lazyshift_control id=1): run `lazyshift schema migrate`", epoch=epoch
        )
    row = found[0]
    current, state = (
        (int(row["epoch"]), row["state"]) if isinstance(row, dict) else (int(row[0]), row[1])
    )
    if current != epoch:
        raise Fenced(
            f"write carries epoch {epoch} but the control plane is at epoch {current}",
            epoch=epoch,
            current_epoch=current,
            state=state,
        )
    if state != "stable":
        raise Fenced(
            f"epoch {current} is {state}: writes pause until the transition ends",
            epoch=epoch,
            current_epoch=current,
            state=state,
        )


def _stored_versions(cursor: Any, keys: Sequence[str]) -> dict[str, tuple[int, int]]:
    """(source_rev, version) of the stored `keys`, row-locked, in key order."""
    stored: dict[str, tuple[int, int]] = {}
    for chunk in chunks(keys, CHUNK):
        cursor.execute(
            "SELECT shipment_key, source_rev, version FROM shipment "
            f"WHERE shipment_key IN ({placeholders(len(chunk))}) ORDER BY shipment_key FOR UPDATE",
            tuple(chunk),
        )
        for row in rows_as_dicts(cursor, cursor.fetchall()):
            stored[row["shipment_key"]] = (int(row["source_rev"]), int(row["version"]))
    return stored


# (source_rev, version) newer than the stored pair; `version` and `source_rev` are assigned
# last (in that order) so every assignment before them still sees the stored pair.
_GUARD = (
    "(VALUES(source_rev) > source_rev OR "
    "(VALUES(source_rev) = source_rev AND VALUES(version) > version))"
)
# repair: the same pair again replaces the content (a corrupted row, never a bumped version)
_GUARD_OR_EQUAL = (
    "(VALUES(source_rev) > source_rev OR "
    "(VALUES(source_rev) = source_rev AND VALUES(version) >= version))"
)
_ROOT_INSERT_COLUMNS = (*ROOT_COLUMNS, "written_epoch", "written_at", "apply_count")


def _root_update(guard: str) -> str:
    return ", ".join(
        [
            f"{c} = IF({guard}, VALUES({c}), {c})"
            for c in (*ROOT_COLUMNS, "written_epoch", "written_at")
            if c not in ("shipment_key", "version", "source_rev")
        ]
        + [
            f"apply_count = apply_count + IF({guard}, 1, 0)",
            # last two: every assignment before them still sees the stored pair
            f"version = IF({guard}, VALUES(version), version)",
            "source_rev = GREATEST(source_rev, VALUES(source_rev))",
        ]
    )


_ROOT_UPDATE = _root_update(_GUARD)
_ROOT_UPDATE_REPAIR = _root_update(_GUARD_OR_EQUAL)


def _multi_row_insert(
    cursor: Any,
    head: str,
    rows: Sequence[tuple[Any, ...]],
    tail: str = "",
    row_extra: str = "",
) -> None:
    """`head VALUES (v, ...row_extra), ... tail` for `rows`, CHUNK rows a statement.

    The connector's own conversion (`prepare_for_mysql`: quoting and escaping for this
    connection, what `execute` does with parameters) turns all of a chunk's values into SQL
    literals in one C call, and the rows are joined here: `executemany` rewrote the statement
    row by row and `execute` substitutes each value with a Python callback (together most of
    the backfill's client time in the write). A connection without it gets `execute`."""
    if not rows:
        return
    prepare = getattr(getattr(cursor, "_connection", None), "prepare_for_mysql", None)
    if prepare is None:
        width = len(rows[0])
        for chunk in chunks(rows, CHUNK):
            row_sql = f"({placeholders(width)}{row_extra})"
            cursor.execute(
                f"{head} VALUES {', '.join([row_sql] * len(chunk))}{tail}",
                tuple(chain.from_iterable(chunk)),
            )
        return
    for statement in _insert_statements(prepare, head, rows, tail, row_extra):
        cursor.execute(statement)


def _insert_statements(
    prepare: Callable[[tuple[Any, ...]], Sequence[bytes]],
    head: str,
    rows: Sequence[tuple[Any, ...]],
    tail: str = "",
    row_extra: str = "",
) -> list[bytes]:
    """The statements of `_multi_row_insert`, values as literals (`prepare`), CHUNK rows each."""
    if not rows:
        return []
    width = len(rows[0])
    close = f"{row_extra})".encode()
    statements = []
    for chunk in chunks(rows, CHUNK):
        literals = prepare(tuple(chain.from_iterable(chunk)))
        values = b",".join(
            [
                b"(" + b",".join(literals[i : i + width]) + close
                for i in range(0, len(literals), width)
            ]
        )
        statements.append(f"{head} VALUES ".encode() + values + tail.encode())
    return statements


_ROOT_VALUES = itemgetter(*ROOT_COLUMNS)
_CHILDREN = tuple(
    (table, columns, attr, itemgetter(*columns))
    for table, columns, attr in (
        ("shipment_party", PARTY_COLUMNS, "parties"),
        ("shipment_item", ITEM_COLUMNS, "items"),
        ("shipment_event", EVENT_COLUMNS, "events"),
    )
)


def _upsert_roots(
    cursor: Any, batch: Sequence[Rows], written_epoch: int | None, repair: bool = False
) -> None:
    _multi_row_insert(
        cursor,
        f"INSERT INTO shipment ({', '.join(_ROOT_INSERT_COLUMNS)})",
        [(*_ROOT_VALUES(rows.root), written_epoch) for rows in batch],
        f" ON DUPLICATE KEY UPDATE {_ROOT_UPDATE_REPAIR if repair else _ROOT_UPDATE}",
        # written_at is the server's clock, so every client stamps rows on the same time line
        row_extra=", UTC_TIMESTAMP(6), 1",
    )


def _insert_roots(cursor: Any, batch: Sequence[Rows], written_epoch: int | None) -> bool:
    """Plain INSERT of the root rows of keys found absent under the lock; False (that
    statement rolled back, the transaction still open) if a concurrent first insert of one
    of them won the race, which only READ COMMITTED allows (no gap locks)."""
    try:
        _multi_row_insert(
            cursor,
            f"INSERT INTO shipment ({', '.join(_ROOT_INSERT_COLUMNS)})",
            [(*_ROOT_VALUES(rows.root), written_epoch) for rows in batch],
            row_extra=", UTC_TIMESTAMP(6), 1",
        )
    except MySQLError as exc:
        if exc.errno != DUPLICATE_KEY:
            raise
        return False
    return True


def _upsert_absent(
    cursor: Any, batch: Sequence[Rows], written_epoch: int | None, repair: bool
) -> tuple[list[Rows], list[str]]:
    """The keys that were absent when locked, when a plain INSERT met a concurrent first
    insert: (those we wrote, those the other writer won with data at least as new).

    The guarded upsert, then a re-read (our upsert locks the rows now): a pair other than
    ours means the other insert was at least as new, and the guarded upsert left it alone.
    A key of this batch that an earlier chunk of the failed INSERT did write reads back
    with our own pair: written."""
    _upsert_roots(cursor, batch, written_epoch, repair)
    now = _stored_versions(cursor, [rows.key for rows in batch])
    won = [rows for rows in batch if now.get(rows.key) == order_key(rows)]
    # the other writer's children, where our newer copy replaced its root row
    _delete_children(cursor, won)
    return won, [rows.key for rows in batch if now.get(rows.key) != order_key(rows)]


def _delete_children(cursor: Any, batch: Sequence[Rows]) -> None:
    keys = [rows.key for rows in batch]
    for table, *_ in _CHILDREN:
        for chunk in chunks(keys, CHUNK):
            cursor.execute(
                f"DELETE FROM {table} WHERE shipment_key IN ({placeholders(len(chunk))})",
                tuple(chunk),
            )


def _insert_children(cursor: Any, batch: Sequence[Rows]) -> None:
    for table, columns, attr, values_of in _CHILDREN:
        values = [values_of(child) for rows in batch for child in getattr(rows, attr)]
        _multi_row_insert(cursor, f"INSERT INTO {table} ({', '.join(columns)})", values)


def apply_batch(
    cursor: Any,
    docs: Iterable[Document | Rows],
    *,
    epoch: int | None = None,
    written_epoch: int | None = None,
    repair: bool = False,
) -> BatchResult:
    """Version-guarded write of `docs` inside the caller's transaction (the caller commits).

    `docs` may also hold already mapped `Rows` (from `map_or_reject`). Every document is
    mapped before the database is touched: an unmappable one raises InvalidDocument naming
    its key. For a key given twice only its newest copy is written. `epoch` fences the write
    (see `check_epoch`). `written_epoch` is given only by live writes in mysql-primary (the
    ones rollback must carry back to MongoDB); it is recorded on the written root rows.
    `repair` also applies a copy equal in (source_rev, version) to the stored one: it
    replaces corrupted content without inventing a version.
    """
    rows_by_key = _map_all(docs)
    if not rows_by_key:
        return BatchResult()
    if epoch is not None:
        check_epoch(cursor, epoch)
    keys = sorted(rows_by_key)  # one lock order for everyone: fewer deadlocks
    stored = _stored_versions(cursor, keys)
    result = BatchResult()
    newer: list[Rows] = []  # stored, older than ours (or equal, in a repair)
    absent: list[Rows] = []  # not stored when locked
    for key in keys:
        rows = rows_by_key[key]
        if key not in stored:
            absent.append(rows)
        elif stored[key] > order_key(rows) or (stored[key] == order_key(rows) and not repair):
            result.skipped_keys.append(key)
        else:
            newer.append(rows)
    if newer:
        _upsert_roots(cursor, newer, written_epoch, repair)
        _delete_children(cursor, newer)
    if absent and not _insert_roots(cursor, absent, written_epoch):
        absent, lost = _upsert_absent(cursor, absent, written_epoch, repair)
        result.skipped_keys = sorted([*result.skipped_keys, *lost])
    batch = sorted([*newer, *absent], key=lambda rows: rows.key)
    _insert_children(cursor, batch)
    result.applied_keys = [rows.key for rows in batch]
    return result


def guarded_write(
    conn: MySQLConnectionAbstract,
    doc: Document | Rows,
    *,
    epoch: int | None = None,
    written_epoch: int | None = None,
    retry: Retrying | None = None,
    expect_absent: bool = False,
) -> bool:
    """Write one document in its own transaction, retrying deadlocks, lock-wait timeouts and
    lost connections (reconnecting). True if it was applied, False if the stored version was
    already as new. Raises InvalidDocument (before any retry) and Fenced (never retried).

    After a connection lost during COMMIT the retry may find its own write already there
    and report False: the write is idempotent, only the answer is conservative.

    Two round trips (`_write_one`) where `apply_batch` in `run_in_transaction` takes seven
    or more: this is the lazy-migration miss of the read API, which waits for it.
    `expect_absent`: the caller has just seen the key absent from MySQL (that miss), so the
    write first tries the one-round-trip insert of a new key (`_insert_new`); a key stored
    meanwhile, or a fence miss, falls back to the two round trips, which decide as always.
    """
    rows = doc if isinstance(doc, Rows) else document_to_rows(doc)
    if sql_literals(conn, ()) is None:  # a connector without literal conversion
        result = run_in_transaction(
            conn,
            lambda cursor: apply_batch(cursor, [rows], epoch=epoch, written_epoch=written_epoch),
            retry=retry,
        )
        return bool(result.applied_keys)
    if expect_absent:
        try:
            return run_in_transaction(
                conn,
                lambda _cursor: _insert_new(conn, rows, epoch, written_epoch),
                retry=retry,
                fn_begins_and_commits=True,
            )
        except _NotInserted:
            pass  # rolled back, nothing written: `_write_one` finds out why, and acts on it
    return run_in_transaction(
        conn,
        lambda _cursor: _write_one(conn, rows, epoch, written_epoch),
        retry=retry,
        fn_begins_and_commits=True,
    )


def _child_inserts(
    prepare: Callable[[tuple[Any, ...]], Sequence[bytes]], rows: Rows
) -> list[bytes]:
    """The INSERT statements of one document's child rows, values as literals."""
    statements: list[bytes] = []
    for table, columns, attr, values_of in _CHILDREN:
        statements += _insert_statements(
            prepare,
            f"INSERT INTO {table} ({', '.join(columns)})",
            [values_of(child) for child in getattr(rows, attr)],
        )
    return statements


def _write_one(
    conn: MySQLConnectionAbstract,
    rows: Rows,
    epoch: int | None,
    written_epoch: int | None,
) -> bool:
    """`apply_batch` of one document in two multi-statement round trips, the same guard.

    1. START TRANSACTION, the control row share-locked (the fence, as `check_epoch`), the
       stored (source_rev, version) locked FOR UPDATE (the gap where it would be, if absent).
    2. Decided on what 1 returned, then sent at once and committed by its last statement:
       - stored and at least as new: nothing is written (rolled back, False);
       - stored and older: the guarded upsert (its guard holds under our row lock), the old
         children deleted, the new ones inserted;
       - absent: a plain INSERT of the root row, not an upsert. A concurrent first insert of
         the key (possible only without gap locks, under READ COMMITTED) makes it fail with
         a duplicate key before anything after it runs, and the whole write is retried,
         finding that row stored. So the key has no children (they need the root row: a
         foreign key): none to delete, and no re-read to see whose insert won.
    """
    prepare = conn.prepare_for_mysql  # type: ignore[attr-defined]
    key_literal = prepare((rows.key,))[0]
    first = [b"START TRANSACTION"]
    if epoch is not None:
        first.append(CONTROL_LOCK.encode())
    first.append(
        b"SELECT source_rev, version FROM shipment WHERE shipment_key = "
        + key_literal
        + b" FOR UPDATE"
    )
    results = execute_script(conn, first)
    if epoch is not None:
        _check_control(results[1][1] if results[1] else [], epoch)
    found = results[-1][1] if results[-1] else []
    stored = (int(found[0][0]), int(found[0][1])) if found else None
    if stored is not None and stored >= order_key(rows):
        conn.rollback()  # nothing written; only the locks to let go
        return False
    second = [
        *_insert_statements(
            prepare,
            f"INSERT INTO shipment ({', '.join(_ROOT_INSERT_COLUMNS)})",
            [(*_ROOT_VALUES(rows.root), written_epoch)],
            "" if stored is None else f" ON DUPLICATE KEY UPDATE {_ROOT_UPDATE}",
            row_extra=", UTC_TIMESTAMP(6), 1",
        )
    ]
    if stored is not None:
        second += [
            f"DELETE FROM {table} WHERE shipment_key = ".encode() + key_literal
            for table, *_ in _CHILDREN
        ]
    second += _child_inserts(prepare, rows)
    second.append(b"COMMIT")
    try:
        execute_script(conn, second)
    except MySQLError as exc:
        if stored is None and exc.errno == DUPLICATE_KEY:
            raise RetryableConflict(f"{rows.key}: a concurrent first insert won") from exc
        raise
    return True


class _NotInserted(Exception):
    """`_insert_new` met a duplicate key: the key is stored, or the fence does not hold."""


def _fence_holds(epoch: int) -> bytes:
    """SQL true while the control row says `epoch`, stable (what `_check_control` accepts)."""
    return (
        f"EXISTS (SELECT 1 FROM lazyshift_control WHERE id = 1 AND epoch = {int(epoch)} "
        "AND state = 'stable')"
    ).encode()


def _insert_new(
    conn: MySQLConnectionAbstract,
    rows: Rows,
    epoch: int | None,
    written_epoch: int | None,
) -> bool:
    """`_write_one` of a key expected to be absent, in ONE round trip, committed by its last
    statement. Every statement must succeed for that COMMIT to run (the server stops at the
    first one that fails), and each one that could let a wrong write through fails instead:

    1. START TRANSACTION, the control row share-locked (held to commit: a transition that
       would move the epoch waits for us, as in `check_epoch`);
    2. a plain INSERT of the root row: a stored key (whatever its version, however recently
       written) fails it with a duplicate key, so nothing stored is ever overwritten here;
    3. the fence: unless the control row, locked by 1, says `epoch` and stable (and exists),
       the root row just inserted is inserted once more, which fails with a duplicate key.
       (A conditional root insert alone, INSERT ... SELECT ... WHERE <fence>, would insert
       nothing when fenced, and the children would then attach to a row stored meanwhile.)
    4. the children (none to delete: the root row is new, they need it, a foreign key);
    5. COMMIT.

    A duplicate key (2 or 3) raises _NotInserted, rolled back by the caller; the two-round-
    trip write then reads the stored pair and the fence, applies the guard or raises Fenced.
    """
    prepare = conn.prepare_for_mysql  # type: ignore[attr-defined]
    columns = ", ".join(_ROOT_INSERT_COLUMNS)
    script = [b"START TRANSACTION"]
    if epoch is not None:
        script.append(CONTROL_LOCK.encode())
    script += _insert_statements(
        prepare,
        f"INSERT INTO shipment ({columns})",
        [(*_ROOT_VALUES(rows.root), written_epoch)],
        row_extra=", UTC_TIMESTAMP(6), 1",
    )
    if epoch is not None:
        script.append(
            f"INSERT INTO shipment ({columns}) SELECT {columns} FROM shipment "
            "WHERE shipment_key = ".encode()
            + prepare((rows.key,))[0]
            + b" AND NOT "
            + _fence_holds(epoch)
        )
    script += _child_inserts(prepare, rows)
    script.append(b"COMMIT")
    try:
        execute_script(conn, script)
    except MySQLError as exc:
        if exc.errno == DUPLICATE_KEY:
            raise _NotInserted(rows.key) from exc
        raise
    return True
