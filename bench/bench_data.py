"""Data benchmark: raw ceiling vs lazyshift backfill (1 and 2 workers) vs verify, peak RSS.

    .venv/bin/python bench/bench_data.py --docs 100000 [--rss-docs 1000000]

On the same generated dataset in the same run (the test stack of `make bench`, on the ports
recorded in .state/test; fresh databases, dropped afterwards):
(a) raw ceiling: scan every document from MongoDB without mapping + bulk-load the already
    mapped rows into empty tables with LOAD DATA LOCAL INFILE;
(b) `lazyshift backfill` as a subprocess with 1 and with 2 workers (a fresh MySQL db each);
(c) `lazyshift verify` (full);
(d) peak RSS of the backfill process tree, sampled from /proc.
Results are merged into bench/results.json (read-modify-write), shown as a table, and
plotted to bench/backfill.png.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import mysql.connector  # noqa: E402
import pymongo  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from dataset import load_mongo  # noqa: E402
from lazyshift import schema_migrate  # noqa: E402
from lazyshift.config import Settings, as_environment  # noqa: E402
from lazyshift.core.mapping import (  # noqa: E402
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    PARTY_COLUMNS,
    ROOT_COLUMNS,
    document_to_rows,
)
from lazyshift.dev.stack import DevStack, StackPorts  # noqa: E402

STATE = Path(os.environ.get("LAZYSHIFT_TEST_STATE_DIR", REPO / ".state" / "test"))
# 0: any free port (the one recorded in STATE if free), as `make bench` starts it.
PORTS = StackPorts(
    mysql=int(os.environ.get("LAZYSHIFT_TEST_MYSQL_PORT", "0")),
    mongo=int(os.environ.get("LAZYSHIFT_TEST_MONGO_PORT", "0")),
)
RESULTS = REPO / "bench" / "results.json"
PLOT = REPO / "bench" / "backfill.png"
LAZYSHIFT = Path(sys.executable).parent / "lazyshift"
console = Console()


class Bench:
    def __init__(self) -> None:
        self.stack = DevStack(STATE, PORTS, with_source=False)
        # What this run starts it stops in cleanup(); a stack `make bench` started stays up
        # for the next script, and make stops it. SIGTERM unwinds like Ctrl-C does.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        self.started = [c.name for c in self.stack.components() if c.pid() is None]
        self.stack.up()
        self.ports = self.stack.ports
        self.creds = self.stack._credentials()
        self.mongo_db = f"lzbench_{uuid.uuid4().hex[:8]}"
        self.mysql_dbs: list[str] = []

    def settings(self, mysql_db: str) -> Settings:
        return Settings(
            mysql={
                "host": "127.0.0.1",
                "port": self.ports.mysql,
                "database": mysql_db,
                "user": self.creds["app_user"],
                "password": self.creds["app_password"],
                "migrate_user": self.creds["migrate_user"],
                "migrate_password": self.creds["migrate_password"],
            },
            mongo={"uri": f"mongodb://127.0.0.1:{self.ports.mongo}/", "database": self.mongo_db},
            state_dir=STATE,
        )

    def fresh_mysql(self) -> Settings:
        name = f"lzbench_{uuid.uuid4().hex[:8]}"
        grants = []
        for host in ("localhost", "127.0.0.1"):
            grants.append(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{name}`.* "
                f"TO '{self.creds['app_user']}'@'{host}'"
            )
            grants.append(
                "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, "
                f"REFERENCES ON `{name}`.* TO '{self.creds['migrate_user']}'@'{host}'"
            )
        self.stack.root_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4;" + ";".join(grants))
        self.mysql_dbs.append(name)
        settings = self.settings(name)
        schema_migrate.migrate(settings)
        return settings

    def cleanup(self) -> None:
        try:
            for name in self.mysql_dbs:
                self.stack.root_sql(f"DROP DATABASE IF EXISTS `{name}`")
            client = pymongo.MongoClient(f"mongodb://127.0.0.1:{self.ports.mongo}/")
            client.drop_database(self.mongo_db)
            client.close()
        finally:
            for name in reversed(self.started):
                self.stack.stop_component(name)


def env_for(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAZYSHIFT_")}
    env["LAZYSHIFT_LOG_LEVEL"] = "WARNING"
    env.update(as_environment(settings))
    return env


# -- peak RSS of a process tree, from /proc ----------------------------------------------------


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(args: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run a command; wall time, peak RSS of the whole tree and of its largest process."""
    start = time.monotonic()
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peak_tree = peak_one = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_tree, peak_one
        while not done.is_set():
            sizes = [_rss_kb(p) for p in _tree(proc.pid)]
            peak_tree = max(peak_tree, sum(sizes))
            peak_one = max(peak_one, max(sizes, default=0))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    done.set()
    sampler.join()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{out}\n{err[-4000:]}")
    return {"s": elapsed, "rss_tree_mb": peak_tree / 1024, "rss_max_proc_mb": peak_one / 1024}


