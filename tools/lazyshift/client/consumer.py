"""The stream consumer: frames -> canonical documents -> the sink of the current mode.

Delivery is at-least-once from the source (resume from the last stored sequence) and the
sink's write is idempotent (revision guard), which together give an exactly-once effect:
the offset may lag the writes, never lead them, so a crash replays a few messages that
then change nothing.
"""

from __future__ import annotations

import base64
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

from tenacity import wait_exponential_jitter

from lazyshift import logs
from lazyshift.client.follower import Stopped
from lazyshift.client.source import Partition, SourceConnection
from lazyshift.client.transient import is_transient
from lazyshift.core.document import Document
from lazyshift.core.framing import Frame, OversizedFrame
from lazyshift.core.mongo_store import StreamLetter
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
BATCH_MAX = 1000  # documents written together (a key repeated in a batch is written once)
BATCH_MIN = 20
# What one batch's write should take: a batch holds the write gate, so a transition's drain
# waits for it; the size adapts to the last batch's time per document (within the bounds).
BATCH_TARGET_S = 0.15
# ... and when the source is far ahead (a catch-up: another full batch already parsed and
# waiting): fewer, bigger batches spread each batch's fixed round trips (in dual ~11 MySQL
# statements and a commit beside MongoDB's two requests: ~60 ms a batch, profiled) over more
# documents and fold more repeated keys. A transition's drain still waits well under 0.5 s;
# a live stream that keeps up (the demo's 500 msg/s) never reaches it, so its lag is as before.
BATCH_TARGET_DEEP_S = 0.3
# The oldest document in hand waits at most this long while the reader keeps parsing more
# (a batch is written as soon as the reader has nothing more parsed).
BATCH_AGE_S = 0.2
READ_AHEAD = 2 * BATCH_MAX  # parsed frames waiting for the writes


