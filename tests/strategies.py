"""Hypothesis strategies for canonical shipment documents (native form), for every test.

`canonical_documents()` covers the whole contract: unicode including astral characters,
nulls everywhere the schema allows them, empty and long arrays, DOUBLE extremes, DECIMAL(20,6)
extremes, datetimes from 1000-01-01 to 9999-12-31 with millisecond precision, and arbitrary
JSON in `extra`. Every generated document passes `document.validate` and the MySQL mapping.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from lazyshift.core.document import canonical_decimal

STATUSES = [
    None,
    "created",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivered",
    "exception",
    "returned",
]

MAX_AMOUNT = Decimal("99999999999999.999999")
AMOUNT_EDGES = [
    "0",
    "99999999999999.999999",
    "-99999999999999.999999",
    "0.000001",
    "-0.000001",
    "99999999999999",
    "-1",
    "0.1",
]
DOUBLE_EDGES = [
    0.0,
    -0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    0.1,
    1 / 3,
]

# Any code point except surrogates (which UTF-8 cannot hold); astral characters included.
any_char = st.characters(exclude_categories=("Cs",))
# Characters allowed after the ':' of a key: not whitespace, not a control character.
key_char = st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")).filter(
    lambda c: not c.isspace()
)


def text(max_size: int) -> st.SearchStrategy[str]:
    """Short strings usually, sometimes exactly at the column's limit."""
    return st.one_of(
        st.text(any_char, max_size=min(max_size, 20)),
        st.text(any_char, min_size=max_size, max_size=max_size),
        st.just("😀" * max_size),
    )


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def keys(draw: st.DrawFn) -> str:
    prefix = draw(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True))
    rest = draw(st.text(key_char, min_size=1, max_size=min(24, 95 - len(prefix))))
    return f"{prefix}:{rest}"


def amounts() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(AMOUNT_EDGES),
        st.decimals(
            min_value=-MAX_AMOUNT,
            max_value=MAX_AMOUNT,
            places=6,
            allow_nan=False,
            allow_infinity=False,
        ).map(canonical_decimal),
        st.integers(-(10**6), 10**6).map(str),
    )


def money() -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {
            "amount": amounts(),
            "currency": st.from_regex(r"[A-Z]{3}", fullmatch=True),
        }
    )


def doubles() -> st.SearchStrategy[float | int]:
    return st.one_of(
        st.sampled_from(DOUBLE_EDGES),
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**53), 2**53),  # JSON "number" allows integers
    )


def datetimes() -> st.SearchStrategy[datetime]:
    return st.one_of(
        st.sampled_from([datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999000)]),
        st.datetimes(
            min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)
        ),
    ).map(lambda dt: dt.replace(microsecond=dt.microsecond // 1000 * 1000, tzinfo=UTC))


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(any_char, max_size=20),
    )
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(any_char, max_size=10), children, max_size=4),
        ),
        max_leaves=12,
    )


def addresses() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "street": nullable(text(255)),
            "city": nullable(text(128)),
            "postal_code": nullable(text(32)),
            "country": nullable(text(64)),
            "lat": nullable(doubles()),
            "lon": nullable(doubles()),
        }
    )


def parties() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "name": nullable(text(255)),
            "first_name": nullable(text(128)),
            "last_name": nullable(text(128)),
            "email": nullable(text(255)),
            "phone": nullable(text(64)),
            "address": nullable(addresses()),
        }
    )


def items() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "sku": nullable(text(64)),
            "description": nullable(text(1024)),
            "quantity": st.integers(0, 2**31 - 1),
            "weight_kg": nullable(doubles()),
            "value": nullable(money()),
        }
    )


def events() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "time": datetimes(),
            "status": text(64),
            "location": nullable(text(255)),
            "note": nullable(text(1024)),
        }
    )


def array(strategy: st.SearchStrategy[Any], max_long: int) -> st.SearchStrategy[list[Any]]:
    """Usually short, sometimes empty, sometimes long (up to `max_long`)."""
    return st.one_of(
        st.lists(strategy, max_size=3),
        st.lists(strategy, min_size=max_long // 2, max_size=max_long),
    )


@st.composite
def canonical_documents(
    draw: st.DrawFn,
    *,
    key: st.SearchStrategy[str] | None = None,
    version: st.SearchStrategy[int] | None = None,
    max_items: int = 60,
    max_events: int = 60,
) -> dict[str, Any]:
    """A valid canonical shipment document in native form."""
    k = draw(key if key is not None else keys())
    return {
        "_id": k,
        "key": k,
        "source": draw(st.from_regex(r"[a-z][a-z0-9_-]{0,31}", fullmatch=True)),
        "tracking_number": draw(nullable(text(64))),
        "status": draw(st.sampled_from(STATUSES)),
        "service_level": draw(nullable(text(32))),
        "sender": draw(nullable(parties())),
        "recipient": draw(nullable(parties())),
        "items": draw(array(items(), max_items)),
        "events": draw(array(events(), max_events)),
        "price": draw(nullable(money())),
        "cost": draw(nullable(money())),
        "created_at": draw(datetimes()),
        "updated_at": draw(datetimes()),
        "source_seq": draw(st.integers(0, 2**63 - 1)),
        "source_rev": draw(st.integers(0, 2**63 - 1)),
        "version": draw(version if version is not None else st.integers(1, 2**63 - 1)),
        "extra": draw(st.dictionaries(st.text(any_char, max_size=12), json_values(), max_size=5)),
    }


def sample_document(**overrides: Any) -> dict[str, Any]:
    """One fixed, valid document (a legacy shipment); `overrides` replace top-level fields."""
    doc = {
        "_id": "legacy:A-1",
        "key": "legacy:A-1",
        "source": "legacy",
        "tracking_number": "TN1",
        "status": "in_transit",
        "service_level": "express",
        "sender": None,
        "recipient": {
            "name": None,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "phone": None,
            "address": {
                "street": "1 Main St",
                "city": "London",
                "postal_code": None,
                "country": "GB",
                "lat": 51.5,
                "lon": -0.12,
            },
        },
        "items": [
            {
                "sku": f"S{i}",
                "description": None,
                "quantity": i,
                "weight_kg": 1.25,
                "value": {"amount": "10.5", "currency": "EUR"},
            }
            for i in range(5)
        ],
        "events": [
            {
                "time": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
                "status": "picked_up",
                "location": "Paris",
                "note": None,
            }
        ],
        "price": {"amount": "19.99", "currency": "EUR"},
        "cost": None,
        "created_at": datetime(2024, 5, 1, 10, 0, 0, 1000, tzinfo=UTC),
        "updated_at": datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        "source_seq": 42,
        "source_rev": 3,
        "version": 1,
        "extra": {"legacyPrice": 19.99, "nested": {"a": [1, "two", None, True]}},
    }
    doc.update(overrides)
    return doc
