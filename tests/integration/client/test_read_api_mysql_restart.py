"""Reads and /healthz across a MariaDB restart in mysql-primary (issue 9, hole 10, the read
side): while MySQL, the truth, is down a read answers 503 with the reason (never a dropped
connection, never MongoDB's stale copy) and /healthz answers 200; once MariaDB is back the
same client answers reads again, without a restart (its broken connections are dropped)."""

from __future__ import annotations

import signal

from dataset import load_mongo
from helpers import MockSource, free_port, http_get, kill, poll, run_cli, start_cli


def _status(port: int, path: str) -> int:
    try:
        return http_get(port, path, timeout=30)[0]
    except OSError:
        return -1


def test_reads_in_mysql_primary_come_back_after_a_mariadb_restart(
    migrated, stack, collection
) -> None:
    load_mongo(collection, 10)
    key = sorted(d["_id"] for d in collection.find({}, {"_id": 1}))[0]
    for rung in ("dual", "mysql-primary"):
        run_cli("mode", "set", rung, settings=migrated)
    source = MockSource("--seed", "1", "--count", "1").start()
    port = free_port()
    proc = start_cli(
        "client", "run", "--mode", "control", "--source-port", str(source.port),
        "--http-port", str(port), "--client-id", "restart-reader",
        settings=migrated,
    )  # fmt: skip
    try:
        poll(lambda: _status(port, f"/shipments/{key}") == 200, "a read in mysql-primary", 120)
        stack.stop_component("mysql")
        try:
            status, body, _ = http_get(port, f"/shipments/{key}", timeout=60)
            assert status == 503 and "MySQL" in body["error"], body
            assert _status(port, "/healthz") == 200
        finally:
            stack.start_component("mysql")
        status, body, headers = poll(
            lambda: (r := http_get(port, f"/shipments/{key}", timeout=60))[0] == 200 and r,
            "a read after the restart",
            120,
        )
        assert headers["X-Lazyshift-Mode"] == "mysql-primary"
        assert proc.poll() is None
    finally:
        kill(proc, signal.SIGTERM)
        source.stop()
