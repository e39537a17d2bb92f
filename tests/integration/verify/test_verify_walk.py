"""The walk's read-ahead and range queue (verify.py `_walk`, `_walk_parallel`) on the real
MariaDB + FerretDB: chunks and counts are those of the plain walk, every range is walked
once by at most `parallel` threads, and a failure in a read-ahead thread reaches the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from dataset import key_for, make_doc, write_mysql
from lazyshift import verify
from lazyshift.errors import ProblemFound

N = 256  # a multiple of the chunk sizes below: the walk ends on a full chunk


def _after_last_key(n: int) -> dict:
    """A document (in MySQL only) whose key sorts after every source key."""
    last = max(key_for(i) for i in range(N))
    doc = make_doc(n)
    doc["_id"] = doc["key"] = last + "~"
    return doc


@pytest.mark.parametrize(
    ("chunk_size", "chunks"),
    [
        (64, 5),  # four full chunks, then an empty last one that takes the extra row
        (100, 3),  # 100 + 100 + 56: the short last chunk takes the extra row
    ],
)
def test_rows_after_the_last_source_key_join_the_last_chunk(synced, app_conn, chunk_size, chunks):
    """The read-ahead hands over whole chunks; a short or empty one is still the source's
    last, so the chunks (and their counts) are those of the walk that filled them itself."""
    extra = _after_last_key(N + 1)
    write_mysql(app_conn, [extra])
    report = verify.verify(synced, chunk_size=chunk_size, parallel=1)
    assert [(f["kind"], f["key"]) for f in report.findings] == [("extra", extra["key"])]
    assert report.counts == {
        "source_docs": N,
        "mysql_rows": N + 1,
        "chunks": chunks,
        "chunks_mismatched": 1,
    }


class CountingSource(verify.MongoSource):
    """MongoDB, recording which ranges were asked for and walked, and by which threads."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.asked: list[int] = []
        self.walked: list[tuple[str | None, str | None]] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def ranges(self, n: int) -> list[tuple[str | None, str | None]]:
        self.asked.append(n)
        return super().ranges(n)

    def iter_range(self, after: str | None, upper: str | None) -> Iterator[dict]:
        with self.lock:
            self.walked.append((after, upper))
        return super().iter_range(after, upper)


def test_more_ranges_than_walkers_each_walked_once(synced, app_conn):
    source, mysql = CountingSource(synced), verify.MySQLSide(synced)
    walkers: set[str] = set()
    compare = verify._Verifier.compare_chunk

    def spy(self, *args, **kwargs):
        walkers.add(threading.current_thread().name)
        return compare(self, *args, **kwargs)

    try:
        report = verify.Report(source="mongo", truth="mongo", mode="full")
        checker = verify._Verifier(source, mysql, "mongo", report, live=True)
        checker.compare_chunk = spy.__get__(checker)  # type: ignore[method-assign]
        checker.full(chunk_size=32, parallel=2)
        ranges = source.ranges(2 * verify.RANGES_PER_WALKER)
    finally:
        source.close()
        mysql.close()
    assert source.asked[0] == 2 * verify.RANGES_PER_WALKER
    assert len(ranges) > 2
    assert sorted(source.walked, key=str) == sorted(ranges, key=str)  # each exactly once
    assert walkers and walkers <= {"verify-walk-0", "verify-walk-1"}
    assert report.findings == []
    assert report.counts["source_docs"] == N and report.counts["mysql_rows"] == N


class ListSource(verify.Source):
    """An archive-like source: documents in the order given, read only as a whole."""

    name = "list"

    def __init__(self, docs: list[dict], fail_after: int | None = None) -> None:
        self.docs, self.fail_after = docs, fail_after

    def iter_sorted(self) -> Iterator[dict]:
        for i, doc in enumerate(self.docs):
            if i == self.fail_after:
                raise ConnectionError("source went away")
            yield doc

    def get(self, key: str) -> dict | None:
        return next((d for d in self.docs if d["_id"] == key), None)


class CountingListSource(ListSource):
    """A ListSource counting the documents read so far."""

    def __init__(self, docs: list[dict]) -> None:
        super().__init__(docs)
        self.read = 0

    def iter_sorted(self) -> Iterator[dict]:
        for doc in super().iter_sorted():
            self.read += 1
            yield doc


def _walk(settings, source: verify.Source) -> verify.Report:
    mysql = verify.MySQLSide(settings)
    try:
        report = verify.Report(source=source.name, truth="mongo", mode="full")
        verify._Verifier(source, mysql, "mongo", report, live=False).full(32, parallel=1)
        return report
    finally:
        mysql.close()


def test_a_failure_in_the_read_ahead_reaches_the_caller(synced):
    docs = [make_doc(i) for i in sorted(range(N), key=key_for)]
    with pytest.raises(ConnectionError, match="source went away"):
        _walk(synced, ListSource(docs, fail_after=100))


def test_an_unsorted_source_is_still_refused(synced):
    docs = [make_doc(i) for i in sorted(range(N), key=key_for)]
    docs[40], docs[41] = docs[41], docs[40]
    with pytest.raises(ProblemFound, match="not sorted"):
        _walk(synced, ListSource(docs))


def test_a_list_source_in_sync_matches(synced):
    docs = [make_doc(i) for i in sorted(range(N), key=lambda i: key_for(i).encode())]
    report = _walk(synced, ListSource(docs))
    assert report.findings == [] and report.counts["source_docs"] == N


class CountingMySQL(verify.MySQLSide):
    """MySQL's walk, counting the rows read so far."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.read = 0

    def iter_sorted(self, after=None, upper=None) -> Iterator[dict]:
        for doc in super().iter_sorted(after, upper):
            self.read += 1
            yield doc


def test_a_walker_reads_a_bounded_number_of_documents_ahead(synced, monkeypatch):
    """Memory per walker is bounded by the read size, not by the chunk size: when a chunk is
    compared, neither side has read more than depth + 2 reads beyond it. (Reads of whole
    chunks read up to three chunks ahead; the peak RSS then grew with the run's length.)"""
    monkeypatch.setattr(verify, "READ_BATCH", 8)
    depth = 2  # ReadAhead's default
    docs = [make_doc(i) for i in sorted(range(N), key=lambda i: key_for(i).encode())]
    counting = CountingListSource(docs)
    mysql = CountingMySQL(synced)
    ahead: list[tuple[int, int]] = []
    compare = verify._Verifier.compare_chunk

    def spy(self, src_chunk, my_chunk, side=None):
        c = self.report.counts
        ahead.append(
            (
                counting.read - (c["source_docs"] + len(src_chunk)),
                mysql.read - (c["mysql_rows"] + len(my_chunk)),
            )
        )
        return compare(self, src_chunk, my_chunk, side)

    try:
        report = verify.Report(source="list", truth="mongo", mode="full")
        checker = verify._Verifier(counting, mysql, "mongo", report, live=False)
        checker.compare_chunk = spy.__get__(checker)  # type: ignore[method-assign]
        checker.full(chunk_size=64, parallel=1)
    finally:
        mysql.close()
    assert report.findings == [] and report.counts["chunks"] == len(ahead) == N // 64
    # queued + in the reader's hand + the rest of the read being consumed (MySQL: with the
    # row held for the next chunk); reads of whole chunks were up to 3 chunks (192) ahead
    bound = (depth + 2) * 8
    assert max(src for src, _ in ahead) <= bound
    assert max(mine for _, mine in ahead) <= bound
