"""Verify judges "newer" as the guarded write does: (source_rev, version), revision first.
After dual -> mongo -> dual the stores' version counters drift apart; a MySQL copy with a
higher version but an older revision is stale, not newer (and so not excused after the flip)."""

from __future__ import annotations

from dataset import make_doc
from lazyshift.core.mapping import stored_form
from lazyshift.verify import classify


def _copy(rev: int, version: int) -> dict:
    doc = stored_form(make_doc(1, version=version))
    doc["source_rev"] = rev
    return doc


def test_older_revision_with_a_higher_version_is_stale() -> None:
    found = classify("k", _copy(rev=5, version=3), _copy(rev=4, version=9), set())
    assert found is not None and found.kind == "stale"


def test_newer_revision_with_a_lower_version_is_newer() -> None:
    found = classify("k", _copy(rev=4, version=9), _copy(rev=5, version=3), set())
    assert found is not None and found.kind == "newer"


def test_same_pair_same_content_is_equal() -> None:
    assert classify("k", _copy(rev=5, version=3), _copy(rev=5, version=3), set()) is None
