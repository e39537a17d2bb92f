"""Source normalisers: every feed's message -> the one canonical shipment document.

Each source has its own names, units and timestamp formats; each normaliser knows one of
them. A message that cannot be normalised raises Malformed with a category (for counting)
and a reason naming the field, and the caller dead-letters it with its raw payload.
Fields a source sends that the canonical model does not name are kept under `extra`
(with their path, joined by '/'), so nothing a source said is lost.

Malformed is also the answer for everything hostile a source can send that a store could not
hold: nesting too deep to parse, NaN/Infinity, lone surrogates, integers beyond 8 bytes,
keys MongoDB refuses (NUL, a leading `$`, a `.`), times outside what BSON and DATETIME hold,
and a `seq` the source could not have sent. These checks run here, once, before any store
is written in any mode, so every mode dead-letters the same messages.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lazyshift.core import mapping
from lazyshift.core.document import Document, InvalidDocument, canonical_decimal, utc_ms

LB_TO_KG = 0.45359237
# ISO 4217 "no currency": the legacy feed's price has no currency, and inventing one would
# be a lie the reverse mapping could not undo.
NO_CURRENCY = "XXX"
_SEQ_PREFIX = re.compile(rb'^\s*\{\s*"seq"\s*:\s*(\d{1,19})(?![\d.eE])')
# The source is JavaScript: a seq it can send is an exact double (and fits MySQL's BIGINT).
MAX_SEQ = 2**53
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # what BSON (and a BIGINT rev) holds
# Containers in one message; MariaDB's JSON keeps 31 levels under `extra`, and a deeper
# message would only be refused later (or blow Python's recursion limit on the way).
MAX_NESTING = 30


class Malformed(ValueError):
    def __init__(self, category: str, reason: str) -> None:
        super().__init__(f"{category}: {reason}")
        self.category = category
        self.reason = reason


def recover_seq(raw: bytes) -> int | None:
    """The seq of a frame that may not parse: the source always writes it first."""
    m = _SEQ_PREFIX.match(raw[:64])
    if not m:
        return None
    seq = int(m.group(1))
    # Never move the offset to a seq the source could not have sent: it would wedge there.
    return seq if seq <= MAX_SEQ else None


def _no_constant(name: str) -> None:
    raise Malformed("non-finite", f"{name} is not a JSON number (MongoDB and MySQL refuse it)")


def parse_message(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed("bad-encoding", f"payload is not UTF-8 ({exc.reason})") from exc
    try:
        msg = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise Malformed("bad-json", f"{exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise Malformed("too-deep", "JSON nested too deeply to parse") from exc
    except Malformed:
        raise
    except ValueError as exc:  # e.g. an integer literal beyond Python's 4300-digit limit
        raise Malformed("bad-json", str(exc)[:200]) from exc
    if not isinstance(msg, dict):
        raise Malformed("wrong-type", f"message is a JSON {type(msg).__name__}, not an object")
    check_storable(msg)
    return msg


def _key_problem(key: Any) -> str | None:
    if not isinstance(key, str):
        return "is not a string"
    if "\x00" in key:
        return "contains NUL"
    if key.startswith("$"):
        return "starts with '$'"
    if "." in key:
        return "contains '.'"
    return _surrogate(key)


def _surrogate(text: str) -> str | None:
    if text.isascii():  # most are: no surrogate, and no need to encode it to know
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"has a lone surrogate U+{ord(text[exc.start]):04X}"
    return None


def _value_problem(value: Any) -> tuple[str, str] | None:
    """(category, reason) if MongoDB or MySQL could not hold this scalar exactly."""
    if isinstance(value, str):
        problem = _surrogate(value)
        return ("bad-string", f"string {problem}") if problem else None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return "int-overflow", f"integer {str(value)[:40]} does not fit in 8 bytes"
    if isinstance(value, float) and not math.isfinite(value):
        return "non-finite", f"number {value!r} is not finite (MongoDB and MySQL refuse it)"
    return None


def check_storable(msg: dict[str, Any]) -> None:
    """Raise Malformed for anything in a parsed message no store could hold (see the module
    docstring). Iterative, so a deep message cannot exhaust the stack. Every message of the
    stream passes here: a node's path is kept as a link to its parent's and spelled out only
    for a reason (building every path's string was half of this check's CPU)."""
    stack: list[tuple[Any, int, _Trail]] = [(msg, 1, None)]
    while stack:
        node, depth, trail = stack.pop()
        if isinstance(node, dict | list) and depth > MAX_NESTING:
            where = _where(trail) or "message"
            raise Malformed("too-deep", f"{where}: nested deeper than {MAX_NESTING}")
        if isinstance(node, dict):
            for key, value in node.items():
                problem = _key_problem(key)
                if problem:
                    where = _where((trail, True, key))
                    raise Malformed("bad-key", f"key {where!r} {problem}: MongoDB refuses it")
                stack.append((value, depth + 1, (trail, True, key)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1, (trail, False, i)) for i, v in enumerate(node))
        else:
            bad = _value_problem(node)
            if bad:
                raise Malformed(bad[0], f"{_where(trail)}: {bad[1]}")


# A node's place in a message: (its parent's trail, whether the label is an object key, the
# key or list index); None for the message itself.
_Trail = tuple[Any, bool, Any] | None


def _where(trail: _Trail) -> str:
    """The dotted path of a trail: keys made printable, list indexes as numbers."""
    labels: list[tuple[bool, Any]] = []
    while trail is not None:
        trail, is_key, label = trail
        labels.append((is_key, label))
    path = ""
    for is_key, label in reversed(labels):
        if is_key:
            path = f"{path}.{printable(label)}" if path else printable(label)
        else:
            path = f"{path}.{label}"
    return path


def printable(text: Any) -> str:
    """`text` safe to put in a reason (which is itself stored): no NUL, no lone surrogate."""
    return str(text).encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\0")


def _check_seq(name: str, value: int, high: int) -> int:
    if not 0 <= value <= high:
        raise Malformed("bad-seq", f"{name} {value} is outside 0..{high}")
    return value


# -- typed field access -----------------------------------------------------------------------
class _Obj:
    """A JSON object being read: typed access by name, remembers what was read."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise Malformed(
                "wrong-type", f"{path or 'message'}: expected object, got {_json_type(data)}"
            )
        self.data = data
        self.path = path
        self.seen: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, types: tuple[type, ...], required: bool = True) -> Any:
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                raise Malformed("missing-key", f"{self._where(key)} is missing")
            return None
        value = self.data[key]
        # bool is an int in Python; a JSON true where a number belongs is still a wrong type.
        if isinstance(value, bool) and bool not in types:
            raise Malformed(
                "wrong-type", f"{self._where(key)}: expected {_names(types)}, got boolean"
            )
        if not isinstance(value, types):
            raise Malformed(
                "wrong-type",
                f"{self._where(key)}: expected {_names(types)}, got {_json_type(value)}",
            )
        return value

    def str(self, key: str, required: bool = True) -> str | None:
        return self.get(key, (str,), required)

    def num(self, key: str, required: bool = True) -> float | int | None:
        return self.get(key, (int, float), required)

    def int(self, key: str, required: bool = True) -> int | None:
        value = self.get(key, (int,), required)
        return value

    def obj(self, key: str, required: bool = True) -> _Obj | None:
        value = self.get(key, (dict,), required)
        return None if value is None else _Obj(value, self._where(key))

    def arr(self, key: str, required: bool = True) -> list[Any]:
        value = self.get(key, (list,), required)
        return [] if value is None else value

    def unknown(self, into: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
        # The path is joined with '/', not '.': MongoDB refuses a '.' in a stored key (and a
        # source key with a '.' was already refused by check_storable).
        prefix = self.path.replace(".", "/") + "/" if self.path else ""
        for key, value in self.data.items():
            if key not in self.seen and key not in skip:
                into[prefix + key] = value


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(_json_type_name(t) for t in types)


def _json_type_name(t: type) -> str:
    return {
        str: "string",
        int: "integer",
        float: "number",
        dict: "object",
        list: "array",
        bool: "boolean",
    }.get(t, t.__name__)


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    return _json_type_name(type(v))


def _money(amount: Any, currency: str | None, where: str) -> dict[str, str]:
    try:
        text = canonical_decimal(amount)
    except InvalidDocument as exc:
        raise Malformed("wrong-type", f"{where}: {exc.reason}") from exc
    if currency is None or not re.fullmatch(r"[A-Z]{3}", currency):
        raise Malformed("wrong-type", f"{where}: currency {currency!r} is not an ISO 4217 code")
    return {"amount": text, "currency": currency}


def _iso(text: str, where: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Malformed("wrong-type", f"{where}: {text!r} is not an ISO 8601 time") from exc
    if dt.tzinfo is None:
        raise Malformed("wrong-type", f"{where}: {text!r} has no UTC offset")
    return _utc(dt, text, where)


def _utc(dt: datetime, text: Any, where: str) -> datetime:
    # Year 1 with a positive offset, or 9999 with a negative one, has no UTC datetime.
    try:
        return utc_ms(dt)
    except OverflowError as exc:
        raise Malformed("bad-date", f"{where}: {text!r} is outside years 1-9999 in UTC") from exc


def _epoch(value: int | float, where: str) -> datetime:
    try:
        return utc_ms(datetime.fromtimestamp(value, tz=UTC))
    except (OverflowError, OSError, ValueError) as exc:
        raise Malformed("wrong-type", f"{where}: {value!r} is not an epoch time") from exc


_JS_DATE = re.compile(
    r"^[A-Z][a-z]{2} ([A-Z][a-z]{2} \d{2} \d{4} \d{2}:\d{2}:\d{2}) GMT([+-]\d{4})(?: \(.*\))?$"
)


def parse_js_date(text: str, where: str = "creationDate") -> datetime:
    """`Date.prototype.toString()`: 'Thu Nov 26 2026 11:14:36 GMT+0000 (Coordinated ...)'."""
    m = _JS_DATE.match(text)
    if not m:
        raise Malformed("wrong-type", f"{where}: {text!r} is not a JavaScript date string")
    try:
        dt = datetime.strptime(f"{m.group(1)} {m.group(2)}", "%b %d %Y %H:%M:%S %z")
    except ValueError as exc:
        raise Malformed("wrong-type", f"{where}: {text!r}: {exc}") from exc
    return _utc(dt, text, where)


def _address(street, city, postal_code, country, lat, lon) -> dict[str, Any]:
    return {
        "street": street,
        "city": city,
        "postal_code": postal_code,
        "country": country,
        "lat": None if lat is None else float(lat),
        "lon": None if lon is None else float(lon),
    }


def _party(name=None, first_name=None, last_name=None, email=None, phone=None, address=None):
    return {
        "name": name,
        "first_name": first_name,
        "last_name": last_name,
        "email": email,
        "phone": phone,
        "address": address,
    }


def _base(source: str, native_id: str, msg: _Obj) -> Document:
    key = f"{source}:{native_id}"
    return {
        "_id": key,
        "key": key,
        "source": source,
        "tracking_number": None,
        "status": None,
        "service_level": None,
        "sender": None,
        "recipient": None,
        "items": [],
        "events": [],
        "price": None,
        "cost": None,
        "source_seq": _check_seq("seq", msg.int("seq"), MAX_SEQ),
        "source_rev": _check_seq("rev", msg.int("rev"), INT64_MAX),
        "extra": {},
    }


def _native_id(msg: _Obj, key: str) -> str:
    value = msg.str(key)
    assert value is not None
    if not value or any(c.isspace() for c in value):
        raise Malformed("wrong-type", f"{key}: {value!r} is not a usable shipment id")
    return value


# -- the sources ---------------------------------------------------------------------------
def normalise_legacy(msg: _Obj) -> Document:
    doc = _base("legacy", _native_id(msg, "id"), msg)
    receiver = msg.obj("receiver")
    address = msg.obj("address")
    coords = address.obj("coordinates", required=False)
    first, last = receiver.str("firstName"), receiver.str("lastName")
    doc["recipient"] = _party(
        name=f"{first} {last}",
        first_name=first,
        last_name=last,
        email=receiver.str("email"),
        address=_address(
            address.str("street"),
            address.str("city"),
            None,
            address.str("country"),
            coords.num("y") if coords else None,
            coords.num("x") if coords else None,
        ),
    )
    doc["price"] = _money(msg.num("price"), NO_CURRENCY, "price")
    created = parse_js_date(msg.str("creationDate"))
    doc["created_at"] = created
    doc["updated_at"] = created  # the legacy feed has no update time
    for obj in (receiver, address) + ((coords,) if coords else ()):
        obj.unknown(doc["extra"])
    msg.unknown(doc["extra"], skip=("source",))
    return doc


_ACME_STATUS = {
    "CREATED": "created",
    "PICKED_UP": "picked_up",
    "IN_TRANSIT": "in_transit",
    "OUT_FOR_DELIVERY": "out_for_delivery",
    "DELIVERED": "delivered",
    "EXCEPTION": "exception",
    "RETURNED": "returned",
}


def _mapped(value: str, table: dict[str, str], where: str) -> str:
    if value not in table:
        raise Malformed("wrong-type", f"{where}: unknown status {value!r}")
    return table[value]


def normalise_acme(msg: _Obj) -> Document:
    tracking = _native_id(msg, "trackingNumber")
    doc = _base("acme", tracking, msg)
    doc["tracking_number"] = tracking
    doc["status"] = _mapped(msg.str("status"), _ACME_STATUS, "status")
    doc["service_level"] = msg.str("service", required=False)
    extra = doc["extra"]
    for role, field in (("sender", "shipper"), ("recipient", "consignee")):
        p = msg.obj(field, required=False)
        if p is None:
            continue
        a = p.obj("address", required=False)
        doc[role] = _party(
            name=p.str("name", False),
            email=p.str("email", False),
            phone=p.str("phone", False),
            address=None
            if a is None
            else _address(
                a.str("line1", False),
                a.str("city", False),
                a.str("postalCode", False),
                a.str("country", False),
                a.num("lat", False),
                a.num("lng", False),
            ),
        )
        p.unknown(extra)
        if a is not None:
            a.unknown(extra)
    for i, raw in enumerate(msg.arr("items")):
        it = _Obj(raw, f"items.{i}")
        value = it.num("value", False)
        doc["items"].append(
            {
                "sku": it.str("sku", False),
                "description": it.str("description", False),
                "quantity": it.int("qty"),
                "weight_kg": _float(it.num("weightKg", False)),
                "value": None
                if value is None
                else _money(value, it.str("currency"), it._where("value")),
            }
        )
        it.unknown(extra)
    for i, raw in enumerate(msg.arr("events")):
        ev = _Obj(raw, f"events.{i}")
        doc["events"].append(
            {
                "time": _iso(ev.str("timestamp"), ev._where("timestamp")),
                "status": ev.str("code"),
                "location": ev.str("location", False),
                "note": ev.str("remarks", False),
            }
        )
        ev.unknown(extra)
    charges = msg.obj("charges", required=False)
    if charges is not None:
        cur = charges.str("currency")
        for field in ("price", "cost"):
            amount = charges.num(field, False)
            doc[field] = None if amount is None else _money(amount, cur, f"charges.{field}")
        charges.unknown(extra)
    doc["created_at"] = _iso(msg.str("createdAt"), "createdAt")
    doc["updated_at"] = _iso(msg.str("updatedAt"), "updatedAt")
    msg.unknown(extra, skip=("source",))
    return doc


def _float(v: int | float | None) -> float | None:
    return None if v is None else float(v)


def _cents(v: int | None, currency: str | None, where: str) -> dict[str, str] | None:
    return None if v is None else _money(Decimal(v) / 100, currency, where)


_SWIFT_STATUS = {
    s: s
    for s in (
        "created",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "returned",
        "exception",
        "picked_up",
    )
}


def normalise_swiftpost(msg: _Obj) -> Document:
    tracking = _native_id(msg, "tracking_no")
    doc = _base("swiftpost", tracking, msg)
    doc["tracking_number"] = tracking
    doc["status"] = _mapped(msg.str("state"), _SWIFT_STATUS, "state")
    doc["service_level"] = msg.str("service_level", False)
    extra = doc["extra"]
    for role, field in (("sender", "from"), ("recipient", "to")):
        p = msg.obj(field, required=False)
        if p is None:
            continue
        geo = p.arr("geo", required=False)
        if geo and (
            len(geo) != 2
            or not all(isinstance(g, int | float) and not isinstance(g, bool) for g in geo)
        ):
            raise Malformed("wrong-type", f"{field}.geo: expected [lat, lon], got {geo!r}")
        doc[role] = _party(
            name=p.str("full_name", False),
            email=p.str("email", False),
            address=_address(
                p.str("street", False),
                p.str("town", False),
                p.str("zip", False),
                p.str("country_code", False),
                geo[0] if geo else None,
                geo[1] if geo else None,
            ),
        )
        p.unknown(extra)
    currency = msg.str("currency", False)
    for i, raw in enumerate(msg.arr("parcels")):
        it = _Obj(raw, f"parcels.{i}")
        grams = it.int("grams", False)
        doc["items"].append(
            {
                "sku": it.str("article", False),
                "description": it.str("desc", False),
                "quantity": it.int("count"),
                "weight_kg": None if grams is None else grams / 1000,
                "value": _cents(
                    it.int("value_cents", False),
                    it.str("currency", False) or currency,
                    it._where("value_cents"),
                ),
            }
        )
        it.unknown(extra)
    for i, raw in enumerate(msg.arr("scans")):
        ev = _Obj(raw, f"scans.{i}")
        doc["events"].append(
            {
                "time": _epoch(ev.num("ts"), ev._where("ts")),
                "status": ev.str("state"),
                "location": ev.str("place", False),
                "note": ev.str("comment", False),
            }
        )
        ev.unknown(extra)
    doc["price"] = _cents(msg.int("price_cents", False), currency, "price_cents")
    doc["cost"] = _cents(msg.int("cost_cents", False), currency, "cost_cents")
    doc["created_at"] = _epoch(msg.num("created_ts"), "created_ts")
    doc["updated_at"] = _epoch(msg.num("updated_ts"), "updated_ts")
    msg.unknown(extra, skip=("source",))
    return doc


_NORD_STATUS = {
    "Booked": "created",
    "Loaded": "picked_up",
    "InTransit": "in_transit",
    "OutForDelivery": "out_for_delivery",
    "Delivered": "delivered",
    "Deviation": "exception",
    "Returned": "returned",
}
_NORD_MONEY = re.compile(r"^(-?\d+(?:\.\d+)?) ([A-Z]{3})$")


def _nord_money(text: str | None, where: str) -> dict[str, str] | None:
    if text is None:
        return None
    m = _NORD_MONEY.match(text)
    if not m:
        raise Malformed("wrong-type", f"{where}: {text!r} is not '<amount> <currency>'")
    return _money(m.group(1), m.group(2), where)


def normalise_nordfreight(msg: _Obj) -> Document:
    cid = _native_id(msg, "ConsignmentId")
    doc = _base("nordfreight", cid, msg)
    doc["tracking_number"] = cid
    doc["status"] = _mapped(msg.str("Status"), _NORD_STATUS, "Status")
    doc["service_level"] = msg.str("Product", False)
    extra = doc["extra"]
    for role, field in (("sender", "Sender"), ("recipient", "Receiver")):
        p = msg.obj(field, required=False)
        if p is None:
            continue
        doc[role] = _party(
            name=p.str("Name", False),
            email=p.str("Email", False),
            address=_address(
                p.str("Street", False),
                p.str("City", False),
                p.str("Zip", False),
                p.str("Country", False),
                p.num("Latitude", False),
                p.num("Longitude", False),
            ),
        )
        p.unknown(extra)
    for i, raw in enumerate(msg.arr("Lines")):
        it = _Obj(raw, f"Lines.{i}")
        lb = it.num("WeightLb", False)
        value = it.str("Value", False)
        doc["items"].append(
            {
                "sku": it.str("ArticleNo", False),
                "description": it.str("Text", False),
                "quantity": it.int("Pieces"),
                "weight_kg": None if lb is None else lb * LB_TO_KG,
                "value": None
                if value is None
                else _money(
                    _dec(value, it._where("Value")), it.str("Currency"), it._where("Value")
                ),
            }
        )
        it.unknown(extra)
    for i, raw in enumerate(msg.arr("Events")):
        ev = _Obj(raw, f"Events.{i}")
        doc["events"].append(
            {
                "time": _iso(ev.str("When"), ev._where("When")),
                "status": ev.str("Code"),
                "location": ev.str("Where", False),
                "note": ev.str("Text", False),
            }
        )
        ev.unknown(extra)
    doc["price"] = _nord_money(msg.str("Price", False), "Price")
    doc["cost"] = _nord_money(msg.str("Cost", False), "Cost")
    doc["created_at"] = _iso(msg.str("Created"), "Created")
    doc["updated_at"] = _iso(msg.str("Updated"), "Updated")
    msg.unknown(extra, skip=("source",))
    return doc


def _dec(text: str, where: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise Malformed("wrong-type", f"{where}: {text!r} is not a decimal") from exc


NORMALISERS: dict[str, Callable[[_Obj], Document]] = {
    "legacy": normalise_legacy,
    "acme": normalise_acme,
    "swiftpost": normalise_swiftpost,
    "nordfreight": normalise_nordfreight,
}


def normalise_message(msg: dict[str, Any]) -> Document:
    """A parsed source message -> canonical document without `version` (the store assigns it).

    Raises Malformed for anything that does not fit the contract.
    """
    obj = _Obj(msg, "")
    source = obj.str("source")
    if source not in NORMALISERS:
        raise Malformed(
            "unknown-source", f"source {source!r} is not one of {', '.join(sorted(NORMALISERS))}"
        )
    doc = NORMALISERS[source](obj)
    versioned = {**doc, "version": 1}
    if mapping.plainly_valid(versioned):
        # What `check` would pass, decided by looking at the values (no JSON conversion, no
        # schema run): nearly every message, at a small part of the cost per message.
        return doc
    try:
        # The schema and everything MySQL must hold exactly (times before year 1000, ...):
        # checked here so every mode refuses the same messages.
        mapping.check(versioned)
    except InvalidDocument as exc:
        raise Malformed("invalid-document", exc.reason) from exc
    return doc
