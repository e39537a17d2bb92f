"""Document-versus-rows verification: counts, chunk checksums, per-document field diffs.

Both sides are walked once, in the same key order (MongoDB's binary string order = MySQL's
utf8mb4_bin): MongoDB (or an archive) with ONE sorted cursor, MySQL with
`mysql_store.iter_documents`. The source side is cut into chunks of `chunk_size` documents;
the MySQL rows with keys up to the chunk's last key join it. Each side's chunk checksum is a
sha256 over the canonical JSON of each document's stored form (`mapping.stored_form`: what
MySQL gives back; `stored_form_fast` for the checksums). Only chunks whose checksums differ
are diffed document by document, and every difference is re-read from both sides by key
before it is reported, so a document that a live client changed during the walk is not
reported as a false difference.

Kinds of findings (neutral): missing (in the source, not in MySQL), extra (in MySQL only),
different (same version, different content: the differing field paths), stale (MySQL's version
older), newer (MySQL's version newer). With `truth=mongo` every finding is a difference; with
`truth=mysql` (after the flip) rows that MySQL holds newer or alone are expected, not
differences. Dead-lettered documents are counted, never differences.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lazyshift.backfill.plan import boundaries
from lazyshift.config import Settings
from lazyshift.core import document, mapping
from lazyshift.core import mysql_store as store
from lazyshift.core.document import Document, InvalidDocument
from lazyshift.core.mongo_store import MongoStore, collection_count, key_filter, redact_uri
from lazyshift.core.mysql import connect, read_snapshot, run_in_transaction
from lazyshift.errors import ProblemFound, UsageError
from lazyshift.read_ahead import ReadAhead

KINDS = ("missing", "extra", "different", "stale", "newer")
EXPECTED_UNDER_MYSQL_TRUTH = frozenset({"extra", "newer"})
MYSQL_BATCH = 500
# Documents per read of the walk (the source cursor's batch, each read-ahead's batch and the
# MySQL keyset page), smaller than a chunk: what a walker holds beyond the chunks it compares
# is at most depth + 2 reads per side (queued, in the reader's hand, being consumed) plus the
# cursor's batch, ~1,250 + 1,000 documents. Reads of whole chunks (1,000 documents, ~10 MB as
# Python objects) let a walker hold ~6,500 beyond its chunks, and with four walkers the peak
# RSS grew with the run's length (100k 167 MB, 1M 196 MB): nothing accumulated, but a longer
# run more often found every walker's queues full at once.
READ_BATCH = 250
# Range walks in parallel (threads): enough for FerretDB to use every core of a small host.
PARALLEL = max(2, min(4, os.cpu_count() or 2))
# Ranges per walking thread, taken from one queue: split points interpolated between the two
# ends of the key space are uneven wherever keys cluster (tenant prefixes: 15,000 / 5,000 at
# 2 ranges of the bench's 20,000), and one walker left alone with the big range halves the
# speed. Smaller ranges let a walker that finishes early take the next one.
RANGES_PER_WALKER = 4


class VerifyError(UsageError):
    """Verification cannot run as asked (arguments that exclude each other)."""


def _canon_fast(doc: Document) -> str | None:
    """`canonical_json(stored_form_fast(doc))`, with the times formatted while the stored form
    is built (a datetime anywhere else still fails the JSON encoder: exact path)."""
    try:
        if doc.get("_id") != doc.get("key"):
            return None
        return _dumps(mapping.stored_form_fast(doc, json_form=True))
    except Exception:  # noqa: BLE001 - malformed: the exact path classifies it
        return None


def _dumps(body: Any, default: Any = None) -> str:
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default
    )


def _time_default(value: Any) -> str:
    if isinstance(value, datetime):
        return mapping.time_text(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _canon_rows(doc: Document) -> str:
    """`canonical_json(doc)` of a document rebuilt from MySQL rows: its datetimes are exactly
    the document's time fields (rows_to_document), so the encoder formats them on the way."""
    return _dumps(doc, _time_default)


