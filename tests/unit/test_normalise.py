"""Normalisation per source, and every malformed category with its reason."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from lazyshift.core import document
from lazyshift.core.normalise import Malformed, parse_message, recover_seq
from lazyshift.core.normalise import normalise_message as normalise

LEGACY = {
    "seq": 7,
    "source": "legacy",
    "rev": 2,
    "id": "5f1c0a9e8b3d4c2a1e0f9b7d",
    "receiver": {"firstName": "Zoë", "lastName": "Łódź", "email": "zoe@example.com"},
    "price": 123.45,
    "address": {
        "country": "Poland",
        "city": "Łódź",
        "street": "Piotrkowska 1",
        "coordinates": {"x": 19.4560, "y": 51.7592},
    },
    "creationDate": "Thu Nov 26 2026 11:14:36 GMT+0000 (Coordinated Universal Time)",
}
ACME = {
    "seq": 8,
    "source": "acme",
    "rev": 3,
    "trackingNumber": "ACME0123456789",
    "status": "IN_TRANSIT",
    "service": "express",
    "shipper": {
        "name": "Ann Smith",
        "email": "ann@x.io",
        "phone": "+1 555 0100",
        "address": {
            "line1": "1 Main St",
            "city": "Boston",
            "postalCode": "02101",
            "country": "US",
            "lat": 42.36,
            "lng": -71.05,
        },
    },
    "consignee": {
        "name": "東京 Trading",
        "email": None,
        "phone": None,
        "address": {
            "line1": "2-1",
            "city": "東京",
            "postalCode": "100-0001",
            "country": "JP",
            "lat": 35.68,
            "lng": 139.76,
        },
    },
    "items": [
        {
            "sku": "SKU-1",
            "description": "Widget",
            "qty": 2,
            "weightKg": 1.25,
            "value": 19.99,
            "currency": "USD",
        }
    ],
    "events": [
        {
            "timestamp": "2026-11-25T10:00:00.123Z",
            "code": "PICKED_UP",
            "location": "Boston, US",
            "remarks": None,
        }
    ],
    "charges": {"price": 57.3, "cost": 40, "currency": "USD"},
    "createdAt": "2026-11-25T09:00:00.000Z",
    "updatedAt": "2026-11-25T10:00:00.123Z",
}
SWIFT = {
    "seq": 9,
    "source": "swiftpost",
    "rev": 1,
    "tracking_no": "SPAB12CD34",
    "state": "delivered",
    "service_level": "priority",
    "from": {
        "full_name": "Göran Ek",
        "email": "g@ek.se",
        "street": "Storgatan 1",
        "town": "Göteborg",
        "zip": "41101",
        "country_code": "SE",
        "geo": [57.70, 11.97],
    },
    "to": {
        "full_name": "B",
        "email": "b@b.de",
        "street": "S 2",
        "town": "Berlin",
        "zip": "10115",
        "country_code": "DE",
        "geo": [52.52, 13.40],
    },
    "parcels": [
        {
            "article": "A-9",
            "desc": "Book",
            "count": 1,
            "grams": 1250,
            "value_cents": 1999,
            "currency": "EUR",
        }
    ],
    "scans": [{"ts": 1764150000, "state": "delivered", "place": "Berlin", "comment": None}],
    "price_cents": 1250,
    "cost_cents": 800,
    "currency": "EUR",
    "created_ts": 1764100000,
    "updated_ts": 1764150000,
    "insurance": {"insured": True, "amount_cents": 5000},
}
NORD = {
    "seq": 10,
    "source": "nordfreight",
    "rev": 4,
    "ConsignmentId": "NF-123456",
    "Status": "InTransit",
    "Product": "Pallet",
    "Sender": {
        "Name": "Nord AB",
        "Email": "n@nord.se",
        "Street": "Hamnen 3",
        "City": "Malmö",
        "Zip": "21119",
        "Country": "SE",
        "Latitude": 55.6,
        "Longitude": 13.0,
    },
    "Receiver": {
        "Name": "Oslo AS",
        "Email": "o@o.no",
        "Street": "Gata 4",
        "City": "Oslo",
        "Zip": "0150",
        "Country": "NO",
        "Latitude": 59.91,
        "Longitude": 10.75,
    },
    "Lines": [
        {
            "ArticleNo": "P-1",
            "Text": "Pallet",
            "Pieces": 3,
            "WeightLb": 100.0,
            "Value": "1200.50",
            "Currency": "SEK",
        }
    ],
    "Events": [
        {"When": "2026-11-26T12:14:36+01:00", "Code": "Loaded", "Where": "Malmö", "Text": "ok"}
    ],
    "Price": "123.45 SEK",
    "Cost": "99.00 SEK",
    "Created": "2026-11-26T08:00:00+01:00",
    "Updated": "2026-11-26T12:14:36+01:00",
    "CustomsRef": "C-77",
}


def _valid(doc: dict) -> None:
    document.validate({**doc, "version": 1})


def test_legacy_record_maps_without_loss() -> None:
    doc = normalise(copy.deepcopy(LEGACY))
    _valid(doc)
    assert doc["_id"] == doc["key"] == "legacy:5f1c0a9e8b3d4c2a1e0f9b7d"
    assert doc["price"] == {"amount": "123.45", "currency": "XXX"}  # never truncated
    r = doc["recipient"]
    assert (r["first_name"], r["last_name"], r["email"]) == ("Zoë", "Łódź", "zoe@example.com")
    assert r["address"]["lon"] == 19.4560 and r["address"]["lat"] == 51.7592
    assert doc["created_at"] == datetime(2026, 11, 26, 11, 14, 36, tzinfo=UTC)
    assert (doc["source_seq"], doc["source_rev"]) == (7, 2)
    assert doc["extra"] == {}


def test_legacy_date_with_offset_is_converted_to_utc() -> None:
    msg = {
        **LEGACY,
        "creationDate": "Thu Nov 26 2026 13:14:36 GMT+0200 (Eastern European Standard Time)",
    }
    assert normalise(msg)["created_at"] == datetime(2026, 11, 26, 11, 14, 36, tzinfo=UTC)


def test_legacy_float_price_keeps_its_decimals() -> None:
    assert normalise({**LEGACY, "price": 57.3})["price"]["amount"] == "57.3"
    assert normalise({**LEGACY, "price": 10})["price"]["amount"] == "10"


def test_acme() -> None:
    doc = normalise(copy.deepcopy(ACME))
    _valid(doc)
    assert doc["key"] == "acme:ACME0123456789" and doc["status"] == "in_transit"
    assert doc["sender"]["address"]["postal_code"] == "02101"
    assert doc["recipient"]["address"]["city"] == "東京"
    assert doc["items"] == [
        {
            "sku": "SKU-1",
            "description": "Widget",
            "quantity": 2,
            "weight_kg": 1.25,
            "value": {"amount": "19.99", "currency": "USD"},
        }
    ]
    assert doc["events"][0]["time"] == datetime(2026, 11, 25, 10, 0, 0, 123000, tzinfo=UTC)
    assert doc["price"] == {"amount": "57.3", "currency": "USD"}
    assert doc["cost"] == {"amount": "40", "currency": "USD"}


def test_swiftpost_units() -> None:
    doc = normalise(copy.deepcopy(SWIFT))
    _valid(doc)
    assert doc["items"][0]["weight_kg"] == 1.25
    assert doc["items"][0]["value"] == {"amount": "19.99", "currency": "EUR"}
    assert doc["price"] == {"amount": "12.5", "currency": "EUR"}
    assert doc["sender"]["address"]["lat"] == 57.70
    assert doc["extra"] == {"insurance": {"insured": True, "amount_cents": 5000}}


def test_nordfreight_units_offsets_and_extra() -> None:
    doc = normalise(copy.deepcopy(NORD))
    _valid(doc)
    assert doc["status"] == "in_transit"
    assert doc["items"][0]["weight_kg"] == pytest.approx(45.359237)
    assert doc["items"][0]["value"] == {"amount": "1200.5", "currency": "SEK"}
    assert doc["events"][0]["time"] == datetime(2026, 11, 26, 11, 14, 36, tzinfo=UTC)
    assert doc["cost"] == {"amount": "99", "currency": "SEK"}
    assert doc["extra"] == {"CustomsRef": "C-77"}


def test_unknown_nested_fields_land_in_extra_with_their_path() -> None:
    # Joined with '/': MongoDB refuses a stored key with a '.' (FerretDB: "invalid key").
    msg = copy.deepcopy(ACME)
    msg["items"][0]["hsCode"] = "8471"
    msg["shipper"]["address"]["floor"] = 3
    doc = normalise(msg)
    assert doc["extra"] == {"items/0/hsCode": "8471", "shipper/address/floor": 3}


def _break(msg: dict, path: list, value=None, drop: bool = False) -> dict:
    msg = copy.deepcopy(msg)
    node = msg
    for p in path[:-1]:
        node = node[p]
    if drop:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return msg


@pytest.mark.parametrize(
    ("msg", "category", "fragment"),
    [
        (_break(LEGACY, ["id"], drop=True), "missing-key", "id is missing"),
        (_break(LEGACY, ["receiver"], drop=True), "missing-key", "receiver is missing"),
        (_break(LEGACY, ["price"], "abc"), "wrong-type", "price: expected integer or number"),
        (_break(LEGACY, ["creationDate"], "yesterday"), "wrong-type", "JavaScript date"),
        (_break(ACME, ["items"], {"sku": 1}), "wrong-type", "items: expected array, got object"),
        (_break(ACME, ["items", 0, "qty"], "many"), "wrong-type", "items.0.qty"),
        (_break(ACME, ["status"], "LOST_IN_SPACE"), "wrong-type", "unknown status"),
        (_break(ACME, ["trackingNumber"], drop=True), "missing-key", "trackingNumber"),
        (_break(ACME, ["items", 0, "qty"], True), "wrong-type", "got boolean"),
        (_break(SWIFT, ["from", "geo"], [1]), "wrong-type", "from.geo"),
        (_break(SWIFT, ["price_cents"], 12.5), "wrong-type", "price_cents"),
        (_break(NORD, ["Price"], "lots"), "wrong-type", "Price"),
        (_break(NORD, ["Events", 0, "When"], "2026-11-26T12:14:36"), "wrong-type", "no UTC offset"),
        (_break(NORD, ["source"], "carrier-pigeon"), "unknown-source", "carrier-pigeon"),
        (_break(ACME, ["service"], "x" * 100), "invalid-document", "service_level"),
    ],
)
def test_malformed_categories(msg: dict, category: str, fragment: str) -> None:
    with pytest.raises(Malformed) as info:
        normalise(msg)
    assert info.value.category == category
    assert fragment in info.value.reason


@pytest.mark.parametrize(
    ("raw", "category"),
    [
        (b'{"seq":12,"source":"acme","rev":1,"trackingNumber":"AC', "bad-json"),
        (b"[1,2,3]", "wrong-type"),
        (b"\xff\xfe{}", "bad-encoding"),
    ],
)
def test_unparseable_payloads(raw: bytes, category: str) -> None:
    with pytest.raises(Malformed) as info:
        parse_message(raw)
    assert info.value.category == category


def test_seq_is_recovered_from_a_broken_frame() -> None:
    assert recover_seq(b'{"seq":12,"source":"acme","rev":1,"trackingNu') == 12
    assert recover_seq(b"garbage") is None


def test_round_trip_through_json_form() -> None:
    doc = {**normalise(copy.deepcopy(NORD)), "version": 3}
    assert document.from_json(json.loads(document.canonical_json(doc))) == doc
