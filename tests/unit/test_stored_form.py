"""verify's fast stored form (no validation) equals the exact one for every valid document."""

from __future__ import annotations

from hypothesis import given, settings

from lazyshift.core import document
from lazyshift.core.mapping import stored_form, stored_form_fast
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
