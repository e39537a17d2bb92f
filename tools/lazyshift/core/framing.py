"""The legacy source's wire framing: `<byte length>#<payload>` (the json-socket convention).

FrameReader is a pure, incremental parser: feed it whatever chunks TCP delivers and it yields
whole frames, however the bytes were split or coalesced. A frame longer than `max_frame` is
not buffered: its bytes are skipped as they arrive and it is reported as an OversizedFrame
carrying only its head, so one huge message cannot exhaust memory or stop the stream.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_MAX_FRAME = 1 << 20  # 1 MiB
_MAX_HEADER = 20  # digits of a 64-bit length, with room to spare


class FramingError(ValueError):
    """The byte stream is not framed correctly; the connection cannot be trusted further."""


@dataclass(frozen=True)
class Frame:
    payload: bytes


@dataclass(frozen=True)
class OversizedFrame:
    length: int
    head: bytes  # the first bytes, enough to attribute the message (its "seq")


def encode(payload: bytes | str | dict) -> bytes:
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":"))
    if isinstance(payload, str):
        payload = payload.encode()
    return str(len(payload)).encode() + b"#" + payload


class FrameReader:
    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME, head_bytes: int = 256) -> None:
        self.max_frame = max_frame
        self.head_bytes = head_bytes
        self._buf = bytearray()
        self._skip_left = 0  # bytes of an oversized frame still to discard
        self._skip_len = 0
        self._skip_head = bytearray()

    def feed(self, data: bytes) -> Iterator[Frame | OversizedFrame]:
        self._buf += data
        while True:
            if self._skip_left:
                skipped = self._discard()
                if skipped is None:
                    return
                yield skipped
                continue
            header = self._header()
            if header is None:
                return
            hash_at, length = header
            if length > self.max_frame:
                del self._buf[: hash_at + 1]
                self._skip_left = self._skip_len = length
                continue
            end = hash_at + 1 + length
            if len(self._buf) < end:
                return
            payload = bytes(self._buf[hash_at + 1 : end])
            del self._buf[:end]
            yield Frame(payload)

    def _discard(self) -> OversizedFrame | None:
        """Drop buffered bytes of an oversized frame (keeping its head); the frame once all
        of it is gone, else None (more to come)."""
        take = min(self._skip_left, len(self._buf))
        room = self.head_bytes - len(self._skip_head)
        if room > 0:
            self._skip_head += self._buf[: min(room, take)]
        del self._buf[:take]
        self._skip_left -= take
        if self._skip_left:
            return None
        frame = OversizedFrame(self._skip_len, bytes(self._skip_head))
        self._skip_head.clear()
        return frame

    def _header(self) -> tuple[int, int] | None:
        """(position of '#', frame length) of the next header; None until it is complete."""
        hash_at = self._buf.find(b"#", 0, _MAX_HEADER + 1)
        if hash_at < 0:
            if self._buf and not bytes(self._buf).isdigit():
                raise FramingError(f"bad frame header: {bytes(self._buf[:32])!r}")
            if len(self._buf) > _MAX_HEADER:
                raise FramingError("frame header longer than 20 digits")
            return None
        header = bytes(self._buf[:hash_at])
        if not header.isdigit():
            raise FramingError(f"bad frame header: {header[:32]!r}")
        return hash_at, int(header)

    @property
    def buffered(self) -> int:
        return len(self._buf)
