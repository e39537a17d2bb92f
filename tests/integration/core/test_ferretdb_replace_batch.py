"""The FerretDB build's batched replaces (tools/bootstrap/ferretdb.sh, patch 6): an `update`
command whose every statement replaces one document by an exact string or ObjectID `_id` is
read with one `_id IN (...)` query and written in one transaction, under the collection's
write lock. The answers must stay MongoDB's, statement by statement, in order: a stale
compare-and-swap matches nothing, a repeated `_id` sees the statements before it, an
identical replacement matches without modifying, a failing statement leaves the statements
before it written, and concurrent writers of one document never both win.
"""

from __future__ import annotations

import threading

import pymongo
import pytest
from bson import ObjectId
from pymongo import ReplaceOne, UpdateOne

OID = ObjectId("65a000000000000000000001")


@pytest.fixture
def docs(collection):
    collection.insert_many(
        [
            {"_id": "a", "v": 1},
            {"_id": "b", "v": 1},
            {"_id": "c", "v": 1, "x": "same"},
            {"_id": OID, "v": 1},
            {"_id": 5, "v": 1},  # not a string or ObjectID: the stock path's
        ]
    )
    return collection


def _state(collection) -> dict:
    return {d["_id"]: {k: v for k, v in d.items() if k != "_id"} for d in collection.find()}


def test_a_bulk_of_compare_and_swaps_answers_statement_by_statement(docs) -> None:
    res = docs.bulk_write(
        [
            ReplaceOne({"_id": "a", "v": 1}, {"v": 2}),  # matches
            ReplaceOne({"_id": "a", "v": 2}, {"v": 3}),  # sees the one before: matches
            ReplaceOne({"_id": "a", "v": 2}, {"v": 9}),  # stale now: misses
            ReplaceOne({"_id": "b", "v": 0}, {"v": 9}),  # stale: misses
            ReplaceOne({"_id": {"$eq": OID}, "v": 1}, {"v": 2}),  # ObjectID, $eq form
            ReplaceOne({"_id": "missing", "v": 1}, {"v": 1}),  # no such document
            ReplaceOne({"_id": "c", "v": 1}, {"_id": "c", "v": 1, "x": "same"}),  # identical
        ],
        ordered=False,
    )
    assert (res.matched_count, res.modified_count, res.upserted_count) == (4, 3, 0)
    assert _state(docs) == {
        "a": {"v": 3},
        "b": {"v": 1},
        "c": {"v": 1, "x": "same"},
        OID: {"v": 2},
        5: {"v": 1},
    }


def test_a_repeated_id_chains_through_the_whole_command(docs) -> None:
    """Ten swaps of one key in one command, each expecting the one before: all land."""
    ops = [ReplaceOne({"_id": "b", "v": v}, {"v": v + 1}) for v in range(1, 11)]
    assert docs.bulk_write(ops, ordered=False).matched_count == 10
    assert docs.find_one({"_id": "b"}) == {"_id": "b", "v": 11}


def test_a_failing_statement_leaves_the_ones_before_it_written(docs) -> None:
    """A replacement that changes `_id` is refused with a write error (code 66), and as in
    stock FerretDB the command stops there: the statements before it are written, those
    after it are not. (The raw command: stock FerretDB's answer to it has no nModified,
    which pymongo's bulk_write does not expect.)"""
    q = [
        ({"_id": "a", "v": 1}, {"v": 2}),
        ({"_id": "a", "v": 2}, {"v": 3}),
        ({"_id": "b", "v": 1}, {"_id": "other", "v": 2}),
        ({"_id": "c", "v": 1}, {"v": 5}),
    ]
    res = docs.database.command(
        "update", docs.name, updates=[{"q": f, "u": u} for f, u in q], ordered=False
    )
    assert [e["code"] for e in res["writeErrors"]] == [66], res
    state = _state(docs)
    assert state["a"] == {"v": 3}
    assert state["b"] == {"v": 1}
    assert state["c"] == {"v": 1, "x": "same"}
    assert "other" not in state


def test_commands_outside_the_batched_shape_keep_their_answers(docs) -> None:
    """An operator update or a non-string `_id` in the command: the stock path, same rules."""
    res = docs.bulk_write(
        [
            ReplaceOne({"_id": "a", "v": 1}, {"v": 2}),
            UpdateOne({"_id": "a", "v": 2}, {"$set": {"v": 3}}),
            ReplaceOne({"_id": 5, "v": 1}, {"v": 2}),
        ],
        ordered=False,
    )
    assert (res.matched_count, res.modified_count) == (3, 3)
    assert _state(docs)["a"] == {"v": 3}
    assert _state(docs)[5] == {"v": 2}


def test_more_ids_than_one_read_takes_are_all_swapped_in_order(collection) -> None:
    """1,500 distinct keys (more than one `_id IN` list of 1,000), the first 100 of them
    swapped a second time at the end of the command (after the first read's run)."""
    keys = [f"k-{i:05d}" for i in range(1500)]
    collection.insert_many([{"_id": k, "v": 1} for k in keys])
    ops = [ReplaceOne({"_id": k, "v": 1}, {"v": 2}) for k in keys]
    ops += [ReplaceOne({"_id": k, "v": 2}, {"v": 3}) for k in keys[:100]]
    assert collection.bulk_write(ops, ordered=False).matched_count == 1600
    assert collection.count_documents({"v": 3}) == 100
    assert collection.count_documents({"v": 2}) == 1400


def test_concurrent_bulks_of_compare_and_swaps_never_both_win(collection) -> None:
    """Two clients bump the same counters with bulks of compare-and-swaps (each read, then
    swapped from what was read), a third with single replaces: every counter ends at the
    number of swaps reported matched, so no two writers ever won the same value."""
    keys = [f"ctr-{i}" for i in range(20)]
    collection.insert_many([{"_id": k, "n": 0} for k in keys])
    client = collection.database.client
    host, port = client.address
    rounds, wins = 60, [0, 0, 0]
    start = threading.Barrier(3)
    opened: list[pymongo.MongoClient] = []

    def coll_of_own_client():
        c = pymongo.MongoClient(host, port)
        opened.append(c)
        return c[collection.database.name][collection.name]

    def bulk_writer(w: int) -> None:
        coll = coll_of_own_client()
        start.wait(timeout=60)
        for _ in range(rounds):
            now = {d["_id"]: d["n"] for d in coll.find({"_id": {"$in": keys}})}
            ops = [ReplaceOne({"_id": k, "n": now[k]}, {"n": now[k] + 1}) for k in keys]
            wins[w] += coll.bulk_write(ops, ordered=False).matched_count

    def single_writer(w: int) -> None:
        coll = coll_of_own_client()
        start.wait(timeout=60)
        for r in range(rounds * 3):
            k = keys[r % len(keys)]
            n = coll.find_one({"_id": k})["n"]
            wins[w] += coll.replace_one({"_id": k, "n": n}, {"n": n + 1}).matched_count

    threads = [
        threading.Thread(target=bulk_writer, args=(0,)),
        threading.Thread(target=bulk_writer, args=(1,)),
        threading.Thread(target=single_writer, args=(2,)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        assert not any(t.is_alive() for t in threads)
    finally:
        for c in opened:
            c.close()
    total = sum(d["n"] for d in collection.find({"_id": {"$in": keys}}))
    assert total == sum(wins), wins
    assert wins[0] and wins[1]  # both bulk writers won some swaps
