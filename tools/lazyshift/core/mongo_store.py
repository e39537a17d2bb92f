"""MongoDB side (FerretDB here): the revision-guarded upsert, dead letters, stream offsets,
the control plane's mode mirror.

On MongoDB the write is one atomic `findAndModify`: it matches only while the stored
revision is older than the message's, sets the snapshot and bumps `version` by one. If the
stored revision is newer or equal, the filter misses, the upsert tries to insert the same
`_id` and the server refuses with a duplicate key: that refusal *is* the "already applied"
answer, so a repeated or late message changes nothing, without a read-then-write race.

On FerretDB v1 (SQLite) update operators and a revision range make a write slow, so there
the write of a new shipment is an insert, and the write of an existing one a
compare-and-swap: read its (source_rev, version), then replace it with version + 1 under the
filter `{_id, version, source_rev}` of what was read. A writer that loses the race (two
clients of one key, a client and a rollback's write-back, a restarted client and its zombie)
matches nothing, reads again and retries, a bounded number of times, so no increment is lost
and an older revision never lands over a newer one. `apply_many` (the client's batches) does
the same in unordered bulks on both engines, and the rollback's `replace_if_newer` too.
The project's FerretDB build (tools/bootstrap/ferretdb-lazyshift.patch) makes this fast and
atomic: an exact `_id` beside other conditions, or an `_id: {$in: [...]}` list, is an
indexed lookup, and a per-collection lock spans FerretDB's match-then-write, which stock v1
runs in two SQLite transactions (two conditional replaces of one document could both win).

What fences a MongoDB write against a mode change (issue 9, hole 2):
- every engine: the client checks its epoch and lease (`before_write`) right before each
  request that changes MongoDB, and its lease is renewed only after its heartbeat commits, so
  it stops writing before `mode set` stops waiting for it; the rollback's write-back is a
  compare-and-swap by (source_rev, version), never over a newer revision.
- MongoDB: stage 3 revokes the application user's write role, so a client paused between
  its check and its send (SIGSTOP longer than its lease) is refused by the server.
- FerretDB (lab and local stack only): no roles, so no store-level refusal; that paused
  client's one in-flight request (at most one batch) can still land in MongoDB after the
  flip, where MySQL, the truth from then on, does not take it from. Production runs MongoDB.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pymongo
from pymongo import DeleteOne, InsertOne, ReplaceOne, ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from lazyshift.core.document import Document, fold_revisions

if TYPE_CHECKING:
    from lazyshift.config import Settings

SHIPMENTS = "shipments"
DEAD_LETTERS = "dead_letters"
OFFSETS = "client_offsets"
# Dual-write: shipments whose MySQL write failed, retried until MySQL has them.
BACKLOG = "mysql_backlog"
# The control plane's mode mirror (one document): what a reader cut off from MySQL may know
# of the mode. Only the control plane writes it; see `write_mode_mirror`.
CONTROL = "lazyshift_control"
MODE_MIRROR_ID = "mode"
# FerretDB evaluates range filters and sorts over a full scan before it answers the first
# batch, so a client that scans (backfill, verify, archive) must outlast that scan.
SCAN_SOCKET_TIMEOUT_MS = 3_600_000
DUPLICATE_KEY = 11000
# A key has one writer in steady state; two racing writers settle in a round or two, so
# losing this many rounds in a row means something keeps rewriting it: an error, not a wait.
CAS_ATTEMPTS = 16
# Keys whose stored (source_rev, version) a store remembers (about 200 bytes each).
KNOWN_MAX = 100_000
# Keys per `_id: {$in: [...]}` read: the FerretDB build pushes lists up to 1000 down to SQLite.
ID_LIST_MAX = 1000


@dataclass(frozen=True)
class MongoWrite:
    applied: bool
    version: int | None  # the stored version after the write (None if unknown)
    document: Document | None  # the stored document when applied


@dataclass(frozen=True)
class ModeMirror:
    """The control row as the control plane last mirrored it into MongoDB. `intent`: the
    target of a transition that has started (or is about to) and that the control plane
    marked here first. The store does not interpret modes (router.py does)."""

    mode: str
    epoch: int
    intent: str | None = None


class ConcurrentWrite(RuntimeError):
    """Two writers raced on one shipment where the store cannot guard atomically."""


def connect(uri: str, timeout_ms: int = 5000, *, scan: bool = False) -> pymongo.MongoClient:
    """A client that hands back aware UTC datetimes; `scan` for long scans (see above)."""
    return pymongo.MongoClient(
        uri,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=SCAN_SOCKET_TIMEOUT_MS if scan else max(timeout_ms, 10000),
    )


def key_filter(after: str | None, upper: str | None) -> dict[str, Any]:
    """String _ids in (after, upper]; None = unbounded. `$gte ""` keeps non-string _ids out
    (MongoDB compares within one BSON type only)."""
    cond: dict[str, Any] = {"$gt": after} if after is not None else {"$gte": ""}
    if upper is not None:
        cond["$lte"] = upper
    return {"_id": cond}


def collection_count(coll: Collection) -> int:
    """Documents in a collection from its statistics: FerretDB answers `count` by decoding
    every document, `collStats` from SQLite's page statistics (MongoDB from its metadata)."""
    return int(coll.database.command("collStats", coll.name)["count"])


