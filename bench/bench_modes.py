"""Benchmarks of stages 1-3 (`make bench`), side by side in one run: FerretDB's own raw
`insert_many` rate (the ceiling), client ingest in `mongo`, `dual` and `mysql-primary`, the
lag p99 of each mode at the demo's 500 msg/s, read latency of hits and of lazy-migration
misses in `mysql-primary`, and the write pause of each transition under load. The load
average is recorded before and after. Results merge into bench/results.json (existing keys
kept), print as a table, and bench/ingest_modes.png plots msg/s and lag per mode.

Goals (issue 10; reported, never asserted): mongo >= 0.5 x insert_many; dual >= 0.8 x mongo;
mysql-primary >= mongo; lag p99 < 1 s at 500 msg/s in every mode; miss p99 <= 2 x hit p99;
every transition's write pause < 0.5 s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_data import RESULTS, Bench, console, env_for  # noqa: E402
from rich.table import Table  # noqa: E402

from dataset import key_for, load_mongo  # noqa: E402
from lazyshift.config import Settings  # noqa: E402
from lazyshift.core.mongo_store import connect  # noqa: E402
from lazyshift.dev.expected import dump, expected_state  # noqa: E402

LAG_RATE = 500  # the demo's stream
LAG_SECONDS = 8
LAG_POLL_S = 0.02
PLOT = REPO / "bench" / "ingest_modes.png"

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


def insert_many_rate(settings: Settings, count: int) -> float:
    """FerretDB's own rate for the same documents the ingest stores: insert_many, 500 a batch."""
    docs = list(expected_state(dump(["--seed", "3", "--count", str(count)])).docs.values())
    client = connect(settings.mongo.uri)
    try:
        coll = client[settings.mongo.database + "_raw"]["shipments"]
        t = time.perf_counter()
        for i in range(0, len(docs), 500):
            coll.insert_many(docs[i : i + 500], ordered=False)
        elapsed = time.perf_counter() - t
        client.drop_database(settings.mongo.database + "_raw")
    finally:
        client.close()
    return len(docs) / elapsed


