"""The FerretDB build's patch (tools/bootstrap/ferretdb.sh): a string `_id` range sorted on
`_id` is answered by SQLite from its `_id` text index, and gives exactly MongoDB's answer.

The expected answers are computed here from MongoDB's rules (only strings match a string
bound; strings compare byte by byte in UTF-8), over `_id`s chosen where SQLite's JSON text
would order differently from the string itself (a closing quote sorts after ' ' and '!',
escapes) and non-string `_id`s that such a filter must never return.
"""

from __future__ import annotations

import threading

import pymongo
import pytest
from bson import ObjectId

STRING_IDS = [
    "a",
    "a ",
    "a!",
    'a"',
    "a\\",
    "a#",
    "ab",
    "b",
    "b<>&",
    "k-0001",
    "k-0002",
    "k-0010",
    "k-0100",
    "z",
    "~",
    "é",
    "日本",
    "😀",
    "",
]
OTHER_IDS = [1, 2.5, ObjectId(), {"k": "a"}, True]


def _b(s: str) -> bytes:
    return s.encode("utf-8")


def _expected(cond: dict[str, str], descending: bool = False) -> list[str]:
    ops = {
        "$gt": lambda a, b: a > b,
        "$gte": lambda a, b: a >= b,
        "$lt": lambda a, b: a < b,
        "$lte": lambda a, b: a <= b,
        "$eq": lambda a, b: a == b,
    }
    hits = [s for s in STRING_IDS if all(ops[op](_b(s), _b(bound)) for op, bound in cond.items())]
    return sorted(hits, key=_b, reverse=descending)


@pytest.fixture
def ids_collection(collection):
    collection.insert_many([{"_id": i, "n": n} for n, i in enumerate(STRING_IDS + OTHER_IDS)])
    return collection


CONDITIONS = [
    {"$gte": ""},
    {"$gt": "a"},
    {"$gt": "a", "$lte": "b"},
    {"$gte": "a ", "$lt": "a#"},
    {"$gt": "k-0001", "$lte": "k-0100"},
    {"$lt": "k"},
    {"$gte": "z"},
    {"$eq": "ab"},
    {"$gt": "b<>&", "$lt": "😀"},
]


@pytest.mark.parametrize("cond", CONDITIONS, ids=lambda c: repr(c))
@pytest.mark.parametrize("direction", [1, -1])
def test_ranged_sorted_find_equals_mongodb_semantics(ids_collection, cond, direction) -> None:
    got = [d["_id"] for d in ids_collection.find({"_id": cond}).sort("_id", direction)]
    assert got == _expected(cond, descending=direction == -1)


def test_batches_and_other_fields_in_the_filter(ids_collection) -> None:
    cond = {"$gte": ""}
    got = [d["_id"] for d in ids_collection.find({"_id": cond}).sort("_id", 1).batch_size(3)]
    assert got == _expected(cond)
    # a second condition is still applied (by the handler) on top of the pushed-down range
    odd = [
        d["_id"] for d in ids_collection.find({"_id": cond, "n": {"$mod": [2, 1]}}).sort("_id", 1)
    ]
    want = [s for s in _expected(cond) if STRING_IDS.index(s) % 2 == 1]
    assert odd == want


def test_explain_shows_the_index_is_used(ids_collection) -> None:
    db = ids_collection.database
    plan = db.command(
        "explain",
        {
            "find": ids_collection.name,
            "filter": {"_id": {"$gt": "a", "$lte": "k"}},
            "sort": {"_id": 1},
        },
    )
    assert plan["filterPushdown"] is True
    assert plan["sortPushdown"] is True
    text = " ".join(plan["queryPlanner"]["Plan"])
    assert "USING INDEX" in text and "lazyshift_id_text" in text, text
    assert "TEMP B-TREE" not in text, text  # no sort of its own: the index is the order


def test_what_is_not_a_string_range_is_not_pushed_down(ids_collection) -> None:
    db = ids_collection.database
    # a sort on _id without a string bound would mix types: sorted by the handler, correctly
    plan = db.command("explain", {"find": ids_collection.name, "filter": {}, "sort": {"_id": 1}})
    assert plan["sortPushdown"] is False
    every = [d["_id"] for d in ids_collection.find({}).sort("_id", 1)]
    assert [i for i in every if isinstance(i, str)] == _expected({"$gte": ""})
    assert isinstance(every[0], int | float)  # numbers sort before strings in MongoDB
    numeric = [d["_id"] for d in ids_collection.find({"_id": {"$gt": 0}}).sort("_id", 1)]
    assert numeric == [1, 2.5]


def test_exact_id_lookup_still_uses_the_unique_index(ids_collection) -> None:
    db = ids_collection.database
    plan = db.command("explain", {"find": ids_collection.name, "filter": {"_id": "k-0002"}})
    assert plan["filterPushdown"] is True
    assert "USING INDEX" in " ".join(plan["queryPlanner"]["Plan"])
    assert ids_collection.find_one({"_id": "k-0002"})["n"] == STRING_IDS.index("k-0002")


