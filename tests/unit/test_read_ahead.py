"""ReadAhead: batches in order, the source's error at the point it happened, bounded memory,
and a close that does not wait for a reader blocked on a full queue."""

import threading
import time
from collections.abc import Iterator

import pytest

from lazyshift.read_ahead import ReadAhead


def test_batches_in_order_with_a_short_last_one() -> None:
    ahead = ReadAhead(iter(range(7)), 3)
    try:
        assert list(ahead) == [[0, 1, 2], [3, 4, 5], [6]]
    finally:
        ahead.close()


def test_an_empty_source_yields_nothing() -> None:
    ahead = ReadAhead(iter(()), 3)
    try:
        assert list(ahead) == []
    finally:
        ahead.close()


def test_the_sources_error_comes_after_the_batches_before_it() -> None:
    def failing() -> Iterator[int]:
        yield from range(4)
        raise OSError("cursor lost")

    ahead = ReadAhead(failing(), 2)
    got = []
    try:
        with pytest.raises(OSError, match="cursor lost"):
            for batch in ahead:
                got.append(batch)
    finally:
        ahead.close()
    assert got == [[0, 1], [2, 3]]


def test_reads_at_most_depth_batches_ahead_and_close_stops_the_reader() -> None:
    taken = 0
    lock = threading.Lock()
    more = threading.Event()

    def counting() -> Iterator[int]:
        nonlocal taken
        for i in range(10_000):
            with lock:
                taken = i + 1
            if taken > 10:
                more.set()
            yield i

    ahead = ReadAhead(counting(), 2, depth=2)
    it = iter(ahead)
    assert next(it) == [0, 1]
    deadline = time.monotonic() + 30
    while not ahead._queue.full():
        assert time.monotonic() < deadline, "the reader never filled its queue"
        time.sleep(0.01)
    # Full: the reader holds at most one more batch and blocks on it. Nothing consumes, so
    # it must not reach item 11 (2 taken + 2 queued batches + 1 in hand = 8 items).
    assert not more.wait(0.5)
    with lock:
        assert taken <= 2 + 2 * 2 + 2
    ahead.close()
    assert not ahead._thread.is_alive()
