"""A MySQL outage does not fail reads in dual (issue 9, hole 8): MongoDB is the truth there,
and the mode is known from the follower's last read of the control row while its lease holds.
Before the fix every read looked the control row up in MySQL first and answered 503."""

from __future__ import annotations

import signal

from helpers import MockSource, expected_state, free_port, http_get, kill, poll, run_cli, start_cli
from lazyshift.core.mongo_store import MongoStore

# A long lease so the reads below happen inside it however loaded the machine is.
ENV = {"LAZYSHIFT_CLIENT__HEARTBEAT_TIMEOUT_S": "120"}


def _up(port: int) -> bool:
    try:
        return http_get(port, "/healthz")[0] == 200
    except OSError:
        return False


def test_reads_in_dual_survive_a_mysql_outage(migrated, stack) -> None:
    exp = expected_state(MockSource("--seed", "5", "--count", "50").dump())
    store = MongoStore.open(migrated)
    store.shipments.insert_many(list(exp.docs.values()))
    store.close()
    run_cli("mode", "set", "dual", settings=migrated)
    source = MockSource("--seed", "1", "--count", "1").start()
    port = free_port()
    proc = start_cli(
        "client", "run", "--mode", "control", "--source-port", str(source.port),
        "--http-port", str(port), "--client-id", "outage-reader",
        settings=migrated, env=ENV,
    )  # fmt: skip
    key = sorted(exp.docs)[0]
    try:
        poll(lambda: _up(port), "read API", timeout=60)
        poll(lambda: http_get(port, f"/shipments/{key}")[0] == 200, "a read in dual")
        stack.stop_component("mysql")
        try:
            status, body, headers = http_get(port, f"/shipments/{key}", timeout=30)
            assert status == 200, body
            assert body["version"] == exp.docs[key]["version"]
            assert headers["X-Lazyshift-Store"] == "mongo"
            assert http_get(port, "/shipments/nope", timeout=30)[0] == 404
        finally:
            stack.start_component("mysql")
    finally:
        kill(proc, signal.SIGTERM)
        source.stop()
