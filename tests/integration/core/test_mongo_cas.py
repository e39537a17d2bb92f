"""Every MongoDB write of an existing shipment is a compare-and-swap (issue 9, holes 2 and 9).

Two writers of one key (two clients, a client and a rollback write-back, a restarted client
and its zombie) race on the real FerretDB: no increment is lost (the final version counts
every write reported applied), the newest revision wins, and the rollback's write-back never
puts an older revision over a newer one, whatever the versions say.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from dataset import make_doc
from lazyshift.config import Settings
from lazyshift.core.mongo_store import MongoStore, connect

ROUNDS = 150  # revisions per writer: enough for read-then-replace to lose some on 2 cores


@pytest.fixture
def stores(migrated: Settings) -> Iterator[Callable[[], MongoStore]]:
    """A factory of stores, each on its own client (one per writer, like real clients)."""
    opened: list[MongoStore] = []

    def _open() -> MongoStore:
        s = MongoStore(
            connect(migrated.mongo.uri), migrated.mongo.database, migrated.mongo.collection
        )
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


def snapshot(i: int, rev: int) -> dict:
    """Shipment `i` at revision `rev`, without a version (what the client writes)."""
    d = make_doc(i) | {"source_rev": rev, "tracking_number": f"rev-{rev}"}
    d.pop("version", None)
    return d


def race(writers: list[Callable[[], int]]) -> list[int]:
    """Run the writers at once (a barrier, no sleeps); each returns how many it applied."""
    start = threading.Barrier(len(writers))
    counts = [0] * len(writers)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait(timeout=60)
            counts[n] = writers[n]()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(writers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert not errors, errors
    return counts


def test_two_writers_of_one_key_lose_no_increment(stores) -> None:
    a, b = stores(), stores()
    key = make_doc(1)["key"]
    assert a.apply_snapshot(snapshot(1, 0)).version == 1

    def writer(store: MongoStore, parity: int) -> Callable[[], int]:
        # interleaved revisions: each writer has newer ones to apply all along the race
        revs = range(1 + parity, 2 * ROUNDS + 1, 2)
        return lambda: sum(store.apply_snapshot(snapshot(1, r)).applied for r in revs)

    applied = race([writer(a, 0), writer(b, 1)])
    stored = a.get(key)
    assert stored["version"] == 1 + sum(applied), applied
    assert (stored["source_rev"], stored["tracking_number"]) == (2 * ROUNDS, f"rev-{2 * ROUNDS}")


def test_two_bulk_writers_of_one_key_lose_no_increment(stores) -> None:
    """apply_many: a contended key beside each writer's own keys, in every batch."""
    a, b = stores(), stores()
    key = make_doc(1)["key"]
    a.apply_many([snapshot(i, 0) for i in (1, 2, 3)])

    def writer(store: MongoStore, parity: int, own: int) -> Callable[[], int]:
        def run() -> int:
            n = 0
            for r in range(1 + parity, 2 * ROUNDS + 1, 2):
                res = store.apply_many([snapshot(own, r), snapshot(1, r)])
                assert res[0].applied  # its own key: no competitor, always applied
                n += res[1].applied
            return n

        return run

    applied = race([writer(a, 0, 2), writer(b, 1, 3)])
    stored = a.get(key)
    assert stored["version"] == 1 + sum(applied), applied
    assert (stored["source_rev"], stored["tracking_number"]) == (2 * ROUNDS, f"rev-{2 * ROUNDS}")
    assert a.get(make_doc(2)["key"])["version"] == 1 + ROUNDS
    assert a.get(make_doc(3)["key"])["version"] == 1 + ROUNDS


def test_write_back_races_a_live_writer_and_the_newest_revision_wins(stores) -> None:
    """A rollback write-back (whole documents with their own versions) against a client."""
    live, back = stores(), stores()
    key = make_doc(1)["key"]
    live.apply_snapshot(snapshot(1, 0))
    top = 2 * ROUNDS

    def write_back() -> int:
        # MySQL's copies: even revisions, versions far ahead of MongoDB's counter
        return sum(
            back.replace_if_newer(snapshot(1, r) | {"version": 1000 + r})
            for r in range(2, top + 1, 2)
        )

    def client() -> int:
        return sum(live.apply_snapshot(snapshot(1, r)).applied for r in range(1, top, 2))

    race([write_back, client])
    stored = live.get(key)
    assert (stored["source_rev"], stored["tracking_number"]) == (top, f"rev-{top}")


def test_write_back_compares_revisions_not_only_versions(stores) -> None:
    s = stores()
    key = make_doc(1)["key"]
    s.shipments.insert_one(snapshot(1, 10) | {"version": 3})
    # an older revision with a higher version (counters drift between stores): refused
    assert not s.replace_if_newer(snapshot(1, 5) | {"version": 7})
    assert s.get(key)["source_rev"] == 10
    # the same revision with a higher version (MongoDB's counter catching up): taken
    assert s.replace_if_newer(snapshot(1, 10) | {"version": 4})
    assert s.get(key)["version"] == 4
    # a newer revision is taken even with a lower version, and a missing key is created
    assert s.replace_if_newer(snapshot(1, 11) | {"version": 2})
    assert s.get(key)["source_rev"] == 11
    assert s.replace_if_newer(snapshot(2, 1) | {"version": 1})


