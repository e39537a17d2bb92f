"""`core.mysql.execute_script`: several statements in one round trip, on real MariaDB.

Each statement's rows come back in order; a statement that fails stops the ones after it
(server side) and is raised as the connector's own error with its errno, whichever statement
it was, so the retry policy (`is_retryable`) and the duplicate-key check of the one-document
guarded write see it."""

from __future__ import annotations

import mysql.connector
import pytest

from lazyshift.core.mysql import execute_script


def test_rows_of_each_statement_in_order(conn) -> None:
    conn.rollback()
    out = execute_script(
        conn,
        [
            b"START TRANSACTION",
            b"SELECT 1 AS a, 'x' AS b",
            b"SELECT epoch FROM lazyshift_control WHERE id = 0",
            b"COMMIT",
        ],
    )
    assert out == [None, (["a", "b"], [(1, "x")]), (["epoch"], []), None]
    assert not conn.in_transaction


def test_a_later_statement_error_stops_the_rest_and_keeps_its_errno(conn) -> None:
    conn.rollback()
    key = b"'script:dup'"
    insert = b"INSERT INTO dead_letter_probe VALUES (" + key + b")"
    with pytest.raises(mysql.connector.Error) as err:
        execute_script(
            conn,
            [
                b"START TRANSACTION",
                b"DELETE FROM shipment WHERE shipment_key = " + key,
                insert,  # no such table: 1146
                b"COMMIT",
            ],
        )
    assert err.value.errno == 1146
    assert conn.in_transaction  # the COMMIT after it never ran
    conn.rollback()