class Sink(Protocol):
    """Where a mode sends what the stream delivers. Every method must be idempotent."""

    def write(self, doc: Document) -> bool: ...  # True if applied, False if stale

    # One outcome per document, in stream order (a key may repeat: the sink applies its
    # documents as if one after the other): True, False (stale) or Unstorable.
    def write_many(self, docs: list[Document]) -> list[bool | Unstorable]: ...

    def dead_letter(
        self, *, reason: str, category: str, raw: bytes, seq: int | None, key: str | None
    ) -> bool: ...

    def dead_letter_many(self, letters: list[StreamLetter]) -> None: ...  # one write for all

    def load_offset(self, partition: str) -> int: ...

    def save_offset(self, partition: str, seq: int) -> None: ...

    # The store the next save_offset goes to: when it changes (a transition moved the
    # offsets' home) the offset is saved again even if it did not advance.
    @property
    def offset_home(self) -> str: ...

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
        # Where _stored_offset was saved: a transition moves the offset to the other store,
        # which must get it even when no message came since (the stream may be all read).
        self._stored_home: str | None = None
        self._pending_offset = 0
        self._last_flush = time.monotonic()
        self._since_flush = 0
        self.finished = False  # saw the source's end marker
        self._last_idle = time.monotonic()
        # The micro-batch in hand: (raw frame, document) in stream order, written when the
        # reader has nothing more parsed, on size, age, idle or offset save. A key may come
        # more than once: the sink folds its revisions in order. Beside it, the dead letters
        # of rejected frames, written with it; offsets advance once both are written.
        self._batch: list[tuple[bytes, Document]] = []
        self._letters: list[_Letter] = []
        self._written: list[int | None] = []  # seqs written by the flush under way
        self._batch_started = time.monotonic()
        self._batch_max = BATCH_MIN  # grows with what the writes show they can take
        self._first_at: float | None = None
        self._reader: _Reader | None = None  # the one in use, for its backlog

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> Counters:
        backoff = wait_exponential_jitter(initial=0.1, max=self.opts.max_backoff_s)
        attempt = 0
        while not self.stop.is_set() and not self.finished:
            try:
                self._stored_offset = self._pending_offset = max(
                    self._pending_offset, self.sink.load_offset(self._partition)
                )
                self._stored_home = self.sink.offset_home
                with SourceConnection(
                    self.opts.host, self.opts.port, self.opts.partition, self._stored_offset
                ) as conn:
                    logs.event(
                        "source.connected", partition=self._partition, from_seq=self._stored_offset
                    )
                    with _Reader(conn, self.stop, self._parse) as reader:
                        self._reader = reader
                        try:
                            attempt = self._consume(reader, attempt)
                        finally:
                            self._reader = None
            except Stopped:
                break
            except Exception as exc:
                # Only connection-level failures get here from a frame (see _parse); one
                # that is not transient outside a frame (offsets, idle work) is a bug.
                if not is_transient(exc):
                    raise
                if self.stop.is_set():
                    break
                self._batch, self._letters = [], []  # replayed from the stored offset
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

    def _consume(self, reader: _Reader, attempt: int) -> int:
        """Take what the reader thread parsed, in stream order. The batch in hand is written
        when nothing more is parsed yet (or it is full, or old): while it is written, the
        reader parses the next one, so a source that outruns the writes gets big batches,
        and a slow one small, prompt ones."""
        while not self.stop.is_set() and not self.finished:
            item = reader.next()
            if item is _IDLE:
                self._idle()
            elif item is not None:
                attempt = 0
                self._take(item)
                if time.monotonic() - self._last_idle >= IDLE_WORK_EVERY_S:
                    # Under steady load the source is never quiet: the idle work (the
                    # dual-write backlog) must still run, or it never drains and the
                    # stage-2 gate never opens.
                    self._idle()
            self._maybe_flush(caught_up=reader.caught_up())
        return attempt

    # -- one frame -----------------------------------------------------------------------------
    def _parse(self, item: Frame | OversizedFrame) -> _Parsed:
        """A frame -> what to do with it (on the reader thread: no side effects). The one
        error boundary of a frame: what retrying cannot fix is dead-lettered with its reason
        and the stream goes on."""
        raw = item.payload if isinstance(item, Frame) else item.head
        try:
            return self._parse_frame(item)
        except Exception as exc:  # noqa: BLE001 - every frame gets an answer
            reason = f"{type(exc).__name__}: {printable(str(exc))[:500]}"
            logs.event("message.unexpected_error", error=reason)
            return _Parsed(raw, recover_seq(raw), category="unstorable", reason=reason)

    def _parse_frame(self, item: Frame | OversizedFrame) -> _Parsed:
        if isinstance(item, OversizedFrame):
            return _Parsed(
                item.head,
                recover_seq(item.head),
                category="oversized",
                reason=f"frame of {item.length} bytes exceeds the read buffer; head kept",
            )
        raw = item.payload
        seq = recover_seq(raw)
        if len(raw) > self.opts.max_message_bytes:
            reason = f"message of {len(raw)} bytes exceeds {self.opts.max_message_bytes}"
            return _Parsed(raw, seq, category="oversized", reason=reason)
        try:
            msg = parse_message(raw)
        except Malformed as exc:
            return _Parsed(raw, seq, category=exc.category, reason=exc.reason)
        if "seq" not in msg and msg.get("type") == "end":
            return _Parsed(raw, None, end=msg)
        try:
            return _Parsed(raw, seq, doc=normalise_message(msg))
        except Malformed as exc:
            return _Parsed(raw, seq, category=exc.category, reason=exc.reason, key=_key_hint(msg))

    def _take(self, item: _Parsed) -> None:
        now = time.monotonic()
        if self._first_at is None:
            self._first_at = now
        if item.end is not None:
            self._flush_batch()
            self.finished = self.opts.exit_at_end
            logs.event("source.end", last_seq=item.end.get("last_seq"), partition=self._partition)
        elif item.doc is None:
            assert item.category is not None
            self.counters.received += 1
            if not self._in_hand():
                self._batch_started = now
            self._letters.append(_Letter(item.raw, item.seq, item.category, item.reason, item.key))
        else:
            self.counters.received += 1
            if not self._in_hand():
                self._batch_started = now
            self._batch.append((item.raw, item.doc))
            if len(self._batch) >= self._batch_max:
                self._flush_batch()
        self.counters.busy_s = round(time.monotonic() - self._first_at, 6)

    def _idle(self) -> None:
        self._flush_batch()
        self._last_idle = time.monotonic()
        self.sink.idle()

    def _in_hand(self) -> bool:
        return bool(self._batch or self._letters)

    def _reset_sink(self) -> None:
        try:
            self.sink.reset()
        except Exception as exc:  # noqa: BLE001 - dropping a broken connection may fail
            logs.event("sink.reset_failed", error=str(exc))

    def _write_one(self, raw: bytes, doc: Document) -> None:
        try:
            applied = self.sink.write(doc)
        except Unstorable as exc:
            self._reject(raw, doc["source_seq"], "unmappable", exc.reason, key=doc["key"])
            return
        self._stored(doc, applied)

    def _stored(self, doc: Document, applied: bool) -> None:
        if applied:
            self.counters.stored += 1
        else:
            self.counters.stale += 1
        self._written.append(doc["source_seq"])

    # -- micro-batches -------------------------------------------------------------------------
    def _flush_batch(self) -> None:
        """Write the documents in hand, then the dead letters in hand. Their offsets advance
        only once all of them are written; a transient failure drops them from memory and
        the stream replays them. A document the store refuses is dead-lettered, the rest of
        the batch stands."""
        batch, self._batch = self._batch, []
        letters, self._letters = self._letters, []
        self._written = []
        if batch:
            deep = self._reader is not None and self._reader.waiting() >= len(batch)
            started = time.monotonic()
            self._write_batch(batch)
            self._fit_batch(len(batch), time.monotonic() - started, deep)
        self._reject_many(letters)
        for seq in self._written:
            if seq is not None:
                self._advance(seq)
        self._written = []
        if self._first_at is not None:
            self.counters.busy_s = round(time.monotonic() - self._first_at, 6)

    def _fit_batch(self, size: int, took_s: float, deep: bool = False) -> None:
        """Size the next batch so that its write takes about BATCH_TARGET_S at the pace of
        this one — BATCH_TARGET_DEEP_S if the reader had another such batch waiting (`deep`)
        — (a small batch says little about a big one: grow at most fourfold)."""
        target = BATCH_TARGET_DEEP_S if deep else BATCH_TARGET_S
        if size < self._batch_max and took_s < target:
            return  # cut short by the source, not by the size: nothing learnt
        fit = int(size * target / max(took_s, 1e-3))
        self._batch_max = max(BATCH_MIN, min(BATCH_MAX, fit, 4 * size))

    def _write_batch(self, batch: list[tuple[bytes, Document]]) -> None:
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
                    self._reject(raw, doc["source_seq"], "unmappable", outcome.reason, doc["key"])
                else:
                    self._stored(doc, outcome)

    def _write_isolated(self, raw: bytes, doc: Document) -> None:
        try:
            self._write_one(raw, doc)
        except Stopped:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            reason = f"{type(exc).__name__}: {printable(str(exc))[:500]}"
            self._reject(raw, doc["source_seq"], "unstorable", reason, key=doc["key"])

    def _reject(
        self, raw: bytes, seq: int | None, category: str, reason: str, key: str | None = None
    ) -> None:
        """Dead-letter a message (already counted as received) during a flush."""
        self._dead_letter(raw, seq, category, reason, key)
        self._counted_letter(seq, category, reason)

    def _counted_letter(self, seq: int | None, category: str, reason: str) -> None:
        self.counters.dead_lettered += 1
        cats = self.counters.dead_letter_categories
        cats[category] = cats.get(category, 0) + 1
        logs.event("message.dead_lettered", seq=seq, category=category, reason=reason[:200])
        self._written.append(seq)

    def _reject_many(self, letters: list[_Letter]) -> None:
        """`_reject` for the rejected frames of a batch, stored together (one round trip,
        not one each); if the store refuses them together, one by one (each with
        `_dead_letter`'s fallback)."""
        if len(letters) < 2:
            for x in letters:
                self._reject(x.raw, x.seq, x.category, x.reason, key=x.key)
            return
        try:
            self.sink.dead_letter_many(
                [
                    StreamLetter(
                        printable(x.reason),
                        x.category,
                        x.raw,
                        x.seq,
                        None if x.key is None else printable(x.key),
                    )
                    for x in letters
                ]
            )
        except Stopped:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            logs.event("dead_letter.batch_refused", error=f"{type(exc).__name__}: {exc}"[:300])
            for x in letters:
                self._reject(x.raw, x.seq, x.category, x.reason, key=x.key)
            return
        for x in letters:
            self._counted_letter(x.seq, x.category, x.reason)

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

    def _maybe_flush(self, caught_up: bool = True) -> None:
        now = time.monotonic()
        if self._in_hand() and (caught_up or now - self._batch_started >= BATCH_AGE_S):
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
        home = self.sink.offset_home
        moved = home != self._stored_home and self._pending_offset > 0
        if self._pending_offset > self._stored_offset or moved:
            try:
                self.sink.save_offset(self._partition, self._pending_offset)
                self._stored_offset, self._stored_home = self._pending_offset, home
            except Exception as exc:
                if not force or not (isinstance(exc, Stopped) or is_transient(exc)):
                    raise
                # On the way out a store that is down (or a transition under way) cannot
                # take the offset; the next run replays from the older one, which the
                # revision guard makes harmless.
                logs.event("offset.not_saved", error=str(exc), seq=self._pending_offset)
        self._last_flush = time.monotonic()
        self._since_flush = 0


