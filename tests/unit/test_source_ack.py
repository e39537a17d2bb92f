"""The client trusts no data frame before the source acknowledged its subscription."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from lazyshift.client.source import Partition, SourceConnection, SubscriptionRefused
from lazyshift.core.framing import Frame, FrameReader, encode


@contextmanager
def fake_source(*replies: bytes) -> Iterator[tuple[int, list[dict]]]:
    """A one-connection source: reads the subscribe frame, sends `replies`, keeps the
    connection open until the client closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(60)
    seen: list[dict] = []

    def serve() -> None:
        with listener, listener.accept()[0] as conn:
            reader = FrameReader()
            frames: list = []
            while not frames:
                data = conn.recv(4096)
                if not data:
                    return
                frames = list(reader.feed(data))
            seen.append(json.loads(frames[0].payload))
            conn.sendall(b"".join(replies))
            while conn.recv(4096):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], seen
    finally:
        thread.join(timeout=60)


def _ack(from_seq: int = 5, k: int = 1, n: int = 2, **extra) -> bytes:
    body = {"type": "subscribed", "from_seq": from_seq, "partition": k, "partitions": n}
    return encode({**body, **extra})


def _frames(conn: SourceConnection, n: int) -> list:
    out = []
    stop = threading.Event()
    for item in conn.frames(stop):
        if item is not None:
            out.append(item)
        if len(out) == n:
            break
    return out


def test_frames_after_the_acknowledgement_are_delivered() -> None:
    data = [encode(b'{"seq":6}'), encode(b'{"seq":8}')]
    with (
        fake_source(_ack() + b"".join(data)) as (port, seen),
        SourceConnection("127.0.0.1", port, Partition(1, 2), 5) as conn,
    ):
        assert conn.ack["partition"] == 1
        assert _frames(conn, 2) == [Frame(b'{"seq":6}'), Frame(b'{"seq":8}')]
    assert seen == [
        {"type": "subscribe", "from_seq": 5, "partition": 1, "partitions": 2, "exclusive": True}
    ]


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (encode({"type": "error", "message": "partition 1/2 already has a consumer"}), "already"),
        (encode(b'{"seq":1,"source":"legacy"}'), "expected the acknowledgement"),  # stream from 0
        (_ack(from_seq=0), "expected the acknowledgement"),
        (_ack(k=0), "expected the acknowledgement"),
        (b"", "no subscription acknowledgement"),  # a hung source
    ],
)
def test_a_refused_or_wrong_subscription_is_an_error(reply: bytes, match: str) -> None:
    with fake_source(reply) as (port, _), pytest.raises(SubscriptionRefused, match=match):
        SourceConnection("127.0.0.1", port, Partition(1, 2), 5, ack_timeout_s=0.5).close()


def test_a_refusal_is_transient_for_the_consumer() -> None:
    from lazyshift.client.transient import is_transient

    assert is_transient(SubscriptionRefused("x"))
