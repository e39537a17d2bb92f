"""A connection to the legacy source: subscribe, wait for the acknowledgement, then yield
frames as they arrive.

The source answers a subscribe with `{"type":"subscribed",...}` before any data, or with
`{"type":"error","message":...}` (e.g. another consumer holds the partition). Nothing is
trusted before the acknowledgement matches what was asked: a stream from the wrong offset or
partition would store messages out of turn.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from lazyshift.core.framing import Frame, FrameReader, OversizedFrame, encode

# Hard cap on what is buffered for one frame; frames above it are skipped, keeping their head.
READ_BUFFER_CAP = 16 << 20
# How long the acknowledgement may take; generous, it only guards against a hung source.
ACK_TIMEOUT_S = 30.0


class SubscriptionRefused(ConnectionError):
    """The source refused or did not acknowledge the subscription (retried with backoff: a
    partition's other consumer may be on its way out)."""


@dataclass(frozen=True)
class Partition:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Partition:
        try:
            k, n = (int(x) for x in text.split("/"))
        except ValueError as exc:
            raise ValueError(f"partition {text!r} is not k/n (e.g. 0/3)") from exc
        if n < 1 or not 0 <= k < n:
            raise ValueError(f"partition {text!r}: need 0 <= k < n")
        return cls(k, n)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class SourceConnection:
    def __init__(
        self,
        host: str,
        port: int,
        partition: Partition,
        from_seq: int,
        connect_timeout: float = 5.0,
        poll_s: float = 0.25,
        ack_timeout_s: float = ACK_TIMEOUT_S,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.reader = FrameReader(max_frame=READ_BUFFER_CAP)
        self._early: list[Frame | OversizedFrame] = []  # data frames read with the ack
        try:
            self.sock.settimeout(poll_s)
            self.sock.sendall(
                encode(
                    {
                        "type": "subscribe",
                        "from_seq": from_seq,
                        "partition": partition.index,
                        "partitions": partition.count,
                        "exclusive": True,  # one consumer per partition
                    }
                )
            )
            self.ack = self._await_ack(from_seq, partition, ack_timeout_s)
        except BaseException:
            self.close()
            raise

    def _await_ack(self, from_seq: int, partition: Partition, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while not self._early:
            if time.monotonic() > deadline:
                raise SubscriptionRefused(f"no subscription acknowledgement in {timeout_s:g} s")
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            if not data:
                raise SubscriptionRefused("source closed the connection before acknowledging")
            self._early.extend(self.reader.feed(data))
        first = self._early.pop(0)
        msg = _control(first)
        if msg.get("type") == "error":
            raise SubscriptionRefused(f"source refused the subscription: {msg.get('message')}")
        want = {"from_seq": from_seq, "partition": partition.index, "partitions": partition.count}
        got = {k: msg.get(k) for k in want}
        if msg.get("type") != "subscribed" or got != want:
            raise SubscriptionRefused(
                f"expected the acknowledgement of {want}, got {_head(first)!r}"
            )
        return msg

    def frames(self, stop: threading.Event) -> Iterator[Frame | OversizedFrame | None]:
        """Frames as they arrive; None when the source has been quiet for a poll interval
        (so the caller can flush its offset and look at the control plane while idle)."""
        early, self._early = self._early, []
        yield from early
        while not stop.is_set():
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                yield None
                continue
            if not data:
                raise ConnectionError("source closed the connection")
            yield from self.reader.feed(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> SourceConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _head(frame: Frame | OversizedFrame) -> bytes:
    return (frame.payload if isinstance(frame, Frame) else frame.head)[:200]


def _control(frame: Frame | OversizedFrame) -> dict:
    try:
        small = isinstance(frame, Frame) and len(frame.payload) <= 4096
        msg = json.loads(frame.payload) if small else None
    except ValueError:
        msg = None
    return msg if isinstance(msg, dict) else {}
