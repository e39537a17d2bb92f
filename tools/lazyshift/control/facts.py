"""Collect what the ladder's checks look at (`ladder.Facts`) from MySQL and MongoDB.

One collector for `lazyshift status` and `lazyshift mode set`, so both judge the same state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mysql.connector.abstracts import MySQLConnectionAbstract

from lazyshift.config import Settings
from lazyshift.control.ladder import ArchiveRun, Facts, Mode, VerifyRun
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.mysql_store import ControlState

# generous: on a loaded host a 2 s handshake timeout called a live MongoDB unreachable and
# refused the flip
MONGO_TIMEOUT_MS = 10_000


@dataclass
class Observation:
    facts: Facts
    control: ControlState
    clients: list[dict[str, Any]]
    mongo: dict[str, Any]
    mysql: dict[str, Any]
    backfill: dict[str, Any]


def _mongo_counts(settings: Settings) -> dict[str, Any]:
    try:
        mongo = MongoStore.open(settings, timeout_ms=MONGO_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001 - gone after stage 5, or down: say so
        return {"reachable": False, "error": str(exc)[:200]}
    try:
        return {"reachable": True, **mongo.counts()}
    except Exception as exc:  # noqa: BLE001 - it answered (open pings it); counting is slow
        # FerretDB counts by scanning the collection: on a big one or a loaded host that can
        # outlast the timeout. MongoDB is still there to flip from or roll back to.
        return {"reachable": True, "counts_error": str(exc)[:200]}
    finally:
        mongo.close()


# Shadow-read results that mean MySQL holds something MongoDB does not: other content at the
# same version, a version MongoDB never had, a document the mapping cannot take. (`stale` and
# `missing` are MySQL lagging behind a write in flight or in the backlog.)
SHADOW_DIFFERENCES = frozenset({"different", "ahead", "unmappable"})


def _shadow_differences(live: list[dict[str, Any]]) -> int:
    """Shadow reads (reported in live clients' heartbeats) that found a difference."""
    total = 0
    for c in live:
        stats = c.get("stats")
        if isinstance(stats, dict):
            total += sum(
                v for k, v in (stats.get("shadow") or {}).items() if k in SHADOW_DIFFERENCES
            )
    return total


def observe(settings: Settings, conn: MySQLConnectionAbstract | None = None) -> Observation:
    own = conn is None
    conn = conn or my.connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        st = store.read_control(cur)
        clients = store.clients(cur, settings.client.heartbeat_timeout_s)
        mysql = {
            "shipments": store.shipment_count(cur),
            "dead_letters": store.dead_letter_count(cur),
            "archives": store.archive_count(cur),
        }
        progress = store.backfill_progress(cur) if store.backfill_schema_ready(cur) else None
        last = store.last_full_verify(cur)
        archive = store.last_verified_archive(cur)
        reconcile_epoch = store.reconcile_needed(cur)
        cur.close()
    finally:
        if own:
            conn.close()
    mongo = _mongo_counts(settings)
    live = [c for c in clients if c["live"]]
    parts = int(progress["n"]) if progress else 0
    done = int(progress["d"]) if progress else 0
    finished = progress["finished"] if progress and parts and done == parts else None
    verify_run = (
        None
        if last is None
        else VerifyRun(int(last["differences"]), last["started_at"], last["finished_at"])
    )
    facts = Facts(
        mode=Mode(st.mode),
        epoch=st.epoch,
        stable=st.stable,
        behind=tuple(c["client_id"] for c in live if (c["acked_epoch"] or 0) < st.epoch),
        mongo_reachable=bool(mongo.get("reachable")),
        dual_backlog=int(mongo.get("dual_backlog") or 0),
        shadow_differences=_shadow_differences(live),
        backfill_partitions=parts,
        backfill_done=done,
        backfill_finished_at=finished,
        last_full_verify=verify_run,
        archives=mysql["archives"],
        last_verified_archive=None
        if archive is None
        else ArchiveRun(archive["created_at"], archive["verified_at"]),
        reconcile_epoch=reconcile_epoch,
    )
    backfill = {
        "partitions": parts,
        "partitions_done": done,
        "finished_at": finished,
        "last_full_verify": None
        if last is None
        else {
            "differences": int(last["differences"]),
            "started_at": last["started_at"],
            "finished_at": last["finished_at"],
        },
        "last_verified_archive": None
        if archive is None
        else {"created_at": archive["created_at"], "verified_at": archive["verified_at"]},
    }
    return Observation(facts, st, clients, mongo, mysql, backfill)


def collect(settings: Settings, conn: MySQLConnectionAbstract | None = None) -> Facts:
    return observe(settings, conn).facts
