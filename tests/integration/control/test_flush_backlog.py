"""The flip's backlog flush (steps.prepare_flip before the pause, steps.flush_backlog in it):
batched ($in read, one guarded transaction, one bulk removal) and still exact: every
backlogged shipment's latest MongoDB copy reaches MySQL through the version guard, an
unmappable one is dead-lettered, an older copy never overwrites a newer row, and a key
queued again after its copy was read stays in the backlog until that newer write is copied.
Without clients the drain is immediate, so `set_mode` runs in-process."""

from __future__ import annotations

from typing import Any

import pytest

from dataset import load_mongo, make_doc
from lazyshift.control import plane, steps
from lazyshift.control.ladder import TransitionError
from lazyshift.core import mysql_store as store
from lazyshift.core.guarded_write import guarded_write
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.mysql import read_snapshot

UNMAPPABLE_PRICE = {"amount": "1e3", "currency": "EUR"}


def doc(i: int, rev: int, version: int, tag: str) -> dict[str, Any]:
    return make_doc(i) | {"source_rev": rev, "version": version, "tracking_number": tag}


def mysql_docs(conn, keys: list[str]) -> dict[str, dict[str, Any]]:
    with read_snapshot(conn):
        return store.load_documents(conn.cursor(), keys)


def dead_letters(conn) -> list[tuple[str, str]]:
    with read_snapshot(conn):
        cur = conn.cursor()
        cur.execute("SELECT origin, shipment_key FROM dead_letter ORDER BY id")
        return [(str(o), str(k)) for o, k in cur.fetchall()]


@pytest.fixture
def mongo(migrated):
    store_ = MongoStore.open(migrated)
    yield store_
    store_.close()


def queue(mongo: MongoStore, collection, d: dict[str, Any]) -> None:
    """What dual does when MySQL refused a write: MongoDB has it, the backlog names it."""
    collection.replace_one({"_id": d["_id"]}, d, upsert=True)
    mongo.backlog_add(d["key"], d["version"], "test: MySQL refused")


def test_the_flip_flushes_the_backlog_in_batches(migrated, collection, conn, mongo, monkeypatch):
    """More than a batch in the backlog (so several batches run), among them an unmappable
    document and one whose MySQL row is newer than MongoDB's copy."""
    monkeypatch.setattr(steps, "BACKLOG_BATCH", 7)
    load_mongo(collection, 30)
    plane.set_mode(migrated, "dual")
    for i in range(20):
        queue(mongo, collection, doc(i, 3, 3, f"backlogged-{i}"))
    bad = doc(20, 3, 3, "unmappable") | {"price": UNMAPPABLE_PRICE}
    queue(mongo, collection, bad)
    # MySQL already holds a newer copy of shipment 21 than the one MongoDB has
    assert guarded_write(conn, doc(21, 9, 9, "newer-in-mysql"))
    queue(mongo, collection, doc(21, 4, 4, "older-in-mongo"))

    result = plane.set_mode(migrated, "mysql-primary")

    keys = [make_doc(i)["key"] for i in range(22)]
    got = mysql_docs(conn, keys)
    assert {k: got[k]["tracking_number"] for k in keys[:20]} == {
        make_doc(i)["key"]: f"backlogged-{i}" for i in range(20)
    }
    assert bad["key"] not in got
    assert (got[keys[21]]["tracking_number"], got[keys[21]]["source_rev"]) == (
        "newer-in-mysql",
        9,
    )
    assert ("dual", bad["key"]) in dead_letters(conn)
    assert mongo.backlog_size() == 0
    before = next(n for n in result.notes if n.startswith("before the pause"))
    assert "flushed 22 backlogged shipment(s) into MySQL, 1 unmappable" in before, result.notes
    during = next(n for n in result.notes if n.startswith("during the pause"))
    assert "flushed 0 backlogged shipment(s)" in during, result.notes


def test_a_key_queued_again_during_the_flush_stays_until_copied(
    migrated, collection, conn, mongo, monkeypatch
):
    """A write lands in MongoDB (and the backlog) after the flush read its copy: the entry
    queued at the newer version is not removed with the older copy, and the next flush
    copies the newer version."""
    load_mongo(collection, 5)
    plane.set_mode(migrated, "dual")
    epoch = plane.get_state(migrated).epoch
    racer = doc(1, 5, 5, "read-by-the-flush")
    queue(mongo, collection, racer)
    queue(mongo, collection, doc(2, 5, 5, "calm"))
    read = mongo.get_many

    def get_many_then_a_write_lands(keys: list[str]) -> dict[str, Any]:
        found = read(keys)
        monkeypatch.setattr(mongo, "get_many", read)  # only the first read races
        queue(mongo, collection, doc(1, 6, 6, "written-during-the-flush"))
        return found

    monkeypatch.setattr(mongo, "get_many", get_many_then_a_write_lands)
    flushed = steps._flush_backlog(mongo, conn, epoch, passes=1)

    assert flushed.keys == 2
    assert mongo.backlog_entries() == {racer["key"]: 6}
    assert mysql_docs(conn, [racer["key"]])[racer["key"]]["version"] == 5
    # the pause's flush (no epoch: the drain) copies the newer write and empties the backlog
    assert steps._flush_backlog(mongo, conn, None, passes=None).keys == 1
    got = mysql_docs(conn, [racer["key"]])[racer["key"]]
    assert (got["version"], got["tracking_number"]) == (6, "written-during-the-flush")
    assert mongo.backlog_size() == 0


def test_the_flush_before_the_pause_is_fenced(migrated, collection, conn, mongo):
    """While clients write, the flush carries the epoch it read: a transition that began
    meanwhile refuses it (and the flip with it); the backlog is left for the next try."""
    load_mongo(collection, 5)
    plane.set_mode(migrated, "dual")
    st = plane.get_state(migrated)
    queue(mongo, collection, doc(1, 5, 5, "queued"))
    plane.set_mode(migrated, "mongo")
    plane.set_mode(migrated, "dual")  # the epoch moved on (and MySQL got reconciled)
    memo: dict[str, Any] = {"mongo": mongo}
    with pytest.raises(TransitionError, match="control row changed"):
        steps.prepare_flip(migrated, conn, st, memo)
    assert mongo.backlog_size() == 1
