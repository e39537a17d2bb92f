"""The stage transitions: `mode set` and `rollback` with what each rung needs done while
writes are paused (control.set_mode's drain).

- mongo -> dual: needs the schema (the control row) — nothing to copy: dual writes both.
- dual -> mysql-primary (the flip): the dual-write backlog is flushed into MySQL first, so
  MySQL holds every shipment's latest version before it becomes the one that is read.
- mysql-primary -> dual (rollback): every shipment written in MySQL since the flip is
  written back to MongoDB (rows -> document, version-guarded) before MongoDB is the truth
  again: most of it while writes still flow, the rest (written meanwhile) in the pause.
- mysql-primary -> mysql: refused unless an archive of MongoDB has been recorded.
- dual -> mongo: nothing to copy (MongoDB has been the truth all along).
"""

from __future__ import annotations

from typing import Any

from lazyshift import logs
from lazyshift.config import Settings
from lazyshift.control import (
    LADDER,
    ControlState,
    TransitionError,
    TransitionResult,
    get_state,
    set_mode,
)
from lazyshift.core.guarded_write import guarded_write
from lazyshift.core.mapping import load_documents
from lazyshift.core.mongo_store import MongoStore, connect
from lazyshift.core.mysql import read_snapshot

WRITE_BACK_BATCH = 500


def change_mode(settings: Settings, target: str, *, timeout_s: float = 30.0) -> TransitionResult:
    pre_copied: dict[str, Any] = {}

    def precondition(conn: Any, st: ControlState) -> None:
        if (st.mode, target) == ("mysql-primary", "dual"):
            # Copy back while writes still flow, then inside the drain only the rows whose
            # version moved since: the write pause is the delta, not every change since the
            # flip (gh-ost's cut-over idea, for the way back). Versions, not timestamps,
            # decide what moved: a transaction can commit long after it stamped its row.
            copied: dict[str, int] = {}
            pre_copied["note"] = write_back(settings, conn, st, copied)
            pre_copied["copied"] = copied
        if (st.mode, target) == ("mysql-primary", "mysql"):
            cur = conn.cursor()
            cur.execute("SELECT COUNT(*) FROM archive_record")
            (archives,) = cur.fetchone()
            conn.commit()
            if not archives:
                raise TransitionError(
                    "refusing mysql-primary -> mysql: no archive of MongoDB is recorded. "
                    "Run `lazyshift archive --to DIR|s3://bucket/prefix` first")

    def during_drain(conn: Any, st: ControlState) -> list[str]:
        if (st.mode, target) == ("dual", "mysql-primary"):
            return [flush_backlog(settings, conn)]
        if (st.mode, target) == ("mysql-primary", "dual"):
            return [f"before the pause: {pre_copied['note']}",
                    "during the pause: "
                    + write_back(settings, conn, st, pre_copied["copied"], only_moved=True)]
        return []

    return set_mode(settings, target, timeout_s=timeout_s, during_drain=during_drain,
                    precondition=precondition)


def rollback(settings: Settings, *, timeout_s: float = 30.0) -> TransitionResult:
    st = get_state(settings)
    index = LADDER.index(st.mode)
    if index == 0:
        raise TransitionError("already in mongo (stage 1): there is nothing to roll back to")
    return change_mode(settings, LADDER[index - 1], timeout_s=timeout_s)


def _mongo(settings: Settings) -> MongoStore:
    return MongoStore(connect(settings.mongo.uri), settings.mongo.database,
                      settings.mongo.collection)


def flush_backlog(settings: Settings, conn: Any) -> str:
    """Write every backlogged shipment's current MongoDB version into MySQL."""
    store = _mongo(settings)
    flushed = 0
    try:
        while keys := store.backlog_keys(limit=500):
            for key in keys:
                doc = store.get(key)
                if doc is not None:
                    # No epoch: this runs inside the drain, the one writer allowed now.
                    guarded_write(conn, doc)
                store.backlog_remove(key)
                flushed += 1
    finally:
        store.client.close()
    logs.event("transition.backlog_flushed", shipments=flushed)
    return f"flushed {flushed} backlogged shipment(s) into MySQL"


def write_back(settings: Settings, conn: Any, st: ControlState,
               copied: dict[str, int] | None = None, only_moved: bool = False) -> str:
    """MySQL's changes since the flip -> MongoDB, each only if newer than MongoDB's copy.

    `copied` collects key -> version of what was handled; with `only_moved`, keys whose
    MySQL version still equals the one in `copied` are skipped (handled by an earlier pass).
    """
    if st.flip_epoch is None:
        return "no flip epoch recorded: nothing written in MySQL-primary mode to write back"
    copied = {} if copied is None else copied
    store = _mongo(settings)
    written = skipped = 0
    after = ""
    try:
        while True:
            with read_snapshot(conn):
                cur = conn.cursor()
                cur.execute(
                    "SELECT shipment_key, version FROM shipment WHERE written_epoch >= %s "
                    "AND shipment_key > %s ORDER BY shipment_key LIMIT %s",
                    (st.flip_epoch, after, WRITE_BACK_BATCH),
                )
                found = cur.fetchall()
                keys = [k for k, v in found if not (only_moved and copied.get(k) == v)]
                docs = load_documents(cur, keys)
            if not found:
                break
            for key in keys:
                doc = docs[key]
                if store.replace_if_newer(doc):
                    written += 1
                else:
                    skipped += 1
                copied[key] = doc["version"]
            after = found[-1][0]
    finally:
        store.client.close()
    logs.event("transition.written_back", written=written, already_current=skipped)
    return (f"wrote {written} shipment(s) changed in MySQL since the flip back to MongoDB "
            f"({skipped} already current there)")
