"""Partition boundaries: the backfill's `_id` split points and the stream's k/n specs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lazyshift.backfill.plan import boundaries
from lazyshift.client.source import Partition


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


@given(st.text(max_size=12), st.text(max_size=12), st.integers(1, 40))
def test_boundaries_increase_strictly_between_the_two_ends(a, b, partitions) -> None:
    lowest, highest = sorted([a, b], key=_b)
    cuts = boundaries(lowest, highest, partitions)
    assert len(cuts) <= max(0, partitions - 1)
    encoded = [_b(c) for c in cuts]
    assert encoded == sorted(set(encoded))
    assert all(_b(lowest) < e < _b(highest) for e in encoded)
    for cut in cuts:
        cut.encode("utf-8")  # storable: no surrogates


def test_boundaries_split_an_even_key_space_evenly() -> None:
    assert boundaries("k000", "k100", 4) == ["k025", "k05", "k075"]
    assert boundaries("k000", "k100", 1) == [] and boundaries("k1", "k1", 8) == []
    # keys of several sources: every source gets its own cut, none lands outside the span
    cuts = boundaries("acme:0000000", "zebra-post:0099999", 8)
    assert len(cuts) == 7 and cuts[0] > "acme:" and cuts[-1] < "zebra-post:"


@pytest.mark.parametrize("text", ["0/1", "2/3", "9/10"])
def test_partition_specs_round_trip(text) -> None:
    assert str(Partition.parse(text)) == text


@pytest.mark.parametrize("text", ["1/1", "3/2", "-1/2", "a/b", "1", "0/0", ""])
def test_bad_partition_specs_are_refused(text) -> None:
    with pytest.raises(ValueError, match="partition"):
        Partition.parse(text)


def test_worker_timings_add_up_per_partition_into_the_worker_total() -> None:
    from lazyshift.backfill.worker import Timings

    total = Timings()
    total.add(Timings(docs=500, read_wait=1.0, map=0.25, write=0.5, other=0.125))
    total.add(Timings(docs=20, read_wait=0.5, map=0.25, write=0.25, other=0.0))
    assert total.as_fields() == {
        "docs": 520,
        "read_wait_s": 1.5,
        "map_s": 0.5,
        "write_s": 0.75,
        "other_s": 0.125,
    }
