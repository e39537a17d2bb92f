"""Partition boundaries: the backfill's `_id` split points and the stream's k/n specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lazyshift.backfill.plan import boundaries
from lazyshift.client.source import Partition


@given(st.lists(st.text(min_size=1, max_size=8), max_size=200), st.integers(1, 40))
def test_boundaries_are_sorted_distinct_sample_keys(sample, partitions) -> None:
    cuts = boundaries(sample, partitions)
    assert len(cuts) <= max(0, partitions - 1)
    encoded = [c.encode("utf-8", "surrogatepass") for c in cuts]
    assert encoded == sorted(set(encoded))
    assert set(cuts) <= set(sample)


def test_boundaries_split_a_sample_evenly() -> None:
    sample = [f"k{i:03d}" for i in range(100)]
    assert boundaries(sample, 4) == ["k025", "k050", "k075"]
    assert boundaries(sample, 1) == [] and boundaries([], 8) == []


@pytest.mark.parametrize("text", ["0/1", "2/3", "9/10"])
def test_partition_specs_round_trip(text) -> None:
    assert str(Partition.parse(text)) == text


@pytest.mark.parametrize("text", ["1/1", "3/2", "-1/2", "a/b", "1", "0/0", ""])
def test_bad_partition_specs_are_refused(text) -> None:
    with pytest.raises(ValueError, match="partition"):
        Partition.parse(text)
