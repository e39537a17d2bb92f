"""The backfill dry run's coercion report, on the mapping alone (no server needed)."""

from __future__ import annotations

from dataset import make_doc
from lazyshift.backfill.profile import _coercions, path_pattern
from lazyshift.core import mapping


def test_coercions_name_sign_of_zero_and_int_to_double():
    # FerretDB itself drops the sign of zero, so this one is checked on the mapping alone.
    doc = make_doc(3)
    doc["recipient"] = {
        "name": "n",
        "first_name": None,
        "last_name": None,
        "email": None,
        "phone": None,
        "address": {
            "street": None,
            "city": None,
            "postal_code": None,
            "country": None,
            "lat": -0.0,
            "lon": 7,
        },
    }
    found: list[tuple[str, str]] = []
    _coercions(doc, mapping.stored_form(doc), "", found)
    assert ("recipient/address/lat", "-0.0 -> 0.0") in found
    assert ("recipient/address/lon", "int -> double") in found


def test_path_pattern_groups_array_elements():
    assert path_pattern("items/3/value/amount") == "items/*/value/amount"
    assert path_pattern("price") == "price"