# -- raw ceiling -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def raw_ceiling(bench: Bench, settings: Settings) -> dict[str, float]:
    client = pymongo.MongoClient(settings.mongo.uri, tz_aware=True, socketTimeoutMS=None)
    coll = client[settings.mongo.database][settings.mongo.collection]
    docs = 0
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            t: open(Path(tmp) / f"{t}.tsv", "w", newline="")  # noqa: SIM115
            for t in ("shipment", "shipment_party", "shipment_item", "shipment_event")
        }

        def write(table: str, cells: list[str]) -> None:
            files[table].write("\t".join(cells) + "\n")

        scan_s = 0.0
        cursor = coll.find({}, batch_size=1000)
        while True:
            t0 = time.monotonic()
            doc = next(cursor, None)
            scan_s += time.monotonic() - t0
            if doc is None:
                break
            docs += 1
            rows = document_to_rows(doc)  # mapping: not part of the ceiling
            write("shipment", [_cell(rows.root[c]) for c in ROOT_COLUMNS])
            for t, cols, attr in (
                ("shipment_party", PARTY_COLUMNS, "parties"),
                ("shipment_item", ITEM_COLUMNS, "items"),
                ("shipment_event", EVENT_COLUMNS, "events"),
            ):
                for child in getattr(rows, attr):
                    write(t, [_cell(child[c]) for c in cols])
        for fh in files.values():
            fh.close()
        target = bench.fresh_mysql()
        conn = mysql.connector.connect(
            host=target.mysql.host,
            port=target.mysql.port,
            user=target.mysql.user,
            password=target.mysql.password,
            database=target.mysql.database,
            allow_local_infile=True,
            charset="utf8mb4",
            collation="utf8mb4_bin",
            time_zone="+00:00",
        )
        cur = conn.cursor()
        t0 = time.monotonic()
        for table, cols in (
            ("shipment", ROOT_COLUMNS),
            ("shipment_party", PARTY_COLUMNS),
            ("shipment_item", ITEM_COLUMNS),
            ("shipment_event", EVENT_COLUMNS),
        ):
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{Path(tmp) / (table + '.tsv')}' INTO TABLE "
                f"{table} CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' "
                f"LINES TERMINATED BY '\\n' ({', '.join(cols)})"
            )
        conn.commit()
        load_s = time.monotonic() - t0
        cur.execute("SELECT COUNT(*) FROM shipment")
        loaded = cur.fetchone()[0]
        conn.close()
    client.close()
    assert loaded == docs, (loaded, docs)
    return {"scan_s": scan_s, "load_s": load_s, "total_s": scan_s + load_s}


def backfill(bench: Bench, workers: int, partitions: int) -> tuple[dict[str, float], Settings]:
    settings = bench.fresh_mysql()
    m = run_measured(
        [
            str(LAZYSHIFT),
            "backfill",
            "--workers",
            str(workers),
            "--partitions",
            str(partitions),
            "--json",
        ],
        env_for(settings),
    )
    return m, settings


def merge_results(values: dict[str, Any]) -> dict[str, Any]:
    current: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            current = json.loads(RESULTS.read_text())
        except ValueError:
            current = {}
    current.update(values)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, RESULTS)
    return current