def redact_uri(uri: str) -> str:
    """`uri` without user:password (mongodb://u:p@h/ -> mongodb://h/)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return re.sub(r"//[^@/]*@", "//", uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _pair(doc: dict[str, Any]) -> tuple[int, int]:
    """How new a stored copy is: (source_rev, version), in that order."""
    return int(doc.get("source_rev", -1)), int(doc.get("version", 0))


def _cas_filter(key: str, current: dict[str, Any]) -> dict[str, Any]:
    """Matches `key` only while it still holds the copy read (its version and revision)."""
    return {
        "_id": key,
        "version": current.get("version"),
        "source_rev": current.get("source_rev"),
    }


def _successor(key: str, body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any] | None:
    """The document that replaces `current`, or None if `body`'s revision is not newer."""
    if current.get("source_rev", -1) >= body["source_rev"]:
        return None
    return {"_id": key, **body, "version": int(current.get("version", 0)) + 1}


# One key's documents of a batch, folded: each one's result, and the document to store
# (None: none of them is newer than the stored copy).
_Plan = tuple[dict[int, MongoWrite], dict[str, Any] | None]


def _plan(
    key: str, idx: list[int], bodies: list[dict[str, Any]], current: dict[str, Any] | None
) -> _Plan:
    """The documents `idx` of `key` (stream order) over `current` (None: not stored): which
    apply and at which version, and the last applied one (the one write the key gets)."""
    version = 0 if current is None else int(current.get("version", 0))
    base_rev = -1 if current is None else current.get("source_rev", -1)
    outcomes: dict[int, MongoWrite] = {}
    new: dict[str, Any] | None = None
    for i, applied in zip(
        idx, fold_revisions(base_rev, [bodies[i]["source_rev"] for i in idx]), strict=True
    ):
        if applied:
            version += 1
            new = {"_id": key, **bodies[i], "version": version}
            outcomes[i] = MongoWrite(True, version, new)
        else:
            outcomes[i] = MongoWrite(False, version, None)
    return outcomes, new


@dataclass(frozen=True)
class StreamLetter:
    """A stream message to dead-letter: its bytes, why, and what is known of it."""

    reason: str
    category: str
    raw: bytes
    seq: int | None
    key: str | None = None