def lag_p99(settings: Settings, mode: str, mysql_offsets: bool) -> tuple[float, list[float]]:
    """Per-message lag at LAG_RATE msg/s: for every message, the time its write was
    acknowledged minus the time the source's schedule made it available. The mock's rate
    clock starts at the client's subscription (`--clock-from-subscribe`; it prints
    {"event":"clock"}, read here as t0), so message `seq` is due at t0 + (seq - 1) / rate
    and the client's start-up is not counted as lag. The client's `last_seq` counter (on
    /healthz) passes a message's seq once its write — and its batch — is acknowledged by the
    store(s) of the mode; it is polled every LAG_POLL_S and each message is charged the time
    of the first poll that saw it done, so a lag is over-stated by at most one poll interval
    (and by the pipe's delay of the clock line, which makes t0 late: under-stated by that).
    The offset the client saves every 0.5 s is not waited for: it only bounds what a restart
    replays. Returns (p99 over all messages, each message's lag in seq order).
    `mysql_offsets` is unused (the counters are the same in every mode)."""
    del mysql_offsets
    count = LAG_RATE * LAG_SECONDS
    mock = subprocess.Popen(
        ["node", str(MOCK), "serve", "--port", "0", "--seed", "5", "--count", str(count),
         "--rate", str(LAG_RATE), "--clock-from-subscribe"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert mock.stdout is not None
    port = json.loads(mock.stdout.readline())["port"]
    clock: list[float] = []
    reader = threading.Thread(
        target=lambda: clock.extend(time.monotonic() for _ in iter(mock.stdout.readline, "")),
        daemon=True,
    )
    reader.start()
    http = free_port()
    client = subprocess.Popen(
        [str(LAZYSHIFT), "client", "run", "--mode", mode, "--exit-at-end", "--http-port", str(http),
         "--source-port", str(port), "--client-id", f"bench-lag-{mode}"],
        env=env_for(settings), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    lags: list[float] = []
    try:
        deadline = time.monotonic() + LAG_SECONDS * 20
        while len(lags) < count and time.monotonic() < deadline and client.poll() is None:
            done = _last_seq(http)
            now = time.monotonic()
            if done is not None and clock:
                t0 = clock[0]
                lags.extend(max(0.0, now - (t0 + s / LAG_RATE)) for s in range(len(lags), done))
            time.sleep(LAG_POLL_S)
        client.wait(timeout=120)
    finally:
        if client.poll() is None:
            client.send_signal(signal.SIGTERM)
            client.wait(timeout=30)
        mock.terminate()
        mock.wait()
    if len(lags) < count:
        return float("nan"), lags  # the client did not get through the stream in time
    return pct(lags, 99), lags


def _last_seq(http: int) -> int | None:
    """The client's count of messages written (its `last_seq`), or None while it starts."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http}/healthz", timeout=2) as r:
            return int(json.loads(r.read())["counters"]["last_seq"])
    except (OSError, ValueError, KeyError):
        return None


def plot(rates: dict[str, float], lags: dict[str, list[float]], ceiling: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar(list(rates), list(rates.values()), color=["#4c72b0", "#dd8452", "#55a868"])
    a.axhline(ceiling, color="k", linestyle="--", label="FerretDB insert_many")
    a.axhline(ceiling * 0.5, color="grey", linestyle=":", label="goal: 0.5 x insert_many")
    a.set_ylabel("ingest msg/s")
    a.legend()
    for mode, series in lags.items():
        b.plot([i / LAG_RATE for i in range(len(series))], series, label=mode)
    b.axhline(1.0, color="k", linestyle="--", label="goal: < 1 s")
    b.set_xlabel(f"s into a {LAG_RATE} msg/s stream")
    b.set_ylabel("lag of each message's write (s)")
    b.legend()
    fig.tight_layout()
    fig.savefig(PLOT, dpi=100)
    plt.close(fig)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


READ_WARMUP = 50  # reads before the measured ones: the API's pooled connection is open


def read_latencies(settings: Settings, reads: int) -> tuple[list[float], list[float]]:
    """Read latency through the read API in mysql-primary (set by the caller), ms.

    `reads` generated shipments go into a MongoDB database of their own (MySQL has none of
    them): the first read of each is a lazy-migration miss, the read right after it a hit,
    so both are measured side by side under the same load. One keep-alive HTTP connection,
    as a service calling the API keeps, after READ_WARMUP reads that open the pool's
    connections. Every answer is checked: a miss must come from MongoDB and be written into
    MySQL before it returns (store mongo->mysql), a hit must come from MySQL."""
    s = settings.model_copy(deep=True)
    s.mongo.database = settings.mongo.database + "_reads"
    mongo = connect(s.mongo.uri)
    mongo.drop_database(s.mongo.database)
    load_mongo(mongo[s.mongo.database][s.mongo.collection], READ_WARMUP + reads)
    mock, port = start_mock("--seed", "1", "--count", "1")
    http_port = free_port()
    client = subprocess.Popen(
        [str(LAZYSHIFT), "client", "run", "--mode", "control", "--source-port", str(port),
         "--http-port", str(http_port), "--client-id", "bench-reader"],
        env=env_for(s), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=30)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

        def timed(key: str, store: str) -> float:
            t = time.perf_counter()
            conn.request("GET", f"/shipments/{urllib.parse.quote(key, safe='')}")
            r = conn.getresponse()
            r.read()
            ms = (time.perf_counter() - t) * 1000
            got = r.getheader("X-Lazyshift-Store")
            if r.status != 200 or got != store:
                raise RuntimeError(f"read {key!r}: {r.status} from {got}, expected {store}")
            return ms

        for i in range(READ_WARMUP):
            timed(key_for(i), "mongo->mysql")
            timed(key_for(i), "mysql")
        hits, misses = [], []
        for i in range(READ_WARMUP, READ_WARMUP + reads):
            misses.append(timed(key_for(i), "mongo->mysql"))
            hits.append(timed(key_for(i), "mysql"))
        return hits, misses
    finally:
        conn.close()
        client.send_signal(signal.SIGTERM)
        client.wait(timeout=30)
        mock.terminate()
        mock.wait()
        mongo.drop_database(s.mongo.database)
        mongo.close()


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
            # where the pause went (drain, acks, step, commit): printed, not saved
            console.print(f"{out['from_mode']}->{target}: {out.get('pause_phases')}")
            for note in out.get("notes", []):
                console.print(f"  {note}")
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


def only(part: str, reads: int, rate: int) -> int:
    """One part of the run on its own (`--only`), for working on it: printed, not saved."""
    bench = Bench()
    bench.mongo_db = "lzbench_modes"
    load_before = os.getloadavg()
    mongo_db = bench.mongo_db + ("_tr" if part == "pauses" else "")
    try:
        s = bench.fresh_mysql()
        s.mongo.database = mongo_db
        if part == "reads":
            for m in ("dual", "mysql-primary"):
                cli(s, "mode", "set", m)
            hits, misses = read_latencies(s, reads)
            figures = {
                "read_hit_p50_ms": pct(hits, 50),
                "read_hit_p99_ms": pct(hits, 99),
                "read_miss_p50_ms": pct(misses, 50),
                "read_miss_p99_ms": pct(misses, 99),
            }
            figures["miss_p99_over_hit_p99"] = (
                figures["read_miss_p99_ms"] / figures["read_hit_p99_ms"]
            )
        else:
            figures = transition_pauses(s, rate)
    finally:
        connect(bench.settings("x").mongo.uri).drop_database(mongo_db)
        bench.cleanup()
    figures["load_avg_1m_before_after"] = f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
    console.print_json(
        json.dumps({k: v if isinstance(v, str) else round(v, 4) for k, v in figures.items()})
    )
    return 0


def ingest_figures(bench: Bench, messages: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """FerretDB's raw insert_many beside the ingest rate of each mode, then the lag p99 of
    each mode at LAG_RATE, each on fresh stores (the MongoDB databases are bench.mongo_db +
    a suffix; the caller drops them)."""
    # mongo: stage 1, MongoDB only; beside it, FerretDB's raw insert_many of the same docs.
    s_mongo = bench.settings("unused")
    f: dict[str, float] = {"raw": insert_many_rate(s_mongo, messages)}
    f["mongo"] = ingest(s_mongo, "mongo", messages)
    # dual: a fresh MongoDB database and a migrated MySQL in mode dual.
    s_dual = bench.fresh_mysql()
    s_dual.mongo.database = bench.mongo_db + "_dual"
    cli(s_dual, "mode", "set", "dual")
    f["dual"] = ingest(s_dual, "control", messages)
    # mysql-primary: a fresh pair of stores walked up to mysql-primary.
    s_mp = bench.fresh_mysql()
    s_mp.mongo.database = bench.mongo_db + "_mp"
    for m in ("dual", "mysql-primary"):
        cli(s_mp, "mode", "set", m)
    f["mysql_primary"] = ingest(s_mp, "control", messages)
    # Lag at the demo's rate, per mode, each on fresh stores.
    lags: dict[str, list[float]] = {}
    s_lm = bench.settings("unused")
    s_lm.mongo.database = bench.mongo_db + "_lagm"
    f["lag_mongo"], lags["mongo"] = lag_p99(s_lm, "mongo", mysql_offsets=False)
    for mode, suffix, rungs in (
        ("dual", "_lagd", ("dual",)),
        ("mysql_primary", "_lagp", ("dual", "mysql-primary")),
    ):
        s_l = bench.fresh_mysql()
        s_l.mongo.database = bench.mongo_db + suffix
        for m in rungs:
            cli(s_l, "mode", "set", m)
        f[f"lag_{mode}"], lags[mode] = lag_p99(s_l, "control", mysql_offsets=True)
    return f, lags


INGEST_DBS = ("", "_dual", "_mp", "_lagm", "_lagd", "_lagp")


def only_ingest(messages: int) -> int:
    """The ingest figures alone (`--only ingest`), for working on the client: printed with
    their ratios, not saved."""
    bench = Bench()
    bench.mongo_db = "lzbench_modes"
    load_before = os.getloadavg()
    try:
        f, _ = ingest_figures(bench, messages)
    finally:
        for db in INGEST_DBS:
            connect(bench.settings("x").mongo.uri).drop_database(bench.mongo_db + db)
        bench.cleanup()
    figures: dict[str, float | str] = {
        "mongo_insert_many_docs_per_s": f["raw"],
        "ingest_mongo_msgs_per_s": f["mongo"],
        "ingest_dual_msgs_per_s": f["dual"],
        "ingest_mysql_primary_msgs_per_s": f["mysql_primary"],
        "ingest_mongo_over_insert_many": f["mongo"] / f["raw"],
        "ingest_dual_over_mongo": f["dual"] / f["mongo"],
        "ingest_mysql_primary_over_mongo": f["mysql_primary"] / f["mongo"],
        **{f"lag_p99_s_{m}": f[f"lag_{m}"] for m in ("mongo", "dual", "mysql_primary")},
        "load_avg_1m_before_after": f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}",
    }
    console.print_json(
        json.dumps({k: v if isinstance(v, str) else round(v, 4) for k, v in figures.items()})
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=3000, help="messages per ingest run")
    ap.add_argument("--reads", type=int, default=1000, help="keys read (miss, then hit)")
    ap.add_argument("--rate", type=int, default=300, help="source rate during transitions")
    ap.add_argument(
        "--only",
        choices=("reads", "pauses", "ingest"),
        help="measure only read latency, only the transition pauses or only ingest (insert_many,"
        " each mode's rate and lag p99), print them, and leave bench/results.json alone (its "
        "figures come from one whole run)",
    )
    args = ap.parse_args(argv)
    if args.only == "ingest":
        return only_ingest(args.messages)
    if args.only:
        return only(args.only, args.reads, args.rate)
    bench = Bench()
    # Its own MongoDB databases (dropped at the end): the cached dataset is bench_data's.
    bench.mongo_db = "lzbench_modes"
    load_before = os.getloadavg()
    extra_dbs = [bench.mongo_db + x for x in (*INGEST_DBS, "_tr")]
    # ... and before: a run killed before its cleanup leaves its mode mirror behind, and a
    # fresh MySQL control row then refuses the transitions as behind that mirror.
    for db in (bench.mongo_db, *extra_dbs):
        connect(bench.settings("x").mongo.uri).drop_database(db)
    try:
        f, lags = ingest_figures(bench, args.messages)
        raw_rate, mongo_rate, dual_rate, mp_rate = (
            f["raw"],
            f["mongo"],
            f["dual"],
            f["mysql_primary"],
        )
        lag99 = {m: f[f"lag_{m}"] for m in ("mongo", "dual", "mysql_primary")}
        # Reads in mysql-primary: lazy-migration misses and hits (their own data).
        s_read = bench.fresh_mysql()
        s_read.mongo.database = bench.mongo_db
        for m in ("dual", "mysql-primary"):
            cli(s_read, "mode", "set", m)
        hits, misses = read_latencies(s_read, args.reads)
        # Transition pauses under load, two clients.
        s_tr = bench.fresh_mysql()
        s_tr.mongo.database = bench.mongo_db + "_tr"
        pauses = transition_pauses(s_tr, args.rate)
    finally:
        for db in extra_dbs:
            connect(bench.settings("x").mongo.uri).drop_database(db)
        bench.cleanup()
    load_after = os.getloadavg()
    results = {
        "ingest_messages": args.messages,
        "mongo_insert_many_docs_per_s": round(raw_rate, 1),
        "ingest_mongo_msgs_per_s": round(mongo_rate, 1),
        "ingest_dual_msgs_per_s": round(dual_rate, 1),
        "ingest_mysql_primary_msgs_per_s": round(mp_rate, 1),
        "ingest_mongo_over_insert_many": round(mongo_rate / raw_rate, 3),
        "ingest_dual_over_mongo": round(dual_rate / mongo_rate, 3),
        "ingest_mysql_primary_over_mongo": round(mp_rate / mongo_rate, 3),
        **{f"lag_p99_s_{m}": round(v, 3) for m, v in lag99.items()},
        "read_hit_p50_ms": round(pct(hits, 50), 3),
        "read_hit_p99_ms": round(pct(hits, 99), 3),
        "read_miss_p50_ms": round(pct(misses, 50), 3),
        "read_miss_p99_ms": round(pct(misses, 99), 3),
        "transition_max_write_pause_s": round(max(pauses.values()), 4),
        **{
            f"transition_pause_s_{k.replace('->', '_to_').replace('-', '_')}": round(v, 4)
            for k, v in pauses.items()
        },
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }
    plot(
        {"mongo": mongo_rate, "dual": dual_rate, "mysql-primary": mp_rate},
        lags,
        raw_rate,
    )
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged.update(results)
    RESULTS.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    r = results
    table = Table("measure", "value", "goal", title="lazyshift stages 1-3, one run")
    table.add_row(
        "FerretDB insert_many (docs/s)", str(r["mongo_insert_many_docs_per_s"]), "ceiling"
    )
    table.add_row(
        "ingest mongo (msg/s)",
        str(r["ingest_mongo_msgs_per_s"]),
        f">= 0.5 x insert_many: {r['ingest_mongo_over_insert_many']}",
    )
    table.add_row(
        "ingest dual (msg/s)",
        str(r["ingest_dual_msgs_per_s"]),
        f">= 0.8 x mongo: {r['ingest_dual_over_mongo']}",
    )
    table.add_row(
        "ingest mysql-primary (msg/s)",
        str(r["ingest_mysql_primary_msgs_per_s"]),
        f">= 1 x mongo: {r['ingest_mysql_primary_over_mongo']}",
    )
    for m, v in lag99.items():
        table.add_row(f"lag p99 {m} at {LAG_RATE} msg/s (s)", f"{v:.3f}", "< 1 s")
    table.add_row("read hit p50 / p99 (ms)", f"{r['read_hit_p50_ms']} / {r['read_hit_p99_ms']}", "")
    table.add_row(
        "read lazy miss p50 / p99 (ms)",
        f"{r['read_miss_p50_ms']} / {r['read_miss_p99_ms']}",
        f"p99 <= 2 x hit p99: {r['read_miss_p99_ms'] / r['read_hit_p99_ms']:.2f}x",
    )
    table.add_row("load average before / after", f"{load_before[0]:.2f} / {load_after[0]:.2f}", "")
    for k, v in pauses.items():
        table.add_row(f"write pause {k} (s)", f"{v:.4f}", "< 0.5 s")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
