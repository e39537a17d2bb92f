"""Data benchmark: the backfill and verify beside the plain-scan ceiling, on one dataset.

    .venv/bin/python bench/bench_data.py --docs 100000      # or --docs 1000000

The dataset is generated once into a FerretDB database of the test stack named after its
size (`lzbench_cache_<docs>`, in .state/test) and reused by later runs. In one run, side by
side: (a) `scan_docs_per_s`, a plain unsorted `find({})` of the collection; (b) the raw
MySQL-side ceiling (LOAD DATA of the mapped rows); (c) `lazyshift backfill` with 1 and with 2
workers (a fresh MySQL database each); (d) `lazyshift verify`; peak RSS of the backfill and of
FerretDB; CPU ms per document of each process (FerretDB, mysqld, the client / each worker),
whose sum says how close a step is to the machine's cores whatever the other load; the
workers' own timings (waiting on MongoDB, mapping, MySQL) per partition; the machine's load
average around each measurement. A ratio whose two sides ran
under very different load is refused (null, with the reason). Results merge into
bench/results.json (existing keys kept), a rich table is printed, and bench/backfill.png
plots docs/s over time against the scan ceiling.
"""

from __future__ import annotations

import argparse
import contextlib
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
from mysql.connector import HAVE_CEXT  # noqa: E402
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
        self.mongo_db = ""  # the cached dataset's, set by cached_source()
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
        # the cached dataset (self.mongo_db) stays for the next run
        try:
            for name in self.mysql_dbs:
                self.stack.root_sql(f"DROP DATABASE IF EXISTS `{name}`")
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


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of one process so far, from /proc (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return None


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            args = fh.read().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    text = " ".join(args)
    if "resource_tracker" in text:  # multiprocessing's own helper, not a backfill worker
        return "mp-tracker"
    if "spawn_main" in text or "multiprocessing" in text:
        return "worker"
    return Path(args[0]).name if args and args[0] else "?"


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


class Sampler:
    """Every 0.25 s: RSS of a process tree and of FerretDB, and (optionally) documents done."""

    def __init__(
        self,
        pid: int | None,
        ferret_pid: int | None,
        progress: Any = None,
        servers: dict[str, int | None] | None = None,
    ) -> None:
        self.pid, self.ferret_pid, self.progress = pid, ferret_pid, progress
        # CPU seconds per process: servers from start to stop, the tree's processes as last
        # seen (a worker's last 0.25 s may be missed; the workers log their own exact CPU).
        self.servers = {k: v for k, v in (servers or {}).items() if v}
        self.server_cpu0 = {k: _cpu_s(v) or 0.0 for k, v in self.servers.items()}
        self.tree_cpu: dict[int, tuple[str, float]] = {}
        self.peak_tree = self.peak_one = self.peak_ferret = 0
        self.series: list[tuple[float, int]] = []
        self.t0 = time.monotonic()
        self.load_before = load_avg()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            if self.pid is not None:
                pids = _tree(self.pid)
                sizes = [_rss_kb(p) for p in pids]
                for p in pids:
                    cpu = _cpu_s(p)
                    if cpu is not None:
                        name = self.tree_cpu.get(p, (None, 0.0))[0] or _comm(p)
                        self.tree_cpu[p] = (name, cpu)
                self.peak_tree = max(self.peak_tree, sum(sizes))
                self.peak_one = max(self.peak_one, max(sizes, default=0))
            if self.ferret_pid is not None:
                self.peak_ferret = max(self.peak_ferret, _rss_kb(self.ferret_pid))
            if self.progress is not None:
                with contextlib.suppress(Exception):
                    self.series.append((time.monotonic() - self.t0, int(self.progress())))
            self._done.wait(0.25)

    def stop(self, docs: int) -> dict[str, Any]:
        self._done.set()
        self._thread.join()
        elapsed = time.monotonic() - self.t0
        self.series.append((elapsed, docs))
        cpu = {
            k: round((_cpu_s(v) or 0.0) - self.server_cpu0[k], 2) for k, v in self.servers.items()
        }
        for i, (name, secs) in enumerate(sorted(self.tree_cpu.values())):
            cpu[f"{name}{i}" if name == "worker" else name] = round(secs, 2)
        return {
            "cpu_s": cpu,
            "cpu_ms_per_doc": {k: round(1000 * v / docs, 3) for k, v in cpu.items()}
            if docs
            else {},
            "s": elapsed,
            "docs_per_s": docs / elapsed if elapsed else 0.0,
            "rss_tree_mb": self.peak_tree / 1024,
            "rss_max_proc_mb": self.peak_one / 1024,
            "ferretdb_rss_mb": self.peak_ferret / 1024,
            "series": self.series,
            "load": (self.load_before, load_avg()),
        }


def run_measured(
    args: list[str], env: dict[str, str], docs: int, ferret_pid: int | None, progress: Any = None
) -> dict[str, Any]:
    """Run a command; wall time, docs/s, peak RSS (its tree, its largest process, FerretDB)."""
    proc = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler = Sampler(proc.pid, ferret_pid, progress, servers=SERVERS)
    out, err = proc.communicate()
    m = sampler.stop(docs)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {proc.returncode}:\n{out}\n{err[-4000:]}")
    m["events"] = _events(err, ("backfill.partition_done", "backfill.worker_done"))
    return m


def _events(stderr: str, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The structured log lines (logs.py) named `names` from a command's stderr."""
    found = []
    for line in stderr.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") in names:
                found.append(entry)
    return found


# Server processes whose CPU each measurement reports (set by measure()).
SERVERS: dict[str, int | None] = {}


def plain_scan(settings: Settings, docs: int, ferret_pid: int | None) -> dict[str, Any]:
    """The ceiling: one plain unsorted find({}) of the collection, nothing done with it."""
    client = pymongo.MongoClient(settings.mongo.uri, tz_aware=True, socketTimeoutMS=None)
    seen = 0
    sampler = Sampler(None, ferret_pid, lambda: seen, servers={**SERVERS, "client": os.getpid()})
    try:
        for _ in client[settings.mongo.database][settings.mongo.collection].find(
            {}, batch_size=1000
        ):
            seen += 1
    finally:
        client.close()
    m = sampler.stop(seen)
    assert seen == docs, (seen, docs)
    return m


def done_counter(settings: Settings) -> Any:
    conn = mysql.connector.connect(
        host=settings.mysql.host,
        port=settings.mysql.port,
        user=settings.mysql.user,
        password=settings.mysql.password,
        database=settings.mysql.database,
        autocommit=True,
    )

    def read() -> int:
        cur = conn.cursor()
        cur.execute("SELECT COALESCE(SUM(docs_done), 0) FROM backfill_partition")
        n = cur.fetchone()[0]
        cur.close()
        return int(n)

    read.close = conn.close  # type: ignore[attr-defined]
    return read


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

        for doc in coll.find({}, batch_size=1000):
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
    return {"load_data_s": load_s, "load_data_docs_per_s": docs / load_s if load_s else 0.0}


def backfill(
    bench: Bench, workers: int, partitions: int, docs: int, ferret_pid: int | None
) -> dict[str, Any]:
    settings = bench.fresh_mysql()
    counter = done_counter(settings)
    env = env_for(settings)
    env["LAZYSHIFT_LOG_LEVEL"] = "INFO"  # the workers' partition_done / worker_done timings
    try:
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
            env,
            docs,
            ferret_pid,
            counter,
        )
    finally:
        counter.close()
    m["settings"] = settings
    return m


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


GOALS = (
    # (ratio, numerator, denominator, at least / at most, goal)
    ("backfill_2w_vs_scan", "backfill_2w_docs_per_s", "scan_docs_per_s", ">=", 1.3),
    ("backfill_1w_vs_scan", "backfill_1w_docs_per_s", "scan_docs_per_s", ">=", 0.8),
    ("backfill_2w_vs_1w", "backfill_2w_docs_per_s", "backfill_1w_docs_per_s", ">=", 1.4),
    ("verify_vs_backfill_2w", "verify_docs_per_s", "backfill_2w_docs_per_s", ">=", 1.0),
    ("backfill_rss_1m_vs_100k", "backfill_peak_rss_mb_1m", "backfill_peak_rss_mb_100k", "<=", 1.1),
    ("ferretdb_rss_1m_vs_100k", "ferretdb_peak_rss_mb_1m", "ferretdb_peak_rss_mb_100k", "<=", 1.1),
    ("verify_rss_1m_vs_100k", "verify_peak_rss_mb_1m", "verify_peak_rss_mb_100k", "<=", 1.1),
)
# Two measurements ran under "very different load" when their mean 1-minute load averages
# differ by more than this factor and by more than one runnable process.
LOAD_FACTOR = 1.5


def _mean(load: Any) -> float | None:
    return None if not load else sum(load) / len(load)


def comparable(a: Any, b: Any) -> str | None:
    """None if the two (before, after) loads are comparable; else why not."""
    la, lb = _mean(a), _mean(b)
    if la is None or lb is None:
        return None  # measured in another run: its load is not known here
    hi, lo = max(la, lb), min(la, lb)
    if hi - lo > 1.0 and hi > LOAD_FACTOR * max(lo, 0.01):
        return f"load {la:.1f} vs {lb:.1f}"
    return None


def ratios(values: dict[str, Any], loads: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, num, den, op, goal in GOALS:
        a, b = values.get(num), values.get(den)
        if not a or not b:
            out[name] = {"value": None, "goal": f"{op} {goal}", "why": "not measured"}
            continue
        refused = comparable(loads.get(num), loads.get(den))
        value = round(a / b, 3)
        met = value >= goal if op == ">=" else value <= goal
        out[name] = {
            "value": None if refused else value,
            "measured": value,
            "goal": f"{op} {goal}",
            "met": None if refused else met,
            "why": f"refused: {refused}" if refused else None,
        }
    return out


def _rates(series: list[tuple[float, int]], window: float = 5.0) -> tuple[list, list]:
    ts, rs = [], []
    j = 0
    for i, (t, n) in enumerate(series):
        while series[j][0] < t - window:
            j += 1
        if i > j and t > series[j][0]:
            ts.append(t)
            rs.append((n - series[j][1]) / (t - series[j][0]))
    return ts, rs


def plot_path(docs: int) -> Path:
    return PLOT if docs == DEFAULT_DOCS else PLOT.with_name(f"backfill_{size_suffix(docs)}.png")


def plot(runs: dict[str, dict[str, Any]], docs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    colours = {"scan": "#888888", "backfill 1w": "#1f77b4", "backfill 2w": "#2ca02c"}
    for name, colour in colours.items():
        if name in runs:
            ts, rs = _rates(runs[name]["series"])
            ax.plot(ts, rs, color=colour, label=f"{name} ({runs[name]['docs_per_s']:,.0f}/s)")
    if "scan" in runs:
        ax.axhline(runs["scan"]["docs_per_s"], color="#888888", ls="--", lw=1, label="scan ceiling")
    if "verify" in runs:
        v = runs["verify"]
        ax.hlines(
            v["docs_per_s"],
            0,
            v["s"],
            color="#ff7f0e",
            label=f"verify ({v['docs_per_s']:,.0f}/s avg)",
        )
    ax.set_xlabel("seconds")
    ax.set_ylabel("documents / s (5 s window)")
    ax.set_title(f"lazyshift data path, {docs:,} documents (MariaDB + FerretDB)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(plot_path(docs), dpi=120)


def cached_source(bench: Bench, docs: int) -> tuple[Settings, float | None]:
    """The dataset of `docs` documents, generated on the first run and kept for the next ones.

    It lives in the test stack's FerretDB (under .state/test), one database per size; a load
    that was interrupted resumes where it stopped (chunks already in are skipped)."""
    bench.mongo_db = f"lzbench_cache_{docs}"
    settings = bench.settings("unused")
    client = pymongo.MongoClient(settings.mongo.uri, socketTimeoutMS=None, maxPoolSize=LOADERS + 2)
    try:
        db = client[bench.mongo_db]
        meta = db[CACHE_META].find_one({"_id": "loaded"})
        if meta and meta.get("docs") == docs and meta.get("generator") == CACHE_GENERATOR:
            return settings, None
        progress = db[CACHE_META].find_one({"_id": "progress"}) or {}
        if progress.get("docs") != docs or progress.get("generator") != CACHE_GENERATOR:
            client.drop_database(bench.mongo_db)
            db[CACHE_META].insert_one(
                {"_id": "progress", "docs": docs, "generator": CACHE_GENERATOR, "chunks": []}
            )
            progress = {"chunks": []}
        t0 = time.monotonic()
        bulk_load(db, settings.mongo.collection, docs, set(progress.get("chunks", [])))
        db[CACHE_META].insert_one({"_id": "loaded", "docs": docs, "generator": CACHE_GENERATOR})
        return settings, time.monotonic() - t0
    finally:
        client.close()


CACHE_META = "bench_meta"
CACHE_GENERATOR = "tests/dataset.py v1"
# Chunks of the dataset loaded side by side: one generates its documents while the others
# wait on FerretDB, which does its own encoding on other threads; more gain nothing here.
LOADERS = 3
LOAD_CHUNK = 10_000


def bulk_load(db: Any, collection: str, docs: int, done: set[int]) -> None:
    """Insert documents 0..docs-1 in chunks (insert_many of 1,000), LOADERS at a time; each
    chunk is recorded once it is in, so an interrupted load resumes after the last one."""
    from concurrent.futures import ThreadPoolExecutor

    from pymongo.errors import BulkWriteError

    coll = db[collection]
    loaded = [len(done) * LOAD_CHUNK]
    lock = threading.Lock()

    def chunk(index: int) -> None:
        start = index * LOAD_CHUNK
        n = min(LOAD_CHUNK, docs - start)
        try:
            load_mongo(coll, n, start=start)
        except BulkWriteError as exc:  # a resumed chunk: only duplicates of what is in
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
        db[CACHE_META].update_one({"_id": "progress"}, {"$push": {"chunks": index}})
        with lock:
            loaded[0] += n
            console.print(f"  loaded {loaded[0]:,} / {docs:,}", highlight=False)

    todo = [i for i in range((docs + LOAD_CHUNK - 1) // LOAD_CHUNK) if i not in done]
    with ThreadPoolExecutor(LOADERS) as pool:
        for _ in pool.map(chunk, todo):
            pass


def size_suffix(docs: int) -> str:
    return {100_000: "100k", 1_000_000: "1m"}.get(docs, str(docs))


RUNS = ("scan", "load_data", "backfill_1w", "backfill_2w", "verify")
DEFAULT_DOCS = 100_000


def keyed(name: str, docs: int) -> str:
    """A result key: plain at the default size (the goals' ratios), else with the size."""
    return name if docs == DEFAULT_DOCS else f"{name}_{size_suffix(docs)}"


def peaks(runs: dict[str, dict[str, Any]], docs: int) -> dict[str, float]:
    """Peak RSS: the largest single lazyshift process (the supervisor or one worker; the
    whole tree's sum beside it) and FerretDB, over every step measured at this size."""
    values: dict[str, float] = {}
    sfx = size_suffix(docs)
    backfills = [runs[k] for k in ("backfill 1w", "backfill 2w") if k in runs]
    if backfills:
        values[f"backfill_peak_rss_mb_{sfx}"] = round(
            max(r["rss_max_proc_mb"] for r in backfills), 1
        )
        values[f"backfill_peak_rss_tree_mb_{sfx}"] = round(
            max(r["rss_tree_mb"] for r in backfills), 1
        )
    if "verify" in runs:
        values[f"verify_peak_rss_mb_{sfx}"] = round(runs["verify"]["rss_max_proc_mb"], 1)
    if runs:
        values[f"ferretdb_peak_rss_mb_{sfx}"] = round(
            max(r["ferretdb_rss_mb"] for r in runs.values()), 1
        )
    return values


def measure(
    bench: Bench, docs: int, partitions: int | None, runs_wanted: tuple[str, ...] = RUNS
) -> tuple[dict, dict, dict]:
    ferret_pid = bench.stack.mongo.pid()
    SERVERS.update(ferretdb=ferret_pid, mysqld=bench.stack.mysql.pid())
    src, load_s = cached_source(bench, docs)
    console.print(
        f"dataset: {docs:,} docs "
        + (f"loaded in {load_s:.0f}s" if load_s is not None else "(cached in .state)")
    )
    values: dict[str, Any] = {keyed("data_bench_docs", docs): docs}
    if load_s is not None:
        values[keyed("dataset_load_s", docs)] = round(load_s, 1)
    runs: dict[str, dict[str, Any]] = {}

    def record(run: str, m: dict[str, Any]) -> None:
        runs[run.replace("_", " ")] = m
        console.print(
            f"{run} {m['docs_per_s']:,.0f} docs/s in {m['s']:,.0f}s, load {m['load']}",
            highlight=False,
        )
        cpu_ms = m.get("cpu_ms_per_doc", {})
        console.print(
            f"  CPU ms/doc {cpu_ms} sum {sum(cpu_ms.values()):.2f}"
            f" = {sum(m.get('cpu_s', {}).values()) / m['s']:.2f} cores",
            highlight=False,
        )
        for e in m.get("events", []):
            fields = {k: v for k, v in e.items() if k not in ("ts", "level")}
            console.print(f"  {fields}", highlight=False)
        values[keyed(f"{run}_cpu_ms_per_doc", docs)] = cpu_ms
        values[keyed(f"{run}_docs_per_s", docs)] = round(m["docs_per_s"], 1)
        values[keyed(f"{run}_s", docs)] = round(m["s"], 1)
        values.update(peaks(runs, docs))
        merge_results(values)  # a long run keeps what it measured if a later step fails

    if "scan" in runs_wanted:
        record("scan", plain_scan(src, docs, ferret_pid))
    if "load_data" in runs_wanted:
        raw = raw_ceiling(bench, src)
        console.print(f"LOAD DATA ceiling {raw['load_data_docs_per_s']:,.0f} docs/s")
        values[keyed("load_data_docs_per_s", docs)] = round(raw["load_data_docs_per_s"], 1)
    for workers in (1, 2):
        if f"backfill_{workers}w" in runs_wanted:
            record(
                f"backfill_{workers}w", backfill(bench, workers, partitions or 8, docs, ferret_pid)
            )
    if "verify" in runs_wanted:
        # verify compares the last backfill's MySQL database with the collection
        done = [runs[k] for k in ("backfill 2w", "backfill 1w") if k in runs]
        if not done:
            raise SystemExit("verify needs a backfill in the same run (--runs ...,backfill_2w)")
        target = done[0]["settings"]
        record(
            "verify",
            run_measured([str(LAZYSHIFT), "verify", "--json"], env_for(target), docs, ferret_pid),
        )
    values.update(peaks(runs, docs))
    values["mysql_driver_cext"] = bool(HAVE_CEXT)
    names = {"scan": "scan", "backfill 1w": "backfill_1w", "backfill 2w": "backfill_2w"}
    names["verify"] = "verify"
    loads = {keyed(f"{names[k]}_docs_per_s", docs): r["load"] for k, r in runs.items()}
    return values, loads, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000, help="dataset size (cached)")
    parser.add_argument(
        "--partitions", type=int, default=None, help="backfill partitions (default 8)"
    )
    parser.add_argument(
        "--runs",
        default=",".join(RUNS),
        help=f"steps to measure, comma-separated (default all: {','.join(RUNS)})",
    )
    parser.add_argument(
        "--skip-load-data",
        action="store_true",
        help="skip the LOAD DATA ceiling (context only; it scans the collection once more)",
    )
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="only build (or find) the cached dataset of --docs documents, then stop",
    )
    args = parser.parse_args()
    bench = Bench()
    try:
        if args.load_only:
            _, load_s = cached_source(bench, args.docs)
            console.print(
                f"dataset: {args.docs:,} docs "
                + (f"loaded in {load_s:.0f}s" if load_s is not None else "(cached in .state)")
            )
            return
        before = load_avg()
        wanted = tuple(r.strip() for r in args.runs.split(",") if r.strip())
        unknown = sorted(set(wanted) - set(RUNS))
        if unknown:
            parser.error(f"unknown --runs {', '.join(unknown)} (choose from {', '.join(RUNS)})")
        if args.skip_load_data:
            wanted = tuple(r for r in wanted if r != "load_data")
        values, loads, runs = measure(bench, args.docs, args.partitions, wanted)
        values[keyed("load_avg_before", args.docs)] = before
        values[keyed("load_avg_after", args.docs)] = load_avg()
        values[keyed("data_bench_loads", args.docs)] = {k: list(v) for k, v in loads.items()}
        merged = merge_results(values)
        values["data_bench_ratios"] = ratios(merged, loads)
        merged = merge_results({"data_bench_ratios": values["data_bench_ratios"]})
        table = Table("metric", "value", title=f"bench_data ({args.docs:,} docs)")
        for k, v in values.items():
            if not k.startswith(("data_bench_ratios", "data_bench_loads")):
                table.add_row(k, str(v))
        console.print(table)
        goals = Table("ratio", "value", "goal", "met", "note", title="goals (same run, same data)")
        for name, r in values["data_bench_ratios"].items():
            goals.add_row(
                name, str(r.get("value")), r["goal"], str(r.get("met")), str(r.get("why") or "")
            )
        console.print(goals)
        plot(runs, args.docs)
        console.print(f"wrote {RESULTS} and {plot_path(args.docs)}")
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
