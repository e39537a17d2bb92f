"""The stream consumer: frames -> canonical documents -> the sink of the current mode.

Delivery is at-least-once from the source (resume from the last stored sequence) and the
sink's write is idempotent (revision guard), which together give an exactly-once effect:
the offset may lag the writes, never lead them, so a crash replays a few messages that
then change nothing.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Protocol

from tenacity import wait_exponential_jitter

from lazyshift import logs
from lazyshift.client.follower import Stopped
from lazyshift.client.source import Partition, SourceConnection
from lazyshift.client.transient import is_transient
from lazyshift.core.document import Document
from lazyshift.core.framing import Frame, OversizedFrame
from lazyshift.core.normalise import (
    Malformed,
    normalise_message,
    parse_message,
    printable,
    recover_seq,
)
from lazyshift.router import Unstorable

MAX_MESSAGE_BYTES = 1 << 20
OFFSET_FLUSH_EVERY_S = 0.5
OFFSET_FLUSH_EVERY_N = 500
IDLE_WORK_EVERY_S = 1.0
BATCH_MAX = 200  # documents written together
BATCH_AGE_S = 0.05  # the oldest document in hand waits at most this long (plus one frame)


class Sink(Protocol):
    """Where a mode sends what the stream delivers. Every method must be idempotent."""

    def write(self, doc: Document) -> bool: ...  # True if applied, False if stale

    # One outcome per document, in stream order (a key may repeat: the sink applies its
    # documents as if one after the other): True, False (stale) or Unstorable.
    def write_many(self, docs: list[Document]) -> list[bool | Unstorable]: ...

    def dead_letter(
        self, *, reason: str, category: str, raw: bytes, seq: int | None, key: str | None
    ) -> bool: ...

    def load_offset(self, partition: str) -> int: ...

    def save_offset(self, partition: str, seq: int) -> None: ...

    def idle(self) -> None: ...  # called between messages when the source is quiet

    def reset(self) -> None: ...  # drop cached store connections after a transient failure


@dataclass
class Counters:
    received: int = 0
    stored: int = 0
    stale: int = 0
    dead_lettered: int = 0
    reconnects: int = 0
    last_seq: int = 0
    # Seconds from the first message handled to the last: ingest rate = received / this.
    busy_s: float = 0.0
    dead_letter_categories: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class ConsumerOptions:
    host: str
    port: int
    partition: Partition
    exit_at_end: bool = False
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_backoff_s: float = 5.0


class Consumer:
    def __init__(
        self,
        sink: Sink,
        options: ConsumerOptions,
        stop: threading.Event | None = None,
        on_message: object | None = None,
    ) -> None:
        self.sink = sink
        self.opts = options
        self.stop = stop or threading.Event()
        self.counters = Counters()
        self._partition = str(options.partition)
        self._stored_offset = 0
        self._pending_offset = 0
        self._last_flush = time.monotonic()
        self._since_flush = 0
        self.finished = False  # saw the source's end marker
        self._counted = False  # the frame in hand was counted as received
        self._last_idle = time.monotonic()
        # The micro-batch in hand: (raw frame, document) in stream order, written on size,
        # age, idle, offset save, or a rejected frame (whose offset comes after them). A key
        # may come more than once: the sink folds its revisions in order.
        self._batch: list[tuple[bytes, Document]] = []
        self._batch_started = time.monotonic()
        self._first_at: float | None = None

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> Counters:
        backoff = wait_exponential_jitter(initial=0.1, max=self.opts.max_backoff_s)
        attempt = 0
        while not self.stop.is_set() and not self.finished:
            try:
                self._stored_offset = self._pending_offset = max(
                    self._pending_offset, self.sink.load_offset(self._partition)
                )
                with SourceConnection(
                    self.opts.host, self.opts.port, self.opts.partition, self._stored_offset
                ) as conn:
                    logs.event(
                        "source.connected", partition=self._partition, from_seq=self._stored_offset
                    )
                    for item in conn.frames(self.stop):
                        if item is None:
                            self._idle()
                        else:
                            attempt = 0
                            self._handle(item)
                            if time.monotonic() - self._last_idle >= IDLE_WORK_EVERY_S:
                                # Under steady load the source is never quiet: the idle
                                # work (the dual-write backlog) must still run, or it
                                # never drains and the stage-2 gate never opens.
                                self._idle()
                        self._maybe_flush()
                        if self.finished:
                            break
            except Stopped:
                break
            except Exception as exc:
                # Only connection-level failures get here from a frame (see _handle); one
                # that is not transient outside a frame (offsets, idle work) is a bug.
                if not is_transient(exc):
                    raise
                if self.stop.is_set():
                    break
                self._reset_sink()
                attempt += 1
                self.counters.reconnects += 1
                delay = backoff(_RetryState(attempt))
                logs.event(
                    "source.reconnect",
                    error=f"{type(exc).__name__}: {exc}",
                    attempt=attempt,
                    delay_s=round(delay, 3),
                )
                self.stop.wait(delay)
        self._flush(force=True)
        return self.counters

    # -- one frame -----------------------------------------------------------------------------
    def _handle(self, item: Frame | OversizedFrame) -> None:
        now = time.monotonic()
        if self._first_at is None:
            self._first_at = now
        try:
            self._handle_frame(item)
        except Stopped:
            raise
        except Exception as exc:
            # The one error boundary of a frame: what retrying cannot fix is dead-lettered
            # with its reason and the stream goes on; only a connection-level failure makes
            # the caller reconnect and replay this frame.
            if is_transient(exc):
                raise
            self._reject_unexpected(item, exc)
        finally:
            self.counters.busy_s = round(time.monotonic() - self._first_at, 6)

    def _idle(self) -> None:
        self._flush_batch()
        self._last_idle = time.monotonic()
        self.sink.idle()

    def _batch_since(self) -> float:
        return self._batch_started if self._batch else time.monotonic()

    def _reject_unexpected(self, item: Frame | OversizedFrame, exc: Exception) -> None:
        raw = item.payload if isinstance(item, Frame) else item.head
        counted = self._counted
        reason = f"{type(exc).__name__}: {printable(str(exc))[:500]}"
        logs.event("message.unexpected_error", error=reason)
        self._reject(raw, recover_seq(raw), "unstorable", reason, counted=counted)

    def _reset_sink(self) -> None:
        reset = getattr(self.sink, "reset", None)
        if reset is not None:
            try:
                reset()
            except Exception as exc:  # noqa: BLE001 - dropping a broken connection may fail
                logs.event("sink.reset_failed", error=str(exc))

    def _handle_frame(self, item: Frame | OversizedFrame) -> None:
        self._counted = False
        if isinstance(item, OversizedFrame):
            self._reject(
                item.head,
                recover_seq(item.head),
                "oversized",
                f"frame of {item.length} bytes exceeds the read buffer; head kept",
            )
            return
        raw = item.payload
        seq = recover_seq(raw)
        if len(raw) > self.opts.max_message_bytes:
            self._reject(
                raw,
                seq,
                "oversized",
                f"message of {len(raw)} bytes exceeds {self.opts.max_message_bytes}",
            )
            return
        try:
            msg = parse_message(raw)
        except Malformed as exc:
            self._reject(raw, seq, exc.category, exc.reason)
            return
        if "seq" not in msg and msg.get("type") == "end":
            self._flush_batch()
            self.finished = self.opts.exit_at_end
            logs.event("source.end", last_seq=msg.get("last_seq"), partition=self._partition)
            return
        self.counters.received += 1
        self._counted = True
        try:
            doc = normalise_message(msg)
        except Malformed as exc:
            self._reject(raw, seq, exc.category, exc.reason, counted=True, key=_key_hint(msg))
            return
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.append((raw, doc))
        if len(self._batch) >= BATCH_MAX:
            self._flush_batch()

    def _write_one(self, raw: bytes, doc: Document) -> None:
        try:
            applied = self.sink.write(doc)
        except Unstorable as exc:
            self._reject(
                raw, doc["source_seq"], "unmappable", exc.reason, counted=True, key=doc["key"]
            )
            return
        self._stored(doc, applied)

    def _stored(self, doc: Document, applied: bool) -> None:
        if applied:
            self.counters.stored += 1
        else:
            self.counters.stale += 1
        self._advance(doc["source_seq"])

    # -- micro-batches -------------------------------------------------------------------------
    def _flush_batch(self) -> None:
        """Write the documents in hand. Their offsets advance only once they are written;
        a transient failure drops the batch from memory and the stream replays it. A
        document the store refuses is dead-lettered, the rest of the batch stands."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            results = self.sink.write_many([doc for _, doc in batch])
        except Stopped:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            # Something in the batch cannot be stored: one by one, each in its own boundary.
            for raw, doc in batch:
                self._write_isolated(raw, doc)
        else:
            for (raw, doc), outcome in zip(batch, results, strict=True):
                if isinstance(outcome, Unstorable):
                    self._reject(
                        raw, doc["source_seq"], "unmappable", outcome.reason, counted=True,
                        key=doc["key"],
                    )  # fmt: skip
                else:
                    self._stored(doc, outcome)
        if self._first_at is not None:
            self.counters.busy_s = round(time.monotonic() - self._first_at, 6)

    def _write_isolated(self, raw: bytes, doc: Document) -> None:
        try:
            self._write_one(raw, doc)
        except Stopped:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            self._counted = True
            reason = f"{type(exc).__name__}: {printable(str(exc))[:500]}"
            self._reject(raw, doc["source_seq"], "unstorable", reason, counted=True, key=doc["key"])

    def _reject(
        self,
        raw: bytes,
        seq: int | None,
        category: str,
        reason: str,
        counted: bool = False,
        key: str | None = None,
    ) -> None:
        if not counted:
            self.counters.received += 1
        self._counted = True
        # Documents in hand come first: the offset must not pass them before they are written.
        self._flush_batch()
        self._dead_letter(raw, seq, category, reason, key)
        self.counters.dead_lettered += 1
        cats = self.counters.dead_letter_categories
        cats[category] = cats.get(category, 0) + 1
        logs.event("message.dead_lettered", seq=seq, category=category, reason=reason[:200])
        if seq is not None:
            self._advance(seq)

    def _dead_letter(
        self, raw: bytes, seq: int | None, category: str, reason: str, key: str | None
    ) -> None:
        reason, key = printable(reason), None if key is None else printable(key)
        try:
            self.sink.dead_letter(reason=reason, category=category, raw=raw, seq=seq, key=key)
        except Exception as exc:
            if is_transient(exc):
                raise
            # The letter itself could not be stored as it is: keep the bytes (as base64 text)
            # and the reason, which is what the letter is for.
            logs.event("dead_letter.fallback", error=f"{type(exc).__name__}: {exc}"[:300])
            self.sink.dead_letter(
                reason=f"{reason} (letter stored as base64: {type(exc).__name__})",
                category=category,
                raw=base64.b64encode(raw),
                seq=seq,
                key=None,
            )

    def _advance(self, seq: int) -> None:
        self._pending_offset = max(self._pending_offset, seq)
        self.counters.last_seq = max(self.counters.last_seq, seq)
        self._since_flush += 1

    def _maybe_flush(self) -> None:
        now = time.monotonic()
        if self._batch and now - self._batch_since() >= BATCH_AGE_S:
            self._flush_batch()
        if (
            self._since_flush >= OFFSET_FLUSH_EVERY_N
            or now - self._last_flush >= OFFSET_FLUSH_EVERY_S
        ):
            self._flush()

    def _flush(self, force: bool = False) -> None:
        try:
            self._flush_batch()
        except Exception as exc:
            if not force or not (isinstance(exc, Stopped) or is_transient(exc)):
                raise
            # On the way out: what was in hand is replayed by the next run.
            logs.event("batch.not_written", error=f"{type(exc).__name__}: {exc}"[:300])
        if self._pending_offset > self._stored_offset:
            try:
                self.sink.save_offset(self._partition, self._pending_offset)
                self._stored_offset = self._pending_offset
            except Exception as exc:
                if not force or not is_transient(exc):
                    raise
                # On the way out a store that is down cannot take the offset; the next run
                # replays from the older one, which the revision guard makes harmless.
                logs.event("offset.not_saved", error=str(exc), seq=self._pending_offset)
        self._last_flush = time.monotonic()
        self._since_flush = 0


@dataclass
class _RetryState:
    attempt_number: int


def _key_hint(msg: dict) -> str | None:
    source = msg.get("source")
    for name in ("id", "trackingNumber", "tracking_no", "ConsignmentId"):
        value = msg.get(name)
        if isinstance(source, str) and isinstance(value, str):
            return f"{source}:{value}"[:96]
    return None
