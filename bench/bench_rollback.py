"""Rollback after the flip, after a big backfill (issue 10, goal 7): the write pause of
`mysql-primary -> dual` must depend on what was written live since the flip, not on how many
documents the backfill (or lazy reads) copied from MongoDB.

    .venv/bin/python bench/bench_rollback.py [--docs 100000] [--live 1000] [--compare-all-marked]

On the test stack (`make bench` starts it; ports from .state/test), with fresh databases that
are dropped afterwards: load --docs shipments into MongoDB (LAZYSHIFT_BENCH_ROLLBACK_DOCS
overrides the default 100000), `mode set dual`, `mode set mysql-primary`, run the real
`lazyshift backfill` (2 workers), make --live writes in MySQL the way a client in
mysql-primary does (guarded, stamped with the epoch), then `lazyshift rollback` (in-process,
the same `plane.rollback`) and record its write pause. With --compare-all-marked it goes up
again, stamps every row as the old code did (backfill and lazy reads stamped the epoch),
and rolls back once more: the pause the old marking would have cost, for context.

Keys merged into bench/results.json: rollback_pause_s_after_backfill (the goal's figure),
rollback_total_s_after_backfill, rollback_backfilled_docs, rollback_live_writes,
rollback_pause_s_all_marked and rollback_total_s_all_marked (only with --compare-all-marked),
rollback_backfill_s, rollback_load_avg_before/after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pymongo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_data import Bench, env_for, merge_results  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dataset import load_mongo, make_doc  # noqa: E402
from lazyshift.config import Settings  # noqa: E402
from lazyshift.control import plane  # noqa: E402
from lazyshift.core import mysql as my  # noqa: E402
from lazyshift.core.guarded_write import guarded_write  # noqa: E402

LAZYSHIFT = Path(sys.executable).parent / "lazyshift"
DEFAULT_DOCS = int(os.environ.get("LAZYSHIFT_BENCH_ROLLBACK_DOCS", "100000"))
console = Console()


def backfill(settings: Settings, workers: int) -> float:
    started = time.monotonic()
    subprocess.run(
        [str(LAZYSHIFT), "backfill", "--workers", str(workers), "--json"],
        env=env_for(settings),
        check=True,
        capture_output=True,
        timeout=4 * 3600,
    )
    return time.monotonic() - started


def live_writes(settings: Settings, docs: int, n: int) -> None:
    """n updates in mysql-primary, as the router writes them: guarded, stamped live."""
    conn = my.connect(settings.mysql)
    try:
        epoch = plane.get_state(settings).epoch
        for j in range(n):
            i = (j * 7919) % docs
            update = make_doc(i, version=2) | {"source_rev": 1000 + j, "version": 1000 + j}
            guarded_write(conn, update, epoch=epoch, written_epoch=epoch)
    finally:
        conn.close()


def mark_all(settings: Settings) -> None:
    """What the code before the fix did: every copied row stamped with the epoch."""
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        epoch = plane.get_state(settings).epoch
        conn.cursor().execute("UPDATE shipment SET written_epoch = %s", (epoch,))
    finally:
        conn.close()


def timed_rollback(settings: Settings) -> tuple[float, float]:
    started = time.monotonic()
    result = plane.rollback(settings, timeout_s=600)
    return result.paused_s, time.monotonic() - started


def run(docs: int, live: int, workers: int, compare: bool) -> dict[str, float | int | None]:
    bench = Bench()
    # Its own MongoDB database, dropped at the end: the rollback writes into it, so it cannot
    # be bench_data's cached dataset.
    bench.mongo_db = "lzbench_rollback"
    out: dict[str, float | int | None] = {"rollback_load_avg_before": os.getloadavg()[0]}
    client = pymongo.MongoClient(bench.settings("unused").mongo.uri)
    try:
        settings = bench.fresh_mysql()
        client.drop_database(bench.mongo_db)
        load_mongo(client[settings.mongo.database][settings.mongo.collection], docs)
        for mode in ("dual", "mysql-primary"):
            plane.set_mode(settings, mode)
        out["rollback_backfill_s"] = round(backfill(settings, workers), 2)
        live_writes(settings, docs, live)
        pause, total = timed_rollback(settings)
        out |= {
            "rollback_pause_s_after_backfill": round(pause, 4),
            "rollback_total_s_after_backfill": round(total, 3),
            "rollback_backfilled_docs": docs,
            "rollback_live_writes": live,
        }
        if compare:
            plane.set_mode(settings, "mysql-primary")
            mark_all(settings)
            pause, total = timed_rollback(settings)
            out["rollback_pause_s_all_marked"] = round(pause, 4)
            out["rollback_total_s_all_marked"] = round(total, 3)
    finally:
        out["rollback_load_avg_after"] = os.getloadavg()[0]
        bench.cleanup()
        client.drop_database(bench.mongo_db)
        client.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=DEFAULT_DOCS)
    ap.add_argument("--live", type=int, default=1000, help="live writes since the flip")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--compare-all-marked", action="store_true")
    args = ap.parse_args()
    values = run(args.docs, min(args.live, args.docs), args.workers, args.compare_all_marked)
    merge_results(values)
    table = Table("rollback after the flip", "value", title=f"{args.docs:,} documents")
    for key, value in values.items():
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)


if __name__ == "__main__":
    main()
