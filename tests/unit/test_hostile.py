"""Hostile input a source can send: every case is Malformed (dead-lettered), never an escape.

Before the fix each of these either raised something other than Malformed (RecursionError,
OverflowError) or normalised into a document MongoDB or MySQL then refused at write time,
which the consumer took for a transient failure and retried forever.
"""

from __future__ import annotations

import copy
import json

import pytest
from bson import BSON
from test_normalise import ACME, LEGACY, SWIFT

from lazyshift.core.normalise import MAX_SEQ, Malformed, parse_message, recover_seq
from lazyshift.core.normalise import normalise_message as normalise


def _raw(msg: dict) -> bytes:
    return json.dumps(msg, allow_nan=True).encode()


def _outcome(raw: bytes) -> Malformed:
    with pytest.raises(Malformed) as info:
        normalise(parse_message(raw))
    return info.value


def _with(base: dict, **changes) -> dict:
    msg = copy.deepcopy(base)
    msg.update(changes)
    return msg


def test_deep_nesting_is_malformed_not_a_recursion_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    raw = _raw(LEGACY)[:-1] + b',"blob":' + deep.encode() + b"}"
    assert _outcome(raw).category == "too-deep"


def test_nesting_a_store_would_refuse_is_malformed() -> None:
    value: object = 1
    for _ in range(40):
        value = {"a": value}
    assert _outcome(_raw(_with(LEGACY, blob=value))).category == "too-deep"


@pytest.mark.parametrize(
    "created",
    [
        "0001-01-01T00:30:00+01:00",  # before year 1 in UTC: OverflowError in Python
        "9999-12-31T23:30:00-01:00",  # after year 9999 in UTC
        "0001-01-01T00:00:00.000Z",  # Python holds it; MySQL's DATETIME does not
    ],
)
def test_dates_no_store_can_hold_are_malformed(created: str) -> None:
    err = _outcome(_raw(_with(ACME, createdAt=created)))
    assert "createdAt" in err.reason or "created_at" in err.reason


def test_legacy_date_with_offset_past_year_9999_is_malformed() -> None:
    text = "Fri Dec 31 9999 23:30:00 GMT-0100 (x)"
    assert "creationDate" in _outcome(_raw(_with(LEGACY, creationDate=text))).reason


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_integers_beyond_eight_bytes_in_unknown_fields_are_malformed(value: int) -> None:
    err = _outcome(_raw(_with(SWIFT, surprise={"n": value})))
    assert err.category == "int-overflow" and "surprise.n" in err.reason


def test_eight_byte_integers_are_kept() -> None:
    doc = normalise(parse_message(_raw(_with(SWIFT, big=2**63 - 1))))
    assert doc["extra"]["big"] == 2**63 - 1
    BSON.encode(doc)


@pytest.mark.parametrize(
    ("key", "problem"),
    [("a\x00b", "NUL"), ("$where", "'$'"), ("a.b", "'.'"), ("\ud800x", "surrogate")],
)
def test_keys_mongodb_refuses_are_malformed(key: str, problem: str) -> None:
    err = _outcome(_raw(_with(LEGACY, extras={key: 1})))
    assert err.category == "bad-key" and problem in err.reason
    err.reason.encode("utf-8")  # the reason itself is storable


def test_unknown_nested_fields_are_stored_under_keys_mongodb_accepts() -> None:
    msg = _with(ACME)
    msg["shipper"]["address"]["floor"] = {"level": 3}
    doc = normalise(parse_message(_raw(msg)))
    assert doc["extra"] == {"shipper/address/floor": {"level": 3}}
    BSON.encode(doc)  # pymongo's own encoder accepts it


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_malformed(text: str) -> None:
    raw = _raw(LEGACY)[:-1] + b',"weird":' + text.encode() + b"}"
    assert _outcome(raw).category == "non-finite"


def test_non_finite_price_is_malformed() -> None:
    raw = _raw(LEGACY).replace(b'"price": 123.45', b'"price": NaN')
    assert _outcome(raw).category == "non-finite"


@pytest.mark.parametrize("where", ["value", "key"])
def test_lone_surrogates_are_malformed(where: str) -> None:
    extras = {"note": "\ud83d"} if where == "value" else {"\udfff": "x"}
    err = _outcome(_raw(_with(LEGACY, extras=extras)))
    assert "surrogate" in err.reason
    err.reason.encode("utf-8")


def test_lone_surrogate_in_a_known_field_is_malformed() -> None:
    msg = _with(LEGACY)
    msg["receiver"]["firstName"] = "Zo\udc00"
    assert "surrogate" in _outcome(_raw(msg)).reason


@pytest.mark.parametrize("seq", [MAX_SEQ + 1, 2**63, 2**64 + 5])
def test_seq_the_source_could_not_send_is_malformed_and_not_recovered(seq: int) -> None:
    raw = _raw(_with(LEGACY, seq=seq))
    assert _outcome(raw).category in ("bad-seq", "int-overflow")
    assert recover_seq(raw) is None  # the offset must not move to it


def test_seq_up_to_two_to_the_53_is_accepted() -> None:
    raw = _raw(_with(LEGACY, seq=MAX_SEQ))
    assert normalise(parse_message(raw))["source_seq"] == MAX_SEQ
    assert recover_seq(raw) == MAX_SEQ


def test_negative_rev_is_malformed() -> None:
    assert _outcome(_raw(_with(LEGACY, rev=-1))).category == "bad-seq"


def test_recover_seq_ignores_a_float_seq() -> None:
    assert recover_seq(b'{"seq":12.5,"source":"x"}') is None
    assert recover_seq(b'{"seq":1e30}') is None