@pytest.mark.parametrize(
    "flt",
    [
        {"_id": "k-0002", "n": 10},
        {"n": 10, "_id": "k-0002", "x": {"$exists": False}},
        {"_id": {"$eq": "k-0002"}},
        {"_id": {"$eq": "k-0002"}, "n": {"$gte": 0}},
    ],
    ids=repr,
)
def test_an_exact_id_beside_other_conditions_uses_the_unique_index(ids_collection, flt) -> None:
    """A compare-and-swap `{_id: k, version: n}` is one indexed lookup, not a scan."""
    db = ids_collection.database
    plan = db.command("explain", {"find": ids_collection.name, "filter": flt})
    assert plan["filterPushdown"] is True, plan
    text = " ".join(plan["queryPlanner"]["Plan"])
    assert "USING INDEX" in text and "lazyshift_id_text" not in text, text
    assert [d["_id"] for d in ids_collection.find(flt)] == ["k-0002"]
    # the other conditions are still applied: a mismatch finds nothing
    assert ids_collection.find_one({**flt, "n": 11}) is None


def test_an_exact_object_id_beside_other_conditions_uses_the_unique_index(ids_collection):
    oid = next(i for i in OTHER_IDS if isinstance(i, ObjectId))
    for flt in ({"_id": oid, "n": {"$gte": 0}}, {"_id": {"$eq": oid}, "n": {"$gte": 0}}):
        plan = ids_collection.database.command(
            "explain", {"find": ids_collection.name, "filter": flt}
        )
        assert plan["filterPushdown"] is True, plan
        assert ids_collection.find_one(flt)["_id"] == oid


def test_conditional_writes_by_id_match_exactly_what_mongodb_matches(ids_collection) -> None:
    """update/replace/findAndModify/delete with `_id` plus a condition (the pushed-down path)."""
    n = STRING_IDS.index("k-0002")
    assert ids_collection.replace_one({"_id": "k-0002", "n": n + 1}, {"n": -1}).matched_count == 0
    assert ids_collection.replace_one({"_id": "k-0002", "n": n}, {"n": -1}).matched_count == 1
    assert ids_collection.update_one({"_id": {"$eq": "k-0002"}, "n": -1}, {"$set": {"n": -2}})
    assert ids_collection.find_one_and_update({"_id": "k-0002", "n": -2}, {"$set": {"n": -3}}) == {
        "_id": "k-0002",
        "n": -2,
    }
    assert ids_collection.delete_one({"_id": "k-0002", "n": -2}).deleted_count == 0
    assert ids_collection.delete_one({"_id": "k-0002", "n": -3}).deleted_count == 1
    assert ids_collection.find_one({"_id": "k-0002"}) is None
    assert ids_collection.count_documents({}) == len(STRING_IDS + OTHER_IDS) - 1


def test_concurrent_compare_and_swaps_of_one_document_never_both_win(ids_collection) -> None:
    """FerretDB matches an update's filter and writes in two transactions: the patch holds a
    per-collection lock across both, so `{_id, n}` conditional writes are atomic as in MongoDB."""

    client = ids_collection.database.client
    coll = pymongo.MongoClient(client.address[0], client.address[1])[ids_collection.database.name][
        ids_collection.name
    ]
    ids_collection.insert_one({"_id": "counter", "n": 0})
    rounds, wins = 150, [0, 0]
    start = threading.Barrier(2)

    def bump(c, w: int) -> None:
        start.wait(timeout=60)
        for _ in range(rounds):
            cur = c.find_one({"_id": "counter"})["n"]
            wins[w] += c.replace_one({"_id": "counter", "n": cur}, {"n": cur + 1}).matched_count

    try:
        threads = [
            threading.Thread(target=bump, args=(c, w)) for w, c in enumerate((ids_collection, coll))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        assert not any(t.is_alive() for t in threads)
    finally:
        coll.database.client.close()
    assert ids_collection.find_one({"_id": "counter"})["n"] == sum(wins), wins


def test_an_id_list_uses_the_unique_index_and_finds_exactly_its_members(ids_collection) -> None:
    """`_id: {$in: [...]}` of strings/ObjectIDs (a batch's compare-and-swap reads)."""
    oid = next(i for i in OTHER_IDS if isinstance(i, ObjectId))
    members = ["k-0002", "a ", 'a"', "日本", "missing", oid]
    flt = {"_id": {"$in": members}, "n": {"$gte": 0}}
    plan = ids_collection.database.command("explain", {"find": ids_collection.name, "filter": flt})
    assert plan["filterPushdown"] is True, plan
    assert "USING INDEX" in " ".join(plan["queryPlanner"]["Plan"]), plan
    got = {d["_id"] for d in ids_collection.find(flt)}
    assert got == {"k-0002", "a ", 'a"', "日本", oid}
    # a list with another type is not pushed down, and still answered exactly
    mixed = {"_id": {"$in": ["k-0002", 1]}}
    plan = ids_collection.database.command(
        "explain", {"find": ids_collection.name, "filter": mixed}
    )
    assert plan["filterPushdown"] is False
    assert {d["_id"] for d in ids_collection.find(mixed)} == {"k-0002", 1}


def test_an_update_of_more_statements_than_sqlite_connections_completes(ids_collection) -> None:
    """One `update` command of 150 conditional replaces (a rollback's write-back batch): each
    statement's query is closed when it is done. Stock v1.24.2 kept them open until the
    command ended, and the 101st waited forever for one of the pool's 100 connections."""
    docs = [{"_id": f"many-{i:04d}", "m": 0} for i in range(150)]
    ids_collection.insert_many(docs)
    ops = [pymongo.ReplaceOne({"_id": d["_id"], "m": 0}, {"m": 1}) for d in docs]
    assert ids_collection.bulk_write(ops, ordered=False).matched_count == 150
    assert ids_collection.count_documents({"m": 1}) == 150