def field_diff(a: Any, b: Any, path: str = "") -> list[str]:
    """Paths (`items/2/value/amount`) where two JSON-form values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            sub = f"{path}/{k}" if path else str(k)
            if k not in a or k not in b:
                out.append(sub)
            else:
                out.extend(field_diff(a[k], b[k], sub))
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = []
        for i in range(max(len(a), len(b))):
            sub = f"{path}/{i}" if path else str(i)
            if i >= len(a) or i >= len(b):
                out.append(sub)
            else:
                out.extend(field_diff(a[i], b[i], sub))
        return out
    if type(a) is not type(b) or a != b:
        return [path or "(document)"]
    return []


# -- classification ------------------------------------------------------------------------


@dataclass
class Finding:
    kind: str
    key: str
    source_version: int | None = None
    mysql_version: int | None = None
    fields: list[str] = field(default_factory=list)
    reason: str | None = None
    difference: bool = True

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "key": self.key,
            "source_version": self.source_version,
            "mysql_version": self.mysql_version,
            "fields": self.fields,
            "difference": self.difference,
        }
        if self.reason:
            out["reason"] = self.reason
        return out


def _version(doc: Any) -> int | None:
    v = doc.get("version") if isinstance(doc, dict) else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _order(doc: Any) -> tuple[int, int] | None:
    """(source_rev, version): what "newer" means, as in the guarded write. The version
    counters of the two stores can drift apart (dual -> mongo -> dual), the revision cannot."""
    rev = doc.get("source_rev") if isinstance(doc, dict) else None
    version = _version(doc)
    if version is None or not isinstance(rev, int) or isinstance(rev, bool):
        return None
    return rev, version


def _unmappable(
    key: str, sv: int | None, mv: int | None, reason: str, dead: set[str]
) -> Finding | None:
    if key in dead:
        return None
    if sv is not None and mv is not None and mv > sv:
        return Finding("newer", key, sv, mv, reason=f"source unmappable: {reason}")
    return Finding(
        "different",
        key,
        sv,
        mv,
        fields=[reason.partition(":")[0]],
        reason=f"source unmappable: {reason}",
    )


def classify(
    key: str, src: Document | None, row: Document | None, dead: set[str]
) -> Finding | None:
    """None if equal (or the source document is unmappable and dead-lettered); else the
    finding for this key. A dead letter excuses only an unmappable source document: a
    mappable one missing from MySQL is missing, whatever else was dead-lettered for its key."""
    if src is None:
        return None if row is None else Finding("extra", key, mysql_version=_version(row))
    sv, mv = _version(src), _version(row) if row is not None else None
    try:
        stored = mapping.stored_form(src)
    except InvalidDocument as exc:
        if row is None:
            if key in dead:
                return None
            return Finding("missing", key, sv, reason=f"source unmappable: {exc.reason}")
        return _unmappable(key, sv, mv, exc.reason, dead)
    if row is None:
        return Finding("missing", key, source_version=sv)
    so, mo = _order(src), _order(row)
    if so is not None and mo is not None and so != mo:
        return Finding("stale" if mo < so else "newer", key, sv, mv)
    diff = field_diff(document.to_json(stored), document.to_json(row))
    return Finding("different", key, sv, mv, fields=diff) if diff else None


def classify_non_string(doc: Document, dead_letter_known: bool) -> Finding | None:
    """A source document whose `_id` is not a string: MySQL cannot hold it (its keys are
    strings), so it is a difference unless it was dead-lettered."""
    if dead_letter_known:
        return None
    return Finding(
        "missing",
        dead_letter_id(doc),
        source_version=_version(doc),
        reason=f"source _id of type {type(doc.get('_id')).__name__} cannot be a MySQL key",
    )


def dead_letter_id(doc: Document) -> str:
    """The dead-letter dedup key of a document (mysql_store.document_dead_letter)."""
    return store.document_dead_letter("verify", doc, "").dedup_key


# -- the two sides -------------------------------------------------------------------------


class Source:
    """The side compared with MySQL: MongoDB, or an archive."""

    name = "mongo"

    def iter_sorted(self) -> Iterator[Document]:
        raise NotImplementedError

    def ranges(self, n: int) -> list[tuple[str | None, str | None]]:
        """At most `n` key ranges (after, upper] covering every string key, walked in
        parallel; one unbounded range where the source cannot be read by range."""
        return [(None, None)]

    def iter_range(self, after: str | None, upper: str | None) -> Iterator[Document]:
        """Documents with string keys in (after, upper], in key order."""
        if after is not None or upper is not None:
            raise NotImplementedError
        return self.iter_sorted()

    def get(self, key: str) -> Document | None:
        raise NotImplementedError

    def sample_keys(self, n: int) -> list[str]:
        raise NotImplementedError

    def iter_non_string(self, strings_seen: int) -> Iterator[Document]:
        """Documents whose `_id` is not a string (the sorted walk sees strings only)."""
        return iter(())

    def close(self) -> None:
        pass


class MongoSource(Source):
    def __init__(self, settings: Settings) -> None:
        self.mongo = MongoStore.open(settings, scan=True, timeout_ms=10_000)
        self.coll = self.mongo.shipments
        self.name = f"mongo:{redact_uri(settings.mongo.uri)}{settings.mongo.database}"

    def iter_sorted(self) -> Iterator[Document]:
        return self.iter_range(None, None)

    def iter_range(self, after: str | None, upper: str | None) -> Iterator[Document]:
        # ONE cursor per range, answered in order from the _id index by the patched FerretDB
        # (tools/bootstrap/ferretdb.sh): no sort of the collection, flat memory.
        yield from self.coll.find(key_filter(after, upper)).sort("_id", 1).batch_size(READ_BATCH)

    def ranges(self, n: int) -> list[tuple[str | None, str | None]]:
        # Split points interpolated between the two ends, as the backfill plans: no scan.
        ends = []
        for direction in (1, -1):
            found = list(
                self.coll.find(key_filter(None, None), {"_id": 1}).sort("_id", direction).limit(1)
            )
            ends.append(found[0]["_id"] if found else None)
        cuts = boundaries(ends[0], ends[1], n) if ends[0] and ends[1] else []
        return list(zip([None, *cuts], [*cuts, None], strict=True))

    def get(self, key: str) -> Document | None:
        return self.coll.find_one({"_id": key})

    def iter_non_string(self, strings_seen: int) -> Iterator[Document]:
        # A full scan on FerretDB: done only if the collection holds more than the walk saw.
        if collection_count(self.coll) <= strings_seen:
            return
        yield from self.coll.find({"_id": {"$not": {"$type": "string"}}}, batch_size=1000)

    def sample_keys(self, n: int) -> list[str]:
        rng = random.Random()
        sample: list[str] = []
        seen = 0
        for doc in self.coll.find({}, {"_id": 1}, batch_size=10_000):
            if not isinstance(doc["_id"], str):
                continue
            seen += 1
            if len(sample) < n:
                sample.append(doc["_id"])
            elif (j := rng.randrange(seen)) < n:
                sample[j] = doc["_id"]
        return sample

    def close(self) -> None:
        self.mongo.close()


class MySQLSide:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn = connect(settings.mysql, autocommit=True)
        self.walk = connect(settings.mysql, autocommit=True)

    def iter_sorted(self, after: str | None = None, upper: str | None = None) -> Iterator[Document]:
        """Documents with keys in (after, upper] (None: unbounded), in key order."""
        cur = self.walk.cursor()
        try:
            yield from store.iter_documents(
                cur, after_key=after, upper_key=upper, batch_size=READ_BATCH
            )
        finally:
            cur.close()

    def load(self, keys: list[str]) -> dict[str, Document]:
        with read_snapshot(self.conn):
            cur = self.conn.cursor()
            try:
                return store.load_documents(cur, keys)
            finally:
                cur.close()

    def query(self, fn: Any) -> Any:
        """`fn(cursor)` with a mysql_store function, on the lookup connection."""
        cur = self.conn.cursor()
        try:
            return fn(cur)
        finally:
            cur.close()

    def close(self) -> None:
        for c in (self.conn, self.walk):
            c.close()


# -- the report ----------------------------------------------------------------------------


@dataclass
class Report:
    source: str
    truth: str
    mode: str
    counts: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    rechecked: int = 0
    started_at: str = ""
    finished_at: str = ""
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f["kind"]] = out.get(f["kind"], 0) + 1
        return out

    @property
    def differences(self) -> int:
        return sum(1 for f in self.findings if f["difference"]) + len(self.errors)

    @property
    def ok(self) -> bool:
        return self.differences == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "differences": self.differences,
            "source": self.source,
            "truth": self.truth,
            "mode": self.mode,
            "counts": self.counts,
            "by_kind": self.by_kind,
            "dead_letters": self.dead_letters,
            "rechecked": self.rechecked,
            "errors": self.errors,
            "findings": self.findings,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class _Verifier:
    def __init__(
        self, source: Source, mysql: MySQLSide, truth: str, report: Report, live: bool
    ) -> None:
        self.source = source
        self.mysql = mysql
        self.truth = truth
        self.report = report
        self.live = live  # the source can change during the run: re-read it too
        self._lock = threading.Lock()  # findings and counts, shared by parallel walks
        self.dead = mysql.query(store.dead_letter_keys)
        report.dead_letters = mysql.query(store.dead_letter_count)

    def _record(self, finding: Finding) -> None:
        finding.difference = not (
            self.truth == "mysql" and finding.kind in EXPECTED_UNDER_MYSQL_TRUTH
        )
        with self._lock:
            self.report.findings.append(finding.as_dict())

    def recheck(
        self,
        suspects: dict[str, Finding],
        src_docs: dict[str, Document],
        mysql: MySQLSide | None = None,
    ) -> None:
        """Re-read both sides by key and report what is still different."""
        if not suspects:
            return
        with self._lock:
            self.report.rechecked += len(suspects)
        rows = (mysql or self.mysql).load(list(suspects))
        for key in suspects:
            src = self.source.get(key) if self.live else src_docs.get(key)
            finding = classify(key, src, rows.get(key), self.dead)
            if finding is not None:
                self._record(finding)

    def compare_chunk(
        self,
        src_chunk: list[tuple[str, str | None, Document]],
        my_chunk: list[tuple[str, str, Document]],
        mysql: MySQLSide | None = None,
    ) -> bool:
        """True if the chunk matched by checksum (`mysql`: the walk's side, for re-reads)."""
        if self._digest(src_chunk) == self._digest(my_chunk):
            return True
        src = {k: d for k, _, d in src_chunk}
        mine = {k: d for k, _, d in my_chunk}
        src_canon = {k: c for k, c, _ in src_chunk}
        my_canon = {k: c for k, c, _ in my_chunk}
        suspects: dict[str, Finding] = {}
        for key in sorted(set(src) | set(mine), key=lambda k: k.encode("utf-8", "surrogatepass")):
            if (
                key in src
                and key in mine
                and src_canon[key] is not None
                and src_canon[key] == my_canon[key]
            ):
                continue
            finding = classify(key, src.get(key), mine.get(key), self.dead)
            if finding is not None:
                suspects[key] = finding
        self.recheck(suspects, src, mysql)
        return False

    @staticmethod
    def _digest(chunk: list[tuple[str, Any, Document]]) -> str:
        h = hashlib.sha256()
        for key, canon, _ in chunk:
            if canon is None:
                return "unmappable"
            h.update(key.encode("utf-8", "surrogatepass") + b"\0" + canon.encode() + b"\n")
        return h.hexdigest()

    def full(self, chunk_size: int, parallel: int = 1) -> None:
        """Walk both sides in key order. With `parallel` > 1 the key space is cut into
        RANGES_PER_WALKER times that many ranges, walked by `parallel` threads with their own
        cursors: the source's server (FerretDB decodes every document it returns) then works
        on several cores while this process compares."""
        counts = {"source_docs": 0, "mysql_rows": 0, "chunks": 0, "chunks_mismatched": 0}
        self.report.counts = counts
        ranges = (
            self.source.ranges(parallel * RANGES_PER_WALKER) if parallel > 1 else [(None, None)]
        )
        if len(ranges) == 1:
            self._walk(self.mysql, None, None, chunk_size)
        else:
            self._walk_parallel(ranges, chunk_size, parallel)
        self.non_string(counts)

    def _walk_parallel(
        self, ranges: list[tuple[str | None, str | None]], chunk_size: int, walkers: int
    ) -> None:
        todo: queue.SimpleQueue[tuple[str | None, str | None]] = queue.SimpleQueue()
        for r in ranges:
            todo.put(r)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                side = MySQLSide(self.mysql.settings)
                try:
                    while not errors:  # a failed walker stops the others at their next range
                        try:
                            after, upper = todo.get_nowait()
                        except queue.Empty:
                            return
                        self._walk(side, after, upper, chunk_size)
                finally:
                    side.close()
            except BaseException as exc:  # noqa: BLE001 - re-raised by the calling thread
                errors.append(exc)

        threads = [
            threading.Thread(target=run, name=f"verify-walk-{i}", daemon=True)
            for i in range(min(walkers, len(ranges)))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def _count(self, **add: int) -> None:
        with self._lock:
            for k, v in add.items():
                self.report.counts[k] += v

    def _walk(
        self, mysql: MySQLSide, after: str | None, upper_key: str | None, chunk_size: int
    ) -> None:
        """Compare the keys in (after, upper_key] chunk by chunk. Both sides are read ahead
        in threads (ReadAhead) in READ_BATCH reads: the source's server produces the next
        documents and MySQL the next rows while this thread checksums and compares; without
        it a walk waited on FerretDB for 57-60% of its time (py-spy). The reads are regrouped
        into chunks here, so chunks do not depend on the read size."""
        # One unbounded walk reads the source sorted as a whole (an archive reads no other way).
        whole = after is None and upper_key is None
        src_iter = self.source.iter_sorted() if whole else self.source.iter_range(after, upper_key)
        src_ahead = ReadAhead(src_iter, READ_BATCH, name="verify-read-source")
        my_ahead = ReadAhead(
            mysql.iter_sorted(after, upper_key), READ_BATCH, name="verify-read-mysql"
        )
        try:
            docs = (d for batch in src_ahead for d in batch)
            # Endless (empty lists after the end): _walk_chunks stops at the first short one.
            chunks = (list(itertools.islice(docs, chunk_size)) for _ in itertools.count())
            rows = (d for batch in my_ahead for d in batch)
            self._walk_chunks(chunks, rows, mysql, chunk_size)
        finally:
            src_ahead.close()
            my_ahead.close()

    def _walk_chunks(
        self,
        src_chunks: Iterator[list[Document]],
        my_iter: Iterator[Document],
        mysql: MySQLSide,
        chunk_size: int,
    ) -> None:
        """Source chunks of `chunk_size` documents (the last one shorter, or empty) joined
        with the MySQL rows whose keys are up to each chunk's last key; the rows after the
        source's last key join the last chunk."""
        pending: Document | None = next(my_iter, None)
        last_src_key: bytes | None = None
        done = False
        while not done:
            docs = next(src_chunks, [])
            # A short (or empty) chunk is the source's last: as the loop that filled chunks
            # itself decided, so chunks and their counts are those of a walk without read-ahead.
            done = len(docs) < chunk_size
            src_chunk: list[tuple[str, str | None, Document]] = []
            for doc in docs:
                key = doc["_id"]
                kb = key.encode("utf-8", "surrogatepass")
                if last_src_key is not None and kb <= last_src_key:
                    raise ProblemFound(f"source is not sorted by _id at {key!r}")
                last_src_key = kb
                src_chunk.append((key, _canon_fast(doc), doc))
            upper = src_chunk[-1][0].encode("utf-8", "surrogatepass") if src_chunk else None
            my_chunk: list[tuple[str, str, Document]] = []
            while pending is not None and (
                done or pending["key"].encode("utf-8", "surrogatepass") <= upper
            ):
                my_chunk.append((pending["key"], _canon_rows(pending), pending))
                pending = next(my_iter, None)
            if not src_chunk and not my_chunk:
                break
            matched = self.compare_chunk(src_chunk, my_chunk, mysql)
            self._count(
                source_docs=len(src_chunk),
                mysql_rows=len(my_chunk),
                chunks=1,
                chunks_mismatched=0 if matched else 1,
            )

    def non_string(self, counts: dict[str, int]) -> None:
        for doc in self.source.iter_non_string(counts["source_docs"]):
            counts["source_docs"] += 1
            counts["source_non_string_ids"] = counts.get("source_non_string_ids", 0) + 1
            known = self.mysql.query(
                lambda cur, d=doc: store.has_dead_letter(cur, dead_letter_id(d))
            )
            finding = classify_non_string(doc, known)
            if finding is not None:
                self._record(finding)

    def sampled(self, n: int) -> None:
        keys = list(
            dict.fromkeys(
                self.source.sample_keys(n) + self.mysql.query(lambda cur: store.random_keys(cur, n))
            )
        )
        self.report.counts = {
            "sampled_keys": len(keys),
            "mysql_rows": self.mysql.query(store.shipment_count),
        }
        src_docs: dict[str, Document] = {}
        suspects: dict[str, Finding] = {}
        for i in range(0, len(keys), MYSQL_BATCH):
            batch = keys[i : i + MYSQL_BATCH]
            rows = self.mysql.load(batch)
            for key in batch:
                src = self.source.get(key)
                if src is not None:
                    src_docs[key] = src
                finding = classify(key, src, rows.get(key), self.dead)
                if finding is not None:
                    suspects[key] = finding
        self.recheck(suspects, src_docs)


def verify(
    settings: Settings,
    *,
    sample: int | None = None,
    chunk_size: int = 1000,
    parallel: int = PARALLEL,
    truth: str = "mongo",
    archive: str | None = None,
    s3_endpoint: str | None = None,
) -> Report:
    if truth not in ("mongo", "mysql"):
        raise VerifyError(f"--truth must be mongo or mysql, not {truth!r}")
    started = time.monotonic()
    source: Source
    if archive is not None:
        if sample:
            raise VerifyError("--sample cannot be used with --against-archive")
        from lazyshift.archive import ArchiveSource

        source = ArchiveSource(archive, s3_endpoint=s3_endpoint)
    else:
        source = MongoSource(settings)
    mysql = MySQLSide(settings)
    report = Report(
        source=source.name,
        truth=truth,
        mode=f"sample:{sample}" if sample else "full",
        started_at=_now(),
    )
    try:
        verifier = _Verifier(source, mysql, truth, report, live=archive is None)
        if sample:
            verifier.sampled(sample)
        else:
            verifier.full(chunk_size, parallel if archive is None else 1)
        if archive is not None:
            report.errors.extend(source.integrity_errors())  # type: ignore[attr-defined]
    finally:
        source.close()
        mysql.close()
    report.findings.sort(key=lambda f: (f["kind"], f["key"]))
    report.finished_at = _now()
    report.elapsed_s = time.monotonic() - started
    record_run(settings, report)
    return report


def record_run(settings: Settings, report: Report) -> None:
    """Keep the run's outcome (not its findings) in MySQL: the stage-4 gate reads it."""
    summary = {k: v for k, v in report.as_dict().items() if k != "findings"}
    started = datetime.fromisoformat(report.started_at).astimezone(UTC).replace(tzinfo=None)
    conn = connect(settings.mysql)
    try:
        run_in_transaction(
            conn,
            lambda cur: store.record_verify_run(
                cur, report.source, report.truth, report.mode, report.differences, summary, started
            ),
        )
    finally:
        conn.close()