@dataclass(frozen=True)
class _Parsed:
    """What the reader made of one frame: a document, a dead letter, or the end marker."""

    raw: bytes
    seq: int | None
    doc: Document | None = None
    end: dict | None = None
    category: str | None = None  # why it is dead-lettered
    reason: str = ""
    key: str | None = None


@dataclass(frozen=True)
class _Letter:
    raw: bytes
    seq: int | None
    category: str
    reason: str
    key: str | None


@dataclass(frozen=True)
class _Failed:
    exc: BaseException


_IDLE = object()  # the source has been quiet for a poll interval


class _Reader:
    """The source's frames, read and parsed on a thread of their own and handed over in
    stream order through a bounded queue: parsing and normalising is most of a message's
    client CPU, and overlaps the writes' round trips instead of waiting for them. A failure
    of the connection is raised in the consumer's thread, from `next`."""

    def __init__(
        self,
        conn: SourceConnection,
        stop: threading.Event,
        parse: Callable[[Frame | OversizedFrame], _Parsed],
    ) -> None:
        self._queue: queue.Queue[_Parsed | _Failed | object] = queue.Queue(READ_AHEAD)
        self._halt = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(conn, stop, parse), name="source-reader", daemon=True
        )

    def __enter__(self) -> _Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join(timeout=30)

    def _run(
        self,
        conn: SourceConnection,
        stop: threading.Event,
        parse: Callable[[Frame | OversizedFrame], _Parsed],
    ) -> None:
        try:
            for frame in conn.frames(self._halt):
                if stop.is_set():
                    return
                self._put(_IDLE if frame is None else parse(frame))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer's thread
            self._put(_Failed(exc))

    def _put(self, item: object) -> None:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self) -> _Parsed | object | None:
        """The next parsed frame, _IDLE, or None if nothing came for a while."""
        try:
            item = self._queue.get(timeout=0.25)
        except queue.Empty:
            return None
        if isinstance(item, _Failed):
            raise item.exc
        return item

    def waiting(self) -> int:
        """How many parsed frames wait to be taken (approximate: the reader adds more)."""
        return self._queue.qsize()

    def caught_up(self) -> bool:
        """Nothing parsed is waiting: the batch in hand is all there is for now."""
        return self._queue.empty()


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
