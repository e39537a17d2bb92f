"""The mapping's fast acceptance path never accepts what the full check rejects.

`mapping.plainly_valid` lets `document_to_rows` skip the schema + capacity check for plainly
valid documents (the backfill's hot path). Whatever it accepts, `mapping.check` must accept:
this is tested on valid documents and on documents broken in every way the contract names.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyshift.core import mapping
from lazyshift.core.document import InvalidDocument
from strategies import canonical_documents, sample_document


def _accepted_by_check(doc: Any) -> bool:
    try:
        mapping.check(doc)
    except InvalidDocument:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(canonical_documents())
def test_what_it_accepts_the_check_accepts(doc) -> None:
    if mapping.plainly_valid(doc):
        assert _accepted_by_check(doc)


def test_a_plain_document_takes_the_fast_path() -> None:
    doc = sample_document()
    assert mapping.plainly_valid(doc)
    doc["key"] = doc["_id"] = "zebra-post:0000014é"  # non-ASCII keys are plain too
    doc["recipient"]["address"]["city"] = "Köln"
    assert mapping.plainly_valid(doc)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], bool]:
    """A mutation setting `path` (a/b/0/c) to `value`; False if the path is not there."""

    def apply(doc: dict[str, Any]) -> bool:
        *parents, last = path.split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.get(part)
            if node is None or (isinstance(node, list) and not node):
                return False
        if isinstance(node, list):
            if not node:
                return False
            node[int(last)] = value
        else:
            node[last] = value
        return True

    return apply


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


PLUS_ONE = timezone(timedelta(hours=1))
BROKEN: dict[str, Callable[[dict[str, Any]], bool]] = {
    "key with a control character": _set("key", "legacy:a\x01b"),
    "key with a space": _set("key", "legacy:a b"),
    "key with a trailing newline": _set("key", "legacy:ab\n"),
    "key with a lone surrogate": _set("key", "legacy:a\ud800"),
    "key too long": _set("key", "legacy:" + "k" * 90),
    "key without a prefix": _set("key", "nokey"),
    "_id not the key": _set("_id", "legacy:other"),
    "_id of another type": _set("_id", 12),
    "source upper case": _set("source", "Legacy"),
    "status unknown": _set("status", "lost"),
    "tracking number too long": _set("tracking_number", "t" * 65),
    "service level with a surrogate": _set("service_level", "x\udc80"),
    "service level not text": _set("service_level", 5),
    "amount -0": _set("price", {"amount": "-0", "currency": "EUR"}),
    "amount with a trailing zero": _set("price", {"amount": "1.50", "currency": "EUR"}),
    "amount with an exponent": _set("price", {"amount": "1e5", "currency": "EUR"}),
    "amount with 15 digits": _set("price", {"amount": "1" * 15, "currency": "EUR"}),
    "amount with 7 decimals": _set("cost", {"amount": "0.0000001", "currency": "EUR"}),
    "amount as a number": _set("cost", {"amount": 1.5, "currency": "EUR"}),
    "currency lower case": _set("cost", {"amount": "1", "currency": "eur"}),
    "money with an extra field": _set("cost", {"amount": "1", "currency": "EUR", "x": 1}),
    "created before year 1000 in UTC": _set("created_at", datetime(1000, 1, 1, tzinfo=PLUS_ONE)),
    "updated in year 999": _set("updated_at", datetime(999, 12, 31, tzinfo=UTC)),
    "event time in year 999": _set("events/0/time", datetime(999, 1, 1, tzinfo=UTC)),
    "event status null": _set("events/0/status", None),
    "event note too long": _set("events/0/note", "n" * 1025),
    "event with an extra field": _set("events/0", {"time": None}),
    "version 0": _set("version", 0),
    "version a bool": _set("version", True),
    "source_seq negative": _set("source_seq", -1),
    "source_rev beyond int64": _set("source_rev", 2**63),
    "quantity beyond INT": _set("items/0/quantity", 2**31),
    "quantity negative": _set("items/0/quantity", -1),
    "weight NaN": _set("items/0/weight_kg", float("nan")),
    "weight infinite": _set("items/0/weight_kg", float("inf")),
    "weight an inexact integer": _set("items/0/weight_kg", 2**53 + 1),
    "weight a bool": _set("items/0/weight_kg", True),
    "sku too long": _set("items/0/sku", "s" * 65),
    "item value -0": _set("items/0/value", {"amount": "-0", "currency": "EUR"}),
    "latitude NaN": _set("recipient/address/lat", float("nan")),
    "city too long": _set("recipient/address/city", "c" * 129),
    "address with an extra field": _set("recipient/address/x", 1),
    "party with an extra field": _set("recipient/x", 1),
    "party name too long": _set("recipient/name", "n" * 256),
    "party a list": _set("sender", []),
    "items not a list": _set("items", {}),
    "extra not an object": _set("extra", []),
    "extra with a datetime": _set("extra", {"t": datetime(2024, 1, 1, tzinfo=UTC)}),
    "extra nested too deep": _set("extra", _nest(40)),
    "extra with an int beyond 64 bits": _set("extra", {"n": 2**64}),
    "extra with NaN": _set("extra", {"n": float("nan")}),
    "extra with a surrogate key": _set("extra", {"\ud800": 1}),
    "unknown field": _set("sneaky", 1),
}


@pytest.mark.parametrize(
    "unusual", [{"version": 1.0}, {"created_at": "2024-01-01T00:00:00.000Z"}, {"key": "l:\u200d"}]
)
def test_unusual_documents_go_to_the_check(unusual) -> None:
    """Accepted by the schema (integer 1.0, a JSON-form datetime, a format character), but
    not plain: the full check decides."""
    doc = sample_document(**unusual)
    if "key" in unusual:
        doc["_id"] = unusual["key"]
    assert not mapping.plainly_valid(doc)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_it_refuses_every_broken_document(name) -> None:
    doc = copy.deepcopy(sample_document())
    assert BROKEN[name](doc)
    assert not _accepted_by_check(doc), name  # the case really is invalid
    assert not mapping.plainly_valid(doc)
    with pytest.raises(InvalidDocument):
        mapping.document_to_rows(doc)


@settings(max_examples=150, deadline=None)
@given(canonical_documents(), st.sampled_from(sorted(BROKEN)))
def test_broken_generated_documents_never_take_the_fast_path(doc, name) -> None:
    if not BROKEN[name](doc):
        return  # the path is not in this document (no items, no recipient address, ...)
    if mapping.plainly_valid(doc):
        assert _accepted_by_check(doc), name


_JSON_ANY = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),  # beyond 64 bits too
        st.floats(),  # NaN and infinities too
        st.text(max_size=8),
        st.text(alphabet=st.characters(codec="ascii"), max_size=8),
        st.datetimes(),
        st.binary(max_size=4),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), children, max_size=3),
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(_JSON_ANY)
def test_extra_the_fast_path_accepts_the_check_accepts(extra) -> None:
    if mapping._json_ok(extra):
        assert mapping._check_json("extra", extra) is None


@pytest.mark.parametrize("levels", [30, 31, 32])
def test_extra_nesting_at_the_limit(levels) -> None:
    """MariaDB refuses 32 levels: both judges draw the line at the same depth."""
    assert mapping._json_ok(_nest(levels)) == (mapping._check_json("extra", _nest(levels)) is None)
    assert mapping._json_ok(_nest(levels)) == (levels <= mapping.JSON_MAX_DEPTH)
