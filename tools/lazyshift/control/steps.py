"""The data a rung copies (named in ladder.RUNGS, run by plane.set_mode).

- flush_backlog (the flip, in the pause): every shipment the dual-write backlog still holds
  is written from MongoDB into MySQL, so MySQL has every latest version before it is read.
- write_back (rollback from mysql-primary, before the pause): every shipment written in
  MySQL since the flip goes back to MongoDB, version-guarded, while writes still flow.
- write_back_moved (the same rollback, in the pause): only what moved since write_back, so
  the write pause is the delta, not every change since the flip (gh-ost's cut-over idea, for
  the way back). Versions, not timestamps, decide what moved: a transaction can commit long
  after it stamped its row.

Each step returns a one-line note for the transition's result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mysql.connector.abstracts import MySQLConnectionAbstract

from lazyshift import logs
from lazyshift.config import Settings
from lazyshift.core import mysql_store as store
from lazyshift.core.guarded_write import guarded_write
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.mysql import read_snapshot
from lazyshift.core.mysql_store import ControlState

WRITE_BACK_BATCH = 500
BACKLOG_BATCH = 500

Step = Callable[[Settings, MySQLConnectionAbstract, ControlState, dict[str, Any]], str]


def flush_backlog(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    mongo = MongoStore.open(settings)
    flushed = 0
    try:
        while keys := mongo.backlog_keys(limit=BACKLOG_BATCH):
            for key in keys:
                doc = mongo.get(key)
                if doc is not None:
                    # No epoch: this runs inside the drain, the one writer allowed now.
                    guarded_write(conn, doc)
                mongo.backlog_remove(key)
                flushed += 1
    finally:
        mongo.close()
    logs.event("transition.backlog_flushed", shipments=flushed)
    return f"flushed {flushed} backlogged shipment(s) into MySQL"


def write_back(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    return _write_back(settings, conn, st, memo.setdefault("copied", {}), only_moved=False)


def write_back_moved(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    return _write_back(settings, conn, st, memo.setdefault("copied", {}), only_moved=True)


def _write_back(
    settings: Settings,
    conn: MySQLConnectionAbstract,
    st: ControlState,
    copied: dict[str, int],
    only_moved: bool,
) -> str:
    """MySQL's changes since the flip -> MongoDB, each only if newer than MongoDB's copy.

    `copied` collects key -> version of what was handled; with `only_moved`, keys whose
    MySQL version still equals the one in `copied` are skipped (handled by an earlier pass).
    """
    if st.flip_epoch is None:
        return "no flip epoch recorded: nothing written in mysql-primary mode to write back"
    mongo = MongoStore.open(settings)
    written = skipped = 0
    after = ""
    try:
        while True:
            with read_snapshot(conn):
                cur = conn.cursor()
                found = store.written_since(cur, st.flip_epoch, after, WRITE_BACK_BATCH)
                keys = [k for k, v in found if not (only_moved and copied.get(k) == v)]
                docs = store.load_documents(cur, keys)
            if not found:
                break
            for key in keys:
                doc = docs[key]
                if mongo.replace_if_newer(doc):
                    written += 1
                else:
                    skipped += 1
                copied[key] = doc["version"]
            after = found[-1][0]
    finally:
        mongo.close()
    logs.event("transition.written_back", written=written, already_current=skipped)
    return (
        f"wrote {written} shipment(s) changed in MySQL since the flip back to MongoDB "
        f"({skipped} already current there)"
    )


STEPS: dict[str, Step] = {
    "flush_backlog": flush_backlog,
    "write_back": write_back,
    "write_back_moved": write_back_moved,
}


def run(
    name: str,
    settings: Settings,
    conn: MySQLConnectionAbstract,
    st: ControlState,
    memo: dict[str, Any],
) -> str:
    return STEPS[name](settings, conn, st, memo)
