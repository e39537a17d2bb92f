"""The mapping document <-> rows: lossless through the real MariaDB, precise rejections."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lazyshift.core import document
from lazyshift.core.document import InvalidDocument
from lazyshift.core.guarded_write import apply_batch
from lazyshift.core.mapping import Rows, document_to_rows, rows_to_document, stored_form
from lazyshift.core.mysql import read_snapshot
from lazyshift.core.mysql_store import iter_documents, load_documents
from strategies import canonical_documents
from strategies import sample_document as sample_doc

DB_EXAMPLES = hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def write_and_load(conn, docs):
    cur = conn.cursor()
    cur.execute("DELETE FROM shipment")
    apply_batch(cur, docs)
    conn.commit()
    with read_snapshot(conn):
        loaded = load_documents(cur, [d["key"] for d in docs])
    cur.close()
    return loaded


# -- pure round trip ---------------------------------------------------------------------------


@hsettings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(canonical_documents())
def test_pure_round_trip(doc):
    rows = document_to_rows(doc)
    back = rows_to_document(rows)
    assert back == doc
    assert stored_form(doc) == doc
    assert document.checksum(stored_form(back)) == document.checksum(stored_form(doc))


def test_document_to_rows_shape():
    rows = document_to_rows(sample_doc())
    assert rows.key == "legacy:A-1" and rows.version == 1
    assert rows.root["price_amount"] == "19.99" and rows.root["cost_amount"] is None
    assert [p["role"] for p in rows.parties] == ["recipient"]
    assert rows.parties[0]["has_address"] == 1
    assert [i["position"] for i in rows.items] == [0, 1, 2, 3, 4]
    assert rows.root["created_at"] == datetime(2024, 5, 1, 10, 0, 0, 1000)  # naive UTC


def test_party_without_address_and_null_party():
    doc = sample_doc(
        sender={
            "name": "X",
            "first_name": None,
            "last_name": None,
            "email": None,
            "phone": None,
            "address": None,
        }
    )
    rows = document_to_rows(doc)
    sender = next(p for p in rows.parties if p["role"] == "sender")
    assert sender["has_address"] == 0 and sender["street"] is None
    assert rows_to_document(rows) == doc
    doc2 = sample_doc(recipient=None)
    assert document_to_rows(doc2).parties == []


def test_aware_non_utc_and_naive_datetimes_come_back_as_utc():
    cet = timezone(timedelta(hours=1))
    doc = sample_doc(
        created_at=datetime(2024, 1, 1, 1, 0, tzinfo=cet), updated_at=datetime(2024, 1, 1, 0, 0)
    )
    back = rows_to_document(document_to_rows(doc))
    assert back["created_at"] == datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
    assert back["created_at"].tzinfo is UTC and back["updated_at"].tzinfo is UTC
    assert back["updated_at"] == datetime(2024, 1, 1, tzinfo=UTC)


# -- round trip through the real database ------------------------------------------------------


@DB_EXAMPLES
@given(docs=st.lists(canonical_documents(), min_size=1, max_size=3, unique_by=lambda d: d["key"]))
def test_db_round_trip(conn, docs):
    loaded = write_and_load(conn, docs)
    assert set(loaded) == {d["key"] for d in docs}
    for doc in docs:
        assert loaded[doc["key"]] == doc
        # what the DB changes (-0.0, ints in DOUBLE fields) is exactly what stored_form() does
        assert document.checksum(loaded[doc["key"]]) == document.checksum(stored_form(doc))


def test_db_round_trip_extremes(conn):
    doc = sample_doc(
        created_at=datetime(1000, 1, 1, tzinfo=UTC),
        updated_at=datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        price={"amount": "99999999999999.999999", "currency": "USD"},
        cost={"amount": "-0.000001", "currency": "USD"},
        tracking_number="😀" * 64,
        extra={
            "big": 2**64 - 1,
            "small": -(2**63),
            "f": 5e-324,
            "nul": "a\x00b",
            "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
        },
    )
    doc["recipient"]["address"].update(lat=1.7976931348623157e308, lon=-5e-324)
    doc["items"] = [
        dict(doc["items"][0], description="ü" * 1024, quantity=2**31 - 1) for _ in range(60)
    ]
    loaded = write_and_load(conn, [doc])
    assert loaded[doc["key"]] == doc


def test_negative_zero_and_int_doubles_are_normalised(conn):
    doc = sample_doc()
    doc["recipient"]["address"].update(lat=-0.0, lon=7)
    doc["items"][0]["weight_kg"] = 3
    back = write_and_load(conn, [doc])[doc["key"]]
    assert back == doc
    assert back["recipient"]["address"]["lon"] == 7.0
    assert isinstance(back["recipient"]["address"]["lon"], float)
    assert math.copysign(1.0, back["recipient"]["address"]["lat"]) == 1.0
    assert document.checksum(back) == document.checksum(stored_form(doc))


@DB_EXAMPLES
@given(
    docs=st.lists(
        canonical_documents(max_items=2, max_events=2),
        min_size=1,
        max_size=12,
        unique_by=lambda d: d["key"],
    ),
    page=st.integers(1, 5),
)
def test_iter_documents_in_mongodb_binary_key_order(conn, docs, page):
    write_and_load(conn, docs)
    cur = conn.cursor()
    with read_snapshot(conn):
        got = list(iter_documents(cur, batch_size=page))
        expected_keys = sorted(d["key"] for d in docs)  # code point = UTF-8 byte order
        assert [d["key"] for d in got] == expected_keys
        by_key = {d["key"]: d for d in docs}
        assert all(d == by_key[d["key"]] for d in got)
        # bounded and resumable: (after, upper] with a limit
        if len(expected_keys) >= 3:
            lo, hi = expected_keys[0], expected_keys[-1]
            got = [d["key"] for d in iter_documents(cur, lo, 2, upper_key=hi, batch_size=page)]
            assert got == expected_keys[1:3]
    cur.close()


def test_load_documents_missing_keys_and_batching(conn):
    docs = [sample_doc(_id=f"k:{i}", key=f"k:{i}") for i in range(7)]
    write_and_load(conn, docs)
    cur = conn.cursor()
    loaded = load_documents(cur, [f"k:{i}" for i in range(9)] + ["k:1"], batch_size=2)
    assert sorted(loaded) == [f"k:{i}" for i in range(7)]
    assert loaded["k:3"] == docs[3]
    dict_cur = conn.cursor(dictionary=True)
    assert load_documents(dict_cur, ["k:5"])["k:5"] == docs[5]


def test_bulk_load_uses_one_query_per_table(conn, mysql_root):
    docs = [sample_doc(_id=f"k:{i}", key=f"k:{i}") for i in range(50)]
    write_and_load(conn, docs)
    cur = conn.cursor()
    cur.execute("SHOW SESSION STATUS LIKE 'Com_select'")
    before = int(cur.fetchall()[0][1])
    load_documents(cur, [d["key"] for d in docs])
    cur.execute("SHOW SESSION STATUS LIKE 'Com_select'")
    after = int(cur.fetchall()[0][1])
    assert after - before == 4  # one SELECT per table for all 50 documents


def test_rows_from_database_types():
    """rows_to_document accepts what the driver returns (Decimal, naive datetime, 0/1)."""
    from decimal import Decimal

    rows = document_to_rows(sample_doc())
    root = dict(rows.root, price_amount=Decimal("19.990000"))
    parties = [dict(p, has_address=1) for p in rows.parties]
    items = [dict(i, value_amount=Decimal("10.500000")) for i in reversed(rows.items)]
    doc = rows_to_document(Rows(root=root, parties=parties, items=items, events=rows.events))
    assert doc == sample_doc()


# -- rejections: each with the field path and a precise reason ---------------------------------


def rejected(doc) -> str:
    with pytest.raises(InvalidDocument) as info:
        document_to_rows(doc)
    return info.value.reason


def with_item(field: str, value, position: int = 3):
    doc = sample_doc()
    doc["items"][position] = dict(doc["items"][position], **{field: value})
    return doc


def test_reject_amount_integer_digits():
    doc = with_item("value", {"amount": "123456789012345", "currency": "EUR"})
    assert rejected(doc) == "items/3/value/amount: 15 integer digits exceed DECIMAL(20,6)"


def test_reject_amount_fraction_digits():
    doc = sample_doc(price={"amount": "1.1234567", "currency": "EUR"})
    assert rejected(doc) == "price/amount: 7 fraction digits exceed DECIMAL(20,6)"


def test_reject_amount_not_canonical():
    doc = sample_doc(cost={"amount": "1.5\n", "currency": "EUR"})
    assert rejected(doc).startswith("cost/amount: '1.5\\n' is not a canonical decimal string")


def test_reject_year_before_1000():
    doc = sample_doc(created_at=datetime(999, 12, 31, 23, 59, tzinfo=UTC))
    assert rejected(doc) == "created_at: year 0999 before DATETIME's 1000"


def test_reject_year_before_1000_after_utc_conversion():
    doc = sample_doc()
    doc["events"][0]["time"] = datetime(1000, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert rejected(doc) == "events/0/time: year 0999 before DATETIME's 1000"


def test_reject_datetime_beyond_9999_in_utc():
    doc = sample_doc(updated_at=datetime(9999, 12, 31, 23, 0, tzinfo=timezone(-timedelta(hours=2))))
    assert "updated_at:" in rejected(doc) and "outside DATETIME's years" in rejected(doc)


def test_reject_extra_datetime():
    doc = sample_doc(extra={"foo": datetime(2024, 1, 1, tzinfo=UTC)})
    assert rejected(doc) == "extra/foo: value of type datetime is not JSON"


@pytest.mark.parametrize(
    "value, reason",
    [
        (float("nan"), "extra/x/0: non-finite float nan is not JSON"),
        (2**64, f"extra/x/0: integer {2**64} is outside the 64-bit range a JSON column keeps"),
        ((1, 2), "extra/x/0: value of type tuple is not JSON"),
        (b"raw", "extra/x/0: value of type bytes is not JSON"),
        ({1: "a"}, "extra/x/0: key 1 of type int is not a JSON key"),
    ],
)
def test_reject_extra_not_json(value, reason):
    assert rejected(sample_doc(extra={"x": [value]})) == reason


def test_reject_extra_too_deep():
    deep: list = []
    for _ in range(30):
        deep = [deep]
    assert rejected(sample_doc(extra={"d": deep})).endswith(
        "nested deeper than 31 levels (MariaDB's JSON limit)"
    )
    shallower = deep[0]
    document_to_rows(sample_doc(extra={"d": shallower}))  # 31 levels is fine


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_reject_non_finite_double(value):
    assert rejected(with_item("weight_kg", value, 0)).startswith(
        f"items/0/weight_kg: non-finite float {value!r}"
    )
    doc = sample_doc()
    doc["recipient"]["address"]["lat"] = value
    assert rejected(doc).startswith("recipient/address/lat: non-finite float")


def test_reject_integer_not_exact_as_double():
    assert rejected(with_item("weight_kg", 2**53 + 1, 1)) == (
        f"items/1/weight_kg: integer {2**53 + 1} is not exactly representable as DOUBLE"
    )


def test_reject_string_over_column_length_in_characters():
    assert rejected(sample_doc(tracking_number="😀" * 65)) == (
        "tracking_number: 65 characters exceed VARCHAR(64)"
    )
    doc = sample_doc()
    doc["recipient"]["address"]["city"] = "x" * 129
    assert rejected(doc) == "recipient/address/city: 129 characters exceed VARCHAR(128)"
    doc = sample_doc()
    doc["events"][0]["note"] = "n" * 1025
    assert rejected(doc) == "events/0/note: 1025 characters exceed VARCHAR(1024)"
    # exactly at the limit in astral characters is fine (characters, not bytes)
    document_to_rows(sample_doc(tracking_number="😀" * 64))


def test_reject_currency_with_trailing_newline():
    # The schema's `$` lets "EUR\n" through; CHAR(3) could not hold it.
    doc = sample_doc(price={"amount": "1", "currency": "EUR\n"})
    assert rejected(doc) == "price/currency: 4 characters exceed CHAR(3)"


def test_reject_lone_surrogate():
    doc = sample_doc()
    doc["recipient"]["first_name"] = "A\ud800"
    assert rejected(doc) == (
        "recipient/first_name: lone surrogate U+D800 at character 1 cannot be stored as utf8mb4"
    )


def test_reject_key_with_control_character():
    doc = sample_doc(_id="legacy:a\x01", key="legacy:a\x01")
    assert rejected(doc).startswith("key: control character U+0001")


def test_schema_errors_still_reported():
    doc = sample_doc()
    del doc["status"]
    assert "status" in rejected(doc)
    assert rejected(sample_doc(_id="legacy:B")) == "_id: must equal key"
    bad = copy.deepcopy(sample_doc())
    bad["items"][0]["quantity"] = -1
    assert rejected(bad).startswith("items/0/quantity:")
