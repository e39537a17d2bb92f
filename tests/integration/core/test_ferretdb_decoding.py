"""The FerretDB build's patch decodes stored documents without a json.Decoder per value, and
takes a JSON string literal that needs no unescaping as it is (tools/bootstrap/ferretdb.sh,
fix 4). Every path that reads stored documents must still return exactly what was written:
a scan, an `_id` lookup, an `_id` list, a projection, a ranged sorted read, and the document a
replace or update read and rewrote.

The values are chosen around the fast path's edges: strings that need unescaping (quotes,
backslashes, control characters, characters encoding/json escapes such as `<>&` and U+2028),
multi-byte UTF-8, and every other BSON type the sjson format stores.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bson import Int64, ObjectId

STRINGS = [
    "",
    "plain ascii",
    'a "quoted" word',
    "back\\slash",
    "line\nbreak\ttab\rreturn",
    "\x01\x1f control",
    "<script>&amp;</script>",
    "line\u2028separator\u2029paragraph",
    "é ü ß",
    "日本語",
    "emoji 😀",
    "\ufffd replacement char",
    'mixed "é\\😀"\n',
]


def _document(i: int) -> dict:
    s = STRINGS[i % len(STRINGS)]
    return {
        "_id": f"dec-{i:03d}",
        "s": s,
        "keys": {s or "empty-is-not-a-key": s, "é": i},
        "int32": i,
        "int64": Int64(2**40 + i),
        "double": i + 0.25,
        "neg": -1e300,
        "bool": i % 2 == 0,
        "none": None,
        "when": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "oid": ObjectId("65a1b2c3d4e5f60718293a4b"),
        "bin": bytes(range(i % 7 + 1)),  # pymongo reads subtype 0 back as bytes
        "list": [s, i, {"deep": s, "inner": [s, i]}, {}],  # no array in an array (FerretDB)
        "none_list": [],
        "empty": {},
        "version": 1,
    }


DOCS = [_document(i) for i in range(len(STRINGS) * 2)]


@pytest.fixture
def stored(collection):
    collection.insert_many([dict(d) for d in DOCS])
    return collection


def test_a_scan_returns_every_document_exactly(stored) -> None:
    got = {d["_id"]: d for d in stored.find({})}
    assert got == {d["_id"]: d for d in DOCS}


def test_lookups_lists_projections_and_ranges_return_exactly_what_was_written(stored) -> None:
    for d in DOCS:
        assert stored.find_one({"_id": d["_id"]}) == d
    keys = [d["_id"] for d in DOCS[::3]]
    assert {d["_id"]: d for d in stored.find({"_id": {"$in": keys}})} == {
        d["_id"]: d for d in DOCS[::3]
    }
    projected = list(stored.find({"_id": {"$gte": "dec-"}}, {"s": 1, "list": 1}).sort("_id", 1))
    assert projected == [{"_id": d["_id"], "s": d["s"], "list": d["list"]} for d in DOCS]
    assert [d["s"] for d in stored.find({"s": {"$in": STRINGS}}).sort("_id", 1)] == [
        d["s"] for d in DOCS
    ]


def test_a_replace_and_an_update_rewrite_exactly_what_they_read(stored) -> None:
    for d in DOCS:
        new = {**d, "version": 2}
        del new["_id"]
        assert stored.replace_one({"_id": d["_id"], "version": 1}, new).matched_count == 1
    assert stored.update_many({}, {"$inc": {"version": 1}}).modified_count == len(DOCS)
    assert {d["_id"]: d for d in stored.find({})} == {d["_id"]: {**d, "version": 3} for d in DOCS}
