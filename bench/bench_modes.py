"""Benchmarks of stages 2 and 3 (`make bench`): ingest rate in `mongo` vs `dual`, read
latency of hits and of lazy-migration misses in `mysql-primary`, and the write pause of
each transition under load. Results merge into bench/results.json and print as a table.

Goals (reported, never asserted): dual >= 0.7 x mongo ingest; miss p99 <= 3 x hit p99;
every transition's write pause < 1 s.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_data import RESULTS, Bench, console, env_for  # noqa: E402
from rich.table import Table  # noqa: E402

from lazyshift.config import Settings  # noqa: E402
from lazyshift.core.mongo_store import MongoStore, connect  # noqa: E402

LAZYSHIFT = Path(sys.executable).parent / "lazyshift"
MOCK = REPO / "tools" / "mock-source" / "bin" / "mock-source.js"


def start_mock(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        ["node", str(MOCK), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    port = json.loads(proc.stdout.readline())["port"]
    return proc, port


def cli(settings: Settings, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(LAZYSHIFT), *args], capture_output=True, text=True, env=env_for(settings), timeout=1800
    )
    if check and proc.returncode:
        raise RuntimeError(f"lazyshift {' '.join(args)}: {proc.stderr[-2000:]}")
    return proc


def ingest(settings: Settings, mode: str, count: int) -> float:
    mock, port = start_mock("--seed", "3", "--count", str(count))
    try:
        out = cli(
            settings,
            "--json",
            "client",
            "run",
            "--mode",
            mode,
            "--exit-at-end",
            "--http-port",
            "-1",
            "--source-port",
            str(port),
        )
        counters = json.loads(out.stdout)
        return counters["received"] / counters["busy_s"]
    finally:
        mock.terminate()
        mock.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_latencies(settings: Settings, keys: list[str]) -> tuple[list[float], list[float]]:
    """First read of each key is a lazy-migration miss; the second read is a hit."""
    mock, port = start_mock("--seed", "1", "--count", "1")
    http = free_port()
    client = subprocess.Popen(
        [
            str(LAZYSHIFT),
            "client",
            "run",
            "--mode",
            "control",
            "--source-port",
            str(port),
            "--http-port",
            str(http),
            "--client-id",
            "bench-reader",
        ],
        env=env_for(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

        def timed(key: str) -> float:
            t = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{http}/shipments/{key}") as r:
                r.read()
            return (time.perf_counter() - t) * 1000

        misses = [timed(k) for k in keys]
        hits = [timed(k) for k in keys]
        return hits, misses
    finally:
        client.send_signal(signal.SIGTERM)
        client.wait(timeout=30)
        mock.terminate()
        mock.wait()


def transition_pauses(settings: Settings, rate: int) -> dict[str, float]:
    mock, port = start_mock("--seed", "9", "--count", "0", "--rate", str(rate))
    clients = [
        subprocess.Popen(
            [
                str(LAZYSHIFT),
                "client",
                "run",
                "--mode",
                "control",
                "--partition",
                f"{k}/2",
                "--source-port",
                str(port),
                "--http-port",
                "-1",
                "--client-id",
                f"bench-{k}",
            ],
            env=env_for(settings),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for k in range(2)
    ]
    pauses: dict[str, float] = {}
    try:
        time.sleep(2)  # let the clients reach steady state under load (not synchronisation)
        for target in ("dual", "mysql-primary", "dual", "mongo"):
            out = json.loads(cli(settings, "--json", "mode", "set", target).stdout)
            pauses[f"{out['from_mode']}->{target}"] = out["paused_s"]
            time.sleep(1)
    finally:
        for c in clients:
            c.send_signal(signal.SIGTERM)
            c.wait(timeout=30)
        mock.terminate()
        mock.wait()
    return pauses


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=3000, help="messages per ingest run")
    ap.add_argument("--reads", type=int, default=500, help="keys read (miss, then hit)")
    ap.add_argument("--rate", type=int, default=300, help="source rate during transitions")
    args = ap.parse_args(argv)
    bench = Bench()
    try:
        # mongo: stage 1, MongoDB only.
        s_mongo = bench.settings("unused")
        mongo_rate = ingest(s_mongo, "mongo", args.messages)
        # dual: a fresh MongoDB database and a migrated MySQL in mode dual.
        s_dual = bench.fresh_mysql()
        s_dual.mongo.database = bench.mongo_db + "_dual"
        cli(s_dual, "mode", "set", "dual")
        dual_rate = ingest(s_dual, "control", args.messages)
        # Reads in mysql-primary against the stage-1 data (nothing in MySQL yet: all misses).
        s_read = bench.fresh_mysql()
        s_read.mongo.database = s_mongo.mongo.database
        for m in ("dual", "mysql-primary"):
            cli(s_read, "mode", "set", m)
        store = MongoStore(connect(s_read.mongo.uri), s_read.mongo.database)
        keys = [d["_id"] for d in store.shipments.find({}, {"_id": 1}).limit(args.reads)]
        store.client.close()
        hits, misses = read_latencies(s_read, keys)
        # Transition pauses under load, two clients.
        s_tr = bench.fresh_mysql()
        s_tr.mongo.database = bench.mongo_db + "_tr"
        pauses = transition_pauses(s_tr, args.rate)
    finally:
        for db in (bench.mongo_db + "_dual", bench.mongo_db + "_tr"):
            connect(bench.settings("x").mongo.uri).drop_database(db)
        bench.cleanup()
    results = {
        "ingest_messages": args.messages,
        "ingest_mongo_msgs_per_s": round(mongo_rate, 1),
        "ingest_dual_msgs_per_s": round(dual_rate, 1),
        "ingest_dual_over_mongo": round(dual_rate / mongo_rate, 3),
        "read_hit_p50_ms": round(pct(hits, 50), 3),
        "read_hit_p99_ms": round(pct(hits, 99), 3),
        "read_miss_p50_ms": round(pct(misses, 50), 3),
        "read_miss_p99_ms": round(pct(misses, 99), 3),
        "transition_max_write_pause_s": round(max(pauses.values()), 4),
        **{
            f"transition_pause_s_{k.replace('->', '_to_').replace('-', '_')}": round(v, 4)
            for k, v in pauses.items()
        },
    }
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged.update(results)
    RESULTS.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    table = Table("measure", "value", "goal", title="lazyshift stages 2-3")
    table.add_row("ingest mongo (msg/s)", str(results["ingest_mongo_msgs_per_s"]), "")
    table.add_row(
        "ingest dual (msg/s)",
        str(results["ingest_dual_msgs_per_s"]),
        f">= 0.7 x mongo: {results['ingest_dual_over_mongo']}",
    )
    table.add_row(
        "read hit p50 / p99 (ms)",
        f"{results['read_hit_p50_ms']} / {results['read_hit_p99_ms']}",
        "",
    )
    table.add_row(
        "read lazy miss p50 / p99 (ms)",
        f"{results['read_miss_p50_ms']} / {results['read_miss_p99_ms']}",
        f"p99 <= 3 x hit p99: {results['read_miss_p99_ms'] / results['read_hit_p99_ms']:.2f}x",
    )
    for k, v in pauses.items():
        table.add_row(f"write pause {k} (s)", f"{v:.4f}", "< 1 s")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
