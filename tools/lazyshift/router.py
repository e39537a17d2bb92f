"""What a write or a read does in the current mode (DESIGN.md §1).

- mongo: writes to MongoDB; reads from MongoDB.
- dual: writes to MongoDB, then MySQL (a durable backlog when MySQL fails); reads from
  MongoDB, with a configurable fraction also read from MySQL and compared (shadow read).
- mysql-primary: writes to MySQL; a shipment MySQL has not seen is first migrated from
  MongoDB (lazy migration on write). Reads from MySQL; on a miss from MongoDB, written into
  MySQL through the guarded write (lazy migration on read), and returned.
- mysql: MySQL only, no fallback.

Every MySQL write is the guarded write; every write made under the control plane holds the
control row's share lock for its duration, so a transition's drain waits for it and a write
under an old epoch is refused by the database. The consumer's micro-batches (`write_many`)
are written under one gate each: a batch is written entirely in one epoch, or not at all.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mysql.connector import Error as MySQLError
from prometheus_client import CollectorRegistry, Counter, Gauge
from pymongo.errors import PyMongoError

from lazyshift import logs
from lazyshift.config import Settings
from lazyshift.control.ladder import MODE_NAMES, MYSQL_WRITES, TRUTH, Mode
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.document import Document, InvalidDocument
from lazyshift.core.guarded_write import (
    Fenced,
    apply_batch,
    check_epoch,
    guarded_write,
    map_or_reject,
)
from lazyshift.core.mapping import Rows, document_to_rows, stored_form
from lazyshift.core.mongo_store import ModeMirror, MongoStore, MongoWrite, StreamLetter
from lazyshift.core.mysql import MySQLInterfaceError, read_snapshot, run_in_transaction
from lazyshift.core.mysql_store import DeadLetter, document_dead_letter, message_dead_letter

# What a failing MySQL raises: the connector's errors, and the C extension's own error for a
# connection that died inside a transaction (a snapshot's ROLLBACK, a COMMIT), which is not a
# mysql.connector.Error.
MYSQL_ERRORS = (MySQLError, MySQLInterfaceError)


class Gate(Protocol):
    """The client's hold on the control plane (client.follower.Follower implements it)."""

    mode_in_use: str | None

    def gate(self) -> tuple[str, int]: ...  # wait until writes may go; (mode, epoch)

    def release(self) -> None: ...  # the write in hand is done

    def refresh_now(self) -> None: ...  # re-read the control row before the next gate

    def lease_valid(self, epoch: int) -> bool: ...  # epoch current as of a recent read?


class Unstorable(ValueError):
    """A document the current mode's store cannot hold; the caller dead-letters it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GuardSkipped(my.RetryableConflict):
    """The guarded write skipped a message for a reason other than a newer stored revision."""


IDLE_BATCH = 50  # backlog shipments per gate: bounds how long a transition waits for it

# What `write_many` says of one document: applied, stale, or refused by the store.
Outcome = bool | Unstorable


class StoreUnavailable(RuntimeError):
    """The store a read needs is down; the read API answers 503 with this message."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.reads = Counter(
            "lazyshift_reads", "Reads served", ["mode", "store", "result"], registry=r
        )
        self.shadow = Counter(
            "lazyshift_shadow_reads",
            "Dual-mode shadow comparisons by result",
            ["result"],
            registry=r,
        )
        self.lazy = Counter(
            "lazyshift_lazy_migrations", "Shipments migrated lazily", ["path"], registry=r
        )
        self.backlog = Gauge(
            "lazyshift_dual_backlog", "Shipments waiting for their MySQL write", registry=r
        )
        self.fenced = Counter(
            "lazyshift_fenced_writes", "Writes refused by the epoch fence", registry=r
        )


@dataclass
class _Olds:
    """MongoDB's copies of shipments a mysql-primary batch migrates on write, mapped."""

    docs: dict[str, Document | None] = field(default_factory=dict)
    rows: dict[str, Rows] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)  # key -> why MySQL cannot hold it

    def add(self, key: str, doc: Document | None) -> None:
        self.docs[key] = doc
        if doc is None:
            return
        rows_by_key, rejected = map_or_reject([doc])
        self.rows.update(rows_by_key)
        self.rejected.update({d["key"]: reason for d, reason in rejected})


@dataclass
class ReadResult:
    doc: Document | None
    mode: str
    store: str  # where the answer came from: mongo, mysql, or mongo->mysql (lazy)


