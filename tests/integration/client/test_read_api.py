"""The client's read API: lazy migration on read (also when many readers race for the same
missing shipment), shadow reads in dual, metrics, and clear errors."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest

from helpers import MockSource, expected_state, free_port, http_get, kill, poll, run_cli, start_cli
from lazyshift.core import mysql as my
from lazyshift.core.mongo_store import MongoStore, connect

GEN = ["--seed", "5", "--count", "400", "--malformed-fraction", "0"]


@pytest.fixture
def seeded(settings, mongo_db):
    """MongoDB holds 400 messages' worth of shipments (stage 1); MySQL has the schema."""
    exp = expected_state(MockSource(*GEN).dump())
    store = MongoStore(connect(settings.mongo.uri), settings.mongo.database)
    for doc in exp.docs.values():
        store.shipments.insert_one(doc)
    store.client.close()
    run_cli("schema", "migrate", settings=settings)
    return exp


def _client(settings, mode_env: dict[str, str] | None = None):
    source = MockSource("--seed", "1", "--count", "1").start()
    port = free_port()
    proc = start_cli(
        "client",
        "run",
        "--mode",
        "control",
        "--source-port",
        str(source.port),
        "--http-port",
        str(port),
        "--client-id",
        "reader",
        settings=settings,
        env=mode_env,
    )
    poll(lambda: _up(port), "read API", timeout=30)
    return source, proc, port


def _up(port: int) -> bool:
    try:
        return http_get(port, "/healthz")[0] == 200
    except OSError:
        return False


def _apply_count(settings, key: str) -> int | None:
    conn = my.connect(settings.mysql, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT apply_count FROM shipment WHERE shipment_key = %s", (key,))
    row = cur.fetchone()
    conn.close()
    return row[0] if row else None


def test_lazy_migration_on_read_is_safe_under_a_stampede(settings, seeded) -> None:
    for mode in ("dual", "mysql-primary"):
        run_cli("mode", "set", mode, settings=settings)
    source, proc, port = _client(settings)
    try:
        key = sorted(seeded.docs)[7]
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda _: http_get(port, f"/shipments/{key}"), range(48)))
        assert {status for status, _, _ in answers} == {200}
        assert {body["version"] for _, body, _ in answers} == {seeded.docs[key]["version"]}
        assert "mongo->mysql" in {h.get("X-Lazyshift-Store") for _, _, h in answers}
        assert _apply_count(settings, key) == 1  # migrated once, however many raced
        status, body, headers = http_get(port, f"/shipments/{key}")
        assert status == 200 and headers["X-Lazyshift-Store"] == "mysql"
        assert body["key"] == key
        status, body, _ = http_get(port, "/shipments/acme:NOPE")
        assert status == 404 and "no shipment" in body["error"]
        assert http_get(port, "/healthz")[1]["mode"] == "mysql-primary"
        metrics = _metrics(port)
        assert 'lazyshift_lazy_migrations_total{path="read"} 1.0' in metrics
        assert "lazyshift_stream_received_total 1.0" in metrics
    finally:
        kill(proc, signal.SIGTERM)
        source.stop()


def test_each_read_follows_the_flip_before_it_and_reads_an_odd_key_exactly(
    settings, seeded
) -> None:
    """A read takes the mode and the document from one MySQL snapshot, asking for the
    document in its first round trip only when the mode it last saw reads MySQL: the read
    right after each flip (towards MySQL, and back) still acts on the new mode, and a key
    full of SQL-significant characters is found in the one multi-statement query."""
    base = seeded.docs[sorted(seeded.docs)[3]]
    key = f"{base['source']}:odd;key'\"\\é--"
    store = MongoStore(connect(settings.mongo.uri), settings.mongo.database)
    store.shipments.insert_one({**base, "_id": key, "key": key})
    store.client.close()
    path = f"/shipments/{quote(key, safe='')}"
    run_cli("mode", "set", "dual", settings=settings)
    source, proc, port = _client(settings)
    try:

        def read() -> tuple[str, str, dict]:
            status, body, headers = http_get(port, path)
            assert status == 200 and body["key"] == key, (status, body)
            assert body["version"] == base["version"]
            return headers["X-Lazyshift-Mode"], headers["X-Lazyshift-Store"], body

        assert read()[:2] == ("dual", "mongo")
        run_cli("mode", "set", "mysql-primary", settings=settings)
        assert read()[:2] == ("mysql-primary", "mongo->mysql")  # migrated before answering
        assert _apply_count(settings, key) == 1
        mode, where, body = read()
        assert (mode, where) == ("mysql-primary", "mysql")
        assert body["tracking_number"] == base["tracking_number"]
        run_cli("mode", "set", "dual", settings=settings)
        assert read()[:2] == ("dual", "mongo")
    finally:
        kill(proc, signal.SIGTERM)
        source.stop()


def test_shadow_reads_count_mismatches_by_kind(settings, seeded) -> None:
    run_cli("mode", "set", "dual", settings=settings)
    keys = sorted(seeded.docs)
    conn = my.connect(settings.mysql)
    # MySQL has: keys[0] as in MongoDB, keys[1] an older version, keys[2] different content.
    from lazyshift.core.guarded_write import guarded_write

    good, old, changed = (dict(seeded.docs[k]) for k in keys[:3])
    guarded_write(conn, good)
    if old["version"] > 1:
        guarded_write(conn, {**old, "version": old["version"] - 1})
    guarded_write(conn, {**changed, "tracking_number": "TAMPERED"})
    conn.close()
    source, proc, port = _client(settings, {"LAZYSHIFT_CLIENT__SHADOW_READ_FRACTION": "1"})
    try:
        for key in keys[:4]:
            assert http_get(port, f"/shipments/{key}")[0] == 200
        metrics = _metrics(port)
        assert 'lazyshift_shadow_reads_total{result="match"} 1.0' in metrics
        assert 'lazyshift_shadow_reads_total{result="different"} 1.0' in metrics
        assert 'lazyshift_shadow_reads_total{result="missing"}' in metrics
        # The gate learns of it through the heartbeat (written every poll interval).
        poll(
            lambda: "shadow read(s) found MySQL differing"
            in run_cli("--json", "status", settings=settings).stdout,
            "the gate to close",
        )
    finally:
        kill(proc, signal.SIGTERM)
        source.stop()


def _metrics(port: int) -> str:
    import urllib.request

    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_read_api_port_in_use_is_a_clear_usage_error(settings) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli(
            "client", "run", "--http-port", str(port), settings=settings, check=False, timeout=60
        )
    assert proc.returncode == 2
    assert "cannot serve the read API" in proc.stderr and "--http-port" in proc.stderr