def test_a_write_back_batch_takes_only_what_is_newer(stores) -> None:
    """The batched write-back: one bulk for missing, older and newer copies at once."""
    s = stores()
    s.shipments.insert_one(snapshot(1, 10) | {"version": 3})
    s.shipments.insert_one(snapshot(2, 4) | {"version": 2})
    s.shipments.insert_one(snapshot(3, 7) | {"version": 5})
    batch = [
        snapshot(1, 5) | {"version": 9},  # older revision, higher version: refused
        snapshot(2, 4) | {"version": 3},  # same revision, higher version: taken
        snapshot(3, 7) | {"version": 5},  # the same copy: nothing to do
        snapshot(4, 1) | {"version": 1},  # missing: created
    ]
    assert s.replace_many_if_newer(batch) == [False, True, False, True]
    got = {i: s.get(make_doc(i)["key"]) for i in (1, 2, 3, 4)}
    assert [(got[i]["source_rev"], got[i]["version"]) for i in (1, 2, 3, 4)] == [
        (10, 3),
        (4, 3),
        (7, 5),
        (1, 1),
    ]


def test_a_write_back_batch_that_loses_a_race_settles_one_by_one(stores) -> None:
    """Compared against copies read before a live writer moved a key on: that key's
    compare-and-swap misses, the batch settles it alone, and the newest revision stays."""
    s, live = stores(), stores()
    s.shipments.insert_one(snapshot(1, 1) | {"version": 1})
    s.shipments.insert_one(snapshot(2, 1) | {"version": 1})
    keys = [make_doc(i)["key"] for i in (1, 2)]
    stale = s.currents(keys)
    assert live.apply_snapshot(snapshot(1, 9)).applied  # after the read: version 2, rev 9
    batch = [snapshot(1, 5) | {"version": 4}, snapshot(2, 5) | {"version": 4}]
    assert s.replace_many_if_newer(batch, stale) == [False, True]
    assert s.get(keys[0])["source_rev"] == 9 and s.get(keys[1])["source_rev"] == 5


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(1, 4), st.integers(0, 6)), min_size=1, max_size=5),
        min_size=1,
        max_size=6,
    )
)
def test_any_sequence_of_batches_keeps_the_newest_revision(stores, batches) -> None:
    """Sequentially: per key, version = applied writes, source_rev = the highest seen."""
    s = stores()
    s.shipments.delete_many({})
    applied: dict[str, int] = {}
    best: dict[str, int] = {}
    for batch in batches:
        docs = list({make_doc(i)["key"]: snapshot(i, r) for i, r in batch}.values())
        for d, res in zip(docs, s.apply_many(docs), strict=True):
            k, r = d["key"], d["source_rev"]
            assert res.applied == (r > best.get(k, -1)), (k, r, best)
            applied[k] = applied.get(k, 0) + res.applied
            best[k] = max(best.get(k, -1), r)
    for k, n in applied.items():
        got = s.get(k)
        assert (got["version"], got["source_rev"]) == (n, best[k])


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(1, 3), st.integers(0, 6)), min_size=1, max_size=8),
        min_size=1,
        max_size=5,
    )
)
def test_a_key_repeated_in_a_batch_ends_as_if_written_one_by_one(stores, batches) -> None:
    """Batches in stream order, keys repeating within them (older, equal and newer revisions
    of one key, in any order): each result and the stored (version, source_rev, content) are
    what writing the documents one after the other gives."""
    s = stores()
    s.shipments.delete_many({})
    version: dict[str, int] = {}
    best: dict[str, int] = {}
    for batch in batches:
        docs = [snapshot(i, r) for i, r in batch]
        for d, res in zip(docs, s.apply_many(docs), strict=True):
            k, r = d["key"], d["source_rev"]
            newer = r > best.get(k, -1)
            assert res.applied == newer, (k, r, best, batch)
            if newer:
                version[k], best[k] = version.get(k, 0) + 1, r
            assert res.version == version[k], (k, r, batch)
    for k, n in version.items():
        got = s.get(k)
        assert (got["version"], got["source_rev"], got["tracking_number"]) == (
            n,
            best[k],
            f"rev-{best[k]}",
        )


def test_what_a_store_remembers_is_only_a_guess(stores) -> None:
    """A store swaps against the copy it wrote last, without reading it: when another
    writer moved the key on meanwhile, or it was deleted, the swap misses and the store
    falls back to reading (or inserting), never to an older revision or a lost increment."""
    s, other = stores(), stores()
    k1, k2, k3 = (make_doc(i)["key"] for i in (1, 2, 3))
    assert [w.version for w in s.apply_many([snapshot(1, 1), snapshot(2, 1), snapshot(3, 1)])] == [
        1,
        1,
        1,
    ]
    assert other.apply_snapshot(snapshot(1, 5)).version == 2  # behind s's back
    s.shipments.delete_one({"_id": k3})  # e.g. an operator's clean-up
    res = s.apply_many([snapshot(1, 3), snapshot(2, 2), snapshot(3, 2)])
    assert [(w.applied, w.version) for w in res] == [(False, 2), (True, 2), (True, 1)]
    res = s.apply_many([snapshot(1, 7), snapshot(1, 6), snapshot(2, 3)])
    assert [(w.applied, w.version) for w in res] == [(True, 3), (False, 3), (True, 3)]
    got = {k: s.get(k) for k in (k1, k2, k3)}
    assert [(got[k]["source_rev"], got[k]["version"]) for k in (k1, k2, k3)] == [
        (7, 3),
        (3, 3),
        (2, 1),
    ]
