"""Frame reader: whatever chunking TCP applies, the same frames come out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lazyshift.core.framing import Frame, FrameReader, FramingError, OversizedFrame, encode

payloads = st.lists(st.binary(min_size=0, max_size=300), min_size=0, max_size=30)


def _chunk(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


@settings(max_examples=300)
@given(payloads, st.lists(st.integers(min_value=0, max_value=10**6), max_size=40))
def test_any_chunking_yields_the_same_frames(msgs: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode(m) for m in msgs)
    reader = FrameReader()
    out = [f for chunk in _chunk(stream, cuts) for f in reader.feed(chunk)]
    assert out == [Frame(m) for m in msgs]
    assert reader.buffered == 0


@settings(max_examples=200)
@given(payloads, st.integers(min_value=1, max_value=7))
def test_byte_by_byte_and_coalesced(msgs: list[bytes], step: int) -> None:
    stream = b"".join(encode(m) for m in msgs)
    reader = FrameReader()
    out = [f for i in range(0, len(stream), step) for f in reader.feed(stream[i : i + step])]
    assert out == [Frame(m) for m in msgs]


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=50)), max_size=20),
    st.lists(st.integers(min_value=0, max_value=10**6), max_size=30),
)
def test_oversized_frames_are_skipped_keeping_their_head(parts, cuts) -> None:
    max_frame = 64
    msgs = [(big, body * (200 // len(body) + 1) if big else body) for big, body in parts]
    stream = b"".join(encode(m) for _, m in msgs)
    reader = FrameReader(max_frame=max_frame, head_bytes=16)
    out = [f for chunk in _chunk(stream, cuts) for f in reader.feed(chunk)]
    expected = [OversizedFrame(len(m), m[:16]) if len(m) > max_frame else Frame(m) for _, m in msgs]
    assert out == expected


def test_unicode_length_is_in_bytes() -> None:
    payload = '{"name":"Zoë 東京 🚚"}'.encode()
    assert list(FrameReader().feed(encode(payload))) == [Frame(payload)]


@pytest.mark.parametrize("garbage", [b"abc#{}", b"12x#", b"9" * 25])
def test_bad_header_is_a_framing_error(garbage: bytes) -> None:
    with pytest.raises(FramingError):
        list(FrameReader().feed(garbage))
