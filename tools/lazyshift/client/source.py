"""A connection to the legacy source: subscribe, then yield frames as they arrive."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from lazyshift.core.framing import Frame, FrameReader, OversizedFrame, encode

# Hard cap on what is buffered for one frame; frames above it are skipped, keeping their head.
READ_BUFFER_CAP = 16 << 20


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
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        self.sock.settimeout(poll_s)
        self.reader = FrameReader(max_frame=READ_BUFFER_CAP)
        self.sock.sendall(
            encode(
                {
                    "type": "subscribe",
                    "from_seq": from_seq,
                    "partition": partition.index,
                    "partitions": partition.count,
                }
            )
        )

    def frames(self, stop: threading.Event) -> Iterator[Frame | OversizedFrame | None]:
        """Frames as they arrive; None when the source has been quiet for a poll interval
        (so the caller can flush its offset and look at the control plane while idle)."""
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