def _letter_entry(
    origin: str, reason: str, category: str, raw: bytes, seq: int | None, key: str | None
) -> dict[str, Any]:
    """A dead letter's document: `_id` is (origin, seq) — or the payload's hash without a
    seq — so storing it again is a duplicate-key error, not a second letter."""
    dedup = f"seq:{seq}" if seq is not None else "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        payload: dict[str, Any] = {"payload": raw.decode("utf-8")}
    except UnicodeDecodeError:
        payload = {"payload_b64": base64.b64encode(raw).decode()}
    return {
        "_id": f"{origin}:{dedup}",
        "origin": origin,
        "category": category,
        "reason": reason,
        "source_seq": seq,
        "shipment_key": key,
        "received_at": datetime.now(UTC),
        **payload,
    }


class MongoStore:
    def __init__(
        self, client: pymongo.MongoClient, database: str, collection: str = SHIPMENTS
    ) -> None:
        self.client = client
        self.db = client[database]
        self.shipments: Collection = self.db[collection]
        self.dead_letters: Collection = self.db[DEAD_LETTERS]
        self.offsets: Collection = self.db[OFFSETS]
        self.backlog: Collection = self.db[BACKLOG]
        self.ferretdb = "ferretdbVersion" in client.admin.command("buildInfo")
        # key -> {source_rev, version} this store wrote or read last, newest last: what the
        # next compare-and-swap of the key expects (see apply_many). Only ever a guess.
        self._known: dict[str, dict[str, Any]] = {}
        self.control: Collection = self._control_collection()

    @classmethod
    def open(cls, settings: Settings, *, timeout_ms: int = 5000, scan: bool = False) -> MongoStore:
        """A store on its own client (closed by `close`), for the configured collection."""
        client = connect(settings.mongo.uri, timeout_ms, scan=scan)
        try:
            return cls(client, settings.mongo.database, settings.mongo.collection)
        except BaseException:
            client.close()
            raise

    def close(self) -> None:
        self.client.close()

    def counts(self) -> dict[str, int]:
        return {
            "shipments": self.shipments.estimated_document_count(),
            "dual_backlog": self.backlog.count_documents({}),
            "dead_letters": self.dead_letters.count_documents({}),
        }

    def apply_snapshot(
        self, doc: Document, before_write: Callable[[], None] | None = None
    ) -> MongoWrite:
        """Upsert `doc` (no `version` key) if its source_rev is newer than the stored one.

        `before_write` runs right before each request that changes the collection: it is the
        caller's last chance to refuse (a fencing check), as late as MongoDB allows.
        """
        body = {k: v for k, v in doc.items() if k not in ("_id", "version")}
        check = before_write or (lambda: None)
        if self.ferretdb:
            return self._apply_snapshot_id_only(doc["_id"], body, check)
        check()
        try:
            stored = self.shipments.find_one_and_update(
                {"_id": doc["_id"], "source_rev": {"$lt": doc["source_rev"]}},
                {"$set": body, "$inc": {"version": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return MongoWrite(False, None, None)
        return MongoWrite(True, stored["version"], stored)

    def _apply_snapshot_id_only(
        self, key: str, body: dict[str, Any], check: Callable[[], None]
    ) -> MongoWrite:
        # Insert first: most messages of a live stream create shipments, and a duplicate-key
        # refusal is cheap, while a find that misses scans (13 ms at ~700 documents).
        new = {"_id": key, **body, "version": 1}
        try:
            check()
            self.shipments.insert_one(new)
            return MongoWrite(True, 1, new)
        except DuplicateKeyError:
            pass
        return self._update_existing(key, body, check)

    def apply_many(
        self, docs: list[Document], before_write: Callable[[], None] | None = None
    ) -> list[MongoWrite]:
        """`apply_snapshot` for each of `docs` in stream order, one result each. A key may
        come several times: its documents fold into one write (`fold_revisions`), so the
        store ends as if each had been written in turn, in one request for the key.

        Two round trips per batch in steady state, on MongoDB and FerretDB alike: the keys
        this store has not written go in one unordered `insert_many` (most of a live stream
        creates shipments); the keys it wrote before are replaced in one unordered bulk of
        compare-and-swaps against the (source_rev, version) it left there (`_known`),
        without reading them first. Whatever that misses — an insert of a key that exists,
        a swap another writer got to first — is read in one `$in` query and swapped again
        (then the losers of a race, if any, are read again and retried). The compare-and-swap
        filter makes a stale memory harmless: it only costs that extra round.
        """
        check = before_write or (lambda: None)
        if not docs:
            return []
        bodies = [{k: v for k, v in d.items() if k not in ("_id", "version")} for d in docs]
        chains: dict[str, list[int]] = {}
        for i, d in enumerate(docs):
            chains.setdefault(d["_id"], []).append(i)
        known = {k: self._known[k] for k in chains if k in self._known}
        results: dict[int, MongoWrite] = {}
        missed: dict[str, list[int]] = {}
        if known:
            missed = self._cas_round({k: chains[k] for k in known}, bodies, results, check, known)
        # The keys not written before, and those whose swap missed (maybe deleted since: an
        # insert finds out; one that exists is read and swapped below).
        fresh = [k for k in chains if k not in known or k in missed]
        plans = {key: _plan(key, chains[key], bodies, None) for key in fresh}
        news = [new for _, new in plans.values() if new is not None]  # one per key: none stored
        exists: set[str] = set()
        if news:
            check()
            try:
                self.shipments.insert_many(news, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                exists = {news[e["index"]]["_id"] for e in errors}
        for key, (planned, new) in plans.items():
            if key not in exists:
                results.update(planned)
                self._remember(new)
        results.update(self._update_many({k: chains[k] for k in exists}, bodies, check))
        return [results[i] for i in range(len(docs))]

    def predict(self, docs: list[Document]) -> dict[str, dict[str, Any] | None]:
        """What `apply_many(docs)` will store per key if nobody else writes those keys first
        and this store's memory of them is right: the document (with its version), or None
        where none of the batch's documents is newer than the copy remembered. A guess, for
        work that overlaps the write and is checked against its results (dual-write)."""
        bodies = [{k: v for k, v in d.items() if k not in ("_id", "version")} for d in docs]
        chains: dict[str, list[int]] = {}
        for i, d in enumerate(docs):
            chains.setdefault(d["_id"], []).append(i)
        return {k: _plan(k, idx, bodies, self._known.get(k))[1] for k, idx in chains.items()}

    def _remember(self, stored: dict[str, Any] | None) -> None:
        """What this store now knows is stored for a key (the newest first in the memory:
        the oldest is forgotten past KNOWN_MAX keys)."""
        if stored is None:
            return
        key = stored["_id"]
        self._known.pop(key, None)
        self._known[key] = {
            "source_rev": stored.get("source_rev"),
            "version": stored.get("version"),
        }
        if len(self._known) > KNOWN_MAX:
            del self._known[next(iter(self._known))]

    def _update_existing(
        self, key: str, body: dict[str, Any], check: Callable[[], None]
    ) -> MongoWrite:
        for _ in range(CAS_ATTEMPTS):
            current = self._current(key)
            new = _successor(key, body, current)
            if new is None:
                return MongoWrite(False, current.get("version"), None)
            check()
            if self.shipments.replace_one(_cas_filter(key, current), new).matched_count:
                return MongoWrite(True, new["version"], new)
        raise ConcurrentWrite(f"{key}: lost the compare-and-swap {CAS_ATTEMPTS} times in a row")

    def _current(self, key: str) -> dict[str, Any]:
        """What a compare-and-swap of `key` compares: its stored (source_rev, version)."""
        current = self.shipments.find_one({"_id": key}, {"source_rev": 1, "version": 1})
        if current is None:
            raise ConcurrentWrite(f"{key}: deleted while being written")
        return current

    def currents(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored (source_rev, version) of each of `keys` that exists, in one query per
        thousand keys (an indexed `$in`, also on the project's FerretDB build)."""
        found: dict[str, dict[str, Any]] = {}
        for at in range(0, len(keys), ID_LIST_MAX):
            chunk = keys[at : at + ID_LIST_MAX]
            cursor = self.shipments.find({"_id": {"$in": chunk}}, {"source_rev": 1, "version": 1})
            found.update((d["_id"], d) for d in cursor)
        return found

    def _update_many(
        self,
        pending: dict[str, list[int]],
        bodies: list[dict[str, Any]],
        check: Callable[[], None],
        known: dict[str, dict[str, Any]] | None = None,
    ) -> dict[int, MongoWrite]:
        """Existing shipments (key -> the indexes of its documents in `bodies`): one
        conditional replace per key in unordered bulks, the first against `known` (else
        against what is read); the keys that lost a race are read again and retried, a
        bounded number of times."""
        results: dict[int, MongoWrite] = {}
        for _ in range(CAS_ATTEMPTS):
            if not pending:
                return results
            pending = self._cas_round(pending, bodies, results, check, known)
            known = None
        raise ConcurrentWrite(
            f"{', '.join(pending)}: lost the compare-and-swap {CAS_ATTEMPTS} times in a row"
        )

    def _cas_round(
        self,
        pending: dict[str, list[int]],
        bodies: list[dict[str, Any]],
        results: dict[int, MongoWrite],
        check: Callable[[], None],
        known: dict[str, dict[str, Any]] | None = None,
    ) -> dict[str, list[int]]:
        ops: list[ReplaceOne] = []
        planned: dict[str, _Plan] = {}
        if known is None:
            currents = self.currents(list(pending))
            for current in currents.values():
                self._remember(current)
        else:
            currents = known
        for key, idx in pending.items():
            current = currents.get(key)
            if current is None:
                raise ConcurrentWrite(f"{key}: deleted while being written")
            plan = _plan(key, idx, bodies, current)
            if plan[1] is None:
                results.update(plan[0])  # nothing newer than the stored copy
                continue
            ops.append(ReplaceOne(_cas_filter(key, current), plan[1]))
            planned[key] = plan
        if not ops:
            return {}
        check()
        matched = self.shipments.bulk_write(ops, ordered=False).matched_count
        if matched == len(ops):
            for outcomes, new in planned.values():
                results.update(outcomes)
                self._remember(new)
            return {}
        return self._settle(pending, planned, matched, results)

    def _settle(
        self,
        pending: dict[str, list[int]],
        planned: dict[str, _Plan],
        matched: int,
        results: dict[int, MongoWrite],
    ) -> dict[str, list[int]]:
        """Which replaces of a bulk landed: a bulk answers only how many matched, so each key
        is read back. Ours is there: applied. An older revision is there: ours lost, retry.
        A newer one is there: ours landed and was overtaken, or lost to it; the count tells
        which when they all went one way, else they are reported not applied (the newer
        writer carries the shipment on; "applied" may only under-report)."""
        retry: dict[str, list[int]] = {}
        overtaken: list[tuple[str, dict[str, Any]]] = []
        landed = matched
        nows = self.currents(list(planned))
        for key, (outcomes, new) in planned.items():
            assert new is not None
            now = nows.get(key)
            self._known.pop(key, None)
            if now is not None and _pair(now) == _pair(new):
                results.update(outcomes)
                self._remember(new)
                landed -= 1
            elif now is None or now.get("source_rev", -1) < new["source_rev"]:
                retry[key] = pending[key]
            else:
                overtaken.append((key, now))
        for key, now in overtaken:
            if landed == len(overtaken):
                results.update(planned[key][0])
            else:
                results.update(
                    {i: MongoWrite(False, now.get("version"), None) for i in pending[key]}
                )
        return retry

    def replace_if_newer(self, doc: Document) -> bool:
        """Write a whole document (with its own version) unless MongoDB holds a copy at least
        as new by (source_rev, version): the rollback's write-back. A compare-and-swap on the
        copy read, so a client that writes meanwhile (a zombie the fence missed) is never
        overwritten by an older revision; the caller picks the version (see the write-back)."""
        key = doc["_id"]
        for _ in range(CAS_ATTEMPTS):
            current = self.shipments.find_one({"_id": key}, {"source_rev": 1, "version": 1})
            if current is None:
                try:
                    self.shipments.insert_one(doc)
                    return True
                except DuplicateKeyError:
                    continue
            if _pair(current) >= _pair(doc):
                return False
            if self.shipments.replace_one(_cas_filter(key, current), doc).matched_count:
                return True
        raise ConcurrentWrite(f"{key}: lost the compare-and-swap {CAS_ATTEMPTS} times in a row")

    def replace_many_if_newer(
        self, docs: list[Document], currents: dict[str, dict[str, Any]] | None = None
    ) -> list[bool]:
        """`replace_if_newer` for documents of distinct keys, in one unordered bulk of
        compare-and-swaps (and inserts of the missing keys) against `currents` (the stored
        (source_rev, version) per key, read here if not given). If any of them lost a race,
        those documents go through `replace_if_newer` one by one (the bulk only says how
        many landed): True for each whose copy is stored now."""
        if currents is None:
            currents = self.currents([d["_id"] for d in docs])
        ops: list[InsertOne | ReplaceOne] = []
        planned: list[int] = []
        results = [False] * len(docs)
        for i, doc in enumerate(docs):
            current = currents.get(doc["_id"])
            if current is not None and _pair(current) >= _pair(doc):
                continue
            ops.append(
                InsertOne(doc)
                if current is None
                else ReplaceOne(_cas_filter(doc["_id"], current), doc)
            )
            planned.append(i)
        if not ops:
            return results
        try:
            done = self.shipments.bulk_write(ops, ordered=False)
            landed = done.inserted_count + done.matched_count
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
            landed = -1  # an insert met a key written meanwhile: settle one by one
        if landed == len(ops):
            for i in planned:
                results[i] = True
            return results
        for i in planned:
            # Not taken now: the bulk may have landed it already (the same pair is there).
            results[i] = self.replace_if_newer(docs[i]) or _pair(
                self.shipments.find_one({"_id": docs[i]["_id"]}, {"source_rev": 1, "version": 1})
                or {}
            ) == _pair(docs[i])
        return results

    def get(self, key: str) -> Document | None:
        return self.shipments.find_one({"_id": key})

    def get_many(self, keys: list[str]) -> dict[str, Document]:
        """The stored copies of those of `keys` that exist, one indexed `$in` query per
        thousand keys (the write path's bulk `get`)."""
        found: dict[str, Document] = {}
        for at in range(0, len(keys), ID_LIST_MAX):
            found.update(
                (d["_id"], d)
                for d in self.shipments.find({"_id": {"$in": keys[at : at + ID_LIST_MAX]}})
            )
        return found

    # -- dead letters ----------------------------------------------------------------------
    def dead_letter(
        self,
        *,
        origin: str,
        reason: str,
        category: str,
        raw: bytes,
        seq: int | None,
        key: str | None = None,
    ) -> bool:
        """Store a message that could not be applied. Idempotent per (origin, seq)."""
        entry = _letter_entry(origin, reason, category, raw, seq, key)
        try:
            self.dead_letters.insert_one(entry)
        except DuplicateKeyError:
            return False
        return True

    def dead_letter_many(self, letters: list[StreamLetter], origin: str = "stream") -> int:
        """`dead_letter` for several messages in one unordered insert (a round trip each was
        a fifth of an ingest's time at the source's 2 % of malformed messages); the ones
        already stored (a replay) are skipped. Returns how many were new."""
        if not letters:
            return 0
        entries = [
            _letter_entry(origin, x.reason, x.category, x.raw, x.seq, x.key) for x in letters
        ]
        try:
            return len(self.dead_letters.insert_many(entries, ordered=False).inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return int(exc.details.get("nInserted", len(entries) - len(errors)))

    # -- stream offsets ----------------------------------------------------------------------
    def load_offset(self, partition: str) -> int:
        row = self.offsets.find_one({"_id": partition})
        return int(row["seq"]) if row else 0

    def save_offset(self, partition: str, seq: int) -> None:
        # $max: a slower writer can never move the offset backwards.
        self.offsets.update_one({"_id": partition}, {"$max": {"seq": seq}}, upsert=True)

    # -- dual-write backlog ------------------------------------------------------------------
    def backlog_add(self, key: str, version: int, reason: str) -> None:
        self.backlog.replace_one(
            {"_id": key},
            {"_id": key, "version": version, "reason": reason, "queued_at": datetime.now(UTC)},
            upsert=True,
        )

    def backlog_keys(self, limit: int = 500) -> list[str]:
        return [d["_id"] for d in self.backlog.find({}, {"_id": 1}).limit(limit)]

    def backlog_remove(self, key: str) -> None:
        self.backlog.delete_one({"_id": key})

    def backlog_entries(self, limit: int = 500) -> dict[str, int]:
        """Up to `limit` backlogged keys, each with the version it was queued at."""
        return {
            d["_id"]: int(d.get("version") or 0)
            for d in self.backlog.find({}, {"_id": 1, "version": 1}).limit(limit)
        }

    def backlog_remove_flushed(self, flushed: dict[str, int]) -> int:
        """Remove the entries of `flushed` (key -> the version copied into MySQL), each only
        if it was queued at that version or before: a key queued again for a newer write
        after the copy was read stays for the next flush. One unordered bulk of exact `_id`
        deletes; how many went."""
        if not flushed:
            return 0
        ops = [DeleteOne({"_id": k, "version": {"$lte": v}}) for k, v in flushed.items()]
        return int(self.backlog.bulk_write(ops, ordered=False).deleted_count)

    def backlog_size(self) -> int:
        return self.backlog.count_documents({})

    # -- the mode mirror -----------------------------------------------------------------------
    def _control_collection(self) -> Collection:
        """Mirror reads must see every acknowledged mirror write (a reader relies on seeing
        an intent written before the drain began): on MongoDB, majority writes and
        linearizable reads; FerretDB is one process over SQLite, linearizable as it is."""
        if self.ferretdb:
            return self.db[CONTROL]
        return self.db.get_collection(
            CONTROL,
            write_concern=WriteConcern("majority"),
            read_concern=ReadConcern("linearizable"),
        )

    def write_mode_mirror(self, mode: str, epoch: int, *, intent: str | None = None) -> bool:
        """Mirror (mode, epoch[, intent]); False if the mirror holds something newer.

        Writes are ordered by rank = 2 * epoch (+ 1 with an intent), and one lands only if
        its rank is not below the stored one: an intent written for epoch E is replaced only
        by the state of a later epoch (the commit, or the abort, of its transition), never by
        a late writer that read epoch E before the intent. Epochs only grow in MySQL, so the
        mirror never goes back.
        """
        rank = 2 * epoch + (1 if intent is not None else 0)
        body = {"mode": mode, "epoch": epoch, "intent": intent, "rank": rank}
        body["written_at"] = datetime.now(UTC)
        try:
            self.control.replace_one(
                {"_id": MODE_MIRROR_ID, "rank": {"$lte": rank}}, body, upsert=True
            )
        except DuplicateKeyError:
            return False  # the filter missed an existing, newer mirror
        return True

    def read_mode_mirror(self) -> ModeMirror | None:
        found = self.control.find_one({"_id": MODE_MIRROR_ID})
        if found is None:
            return None
        return ModeMirror(str(found["mode"]), int(found["epoch"]), found.get("intent"))
