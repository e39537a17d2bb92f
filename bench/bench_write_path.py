"""The backfill's mapping + write path alone (no reads): issue 10 asks >= 3,000 docs/s a worker.

    .venv/bin/python bench/bench_write_path.py --docs 20000 [--profile]

Documents of the cached bench dataset (bench_data.py) are read into memory first; then, timed:
`map_or_reject` alone, and `map_or_reject` + `apply_batch` (500 a transaction, as a backfill
worker commits them) into a fresh MySQL database. Prints docs/s by wall clock and the CPU
seconds of this process and of mysqld (on a busy machine the CPU-bound rate
docs / (client + mysqld CPU) is the steadier figure).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time

import pymongo
from bench_data import Bench, cached_source, console

from lazyshift.core.guarded_write import apply_batch, map_or_reject
from lazyshift.core.mysql import connect, run_in_transaction


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000, help="cached dataset size")
    parser.add_argument("--batch", type=int, default=500, help="documents a transaction")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed write")
    args = parser.parse_args()
    bench = Bench()
    try:
        src, _ = cached_source(bench, args.docs)
        client = pymongo.MongoClient(src.mongo.uri, tz_aware=True)
        docs = list(client[src.mongo.database][src.mongo.collection].find({}, batch_size=1000))
        client.close()
        batches = [docs[i : i + args.batch] for i in range(0, len(docs), args.batch)]
        t0 = time.process_time()
        for batch in batches:
            map_or_reject(batch)
        map_cpu = time.process_time() - t0
        console.print(f"mapping only: {len(docs) / map_cpu:,.0f} docs/s (CPU)")
        settings = bench.fresh_mysql()
        conn = connect(settings.mysql)
        mysqld = bench.stack.mysql.pid()
        prof = cProfile.Profile() if args.profile else None
        m0, c0, w0 = _cpu_s(mysqld), time.process_time(), time.monotonic()
        if prof:
            prof.enable()
        for batch in batches:
            rows_by_key, _ = map_or_reject(batch)
            rows = list(rows_by_key.values())
            run_in_transaction(conn, lambda cur, rows=rows: apply_batch(cur, rows))
        if prof:
            prof.disable()
        wall, cpu, server = time.monotonic() - w0, time.process_time() - c0, _cpu_s(mysqld) - m0
        conn.close()
        console.print(
            f"mapping + apply_batch: {len(docs) / wall:,.0f} docs/s wall; CPU client "
            f"{cpu:.2f} s + mysqld {server:.2f} s = {len(docs) / (cpu + server):,.0f} docs/s "
            f"CPU-bound (load avg {os.getloadavg()[0]:.1f})"
        )
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
