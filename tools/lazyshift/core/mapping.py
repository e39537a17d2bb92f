"""Canonical document <-> MySQL rows (shipment, shipment_party, shipment_item, shipment_event).

Lossless: `rows_to_document(document_to_rows(d)) == d` for every valid canonical document,
and the same holds through the database (DECIMAL(20,6) amounts, DATETIME(6) times, DOUBLE
numbers, the JSON `extra`). What MySQL cannot hold exactly is rejected by `document_to_rows`
with an `InvalidDocument` naming the field path; nothing is truncated.

Two value normalisations are inherent to the column types and compare equal in Python;
`stored_form(doc)` applies them so checksums can be compared too:
- an integer in a DOUBLE field (weight_kg, lat, lon) comes back as a float (52 -> 52.0),
  and -0.0 comes back as 0.0 (the server drops the sign of zero);
- a naive datetime is taken as UTC (as `document.utc_ms` does) and comes back aware.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lazyshift.core import document
from lazyshift.core.document import Document, InvalidDocument
from lazyshift.core.mysql import dump_json, parse_json

# -- the columns -------------------------------------------------------------------------------

ROOT_COLUMNS: tuple[str, ...] = (
    "shipment_key",
    "source",
    "tracking_number",
    "status",
    "service_level",
    "price_amount",
    "price_currency",
    "cost_amount",
    "cost_currency",
    "created_at",
    "updated_at",
    "source_seq",
    "source_rev",
    "version",
    "extra",
)
PARTY_COLUMNS: tuple[str, ...] = (
    "shipment_key",
    "role",
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "has_address",
    "street",
    "city",
    "postal_code",
    "country",
    "lat",
    "lon",
)
ITEM_COLUMNS: tuple[str, ...] = (
    "shipment_key",
    "position",
    "sku",
    "description",
    "quantity",
    "weight_kg",
    "value_amount",
    "value_currency",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "shipment_key",
    "position",
    "event_time",
    "status",
    "location",
    "note",
)
PARTY_ROLES: tuple[str, ...] = ("sender", "recipient")

# Character lengths of the VARCHAR/CHAR columns, by document field (see 0001_initial.sql).
ROOT_LENGTHS = {"key": 96, "source": 32, "tracking_number": 64, "status": 32, "service_level": 32}
PARTY_LENGTHS = {"name": 255, "first_name": 128, "last_name": 128, "email": 255, "phone": 64}
ADDRESS_LENGTHS = {"street": 255, "city": 128, "postal_code": 32, "country": 64}
ITEM_LENGTHS = {"sku": 64, "description": 1024}
EVENT_LENGTHS = {"status": 64, "location": 255, "note": 1024}
CURRENCY_LENGTH = 3

DECIMAL_INT_DIGITS = 14  # DECIMAL(20,6)
DECIMAL_FRAC_DIGITS = 6
DATETIME_MIN_YEAR = 1000
JSON_MAX_DEPTH = 31  # containers; MariaDB's json_valid() refuses 32 levels
JSON_INT_MIN = -(2**63)
JSON_INT_MAX = 2**64 - 1  # MySQL's JSON keeps int64 and uint64 exactly, beyond is a double
_JSON_TEXT_MAX = 2**31


@dataclass
class Rows:
    """One document as rows: the shipment row and its child rows (positions from 0)."""

    root: dict[str, Any]
    parties: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.root["shipment_key"]

    @property
    def version(self) -> int:
        return int(self.root["version"])


# -- what MySQL cannot hold exactly ------------------------------------------------------------


def _check_text(path: str, value: Any, limit: int, kind: str = "VARCHAR") -> str | None:
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"{path}: lone surrogate U+{ord(value[exc.start]):04X} at character "
            f"{exc.start} cannot be stored as utf8mb4"
        )
    if len(value) > limit:
        return f"{path}: {len(value)} characters exceed {kind}({limit})"
    return None


def _check_key(path: str, value: Any) -> str | None:
    problem = _check_text(path, value, ROOT_LENGTHS["key"])
    if problem or not isinstance(value, str):
        return problem
    for ch in value:
        if ord(ch) < 0x20:
            return (
                f"{path}: control character U+{ord(ch):04X}: utf8mb4_bin compares with "
                "space padding, so MySQL would order this key differently from MongoDB"
            )
    return None


def _check_amount(path: str, value: Any) -> str | None:
    if not isinstance(value, str | Decimal):
        return None
    try:
        dec = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None  # not a number at all: the schema's pattern names it
    if not dec.is_finite():
        return f"{path}: {value!r} is not a finite amount"
    text = format(abs(dec), "f")
    whole, _, frac = text.partition(".")
    int_digits = len(whole.lstrip("0"))
    frac_digits = len(frac.rstrip("0"))
    if int_digits > DECIMAL_INT_DIGITS:
        return f"{path}: {int_digits} integer digits exceed DECIMAL(20,6)"
    if frac_digits > DECIMAL_FRAC_DIGITS:
        return f"{path}: {frac_digits} fraction digits exceed DECIMAL(20,6)"
    canonical = document.canonical_decimal(dec)
    if isinstance(value, str) and value != canonical:
        return (
            f"{path}: {value!r} is not a canonical decimal string "
            f"(DECIMAL would give back {canonical!r})"
        )
    return None


def _check_money(path: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    return _check_amount(f"{path}/amount", value.get("amount")) or _check_text(
        f"{path}/currency", value.get("currency"), CURRENCY_LENGTH, "CHAR"
    )


def _check_datetime(path: str, value: Any) -> str | None:
    if not isinstance(value, datetime):
        return None
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value
    except OverflowError:
        return f"{path}: {value.isoformat()} is outside DATETIME's years 1000-9999 in UTC"
    if utc.year < DATETIME_MIN_YEAR:
        return f"{path}: year {utc.year:04d} before DATETIME's {DATETIME_MIN_YEAR}"
    return None


def _check_double(path: str, value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{path}: non-finite float {value!r} (DOUBLE holds finite numbers only)"
    elif isinstance(value, int):
        try:
            exact = int(float(value)) == value
        except OverflowError:
            exact = False
        if not exact:
            return f"{path}: integer {value} is not exactly representable as DOUBLE"
    return None


def _check_json_scalar(path: str, value: Any) -> str | None:
    if isinstance(value, str):
        return _check_text(path, value, _JSON_TEXT_MAX)
    if isinstance(value, int) and not JSON_INT_MIN <= value <= JSON_INT_MAX:
        return f"{path}: integer {value} is outside the 64-bit range a JSON column keeps"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{path}: non-finite float {value!r} is not JSON"
    return None


def _check_json(path: str, value: Any, depth: int = 0) -> str | None:
    if value is None or isinstance(value, bool | str | int | float):
        return _check_json_scalar(path, value) if value is not None else None
    if not isinstance(value, dict | list):
        return f"{path}: value of type {type(value).__name__} is not JSON"
    if depth + 1 > JSON_MAX_DEPTH:
        return f"{path}: nested deeper than {JSON_MAX_DEPTH} levels (MariaDB's JSON limit)"
    pairs = value.items() if isinstance(value, dict) else enumerate(value)
    for k, v in pairs:
        if isinstance(value, dict) and not isinstance(k, str):
            return f"{path}: key {k!r} of type {type(k).__name__} is not a JSON key"
        problem = (
            isinstance(k, str) and _check_text(f"{path}/{k}", k, _JSON_TEXT_MAX)
        ) or _check_json(f"{path}/{k}", v, depth + 1)
        if problem:
            return problem
    return None


def _check_fields(path: str, node: Any, lengths: dict[str, int]) -> str | None:
    if not isinstance(node, dict):
        return None
    for name, limit in lengths.items():
        problem = _check_text(f"{path}{name}", node.get(name), limit)
        if problem:
            return problem
    return None


def _dicts(node: Any) -> list[tuple[int, dict[str, Any]]]:
    """(index, element) of the dict elements of a list field; nothing if it is not a list."""
    return (
        [(i, e) for i, e in enumerate(node) if isinstance(e, dict)]
        if isinstance(node, list)
        else []
    )


def _root_problems(doc: dict[str, Any]) -> Iterator[str | None]:
    for name in ("key", "_id"):
        yield _check_key(name, doc.get(name))
    yield _check_fields(
        "",
        {k: v for k, v in doc.items() if k != "key"},
        {k: v for k, v in ROOT_LENGTHS.items() if k != "key"},
    )
    yield _check_datetime("created_at", doc.get("created_at"))
    yield _check_datetime("updated_at", doc.get("updated_at"))
    yield _check_money("price", doc.get("price"))
    yield _check_money("cost", doc.get("cost"))


def _party_problems(doc: dict[str, Any]) -> Iterator[str | None]:
    for role in PARTY_ROLES:
        party = doc.get(role)
        if not isinstance(party, dict):
            continue
        yield _check_fields(f"{role}/", party, PARTY_LENGTHS)
        address = party.get("address")
        if isinstance(address, dict):
            yield _check_fields(f"{role}/address/", address, ADDRESS_LENGTHS)
            for coord in ("lat", "lon"):
                yield _check_double(f"{role}/address/{coord}", address.get(coord))


def _child_problems(doc: dict[str, Any]) -> Iterator[str | None]:
    for i, item in _dicts(doc.get("items")):
        yield _check_fields(f"items/{i}/", item, ITEM_LENGTHS)
        yield _check_double(f"items/{i}/weight_kg", item.get("weight_kg"))
        yield _check_money(f"items/{i}/value", item.get("value"))
    for i, event in _dicts(doc.get("events")):
        yield _check_fields(f"events/{i}/", event, EVENT_LENGTHS)
        yield _check_datetime(f"events/{i}/time", event.get("time"))


def _capacity_problem(doc: Any) -> str | None:
    """The first thing in `doc` that MySQL could not hold exactly, or None.

    Tolerant of malformed documents: it only looks at fields of the expected shape, so the
    schema names everything else.
    """
    if not isinstance(doc, dict):
        return None
    for problems in (_root_problems(doc), _party_problems(doc), _child_problems(doc)):
        for problem in problems:
            if problem:
                return problem
    extra = doc.get("extra")
    return _check_json("extra", extra) if isinstance(extra, dict) else None


# -- the fast acceptance path ------------------------------------------------------------------
# `check` costs about 0.2 ms a document (JSON form, compiled schema, capacity walk): most of the
# backfill's client CPU. `plainly_valid` accepts, in one pass and with no conversion, only
# documents that are valid beyond doubt: exact field sets, exact types, ASCII or UTF-8-safe text
# within the column lengths, amounts and keys matching stricter forms of the schema's patterns,
# years well inside DATETIME's range. Anything else (unusual, not just invalid) goes through
# `check`, which stays the one judge of what is rejected and why. tests/unit/test_mapping_fast
# checks that whatever it accepts, `check` accepts too.

_KEY_RE = re.compile(r"[a-z][a-z0-9_-]*:\S+")
_SOURCE_RE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_AMOUNT_RE = re.compile(r"-?(0|[1-9][0-9]{0,13})(\.[0-9]{0,5}[1-9])?")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_STATUSES = frozenset(
    ("created", "picked_up", "in_transit", "out_for_delivery", "delivered", "exception")
    + ("returned",)
)
_PARTY_FIELDS = frozenset(("name", "first_name", "last_name", "email", "phone", "address"))
_ADDRESS_FIELDS = frozenset(("street", "city", "postal_code", "country", "lat", "lon"))
_MONEY_FIELDS = frozenset(("amount", "currency"))
_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1
_DOUBLE_EXACT = 2**53


def _text_ok(value: Any, limit: int) -> bool:
    """None, or text within `limit` characters that utf8mb4 can hold."""
    if value is None:
        return True
    if type(value) is not str or len(value) > limit:
        return False
    if value.isascii():  # O(1) in CPython
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _texts_ok(node: dict[str, Any], lengths: dict[str, int]) -> bool:
    """`_text_ok` of each field, inlined: about 30 fields a document."""
    for name, limit in lengths.items():
        value = node[name]
        if value is None:
            continue
        if type(value) is not str or len(value) > limit:
            return False
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _json_text_ok(value: str) -> bool:
    return value.isascii() and len(value) <= _JSON_TEXT_MAX


def _json_leaf_ok(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return _json_text_ok(value)
    if kind is int:
        return JSON_INT_MIN <= value <= JSON_INT_MAX
    if kind is float:
        return math.isfinite(value)
    return value is None or kind is bool


def _json_ok(value: Any, depth: int = 0) -> bool:
    """True only if `_check_json` finds nothing, in the common shapes (ASCII str keys; str,
    int, float, bool, None and nested containers); False says nothing (ask `_check_json`)."""
    if depth >= JSON_MAX_DEPTH:
        return False
    if type(value) is dict:
        if not all(type(k) is str and _json_text_ok(k) for k in value):
            return False
        values: Any = value.values()
    elif type(value) is list:
        values = value
    else:
        return False
    return all(
        _json_ok(v, depth + 1) if type(v) is dict or type(v) is list else _json_leaf_ok(v)
        for v in values
    )


def _number_ok(value: Any) -> bool:
    if value is None:
        return True
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is int and -_DOUBLE_EXACT <= value <= _DOUBLE_EXACT


def _int_ok(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _datetime_ok(value: Any) -> bool:
    # a year a day's offset cannot carry out of DATETIME's 1000-9999
    return type(value) is datetime and 1001 <= value.year <= 9998


def _money_ok(money: Any) -> bool:
    if money is None:
        return True
    if type(money) is not dict or money.keys() != _MONEY_FIELDS:
        return False
    amount, currency = money["amount"], money["currency"]
    return (
        type(amount) is str
        and amount != "-0"  # matches the pattern, but DECIMAL gives back "0"
        and _AMOUNT_RE.fullmatch(amount) is not None
        and type(currency) is str
        and _CURRENCY_RE.fullmatch(currency) is not None
    )


def _party_ok(party: Any) -> bool:
    if party is None:
        return True
    if type(party) is not dict or party.keys() != _PARTY_FIELDS:
        return False
    if not _texts_ok(party, PARTY_LENGTHS):
        return False
    address = party["address"]
    if address is None:
        return True
    return (
        type(address) is dict
        and address.keys() == _ADDRESS_FIELDS
        and _texts_ok(address, ADDRESS_LENGTHS)
        and _number_ok(address["lat"])
        and _number_ok(address["lon"])
    )


def _item_ok(item: Any) -> bool:
    return (
        type(item) is dict
        and item.keys() == _ITEM_FIELDS
        and _texts_ok(item, ITEM_LENGTHS)
        and _int_ok(item["quantity"], 0, _INT32_MAX)
        and _number_ok(item["weight_kg"])
        and _money_ok(item["value"])
    )


def _event_ok(event: Any) -> bool:
    return (
        type(event) is dict
        and event.keys() == _EVENT_FIELDS
        and type(event["status"]) is str
        and _texts_ok(event, EVENT_LENGTHS)
        and _datetime_ok(event["time"])
    )


def plainly_valid(doc: Any) -> bool:
    """True only if `check(doc)` would pass, decided without converting anything; False says
    nothing (ask `check`)."""
    if type(doc) is not dict or doc.keys() != _TOP_FIELDS:
        return False
    key = doc["key"]
    if (
        type(key) is not str
        or doc["_id"] != key
        or not 3 <= len(key) <= ROOT_LENGTHS["key"]
        or not key.isprintable()  # no control characters, no lone surrogates
        or _KEY_RE.fullmatch(key) is None
    ):
        return False
    source, status = doc["source"], doc["status"]
    if type(source) is not str or _SOURCE_RE.fullmatch(source) is None:
        return False
    if status is not None and (type(status) is not str or status not in _STATUSES):
        return False
    items, events, extra = doc["items"], doc["events"], doc["extra"]
    return (
        _text_ok(doc["tracking_number"], ROOT_LENGTHS["tracking_number"])
        and _text_ok(doc["service_level"], ROOT_LENGTHS["service_level"])
        and _int_ok(doc["source_seq"], 0, _INT64_MAX)
        and _int_ok(doc["source_rev"], 0, _INT64_MAX)
        and _int_ok(doc["version"], 1, _INT64_MAX)
        and _datetime_ok(doc["created_at"])
        and _datetime_ok(doc["updated_at"])
        and _money_ok(doc["price"])
        and _money_ok(doc["cost"])
        and _party_ok(doc["sender"])
        and _party_ok(doc["recipient"])
        and type(items) is list
        and all(_item_ok(item) for item in items)
        and type(events) is list
        and all(_event_ok(event) for event in events)
        and type(extra) is dict
        and (_json_ok(extra) or _check_json("extra", extra) is None)
    )


def check(doc: Document) -> None:
    """Raise InvalidDocument unless `doc` is valid and MySQL can hold it exactly.

    The schema is checked first; a MySQL capacity problem, being the more precise reason
    (the schema's own message for e.g. a 15-digit amount is only a pattern mismatch), is
    reported in preference to a schema error.
    """
    schema_error: InvalidDocument | None = None
    try:
        document.validate(doc)
    except InvalidDocument as exc:
        schema_error = exc
    except (OverflowError, ValueError, TypeError, AttributeError, KeyError) as exc:
        schema_error = InvalidDocument(f"(document): not a canonical document: {exc}")
    problem = _capacity_problem(doc)
    if problem:
        raise InvalidDocument(problem) from schema_error
    if schema_error is not None:
        raise schema_error


# -- document -> rows --------------------------------------------------------------------------


def _dt_out(value: datetime) -> datetime:
    """An aware (or naive = UTC) datetime as the naive UTC value a DATETIME(6) column holds."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _float_out(value: Any) -> float | None:
    return None if value is None else float(value)


def _money_out(money: dict[str, Any] | None) -> tuple[str | None, str | None]:
    if money is None:
        return None, None
    return money["amount"], money["currency"]


def document_to_rows(doc: Document) -> Rows:
    """Validate `doc` (schema + what MySQL can hold exactly) and split it into rows."""
    if not plainly_valid(doc):
        check(doc)
    key = doc["key"]
    price_amount, price_currency = _money_out(doc["price"])
    cost_amount, cost_currency = _money_out(doc["cost"])
    root = {
        "shipment_key": key,
        "source": doc["source"],
        "tracking_number": doc["tracking_number"],
        "status": doc["status"],
        "service_level": doc["service_level"],
        "price_amount": price_amount,
        "price_currency": price_currency,
        "cost_amount": cost_amount,
        "cost_currency": cost_currency,
        "created_at": _dt_out(doc["created_at"]),
        "updated_at": _dt_out(doc["updated_at"]),
        "source_seq": int(doc["source_seq"]),
        "source_rev": int(doc["source_rev"]),
        "version": int(doc["version"]),
        "extra": dump_json(doc["extra"]),
    }
    parties = []
    for role in PARTY_ROLES:
        party = doc[role]
        if party is None:
            continue
        address = party["address"]
        parties.append(
            {
                "shipment_key": key,
                "role": role,
                "name": party["name"],
                "first_name": party["first_name"],
                "last_name": party["last_name"],
                "email": party["email"],
                "phone": party["phone"],
                "has_address": 1 if address is not None else 0,
                "street": address["street"] if address else None,
                "city": address["city"] if address else None,
                "postal_code": address["postal_code"] if address else None,
                "country": address["country"] if address else None,
                "lat": _float_out(address["lat"]) if address else None,
                "lon": _float_out(address["lon"]) if address else None,
            }
        )
    items = []
    for position, item in enumerate(doc["items"]):
        value_amount, value_currency = _money_out(item["value"])
        items.append(
            {
                "shipment_key": key,
                "position": position,
                "sku": item["sku"],
                "description": item["description"],
                "quantity": int(item["quantity"]),
                "weight_kg": _float_out(item["weight_kg"]),
                "value_amount": value_amount,
                "value_currency": value_currency,
            }
        )
    events = [
        {
            "shipment_key": key,
            "position": position,
            "event_time": _dt_out(event["time"]),
            "status": event["status"],
            "location": event["location"],
            "note": event["note"],
        }
        for position, event in enumerate(doc["events"])
    ]
    return Rows(root=root, parties=parties, items=items, events=events)


# -- rows -> document --------------------------------------------------------------------------


def _dt_in(value: Any) -> datetime:
    if isinstance(value, str):  # a driver configured to return strings
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _money_in(amount: Any, currency: Any) -> dict[str, str] | None:
    if amount is None:
        return None
    return {"amount": document.canonical_decimal(amount), "currency": currency}


def _party_in(row: dict[str, Any]) -> dict[str, Any]:
    address = None
    if row["has_address"]:
        address = {
            "street": row["street"],
            "city": row["city"],
            "postal_code": row["postal_code"],
            "country": row["country"],
            "lat": _float_out(row["lat"]),
            "lon": _float_out(row["lon"]),
        }
    return {
        "name": row["name"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "email": row["email"],
        "phone": row["phone"],
        "address": address,
    }


def rows_to_document(rows: Rows) -> Document:
    """Rebuild the canonical (native-form) document from its rows."""
    root = rows.root
    extra = root["extra"]
    parties = {row["role"]: _party_in(row) for row in rows.parties}
    items = sorted(rows.items, key=lambda r: r["position"])
    events = sorted(rows.events, key=lambda r: r["position"])
    return {
        "_id": root["shipment_key"],
        "key": root["shipment_key"],
        "source": root["source"],
        "tracking_number": root["tracking_number"],
        "status": root["status"],
        "service_level": root["service_level"],
        "sender": parties.get("sender"),
        "recipient": parties.get("recipient"),
        "items": [
            {
                "sku": r["sku"],
                "description": r["description"],
                "quantity": int(r["quantity"]),
                "weight_kg": _float_out(r["weight_kg"]),
                "value": _money_in(r["value_amount"], r["value_currency"]),
            }
            for r in items
        ],
        "events": [
            {
                "time": _dt_in(r["event_time"]),
                "status": r["status"],
                "location": r["location"],
                "note": r["note"],
            }
            for r in events
        ],
        "price": _money_in(root["price_amount"], root["price_currency"]),
        "cost": _money_in(root["cost_amount"], root["cost_currency"]),
        "created_at": _dt_in(root["created_at"]),
        "updated_at": _dt_in(root["updated_at"]),
        "source_seq": int(root["source_seq"]),
        "source_rev": int(root["source_rev"]),
        "version": int(root["version"]),
        "extra": extra if isinstance(extra, dict) else parse_json(extra),
    }


def stored_form(doc: Document) -> Document:
    """`doc` as it comes back from MySQL: equal to `doc`, and with the same checksum as the
    round-tripped document (DOUBLE fields as floats, -0.0 as 0.0, datetimes aware UTC,
    integral fields as int). Raises InvalidDocument like `document_to_rows`."""
    rows = document_to_rows(doc)
    for row in rows.parties:
        for col in ("lat", "lon"):
            if row[col] is not None:
                row[col] = row[col] + 0.0  # -0.0 + 0.0 == 0.0
    for row in rows.items:
        if row["weight_kg"] is not None:
            row["weight_kg"] = row["weight_kg"] + 0.0
    return rows_to_document(rows)


_TOP_FIELDS = frozenset(
    ("_id", "key", "source", "tracking_number", "status", "service_level", "sender", "recipient")
    + ("items", "events", "price", "cost", "created_at", "updated_at", "source_seq")
    + ("source_rev", "version", "extra")
)
_ITEM_FIELDS = frozenset(("sku", "description", "quantity", "weight_kg", "value"))
_EVENT_FIELDS = frozenset(("time", "status", "location", "note"))


class NotFastPath(ValueError):
    """The document is not in the shape the fast stored form takes without a check: a field
    it does not know, or a value of a type it would have to convert. Use `stored_form`."""


def _fields(node: Any, expected: frozenset[str], where: str) -> dict[str, Any]:
    if type(node) is not dict or node.keys() != expected:
        raise NotFastPath(f"{where}: not exactly the known fields")
    return node


def _int(value: Any, where: str) -> int:
    if type(value) is not int:
        raise NotFastPath(f"{where}: {type(value).__name__}, not int")
    return value


def _utc(value: Any, where: str = "time") -> datetime:
    if not isinstance(value, datetime):
        raise NotFastPath(f"{where}: {type(value).__name__}, not a datetime")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _as_float(value: Any, where: str = "number") -> float | None:
    if value is None:
        return None
    if type(value) is not float and type(value) is not int:
        raise NotFastPath(f"{where}: {type(value).__name__}, not a number")
    return float(value) + 0.0


def _party_fast(p: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    if type(p) is not dict or type(p.get("address")) not in (dict, type(None)):
        raise NotFastPath("party: not an object with an address")
    a = p["address"]
    return {
        **p,
        "address": None
        if a is None
        else {**a, "lat": _as_float(a["lat"]), "lon": _as_float(a["lon"])},
    }


def time_text(value: datetime) -> str:
    """`document.format_datetime(value)` (the JSON form of a time), about 3x faster: verify
    formats five times per document on each side."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value.year < 1000:  # strftime does not pad such years: keep its exact text
        return document.format_datetime(value)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - the fastest here
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond // 1000,
    )


def _time_json(value: Any, where: str) -> str:
    if not isinstance(value, datetime):
        raise NotFastPath(f"{where}: {type(value).__name__}, not a datetime")
    return time_text(value)


def stored_form_fast(doc: Document, *, json_form: bool = False) -> Document:
    """`stored_form(doc)` without validating values (about 10x faster), for verify's checksums:
    raises NotFastPath for a document with a field it does not know or a value it would have
    to convert (so it never hides a difference: such a document goes through the exact path),
    and otherwise equals `stored_form` wherever that accepts the document (tests/unit).
    `json_form`: its times already as JSON text (= `document.to_json` of the result)."""
    doc = _fields(doc, _TOP_FIELDS, "(document)")
    when = _time_json if json_form else _utc
    key = doc["key"]
    if doc["_id"] != key:
        raise NotFastPath("_id: not the key")
    items, events = doc["items"], doc["events"]
    if type(items) is not list or type(events) is not list:
        raise NotFastPath("items/events: not arrays")
    return {
        "_id": key,
        "key": key,
        "source": doc["source"],
        "tracking_number": doc["tracking_number"],
        "status": doc["status"],
        "service_level": doc["service_level"],
        "sender": _party_fast(doc["sender"]),
        "recipient": _party_fast(doc["recipient"]),
        "items": [
            {
                "sku": i["sku"],
                "description": i["description"],
                "quantity": _int(i["quantity"], "items/quantity"),
                "weight_kg": _as_float(i["weight_kg"], "items/weight_kg"),
                "value": i["value"],
            }
            for i in (_fields(i, _ITEM_FIELDS, "items") for i in items)
        ],
        "events": [
            {
                "time": when(e["time"], "events/time"),
                "status": e["status"],
                "location": e["location"],
                "note": e["note"],
            }
            for e in (_fields(e, _EVENT_FIELDS, "events") for e in events)
        ],
        "price": doc["price"],
        "cost": doc["cost"],
        "created_at": when(doc["created_at"], "created_at"),
        "updated_at": when(doc["updated_at"], "updated_at"),
        "source_seq": _int(doc["source_seq"], "source_seq"),
        "source_rev": _int(doc["source_rev"], "source_rev"),
        "version": _int(doc["version"], "version"),
        "extra": doc["extra"],
    }
