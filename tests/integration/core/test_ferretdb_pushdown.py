"""The FerretDB build's patch (tools/bootstrap/ferretdb.sh): a string `_id` range sorted on
`_id` is answered by SQLite from its `_id` text index, and gives exactly MongoDB's answer.

The expected answers are computed here from MongoDB's rules (only strings match a string
bound; strings compare byte by byte in UTF-8), over `_id`s chosen where SQLite's JSON text
would order differently from the string itself (a closing quote sorts after ' ' and '!',
escapes) and non-string `_id`s that such a filter must never return.
"""

from __future__ import annotations

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
