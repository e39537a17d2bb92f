"""`lazyshift backfill` as a real subprocess against the real MariaDB + FerretDB: live writers,
kill -9 at random points, several workers and commands at once, lease takeover, pause/resume,
dry run, dead letters."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import threading
from datetime import UTC, datetime

import pytest

from dataset import key_for, load_mongo, make_doc
from helpers import kill, poll, run_cli, start_cli
from lazyshift import verify
from lazyshift.core import mysql as db
from lazyshift.core.guarded_write import guarded_write
from lazyshift.core.mysql_store import load_documents

FAST = ["--batch-size", "50", "--progress-interval", "0.2"]


def rows(conn, sql: str, params: tuple = ()) -> list[tuple]:
    cur = conn.cursor()
    cur.execute(sql, params)
    out = cur.fetchall()
    cur.close()
    return out


def done_docs(conn) -> int:
    return int(rows(conn, "SELECT COALESCE(SUM(docs_done), 0) FROM backfill_partition")[0][0])


def assert_exactly_once(conn, n: int) -> None:
    """Every document scanned and written once, every row applied once."""
    total, done, written = rows(
        conn, "SELECT SUM(docs_estimate), SUM(docs_done), SUM(docs_written) FROM backfill_partition"
    )[0]
    assert (int(total), int(done), int(written)) == (n, n, n)
    counts = rows(conn, "SELECT apply_count, COUNT(*) FROM shipment GROUP BY apply_count")
    assert counts == [(1, n)]
    assert rows(conn, "SELECT COUNT(*) FROM backfill_partition WHERE status <> 'done'") == [(0,)]


def test_backfill_under_live_writes_two_commands(migrated, collection, app_conn):
    """Two commands (as on two hosts), two workers each, while mysql-primary clients write
    newer versions and new shipments into MySQL: nothing older ever overwrites newer."""
    n = 2000
    load_mongo(collection, n)
    stop = threading.Event()
    written: dict[str, int] = {}
    errors: list[BaseException] = []

    def writer() -> None:
        conn = db.connect(migrated.mysql)
        rng = random.Random(7)
        try:
            j = 0
            while not stop.is_set():
                i = rng.randrange(n)
                version = written.get(key_for(i), 1) + 1
                guarded_write(conn, make_doc(i, version=version))
                written[key_for(i)] = version
                if j % 10 == 0:  # a shipment created after the flip: MySQL only
                    guarded_write(conn, make_doc(n + j, version=1))
                    written[key_for(n + j)] = 1
                j += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        args = ["backfill", "--workers", "2", "--partitions", "4", "--json", *FAST]
        procs = [start_cli(*args, settings=migrated) for _ in range(2)]
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert json.loads(out)["complete"] is True
        assert '"event": "backfill.progress"' in err  # JSON progress lines when not a TTY

    report = verify.verify(migrated, truth="mysql")
    assert report.ok, report.as_dict()
    originals = {key_for(i) for i in range(n)}
    assert report.by_kind.get("extra", 0) == len(set(written) - originals)
    cur = app_conn.cursor()
    stored = load_documents(cur, [key_for(i) for i in range(n)])
    cur.close()
    assert len(stored) == n
    for i in range(n):
        key = key_for(i)
        assert stored[key]["version"] == written.get(key, 1), key
    untouched = [key_for(i) for i in range(n) if key_for(i) not in written]
    counts = dict(rows(app_conn, "SELECT shipment_key, apply_count FROM shipment"))
    assert all(counts[k] == 1 for k in untouched)
    total, done = rows(
        app_conn, "SELECT SUM(docs_estimate), SUM(docs_done) FROM backfill_partition"
    )[0]
    assert int(total) == int(done) == n


def test_kill_minus_9_at_random_points_then_rerun(migrated, collection, app_conn):
    n = 1500
    load_mongo(collection, n)
    rng = random.Random(11)
    args = [
        "backfill",
        "--workers",
        "2",
        "--partitions",
        "4",
        "--lease-seconds",
        "1",
        "--max-rate",
        "1500",
        *FAST,
    ]
    last = 0
    for _ in range(3):
        proc = start_cli(*args, settings=migrated)
        target = last + rng.randint(50, 300)
        poll(
            lambda t=target, p=proc: done_docs(app_conn) >= t or p.poll() is not None,
            "backfill progress",
            timeout=120,
            every=0.01,
        )
        kill(proc, signal.SIGKILL)
        last = done_docs(app_conn)
        if last >= n:
            break
    assert last < n, "the backfill finished before it could be killed"
    rerun = run_cli(
        *args[:-4], "--progress-interval", "0.2", "--json", settings=migrated, timeout=240
    )
    assert json.loads(rerun.stdout)["complete"] is True
    assert_exactly_once(app_conn, n)
    assert verify.verify(migrated).ok


def test_dead_workers_lease_is_taken_over(migrated, collection, app_conn):
    n = 900
    load_mongo(collection, n)
    args = [
        "backfill",
        "--workers",
        "1",
        "--partitions",
        "3",
        "--lease-seconds",
        "1",
        "--batch-size",
        "20",
    ]
    proc = start_cli(*args, "--max-rate", "400", settings=migrated)
    poll(
        lambda: rows(
            app_conn,
            "SELECT COUNT(*) FROM backfill_partition WHERE docs_done > 0 AND status = 'running'",
        )[0][0]
        or proc.poll() is not None,
        "a partition in progress",
        timeout=120,
        every=0.01,
    )
    kill(proc, signal.SIGKILL)
    held = rows(
        app_conn,
        "SELECT id, lease_owner FROM backfill_partition WHERE status = 'running' AND docs_done > 0",
    )
    assert len(held) == 1 and held[0][1], "the killed worker held a lease"
    run_cli(*args, settings=migrated, timeout=240)
    attempts = rows(
        app_conn, "SELECT attempts, status FROM backfill_partition WHERE id = %s", (held[0][0],)
    )
    assert attempts == [(2, "done")]
    assert_exactly_once(app_conn, n)
    assert verify.verify(migrated).ok


def test_a_lease_shorter_than_a_batch_is_kept_and_the_run_finishes(migrated, collection, app_conn):
    """Issue 9 hole 13: batches paced slower than the lease (a batch a second, a 0.5 s lease),
    and a worker left idle that would take an expired lease: the keeper renews the leases,
    so no partition is taken over and the run finishes with every document applied once."""
    n = 300
    load_mongo(collection, n)
    run_cli(
        "backfill",
        "--workers",
        "2",
        "--partitions",
        "3",
        "--lease-seconds",
        "0.5",
        "--max-rate",
        "20",  # 10 docs/s per worker, in batches of 10: one commit a second
        settings=migrated,
        timeout=600,
    )
    assert_exactly_once(app_conn, n)
    # ('other' is handed back until the ranges are done: leased more than once by design)
    takeovers = rows(
        app_conn,
        "SELECT id, attempts FROM backfill_partition WHERE kind = 'range' AND attempts > 1",
    )
    assert takeovers == [], "a live worker's lease was taken over"


def test_pause_and_resume_are_obeyed(migrated, collection, app_conn):
    n = 1200
    load_mongo(collection, n)
    proc = start_cli(
        "backfill",
        "--workers",
        "1",
        "--partitions",
        "2",
        # 20 s of work at this rate: the pause command (a CLI start, slow on a loaded box)
        # must arrive while the backfill still runs (at 300/s it took 4 s and lost the race
        # at load 15).
        "--max-rate",
        "60",
        "--batch-size",
        "20",
        settings=migrated,
    )
    try:
        poll(lambda: done_docs(app_conn) > 0, "backfill started", timeout=120, every=0.01)
        run_cli("backfill", "pause", settings=migrated)

        def paused_snapshot():
            row = rows(
                app_conn,
                "SELECT COALESCE(SUM(status = 'paused'), 0), SUM(docs_done) "
                "FROM backfill_partition",
            )[0]
            return int(row[1]) if int(row[0]) == 1 else None

        first = poll(paused_snapshot, "the worker to report paused", timeout=30)
        status = json.loads(run_cli("backfill", "status", "--json", settings=migrated).stdout)
        assert status["paused"] is True and status["states"].get("paused") == 1
        assert poll(paused_snapshot, "still paused") == first  # no batch while paused
        assert first < n and proc.poll() is None
        run_cli("backfill", "resume", settings=migrated)
        poll(lambda: proc.poll() is not None, "backfill to finish", timeout=120)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        kill(proc)
    assert_exactly_once(app_conn, n)


def test_dry_run_reports_drift_rejections_and_coercions(migrated, collection, app_conn):
    load_mongo(collection, 20)
    drift = make_doc(100)
    drift["extra"]["legacyPrice"] = "12.50"  # a string where the others hold a double
    coerced = make_doc(101)
    coerced["items"] = [
        dict(
            make_doc(0)["items"][0]
            if make_doc(0)["items"]
            else {"sku": "s", "description": None, "quantity": 1, "value": None},
            weight_kg=2,
        )
    ]
    coerced["recipient"] = {
        "name": "n",
        "first_name": None,
        "last_name": None,
        "email": None,
        "phone": None,
        "address": {
            "street": None,
            "city": None,
            "postal_code": None,
            "country": None,
            "lat": -0.0,
            "lon": 1.5,
        },
    }
    bad = make_doc(102)
    bad["price"] = {"amount": "1.50", "currency": "EUR"}  # not canonical: DECIMAL gives "1.5"
    collection.insert_many([drift, coerced, bad])
    proc = run_cli("backfill", "--dry-run", "--json", settings=migrated, check=False)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert (report["docs"], report["would_write"], report["would_reject"]) == (23, 22, 1)
    drift_paths = {e["path"]: e for e in report["type_drift"]}
    assert drift_paths["extra/legacyPrice"]["types"] == {"double": 22, "string": 1}
    assert drift_paths["extra/legacyPrice"]["examples"]["string"] == drift["_id"]
    assert "items/*/weight_kg" in drift_paths  # int in one document, double in the others
    rejected = report["rejections"]
    assert rejected[0]["path"] == "price/amount" and rejected[0]["count"] == 1
    assert rejected[0]["examples"][0]["key"] == bad["_id"]
    coercions = {(c["path"], c["coercion"]): c for c in report["coercions"]}
    assert coercions[("items/*/weight_kg", "int -> double")]["examples"] == [coerced["_id"]]
    assert rows(app_conn, "SELECT COUNT(*) FROM shipment") == [(0,)]


def test_unmappable_documents_are_dead_lettered_and_exit_1(migrated, collection, app_conn):
    load_mongo(collection, 200)
    bad_amount = make_doc(500)
    bad_amount["price"] = {"amount": "1e3", "currency": "EUR"}
    mismatched = make_doc(501)
    mismatched["key"] = "acme:other"
    collection.insert_many(
        [
            bad_amount,
            mismatched,
            {"_id": 12345, "note": "numeric _id"},
            {"_id": "legacy:broken", "created_at": datetime.now(UTC)},
        ]
    )
    for attempt in range(2):  # a rerun dead-letters nothing twice
        proc = run_cli("backfill", "--partitions", "3", "--json", settings=migrated, check=False)
        assert proc.returncode == 1, proc.stderr
        out = json.loads(proc.stdout)
        assert out["complete"] is True and out["dead"] == 4
        assert len(out["dead_letters"]) == 4
        if attempt == 0:
            run_cli("backfill", "reset", "--yes", settings=migrated)
    dead = {
        r[0]: (r[1], json.loads(r[2]))
        for r in rows(
            app_conn, "SELECT dedup_key, reason, payload FROM dead_letter WHERE origin = 'backfill'"
        )
    }
    assert set(dead) == {
        f"_id:{bad_amount['_id']}",
        f"_id:{mismatched['_id']}",
        "_id:12345",
        "_id:legacy:broken",
    }
    assert dead[f"_id:{bad_amount['_id']}"][0].startswith("price/amount")
    assert dead["_id:12345"][1] == {"_id": 12345, "note": "numeric _id"}
    assert rows(app_conn, "SELECT COUNT(*) FROM shipment") == [(200,)]
    report = verify.verify(migrated)
    assert report.ok and report.dead_letters == 4, report.as_dict()


@pytest.mark.parametrize("workers", [1])
def test_rerun_after_completion_is_a_no_op(migrated, collection, app_conn, workers):
    load_mongo(collection, 100)
    run_cli("backfill", "--workers", str(workers), settings=migrated)
    again = json.loads(run_cli("backfill", "--json", settings=migrated).stdout)
    assert again["complete"] and again["done"] == 100
    assert_exactly_once(app_conn, 100)


def test_pauses_while_mysql_threads_running_is_high(migrated, collection, app_conn, mysql_root):
    load_mongo(collection, 600)
    proc = start_cli(
        "backfill",
        "--partitions",
        "1",
        "--max-rate",
        "200",
        "--batch-size",
        "20",
        "--max-threads-running",
        "1",
        settings=migrated,
    )
    busy = db.connect(migrated.mysql, autocommit=True)
    busy_id = busy.connection_id

    def hold_a_thread() -> None:
        with contextlib.suppress(db.mysql.connector.Error):  # ended by KILL QUERY
            rows(busy, "SELECT SLEEP(300)")

    sleeper = threading.Thread(target=hold_a_thread)
    try:
        poll(lambda: done_docs(app_conn) > 0, "backfill started", timeout=120, every=0.01)
        sleeper.start()  # one more running thread: over the limit

        def throttled():
            row = rows(app_conn, "SELECT status, docs_done FROM backfill_partition")[0]
            return int(row[1]) + 1 if row[0] == "throttled" else None

        first = poll(throttled, "the worker to throttle itself", timeout=30)
        assert poll(throttled, "still throttled") == first and proc.poll() is None
        cur = mysql_root.cursor()
        cur.execute(f"KILL QUERY {int(busy_id)}")
        cur.close()
        poll(lambda: proc.poll() is not None, "backfill to finish", timeout=120)
        assert proc.returncode == 0, proc.stderr.read()
    finally:
        sleeper.join(timeout=60)
        busy.close()
        kill(proc)
    assert_exactly_once(app_conn, 600)