class Router:
    def __init__(
        self,
        settings: Settings,
        mongo: MongoStore,
        *,
        follower: Gate | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.mongo = mongo
        self.follower = follower
        self.metrics = metrics or Metrics()
        self._writer: Any = None  # the consumer thread's MySQL connection
        self._local = threading.local()  # read API threads' connections
        self._shadow_rng = random.Random()
        self.shadow_counts: dict[str, int] = {}  # reported in the heartbeat for the gate
        self._mirrored_epoch: int | None = None  # the epoch this reader left in the mirror
        # Whether the mode last read answers reads from MySQL: a hint (what the next read
        # asks for in its first round trip), never trusted (each read checks its own mode).
        self._reads_mysql = False

    @property
    def mode(self) -> Mode:
        if self.follower is None:
            return Mode.MONGO
        return Mode(self.follower.mode_in_use or Mode.MONGO)

    # -- connections ---------------------------------------------------------------------------
    def writer_connection(self) -> Any:
        if self._writer is None:
            self._writer = my.connect(self.settings.mysql)
        return self._writer

    def writer_connection_id(self) -> int | None:
        return None if self._writer is None else self._writer.connection_id

    def _drop_writer(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(MySQLError):
                self._writer.close()
            self._writer = None

    def _reader(self) -> tuple[Any, Any]:
        """This read thread's connection and cursor, kept for the thread's life (the read
        API's pool): no connect per read, and no new cursor either (the C extension pings
        the server, a round trip, for every cursor it opens)."""
        pair = getattr(self._local, "conn", None)
        if pair is None:
            conn = my.connect(self.settings.mysql, autocommit=True)
            pair = (conn, conn.cursor())
            self._local.conn = pair
        return pair

    def _drop_reader(self) -> None:
        pair = getattr(self._local, "conn", None)
        self._local.conn = None
        if pair is not None:
            with contextlib.suppress(*MYSQL_ERRORS):
                pair[0].close()

    # -- the consumer's sink ---------------------------------------------------------------------
    def write(self, doc: Document) -> bool:
        if self.follower is None:
            return self.mongo.apply_snapshot(doc).applied
        while True:
            mode, epoch = self.follower.gate()
            try:
                return self._write_in(mode, epoch, doc)
            except Fenced as exc:
                # Lost the race with a transition that began after our gate: nothing was
                # written anywhere; re-read the control row and write in the new mode.
                self.metrics.fenced.inc()
                logs.event("write.fenced", key=doc["key"], reason=str(exc))
                self.follower.refresh_now()
            finally:
                self.follower.release()

    def write_many(self, docs: list[Document]) -> list[Outcome]:
        """`write` for each of `docs` in stream order, one outcome each: True (applied),
        False (stale: a late or repeated message) or Unstorable (the caller dead-letters it).
        A key may repeat: the outcomes and the stored copy are those of writing the documents
        one after the other, while each key gets one write (`document.fold_revisions`).

        Under the control plane the whole batch is written under ONE gate: the follower
        acknowledges no new epoch while it is held, so a transition's drain waits for the
        batch to finish, and a batch the fence refuses (an epoch that changed since the gate,
        an expired lease) is written again as a whole in the new mode. Every write is
        idempotent (revision guard), so documents an interrupted attempt already wrote come
        back as stale, and dual-write then makes sure MySQL has them.
        """
        if self.follower is None:
            return [w.applied for w in self.mongo.apply_many(docs)]
        while True:
            mode, epoch = self.follower.gate()
            try:
                if mode in MYSQL_WRITES:
                    return self._write_many_mysql(mode, epoch, docs)
                return self._write_many_mongo(mode, epoch, docs)
            except Fenced as exc:
                self.metrics.fenced.inc()
                logs.event("batch.fenced", size=len(docs), reason=str(exc))
                self.follower.refresh_now()
            finally:
                self.follower.release()

    def _still_current(self, epoch: int) -> Callable[[], None]:
        """MongoDB cannot refuse a write from an old epoch, so the epoch and its lease are
        looked at again right before each request that changes MongoDB: a client stopped
        (SIGSTOP) since its gate finds them changed or expired when it resumes."""
        follower = self.follower
        assert follower is not None

        def check() -> None:
            if not follower.lease_valid(epoch):
                raise Fenced(f"epoch {epoch} is no longer current (or its lease expired)")

        return check

    def _write_many_mongo(self, mode: str, epoch: int, docs: list[Document]) -> list[Outcome]:
        if mode == Mode.DUAL:
            return self._write_many_dual(epoch, docs)
        return [res.applied for res in self.mongo.apply_many(docs, self._still_current(epoch))]

    def _write_many_dual(self, epoch: int, docs: list[Document]) -> list[Outcome]:
        """MongoDB (the truth) first, then MySQL gets each key's newest copy once: the
        batch's last applied document, or for a key whose every message was stale (maybe a
        replay after a crash between the MongoDB half and the MySQL one) MongoDB's copy,
        read in one query (a no-op when MySQL has it).

        The two halves overlap: while MongoDB writes, MySQL's transaction takes the copies
        MongoDB is expected to end with (`MongoStore.predict`), and commits only once the
        MongoDB half has answered with exactly those. Anything else — a copy that differs, a
        MySQL error, a fence — rolls the early transaction back and writes MySQL after
        MongoDB as before (`_dual_mysql_write_many`), so MySQL never holds what MongoDB
        does not, and the gate is held across both."""
        predicted = self.mongo.predict(docs)
        box: list[Any] = []
        mongo_half = threading.Thread(
            target=_into,
            args=(box, self._dual_mongo_half, docs, list(predicted), self._still_current(epoch)),
        )
        mongo_half.start()
        try:
            early = self._early_mysql(epoch, [d for d in predicted.values() if d is not None])
        finally:
            mongo_half.join()  # never leave the gate with the MongoDB half in flight
        if isinstance(box[0], BaseException):
            if early:
                self._finish(commit=False)
            raise box[0]
        results, newest, olds = box[0]
        if early and _same_copies(predicted, newest):
            try:
                self._finish_early(epoch, list(olds.values()))
                return [res.applied for res in results]
            except Fenced:
                self._finish(commit=False)  # the sequential write below queues the backlog
            except MYSQL_ERRORS:
                self._drop_writer()
        elif early:
            self._finish(commit=False)
        self._dual_mysql_write_many([*newest.values(), *olds.values()], epoch)
        return [res.applied for res in results]

    def _dual_mongo_half(
        self, docs: list[Document], keys: list[str], check: Callable[[], None]
    ) -> tuple[list[MongoWrite], dict[str, Document], dict[str, Document]]:
        """dual's MongoDB half of a batch (on its own thread, beside MySQL's): the write,
        then each key's newest copy — the batch's last applied document, or for a key
        whose every message was stale MongoDB's copy, read here, so that round trip too
        overlaps MySQL's half (the longer one, profiled) instead of following it.
        Returns (the write's results, newest applied per key, the stale keys' copies)."""
        results = self.mongo.apply_many(docs, check)
        newest: dict[str, Document] = {}
        for res in results:
            if res.applied:
                assert res.document is not None
                newest[res.document["key"]] = res.document  # versions rise along a key
        repeated = [k for k in keys if k not in newest]
        olds = self.mongo.get_many(repeated) if repeated else {}
        return results, newest, olds

    def _early_mysql(self, epoch: int, docs: list[Document]) -> bool:
        """The MySQL half of a dual batch before MongoDB's answer, left uncommitted: True if
        it is in hand, False if it could not be done (the sequential write redoes it)."""
        try:
            self._begin_dual_batch(docs, epoch)
            return True
        except Fenced:
            self._finish(commit=False)
        except MYSQL_ERRORS:
            self._drop_writer()
        except BaseException:
            self._finish(commit=False)  # never leave the writer inside a transaction
            raise
        return False

    def _finish_early(self, epoch: int, olds: list[Document]) -> None:
        """MongoDB stored what the early transaction holds: add the copies of the keys it
        found stale (if any) and commit."""
        conn = self.writer_connection()
        if olds:
            rows_by_key, rejected = map_or_reject(olds)
            cur = conn.cursor()
            if rows_by_key:
                apply_batch(cur, list(rows_by_key.values()), epoch=epoch)
            if rejected:
                letters = [document_dead_letter("dual", d, reason) for d, reason in rejected]
                store.insert_dead_letters(cur, letters)
        conn.commit()

    def _write_in(self, mode: str, epoch: int, doc: Document) -> bool:
        if mode in MYSQL_WRITES:
            return self._write_mysql(mode, epoch, doc)
        res = self.mongo.apply_snapshot(doc, before_write=self._still_current(epoch))
        if not res.applied and mode == "dual":
            # A repeated message is also what a restart replays after a crash between the
            # MongoDB write and the MySQL one: make sure MySQL has MongoDB's version (the
            # guarded write makes this a no-op when it does).
            current = self.mongo.get(doc["key"])
            if current is not None:
                self._dual_mysql_write(current, epoch)
            return False
        if not res.applied or mode == "mongo":
            return res.applied
        assert res.document is not None
        self._dual_mysql_write(res.document, epoch)
        return True

    def _finish(self, commit: bool) -> None:
        if self._writer is None:
            return
        try:
            self._writer.commit() if commit else self._writer.rollback()
        except MySQLError as exc:
            logs.event("mysql.finish_failed", error=str(exc))
            self._drop_writer()

    def _dual_mysql_write(self, doc: Document, epoch: int) -> None:
        """MongoDB (the truth) has `doc`; now MySQL, fenced by the epoch. Anything that stops
        it — a transition that began meanwhile, MySQL down — queues the shipment in the
        durable backlog before this write is acknowledged, so a flip flushes it first."""
        key, version = doc["key"], doc["version"]
        try:
            conn = self.writer_connection()
            conn.start_transaction()
            apply_batch(conn.cursor(), [doc], epoch=epoch)
            conn.commit()
        except Fenced as exc:
            self._finish(commit=False)
            self.mongo.backlog_add(key, version, f"fenced: {exc}")
            self.metrics.fenced.inc()
            assert self.follower is not None
            self.follower.refresh_now()
        except InvalidDocument as exc:
            self._finish(commit=False)
            # MongoDB (the truth in dual) has it; MySQL cannot: recorded, verify reports it.
            self._dead_letter_mysql(document_dead_letter("dual", doc, exc.reason))
        except MySQLError as exc:
            self._drop_writer()
            self.mongo.backlog_add(key, version, str(exc)[:200])
            logs.event("dual.queued", key=key, error=str(exc)[:200])

    def _dual_mysql_write_many(self, docs: list[Document], epoch: int) -> None:
        """`_dual_mysql_write` for a batch, in ONE transaction: the mappable documents through
        the guarded write (epoch-checked), the unmappable ones dead-lettered beside them.
        Whatever stops it queues every shipment of the batch in the durable backlog before
        the batch is acknowledged."""
        if not docs:
            return
        try:
            self._begin_dual_batch(docs, epoch)
            self.writer_connection().commit()
        except Fenced as exc:
            self._finish(commit=False)
            self._backlog_all(docs, f"fenced: {exc}")
            self.metrics.fenced.inc()
            assert self.follower is not None
            self.follower.refresh_now()
        except MySQLError as exc:
            self._drop_writer()
            self._backlog_all(docs, str(exc)[:200])
            logs.event("dual.queued", size=len(docs), error=str(exc)[:200])
        except BaseException:
            self._finish(commit=False)  # never leave the writer inside a transaction
            raise

    def _begin_dual_batch(self, docs: list[Document], epoch: int) -> None:
        """dual's MySQL half of a batch, in a transaction left open for the caller to end:
        the mappable documents through the guarded write (epoch-checked), the unmappable
        ones dead-lettered beside them."""
        rows_by_key, rejected = map_or_reject(docs)
        letters = [document_dead_letter("dual", doc, reason) for doc, reason in rejected]
        conn = self.writer_connection()
        conn.start_transaction()
        cur = conn.cursor()
        if rows_by_key:
            apply_batch(cur, list(rows_by_key.values()), epoch=epoch)
        if letters:
            store.insert_dead_letters(cur, letters)

    def _backlog_all(self, docs: list[Document], reason: str) -> None:
        for doc in docs:
            self.mongo.backlog_add(doc["key"], doc["version"], reason)

    def _write_many_mysql(self, mode: str, epoch: int, docs: list[Document]) -> list[Outcome]:
        """One MySQL transaction for the batch: the epoch fence, the row locks of every key,
        migration on write of the shipments MySQL has not seen (mysql-primary), then one
        guarded write of the documents newer than the stored ones.

        Everything that takes time without the database (MongoDB reads, mapping) is done
        before the transaction: it holds the control row's share lock, which every
        transition waits for. Only the version each row gets is set under the row locks."""
        olds = self._prefetch_olds(mode, epoch, docs)
        mapped = [_map_one({**d, "version": 1}) for d in docs]  # Rows, or why MySQL cannot
        keys = list(dict.fromkeys(d["key"] for d in docs))

        def write(cur: Any) -> list[Outcome]:
            check_epoch(cur, epoch)
            stored = store.lock_versions(cur, keys)
            if mode == Mode.MYSQL_PRIMARY:
                missing = [k for k in keys if k not in stored]
                stored.update(self._migrate_many_on_write(cur, missing, olds))
            outcomes: list[Outcome] = [False] * len(docs)  # False: late or repeated
            # A key given several times is written once: its last applied document, at the
            # version writing each in turn would give it (see document.fold_revisions).
            now = {k: (v, r if r is not None else -1) for k, (v, r) in stored.items()}
            finals: dict[str, Rows] = {}
            for i, doc in enumerate(docs):
                key, row = doc["key"], now.get(doc["key"], (0, -1))
                if row[1] >= doc["source_rev"]:
                    continue
                rows = mapped[i]
                if isinstance(rows, str):
                    outcomes[i] = Unstorable(rows)
                    continue
                now[key] = (row[0] + 1, doc["source_rev"])
                finals[key] = rows
                outcomes[i] = True
            if not finals:
                return outcomes
            for key, rows in finals.items():
                rows.root["version"] = now[key][0]
            result = apply_batch(cur, list(finals.values()), written_epoch=epoch)
            refused = sorted(set(finals) - set(result.applied_keys))
            if refused:
                # Not "already newer" (that was decided above under the row locks): acking
                # them would lose messages. Roll back and run the batch again; if the guard
                # keeps refusing, the consumer writes the batch one by one (single path).
                raise GuardSkipped(f"the version guard skipped {', '.join(refused[:5])}")
            return outcomes

        return run_in_transaction(self.writer_connection(), write)

    def _prefetch_olds(self, mode: str, epoch: int, docs: list[Document]) -> _Olds:
        """MongoDB's copies of the shipments MySQL does not hold yet, read and mapped BEFORE
        the transaction: MongoDB is read-only in mysql-primary, so they cannot change
        meanwhile, and a transition that began while they were read goes first (Fenced)
        instead of waiting for them."""
        olds = _Olds()
        if mode != Mode.MYSQL_PRIMARY:
            return olds
        conn = self.writer_connection()
        with read_snapshot(conn):
            known = store.lock_versions_unlocked(conn.cursor(), [d["key"] for d in docs])
        unknown = list(dict.fromkeys(d["key"] for d in docs if d["key"] not in known))
        found = self.mongo.get_many(unknown) if unknown else {}
        for key in unknown:
            olds.add(key, found.get(key))
        if olds.docs:
            self._still_current(epoch)()
        return olds

    def _migrate_many_on_write(
        self, cur: Any, keys: list[str], olds: _Olds
    ) -> dict[str, tuple[int, int]]:
        """`_migrate_on_write` for `keys`, which MySQL has not seen: MongoDB's copies in."""
        for key in keys:
            if key not in olds.docs:  # appeared since the look before (a repair deleted it)
                olds.add(key, self.mongo.get(key))
        found = [olds.docs[k] for k in keys if olds.docs[k] is not None]
        rows = [olds.rows[d["key"]] for d in found if d["key"] in olds.rows]
        if rows:
            apply_batch(cur, rows)
            self.metrics.lazy.labels("write").inc(len(rows))
        letters = [
            document_dead_letter("lazy", d, olds.rejected[d["key"]])
            for d in found
            if d["key"] in olds.rejected
        ]
        if letters:
            store.insert_dead_letters(cur, letters)
        return {d["key"]: (int(d["version"]), int(d["source_rev"])) for d in found}

    def _write_mysql(self, mode: str, epoch: int, doc: Document) -> bool:
        key = doc["key"]

        def write(cur: Any) -> bool:
            check_epoch(cur, epoch)
            row = store.lock_version(cur, key)
            if row is None and mode == Mode.MYSQL_PRIMARY:
                row = self._migrate_on_write(cur, key)
            if row is not None and row[1] is not None and row[1] >= doc["source_rev"]:
                return False  # a late or repeated message
            try:
                result = apply_batch(
                    cur, [{**doc, "version": (row[0] if row else 0) + 1}], written_epoch=epoch
                )
            except InvalidDocument as exc:
                raise Unstorable(exc.reason) from exc
            if key not in result.applied_keys:
                # Not "already newer" (that returned above under the row lock): acking it
                # would lose the message. Roll back and run the whole write again; if the
                # guard keeps refusing, the consumer dead-letters it with this reason.
                raise GuardSkipped(f"{key}: the version guard skipped rev {doc['source_rev']}")
            return True

        return run_in_transaction(self.writer_connection(), write)

    def _migrate_on_write(self, cur: Any, key: str) -> tuple[int, int] | None:
        """An update for a shipment MySQL has not seen: bring MongoDB's version over first."""
        old = self.mongo.get(key)
        if old is None:
            return None
        try:
            apply_batch(cur, [old])
            self.metrics.lazy.labels("write").inc()
        except InvalidDocument as exc:
            store.insert_dead_letters(cur, [document_dead_letter("lazy", old, exc.reason)])
        return int(old["version"]), int(old["source_rev"])

    # -- dead letters and offsets ------------------------------------------------------------
    def dead_letter(
        self, *, reason: str, category: str, raw: bytes, seq: int | None, key: str | None
    ) -> bool:
        if self.mode not in MYSQL_WRITES:
            return self.mongo.dead_letter(
                origin="stream", reason=reason, category=category, raw=raw, seq=seq, key=key
            )
        return self._dead_letter_mysql(
            message_dead_letter("stream", raw, f"{category}: {reason}", seq, key)
        )

    def dead_letter_many(self, letters: list[StreamLetter]) -> None:
        """`dead_letter` for several stream messages: one insert (MongoDB) or one
        transaction (MySQL) for all of them."""
        if not letters:
            return
        if self.mode not in MYSQL_WRITES:
            self.mongo.dead_letter_many(letters)
            return
        rows = [
            message_dead_letter("stream", x.raw, f"{x.category}: {x.reason}", x.seq, x.key)
            for x in letters
        ]
        run_in_transaction(
            self.writer_connection(), lambda cur: store.insert_dead_letters(cur, rows)
        )

    def _dead_letter_mysql(self, letter: DeadLetter) -> bool:
        """Record `letter` in its own transaction on the writer connection."""
        return bool(
            run_in_transaction(
                self.writer_connection(), lambda cur: store.insert_dead_letters(cur, [letter])
            )
        )

    def load_offset(self, partition: str) -> int:
        best = 0
        try:
            best = self.mongo.load_offset(partition)
        except Exception as exc:  # noqa: BLE001 - MongoDB may be gone in stage 5
            if self.follower is None:
                raise
            logs.event("offset.mongo_unavailable", error=str(exc))
        if self.follower is not None:
            best = max(
                best,
                run_in_transaction(
                    self.writer_connection(), lambda cur: store.load_offset(cur, partition)
                ),
            )
        return best

    @property
    def offset_home(self) -> str:
        """The store that holds the stream offset: the one the writes go to in the mode the
        control row last said (the consumer saves the offset again when this changes)."""
        mode = self.follower.stable_mode() if self.follower is not None else None
        return _offset_home(Mode(mode) if mode else self.mode)

    def save_offset(self, partition: str, seq: int) -> None:
        """Saved under the gate, in the store that takes the writes in the gated mode: a
        transition never sees an offset saved on the side it just left."""
        if self.follower is None:
            self.mongo.save_offset(partition, seq)
            return
        mode, _ = self.follower.gate()
        try:
            if _offset_home(Mode(mode)) == "mongo":
                self.mongo.save_offset(partition, seq)
            else:
                run_in_transaction(
                    self.writer_connection(), lambda cur: store.save_offset(cur, partition, seq)
                )
        finally:
            self.follower.release()

    def reset(self) -> None:
        """After a transient failure: drop the cached writer so the next write reconnects
        (MariaDB restarted in mysql-primary left it dead, and nothing else dropped it)."""
        self._drop_writer()

    def idle(self) -> None:
        """Between messages: retry the dual-write backlog while MySQL is reachable, in
        batches of IDLE_BATCH shipments, each one gate and one guarded transaction."""
        if self.follower is None or self.mode not in (Mode.DUAL, Mode.MYSQL_PRIMARY):
            return
        keys = self.mongo.backlog_keys(limit=200)
        self.metrics.backlog.set(len(keys))
        for i in range(0, len(keys), IDLE_BATCH):
            if not self._retry_backlog(keys[i : i + IDLE_BATCH]):
                return

    def _retry_backlog(self, keys: list[str]) -> bool:
        """Write MongoDB's copies of `keys` to MySQL; False when it could not (stop for now)."""
        assert self.follower is not None
        mode, epoch = self.follower.gate()
        try:
            if mode not in (Mode.DUAL, Mode.MYSQL_PRIMARY):
                return False
            docs = [d for d in (self.mongo.get(k) for k in keys) if d is not None]
            rows_by_key, rejected = map_or_reject(docs)
            letters = [document_dead_letter("dual", doc, reason) for doc, reason in rejected]

            def write(cur: Any) -> None:
                if rows_by_key:
                    apply_batch(cur, list(rows_by_key.values()), epoch=epoch)
                if letters:
                    store.insert_dead_letters(cur, letters)

            run_in_transaction(self.writer_connection(), write)
        except Fenced:
            self.follower.refresh_now()
            return False
        except MySQLError as exc:
            logs.event("backlog.retry_failed", error=str(exc), keys=len(keys))
            self._drop_writer()
            return False
        finally:
            self.follower.release()
        # Outside the gate: only this thread adds to the backlog, and a flip's pause step
        # that drained these keys meanwhile leaves nothing a second removal could lose.
        for key in keys:
            self.mongo.backlog_remove(key)
        return True

    # -- reads ----------------------------------------------------------------------------------
    def read(self, key: str) -> ReadResult:
        if self.follower is None:
            doc = self.mongo.get(key)
            self.metrics.reads.labels("mongo", "mongo", _hit(doc)).inc()
            return ReadResult(doc, "mongo", "mongo")
        try:
            return self._read_controlled(key)
        except MYSQL_ERRORS as exc:
            self._drop_reader()
            return self._read_without_mysql(key, exc)

    def _read_without_mysql(self, key: str, exc: BaseException) -> ReadResult:
        """MySQL failed this read. In mongo and dual MongoDB is the truth: answer from it
        if the mode is known without MySQL; otherwise (or in mysql-primary) a 503."""
        mode = self._mode_without_mysql()
        if mode in (Mode.MONGO, Mode.DUAL):
            doc = self.mongo.get(key)
        elif mode is not None:
            raise StoreUnavailable(f"MySQL is unreachable ({exc}); it holds the truth in {mode}")
        else:
            mode, doc = self._read_by_mirror(key, exc)
        self.metrics.reads.labels(mode, "mongo", _hit(doc)).inc()
        return ReadResult(doc, mode, "mongo")

    def _mode_without_mysql(self) -> Mode | None:
        """The mode as of the follower's last read of the control row, while its lease holds.

        No transition can finish within our lease without our acknowledgement (the drain
        waits for it, or for our heartbeat to time out, which takes twice the lease), and
        we acknowledge only what the follower has read: so this mode is not stale."""
        known = getattr(self.follower, "known_mode", None)
        mode = known() if known is not None else None
        return Mode(mode) if mode is not None else None

    def _read_by_mirror(self, key: str, exc: BaseException) -> tuple[Mode, Document | None]:
        """Beyond the lease: the control plane's mode mirror in MongoDB, read before and
        after the document.

        The control plane writes the intent of a transition that takes the truth away from
        MongoDB (towards mysql-primary) into the mirror before it starts draining, and only
        commits it after that write was acknowledged; a transition back (rollback) mirrors
        its new mode only after it committed. So if the mirror read after the document still
        shows no intent, no such transition had committed when the document was read (its
        intent would have been visible), and if the read before shows the same mode and
        epoch with MongoDB as the truth, none was in force then either (an epoch cannot come
        back): MongoDB held the latest version of every shipment for the whole read.
        """
        unavailable = f"MySQL is unreachable ({exc})"
        before = self.mongo.read_mode_mirror()
        if not _mongo_is_truth(before):
            raise StoreUnavailable(f"{unavailable}, and the mode mirror in MongoDB {_why(before)}")
        doc = self.mongo.get(key)
        after = self.mongo.read_mode_mirror()
        if after != before:
            raise StoreUnavailable(
                f"{unavailable}, and the mode changed while reading (mode mirror: {after})"
            )
        assert before is not None
        return Mode(before.mode), doc

    def _read_controlled(self, key: str) -> ReadResult:
        conn, cur = self._reader()
        # The control row is read for every request (a primary-key lookup), so a read never
        # uses a mode older than the last committed transition: no stale read after a flip.
        # Where MySQL answers reads (the mode last seen says so) the document comes in the
        # same round trip and snapshot; a flip to such a mode since costs one more.
        with_doc = self._reads_mysql
        while True:
            st, doc = store.read_control_and_document(conn, cur, key if with_doc else None)
            mode = Mode(st.mode)
            self._reads_mysql = mode in (Mode.MYSQL_PRIMARY, Mode.MYSQL)
            if with_doc or not self._reads_mysql:
                break
            with_doc = True
        if mode in (Mode.MONGO, Mode.DUAL):
            return self._read_mongo_truth(conn, st, key)
        if doc is not None or mode == Mode.MYSQL:
            self.metrics.reads.labels(mode, "mysql", _hit(doc)).inc()
            return ReadResult(doc, mode, "mysql")
        return self._migrate_on_read(conn, st, key)

    def _read_mongo_truth(self, conn: Any, st: store.ControlState, key: str) -> ReadResult:
        """mongo and dual: MongoDB answers (dual compares a fraction with MySQL's copy)."""
        mode = Mode(st.mode)
        if st.stable and st.epoch != self._mirrored_epoch:
            self._seed_mirror(st.mode, st.epoch)
        doc = self.mongo.get(key)
        if (
            mode == Mode.DUAL
            and doc is not None
            and (self._shadow_rng.random() < self.settings.client.shadow_read_fraction)
        ):
            self._shadow_compare(conn, doc)
        self.metrics.reads.labels(mode, "mongo", _hit(doc)).inc()
        return ReadResult(doc, mode, "mongo")

    def _migrate_on_read(self, conn: Any, st: store.ControlState, key: str) -> ReadResult:
        """mysql-primary, a shipment MySQL does not hold: MongoDB's copy (read by exact
        `_id`, which FerretDB answers from its index) is written into MySQL through the
        guarded write under the epoch just read, and only then returned (DESIGN.md stage 3)."""
        mode = Mode(st.mode)
        old = self.mongo.get(key)  # MongoDB is read-only now: its copy is the latest
        if old is None:
            self.metrics.reads.labels(mode, "mongo", "miss").inc()
            return ReadResult(None, mode, "mongo")
        try:
            # absent from the snapshot just read: the one-round-trip insert is tried first
            if guarded_write(conn, old, epoch=st.epoch, expect_absent=True):
                self.metrics.lazy.labels("read").inc()
        except Fenced:
            pass  # a transition is draining: answer from MongoDB now, migrate on a later read
        except InvalidDocument as exc:
            letter = document_dead_letter("lazy", old, exc.reason)
            run_in_transaction(conn, lambda cur: store.insert_dead_letters(cur, [letter]))
        self.metrics.reads.labels(mode, "mongo->mysql", "hit").inc()
        return ReadResult(old, mode, "mongo->mysql")

    def _seed_mirror(self, mode: str, epoch: int) -> None:
        """Leave the stable mode just read from MySQL in the mode mirror, once per epoch.

        Until the first transition writes it (after `schema migrate`, clients follow the
        control row in mongo) or when the control plane could not, the mirror is missing or
        behind, and a reader cut off from MySQL would answer 503 for nothing. Safe for any
        reader: a stable (mode, epoch) read from MySQL is a fact about that epoch, and the
        mirror's ranks keep it from replacing an intent or a later epoch."""
        try:
            self.mongo.write_mode_mirror(mode, epoch)
            self._mirrored_epoch = epoch
        except PyMongoError as exc:  # the read itself will say if MongoDB is down
            logs.event("mirror.seed_failed", error=str(exc)[:200])

    def _shadow_compare(self, conn: Any, doc: Document) -> None:
        try:
            with read_snapshot(conn):
                mine = store.load_documents(conn.cursor(), [doc["key"]]).get(doc["key"])
            result = shadow_result(doc, mine)
        except InvalidDocument:
            result = "unmappable"
        self.metrics.shadow.labels(result).inc()
        self.shadow_counts[result] = self.shadow_counts.get(result, 0) + 1
        if result not in ("match", "behind-in-flight"):
            logs.event("shadow.mismatch", key=doc["key"], result=result)


def shadow_result(mongo_doc: Document, mysql_doc: Document | None) -> str:
    if mysql_doc is None:
        return "missing"
    if mysql_doc["version"] < mongo_doc["version"]:
        return "stale"
    if mysql_doc["version"] > mongo_doc["version"]:
        return "ahead"
    return "match" if stored_form(mongo_doc) == mysql_doc else "different"


def _mongo_is_truth(mirror: ModeMirror | None) -> bool:
    """A stable mode in which MongoDB holds the truth, with no transition away from it."""
    if mirror is None or mirror.intent is not None or mirror.mode not in MODE_NAMES:
        return False
    return TRUTH[Mode(mirror.mode)] == "mongo"


def _into(box: list[Any], fn: Callable[..., Any], *args: Any) -> None:
    """Run `fn(*args)` (on a thread) and leave its result, or what it raised, in `box`."""
    try:
        box.append(fn(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits for it
        box.append(exc)


def _same_copies(predicted: dict[str, Document | None], newest: dict[str, Document]) -> bool:
    """Did MongoDB store exactly the predicted copies (same keys, revisions and versions)?"""
    if {k for k, d in predicted.items() if d is not None} != set(newest):
        return False
    for key, doc in newest.items():
        guess = predicted[key]
        if guess is None or (guess["source_rev"], guess["version"]) != (
            doc["source_rev"],
            doc["version"],
        ):
            return False
    return True


def _map_one(doc: Document) -> Rows | str:
    """`doc` as rows, or the reason MySQL cannot hold it."""
    try:
        return document_to_rows(doc)
    except InvalidDocument as exc:
        return exc.reason


def _why(mirror: ModeMirror | None) -> str:
    if mirror is None:
        return "is missing (no transition has written it yet)"
    if mirror.intent is not None:
        return f"shows a transition to {mirror.intent} under way (epoch {mirror.epoch})"
    return f"says {mirror.mode} (epoch {mirror.epoch}): MongoDB is not the truth"


def _hit(doc: Document | None) -> str:
    return "hit" if doc is not None else "miss"


def _offset_home(mode: Mode) -> str:
    return "mysql" if mode in MYSQL_WRITES else "mongo"
