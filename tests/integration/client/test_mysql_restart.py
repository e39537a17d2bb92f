"""After a MariaDB restart in mysql-primary the consumer reconnects and goes on (issue 9,
hole 10): before the fix its cached writer was dropped only on the dual path, and a
"Lost connection" raised by the C extension on COMMIT (MySQLInterfaceError, outside
mysql.connector.Error) stopped the client."""

from __future__ import annotations

import signal

from helpers import MockSource, expected_state, kill, poll, run_cli, start_cli
from lazyshift.core import mysql as my
from lazyshift.core.mapping import stored_form
from lazyshift.core.mysql_store import load_documents

GEN = ["--seed", "41", "--count", "1500", "--malformed-fraction", "0.02"]


def _mysql_offset(settings) -> int:
    try:
        conn = my.connect(settings.mysql, autocommit=True)
    except my.mysql.connector.Error:
        return -1
    try:
        cur = conn.cursor()
        cur.execute("SELECT COALESCE(MAX(seq), 0) FROM client_offset")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


def _mysql_docs(settings) -> dict[str, dict]:
    conn = my.connect(settings.mysql)
    try:
        cur = conn.cursor()
        cur.execute("SELECT shipment_key FROM shipment")
        return load_documents(cur, [r[0] for r in cur.fetchall()])
    finally:
        conn.close()


def test_consumer_survives_a_mariadb_restart_in_mysql_primary(migrated, stack) -> None:
    for rung in ("dual", "mysql-primary"):
        run_cli("mode", "set", rung, settings=migrated)
    source = MockSource(*GEN, "--rate", "100").start()
    messages = source.dump()
    exp = expected_state(messages)
    last = max(m["seq"] for m in messages)
    proc = start_cli(
        "client", "run", "--mode", "control", "--http-port", "-1",
        "--source-port", str(source.port), "--client-id", "restart-client",
        settings=migrated,
    )  # fmt: skip
    try:
        poll(lambda: _mysql_offset(migrated) > 200, "ingest in mysql-primary", timeout=120)
        stack.stop_component("mysql")
        stack.start_component("mysql")
        poll(lambda: _mysql_offset(migrated) >= last, "the stream consumed after the restart", 300)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
    finally:
        kill(proc, signal.SIGTERM)
        source.stop()
    docs = _mysql_docs(migrated)
    assert set(docs) == set(exp.docs)
    wrong = [k for k, d in exp.docs.items() if docs[k] != stored_form(d)]
    assert not wrong, wrong[:3]