def plot(values: dict[str, Any], docs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        "raw ceiling\n(scan + LOAD DATA)",
        "backfill\n1 worker",
        "backfill\n2 workers",
        "verify",
    ]
    times = [
        values["raw_ceiling_s"],
        values["backfill_1_worker_s"],
        values["backfill_2_workers_s"],
        values["verify_s"],
    ]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bars = ax.bar(labels, times, color=["#888888", "#1f77b4", "#2ca02c", "#ff7f0e"])
    for bar, t in zip(bars, times, strict=True):
        ax.annotate(
            f"{t:.1f}s\n{docs / t:,.0f} docs/s" if t else "-",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("seconds")
    ax.set_title(
        f"lazyshift data path, {docs:,} documents (MariaDB + FerretDB, "
        f"peak backfill RSS {values.get('backfill_peak_rss_mb_100k') or '-'} MB)",
        fontsize=10,
    )
    ax.set_ylim(0, max(times) * 1.15)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="backfill partitions (default: one per worker; on FerretDB "
        "each partition costs one full scan of the collection)",
    )
    parser.add_argument(
        "--rss-docs",
        type=int,
        default=None,
        help="also measure the backfill's peak RSS at this size (e.g. 1000000)",
    )
    args = parser.parse_args()
    from mysql.connector import HAVE_CEXT

    bench = Bench()
    try:
        src = bench.settings("unused")
        client = pymongo.MongoClient(src.mongo.uri)
        t0 = time.monotonic()
        load_mongo(client[src.mongo.database][src.mongo.collection], args.docs)
        mongo_load_s = time.monotonic() - t0
        client.close()
        console.print(f"loaded {args.docs} docs into FerretDB in {mongo_load_s:.1f}s")
        raw = raw_ceiling(bench, src)
        console.print(f"raw ceiling {raw}")
        one, _ = backfill(bench, 1, args.partitions or 1)
        console.print(f"backfill 1 worker {one}")
        two, target = backfill(bench, 2, args.partitions or 2)
        console.print(f"backfill 2 workers {two}")
        ver = run_measured([str(LAZYSHIFT), "verify", "--json"], env_for(target))
        console.print(f"verify {ver}")
        rss_big = None
        if args.rss_docs:
            client = pymongo.MongoClient(src.mongo.uri)
            load_mongo(
                client[src.mongo.database][src.mongo.collection],
                args.rss_docs - args.docs,
                start=args.docs,
            )
            client.close()
            big, _ = backfill(bench, 1, args.partitions or 1)
            rss_big = round(big["rss_max_proc_mb"], 1)
        values = {
            "backfill_docs": args.docs,
            "backfill_partitions": args.partitions or "one per worker",
            "mongo_load_s": round(mongo_load_s, 2),
            "raw_scan_s": round(raw["scan_s"], 2),
            "raw_load_data_s": round(raw["load_s"], 2),
            "raw_ceiling_s": round(raw["total_s"], 2),
            "backfill_1_worker_s": round(one["s"], 2),
            "backfill_2_workers_s": round(two["s"], 2),
            "verify_s": round(ver["s"], 2),
            "backfill_peak_rss_mb_100k": (
                round(one["rss_max_proc_mb"], 1) if args.docs == 100_000 else None
            ),
            "backfill_peak_rss_tree_mb": round(one["rss_tree_mb"], 1),
            "backfill_peak_rss_mb_measured_docs": args.docs,
            "backfill_peak_rss_mb_1m": rss_big if args.rss_docs == 1_000_000 else None,
            "mysql_driver_cext": bool(HAVE_CEXT),
        }
        if args.docs != 100_000:
            values["backfill_peak_rss_mb"] = round(one["rss_max_proc_mb"], 1)
        merged = merge_results(values)
        table = Table("metric", "value", title=f"bench_data ({args.docs:,} docs)")
        for k, v in values.items():
            table.add_row(k, str(v))
        console.print(table)
        plot(merged | values, args.docs)
        console.print(f"wrote {RESULTS} and {PLOT}")
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
