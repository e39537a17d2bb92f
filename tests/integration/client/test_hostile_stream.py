"""Hostile input never stops a partition (issue 9): the real mock emits messages no store can
hold, the real client dead-letters each once with its reason, and every later message is
stored. Before the fix the client crash-looped or retried the first such message forever."""

from __future__ import annotations

import json

import pytest

from helpers import MockSource, expected_state, run_cli
from lazyshift.core import mysql as my
from lazyshift.core.mapping import stored_form
from lazyshift.core.mysql_store import load_documents

GEN = [
    "--seed",
    "31",
    "--count",
    "700",
    "--hostile-fraction",
    "0.15",
    "--malformed-fraction",
    "0.02",
]


@pytest.fixture
def hostile():
    source = MockSource(*GEN, "--rate", "0").start()
    try:
        messages = source.dump()
        yield source, messages
    finally:
        source.stop()


def _client(settings, port: int, *mode: str) -> dict:
    proc = run_cli(
        "--json",
        "client",
        "run",
        *mode,
        "--http-port",
        "-1",
        "--exit-at-end",
        "--source-port",
        str(port),
        settings=settings,
    )
    return json.loads(proc.stdout)


def _kinds(messages: list[dict]) -> set[str]:
    return {m["malformed"] for m in messages if (m["malformed"] or "").startswith("hostile:")}


def _huge_seq(messages: list[dict]) -> set[int]:
    return {m["seq"] for m in messages if m["malformed"] == "hostile:huge-seq"}


def test_mongo_mode_dead_letters_hostile_messages_and_stores_the_rest(
    settings, mongo_db, hostile
) -> None:
    source, messages = hostile
    assert len(_kinds(messages)) == 8  # every hostile kind is in this log
    exp = expected_state(messages)
    counters = _client(settings, source.port)
    assert counters["received"] == exp.emitted
    assert counters["dead_lettered"] == len(exp.dead_seqs)
    stored = {d["_id"]: d for d in mongo_db.shipments.find({})}
    assert set(stored) == set(exp.docs)
    assert all(stored[k] == d for k, d in exp.docs.items())
    letters = list(mongo_db.dead_letters.find({}))
    assert len(letters) == len(exp.dead_seqs)  # each once
    # A seq the source could not have sent is kept as the letter's payload, not as an offset.
    huge = _huge_seq(messages)
    assert {d["source_seq"] for d in letters} == (exp.dead_seqs - huge) | (
        {None} if huge else set()
    )
    offset = mongo_db.client_offsets.find_one({"_id": "0/1"})["seq"]
    assert offset <= max(m["seq"] for m in messages)
    assert all(d["reason"] for d in letters)


def _mysql(settings) -> tuple[dict[str, dict], int]:
    conn = my.connect(settings.mysql)
    try:
        cur = conn.cursor()
        cur.execute("SELECT shipment_key FROM shipment")
        docs = load_documents(cur, [r[0] for r in cur.fetchall()])
        cur.execute("SELECT COUNT(*) FROM dead_letter WHERE origin = 'stream'")
        return docs, cur.fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("mode", ["dual", "mysql-primary"])
def test_controlled_modes_dead_letter_the_same_messages(migrated, mongo_db, hostile, mode) -> None:
    source, messages = hostile
    exp = expected_state(messages)
    for rung in ("dual", "mysql-primary")[: 1 if mode == "dual" else 2]:
        run_cli("mode", "set", rung, settings=migrated)
    counters = _client(migrated, source.port, "--mode", "control")
    assert counters["dead_lettered"] == len(exp.dead_seqs)
    mysql_docs, mysql_letters = _mysql(migrated)
    assert set(mysql_docs) == set(exp.docs)
    assert all(mysql_docs[k] == stored_form(d) for k, d in exp.docs.items())
    mongo_letters = mongo_db.dead_letters.count_documents({})
    assert mysql_letters + mongo_letters == len(exp.dead_seqs)
