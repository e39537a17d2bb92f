"""verify's fast stored form (no validation) equals the exact one for every valid document."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyshift import verify
from lazyshift.core import document
from lazyshift.core.mapping import NotFastPath, stored_form, stored_form_fast, time_text
from strategies import canonical_documents, sample_document


@settings(max_examples=300, deadline=None)
@given(canonical_documents())
def test_fast_stored_form_equals_the_exact_one(doc) -> None:
    exact = stored_form(doc)
    fast = stored_form_fast(doc)
    assert fast == exact
    assert document.canonical_json(fast) == document.canonical_json(exact)


def test_stored_form_of_a_known_document_is_stable() -> None:
    doc = sample_document()
    assert stored_form(stored_form(doc)) == stored_form(doc)


MUTATIONS = {
    "unknown top-level field": lambda d: d.update(sneaky=1),
    "unknown item field": lambda d: d["items"] and d["items"][0].update(sneaky=1),
    "unknown event field": lambda d: d["events"] and d["events"][0].update(sneaky=1),
    "missing field": lambda d: d.pop("service_level"),
    "float quantity": lambda d: d["items"]
    and d["items"][0].update(quantity=float(d["items"][0]["quantity"])),
    "float version": lambda d: d.update(version=float(d["version"])),
    "bool version": lambda d: d.update(version=True),
    "string seq": lambda d: d.update(source_seq=str(d["source_seq"])),
    "string time": lambda d: d.update(created_at="2024-01-01T00:00:00.000Z"),
    "string weight": lambda d: d["items"] and d["items"][0].update(weight_kg="1.5"),
    "address without lat": lambda d: (d["sender"] or {}).get("address")
    and d["sender"]["address"].pop("lat"),
}


@settings(max_examples=100, deadline=None)
@given(canonical_documents(), st.sampled_from(sorted(MUTATIONS)))
def test_fast_stored_form_refuses_what_it_would_hide(doc, mutation) -> None:
    """Issue 9 hole 6: an unknown field or a converted type must not reach a checksum that
    could match MySQL's; the fast path refuses it (verify then compares exactly)."""
    changed = copy.deepcopy(doc)
    if not MUTATIONS[mutation](changed) and changed == doc:
        return  # nothing to mutate in this document (no items, no sender address, ...)
    with pytest.raises((NotFastPath, KeyError)):
        stored_form_fast(changed)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from(
        [None, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
    ),
)
def test_time_text_is_format_datetime(dt, tz) -> None:
    value = dt if tz is None else dt.replace(tzinfo=tz)
    assert time_text(value) == document.format_datetime(value)


@settings(max_examples=200, deadline=None)
@given(canonical_documents())
def test_verify_canonical_texts_are_the_canonical_json(doc) -> None:
    """verify's faster texts of both sides are exactly `canonical_json` of the stored form."""
    assert verify._canon_fast(doc) == document.canonical_json(stored_form_fast(doc))
    stored = stored_form(doc)
    assert verify._canon_rows(stored) == document.canonical_json(stored)


def test_a_datetime_in_extra_leaves_the_fast_text() -> None:
    doc = sample_document(extra={"t": datetime(2024, 1, 1, tzinfo=UTC)})
    assert verify._canon_fast(doc) is None
