"""Dead letters of any size land in MySQL: one multi-row INSERT is cut before it passes
max_allowed_packet (hostile messages can be megabytes; the flip carries hundreds at once)."""

from __future__ import annotations

from lazyshift.core import mysql_store as store
from lazyshift.core.mysql import run_in_transaction


def test_megabyte_dead_letters_are_inserted_in_statements_that_fit(conn) -> None:
    cur = conn.cursor()
    cur.execute("SELECT @@max_allowed_packet")
    packet = int(cur.fetchone()[0])
    conn.commit()
    payload = "x" * (1024 * 1024)
    count = packet // len(payload) + 4  # one statement of them all would be refused
    letters = [
        store.DeadLetter("stream", f"seq:{n}", "too big", payload, n, None) for n in range(count)
    ]
    inserted = run_in_transaction(conn, lambda c: store.insert_dead_letters(c, letters))
    assert inserted == count
    cur.execute("SELECT COUNT(*), MIN(LENGTH(payload)) FROM dead_letter WHERE origin = 'stream'")
    assert cur.fetchone() == (count, len(payload))
    conn.commit()
    again = run_in_transaction(conn, lambda c: store.insert_dead_letters(c, letters))
    assert again == 0  # once per origin and dedup key
