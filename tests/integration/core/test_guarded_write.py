"""The one version-guarded write: never older over newer, children replaced, fenced by epoch,
correct under concurrent writers (threads and processes) on the real MariaDB."""

from __future__ import annotations

import multiprocessing
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from helpers import poll, running_statements, start_in_thread
from lazyshift.config import MySQLSettings
from lazyshift.core import guarded_write as gw
from lazyshift.core import mysql as db
from lazyshift.core.document import InvalidDocument
from lazyshift.core.guarded_write import (
    BatchResult,
    Fenced,
    apply_batch,
    guarded_write,
    map_or_reject,
)
from lazyshift.core.mysql_store import load_documents
from strategies import sample_document as sample_doc

DB_EXAMPLES = hsettings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def version_doc(key: str, version: int, n_items: int = 1) -> dict:
    """A distinct document per (key, version): the content says which version it is."""
    doc = sample_doc(
        _id=key, key=key, version=version, source_rev=version, tracking_number=f"T{version}"
    )
    doc["items"] = [
        dict(doc["items"][0], sku=f"v{version}-{i}", quantity=i) for i in range(n_items)
    ]
    return doc


def stored(conn, key: str) -> dict | None:
    cur = conn.cursor()
    conn.rollback()  # a fresh snapshot
    docs = load_documents(cur, [key])
    conn.rollback()
    cur.close()
    return docs.get(key)


def bookkeeping(conn, key: str) -> tuple:
    cur = conn.cursor()
    conn.rollback()
    cur.execute(
        "SELECT version, apply_count, written_epoch FROM shipment WHERE shipment_key = %s", (key,)
    )
    row = cur.fetchone()
    conn.rollback()
    return row


def child_counts(conn, key: str) -> tuple[int, int, int]:
    cur = conn.cursor()
    out = []
    for table in ("shipment_party", "shipment_item", "shipment_event"):
        cur.execute(f"SELECT COUNT(*) FROM {table} WHERE shipment_key = %s", (key,))
        out.append(cur.fetchone()[0])
    conn.rollback()
    return tuple(out)


def set_control(conn, **values) -> None:
    cur = conn.cursor()
    sets = ", ".join(f"{k} = %s" for k in values)
    cur.execute(f"UPDATE lazyshift_control SET {sets} WHERE id = 1", tuple(values.values()))
    conn.commit()


# -- the version guard -------------------------------------------------------------------------


def test_insert_then_newer_applies_older_and_equal_skip(conn):
    assert guarded_write(conn, version_doc("k:1", 2)) is True
    assert guarded_write(conn, version_doc("k:1", 1)) is False
    assert guarded_write(conn, version_doc("k:1", 2) | {"tracking_number": "other"}) is False
    assert stored(conn, "k:1") == version_doc("k:1", 2)
    assert guarded_write(conn, version_doc("k:1", 5)) is True
    assert stored(conn, "k:1") == version_doc("k:1", 5)
    assert bookkeeping(conn, "k:1")[:2] == (5, 2)  # applied twice, skipped twice
    cur = conn.cursor()
    cur.execute("SELECT TIMESTAMPDIFF(SECOND, written_at, UTC_TIMESTAMP(6)) FROM shipment")
    assert 0 <= cur.fetchone()[0] < 60  # stamped with the server's UTC clock
    conn.rollback()


@DB_EXAMPLES
@given(versions=st.lists(st.integers(1, 8), min_size=1, max_size=10), batch_size=st.integers(1, 4))
def test_any_interleaving_ends_at_max_version(conn, versions, batch_size):
    """Whatever the order (and batching, with duplicates), the stored document is the one with
    the highest version, and apply_count counts exactly the writes that raised the version."""
    cur = conn.cursor()
    cur.execute("DELETE FROM shipment")
    conn.commit()
    expected_applies, high = 0, 0
    for i in range(0, len(versions), batch_size):
        batch = versions[i : i + batch_size]
        result = apply_batch(cur, [version_doc("k:p", v, n_items=v % 4) for v in batch])
        conn.commit()
        if max(batch) > high:
            expected_applies += 1
            high = max(batch)
            assert result == BatchResult(applied_keys=["k:p"], skipped_keys=[])
        else:
            assert result == BatchResult(applied_keys=[], skipped_keys=["k:p"])
    assert stored(conn, "k:p") == version_doc("k:p", max(versions), n_items=max(versions) % 4)
    assert bookkeeping(conn, "k:p")[:2] == (max(versions), expected_applies)
    cur.close()


def test_children_replaced_not_appended(conn):
    guarded_write(conn, version_doc("k:c", 1, n_items=5))
    assert child_counts(conn, "k:c") == (1, 5, 1)
    newer = version_doc("k:c", 2, n_items=2)
    newer["events"] = []
    newer["recipient"] = None
    guarded_write(conn, newer)
    assert child_counts(conn, "k:c") == (0, 2, 0)
    assert stored(conn, "k:c") == newer
    # an older write does not touch the children either
    guarded_write(conn, version_doc("k:c", 1, n_items=7))
    assert child_counts(conn, "k:c") == (0, 2, 0)


def test_batch_keeps_highest_version_per_key_and_reports(conn):
    cur = conn.cursor()
    result = apply_batch(
        cur,
        [
            version_doc("k:a", 3),
            version_doc("k:b", 1),
            version_doc("k:a", 7),
            version_doc("k:a", 5),
        ],
        written_epoch=4,
    )
    conn.commit()
    assert result == BatchResult(applied_keys=["k:a", "k:b"], skipped_keys=[])
    assert stored(conn, "k:a")["version"] == 7
    assert bookkeeping(conn, "k:a") == (7, 1, 4)
    result = apply_batch(cur, [version_doc("k:a", 7), version_doc("k:b", 2)])
    conn.commit()
    assert result == BatchResult(applied_keys=["k:b"], skipped_keys=["k:a"])
    assert bookkeeping(conn, "k:b") == (2, 2, None)


def test_batch_runs_in_callers_transaction(conn):
    cur = conn.cursor()
    apply_batch(cur, [version_doc("k:t", 1)])
    conn.rollback()
    assert stored(conn, "k:t") is None


def test_invalid_document_rejects_whole_batch_before_writing(conn):
    cur = conn.cursor()
    bad = version_doc("k:bad", 1) | {"price": {"amount": "1234567890123456", "currency": "EUR"}}
    with pytest.raises(InvalidDocument) as info:
        apply_batch(cur, [version_doc("k:good", 1), bad])
    assert info.value.reason == (
        "document 'k:bad': price/amount: 16 integer digits exceed DECIMAL(20,6)"
    )
    conn.rollback()
    assert stored(conn, "k:good") is None
    rows_by_key, rejected = map_or_reject([version_doc("k:good", 1), bad, version_doc("k:good", 3)])
    assert list(rows_by_key) == ["k:good"] and rows_by_key["k:good"].version == 3
    assert rejected == [(bad, "price/amount: 16 integer digits exceed DECIMAL(20,6)")]
    # mapped rows can be written directly
    assert apply_batch(cur, list(rows_by_key.values())).applied_keys == ["k:good"]
    conn.commit()
    assert stored(conn, "k:good") == version_doc("k:good", 3)


# -- fencing -----------------------------------------------------------------------------------


def test_fenced_on_wrong_epoch(conn, connect):
    admin = connect()
    assert guarded_write(conn, version_doc("k:f", 1), epoch=1) is True
    assert bookkeeping(conn, "k:f")[2] is None  # fenced, but a copy: not stamped
    set_control(admin, epoch=2, mode="mysql-primary")
    with pytest.raises(Fenced) as info:
        guarded_write(conn, version_doc("k:f", 2), epoch=1)
    assert info.value.current_epoch == 2
    assert "epoch 1" in str(info.value) and "epoch 2" in str(info.value)
    assert stored(conn, "k:f")["version"] == 1
    assert guarded_write(conn, version_doc("k:f", 2), epoch=2, written_epoch=2) is True
    assert bookkeeping(conn, "k:f") == (2, 2, 2)
    # without an epoch there is no fencing (backfill under its own control)
    assert guarded_write(conn, version_doc("k:f", 3)) is True


def test_fenced_while_draining(conn, connect):
    admin = connect()
    set_control(admin, state="draining", target_mode="mysql-primary")
    cur = conn.cursor()
    with pytest.raises(Fenced, match="draining"):
        apply_batch(cur, [version_doc("k:d", 1)], epoch=1)
    conn.rollback()
    set_control(admin, state="stable", target_mode=None)
    assert apply_batch(cur, [version_doc("k:d", 1)], epoch=1).applied_keys == ["k:d"]
    conn.commit()


def test_epoch_bump_waits_for_inflight_write(conn, connect):
    """The share lock on the control row holds a transition until in-flight writes commit."""
    admin = connect()
    cur = conn.cursor()
    apply_batch(cur, [version_doc("k:w", 1)], epoch=1)  # holds the share lock, not committed
    done = threading.Event()

    def bump():
        set_control(admin, epoch=2)
        done.set()

    t = threading.Thread(target=bump)
    t.start()
    assert not done.wait(0.5)  # blocked behind our transaction
    conn.commit()
    assert done.wait(10)
    t.join()
    with pytest.raises(Fenced):
        apply_batch(cur, [version_doc("k:w", 2)], epoch=1)
    conn.rollback()


# -- the one-round-trip insert of a key expected absent (the lazy-read miss) -----------------


def bare_doc(key: str, version: int) -> dict:
    """A document without child rows: nothing after the root insert could fail."""
    doc = version_doc(key, version, n_items=0)
    doc["events"] = []
    doc["sender"] = doc["recipient"] = None
    return doc


def round_trips(conn) -> list[int]:
    """Counts the queries `conn` sends from now on (each multi-statement script is one)."""
    sent = [0]
    send = conn.cmd_query

    def counting(*args, **kwargs):
        sent[0] += 1
        return send(*args, **kwargs)

    conn.cmd_query = counting
    return sent


def test_an_absent_key_is_inserted_in_one_round_trip(conn):
    set_control(conn, epoch=3)
    sent = round_trips(conn)
    assert guarded_write(conn, version_doc("k:o", 2, n_items=3), epoch=3, expect_absent=True)
    assert sent[0] == 1
    assert stored(conn, "k:o") == version_doc("k:o", 2, n_items=3)
    assert bookkeeping(conn, "k:o") == (2, 1, None)
    sent[0] = 0
    assert guarded_write(conn, bare_doc("k:o2", 1), expect_absent=True, written_epoch=3)
    assert sent[0] == 1
    assert stored(conn, "k:o2") == bare_doc("k:o2", 1)
    assert bookkeeping(conn, "k:o2") == (1, 1, 3)


@pytest.mark.parametrize("children", [True, False], ids=["children", "bare"])
def test_expected_absent_but_fenced_writes_nothing(conn, connect, children):
    admin = connect()
    make = (lambda k, v: version_doc(k, v, n_items=2)) if children else bare_doc
    set_control(admin, epoch=2, mode="mysql-primary")
    with pytest.raises(Fenced) as info:
        guarded_write(conn, make("k:fa", 1), epoch=1, expect_absent=True)
    assert (info.value.epoch, info.value.current_epoch) == (1, 2)
    assert stored(conn, "k:fa") is None
    set_control(admin, state="draining", target_mode="mysql")
    with pytest.raises(Fenced, match="draining"):
        guarded_write(conn, make("k:fa", 1), epoch=2, expect_absent=True)
    assert stored(conn, "k:fa") is None
    assert not conn.in_transaction  # nothing left open on the reader's connection
    set_control(admin, state="stable", target_mode=None)
    assert guarded_write(conn, make("k:fa", 1), epoch=2, expect_absent=True) is True
    assert stored(conn, "k:fa") == make("k:fa", 1)


def test_expected_absent_without_a_control_row_is_fenced(conn):
    cur = conn.cursor()
    cur.execute("DELETE FROM lazyshift_control WHERE id = 1")
    conn.commit()
    with pytest.raises(Fenced, match="no control row"):
        guarded_write(conn, bare_doc("k:nc", 1), epoch=1, expect_absent=True)
    assert stored(conn, "k:nc") is None


def test_expected_absent_but_stored_meanwhile_applies_the_guard(conn, connect):
    """The key was stored after the caller saw it absent: a newer stored copy stays whole
    (no children appended to it, even when the write is also fenced), an older one is
    replaced with its children."""
    other = connect()
    assert guarded_write(other, bare_doc("k:sm", 5))  # no child rows a new one could hit
    assert guarded_write(conn, version_doc("k:sm", 3, n_items=1), expect_absent=True) is False
    assert guarded_write(conn, version_doc("k:sm", 5, n_items=1), expect_absent=True) is False
    assert stored(conn, "k:sm") == bare_doc("k:sm", 5)
    set_control(other, epoch=2)
    with pytest.raises(Fenced):
        guarded_write(conn, version_doc("k:sm", 9, n_items=2), epoch=1, expect_absent=True)
    assert stored(conn, "k:sm") == bare_doc("k:sm", 5)
    assert child_counts(conn, "k:sm") == (0, 0, 0)
    assert guarded_write(conn, version_doc("k:sm", 7, n_items=2), epoch=2, expect_absent=True)
    assert stored(conn, "k:sm") == version_doc("k:sm", 7, n_items=2)
    assert bookkeeping(conn, "k:sm")[:2] == (7, 2)


def test_a_transition_waits_for_the_one_round_trip_insert(conn, connect, mysql_root):
    """The insert share-locks the control row before it writes, held to its COMMIT: a
    transition that comes while it is in flight waits, and the write commits in its epoch."""
    admin, blocker = connect(), connect()
    # Another transaction inserts the key and holds its row lock: our insert stops at the
    # root row, inside the script, after the fence's share lock.
    apply_batch(blocker.cursor(), [version_doc("k:h", 1)])
    outcome: dict[str, object] = {}

    try:
        write = start_in_thread(
            outcome,
            "write",
            lambda: guarded_write(conn, version_doc("k:h", 4), epoch=1, expect_absent=True),
        )
        poll(
            lambda: any(
                q.startswith("INSERT INTO shipment") for q in running_statements(mysql_root)
            ),
            "the insert to wait on the row lock",
        )
        bump = start_in_thread(outcome, "bump", lambda: set_control(admin, epoch=2))
        poll(
            lambda: any("UPDATE lazyshift_control" in q for q in running_statements(mysql_root)),
            "the transition to wait on the share lock",
        )
        assert write.is_alive() and bump.is_alive(), outcome
    finally:
        blocker.rollback()  # the key is absent again: the insert goes on and commits
    write.join(30)
    bump.join(30)
    assert outcome == {"write": True, "bump": None}
    assert stored(conn, "k:h") == version_doc("k:h", 4)
    with pytest.raises(Fenced):  # and the transition has happened since
        guarded_write(conn, version_doc("k:h2", 1), epoch=1, expect_absent=True)


# -- concurrency -------------------------------------------------------------------------------


def _writer(
    mysql_settings: dict, seed: int, keys: list[str], writes: int, isolation: str | None
) -> int:
    rng = random.Random(seed)
    conn = db.connect(MySQLSettings(**mysql_settings))
    if isolation:
        conn.cursor().execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {isolation}")
    try:
        top = 0
        for _ in range(writes):
            v = rng.randint(1, 40)
            guarded_write(conn, version_doc(rng.choice(keys), v, n_items=v % 5))
            top = max(top, v)
        return top
    finally:
        conn.close()


def _check_final(conn, keys, seeds_writes) -> None:
    # Recompute which versions each key received: the max per key must be what is stored.
    expected: dict[str, int] = {}
    for seed, writes in seeds_writes:
        rng = random.Random(seed)
        for _ in range(writes):
            v = rng.randint(1, 40)
            key = rng.choice(keys)
            expected[key] = max(expected.get(key, 0), v)
    for key, v in expected.items():
        assert stored(conn, key) == version_doc(key, v, n_items=v % 5)
        assert child_counts(conn, key)[1] == v % 5


@pytest.mark.parametrize("isolation", [None, "READ COMMITTED"])
def test_concurrent_threads_end_at_max_version(migrated, conn, isolation):
    keys = [f"k:{i}" for i in range(4)]
    jobs = [(seed, 40) for seed in range(8)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [
            pool.submit(_writer, migrated.mysql.model_dump(), seed, keys, n, isolation)
            for seed, n in jobs
        ]
        for f in futures:
            f.result()  # no errors surfaced
    _check_final(conn, keys, jobs)


def test_concurrent_processes_end_at_max_version(migrated, conn):
    keys = [f"p:{i}" for i in range(3)]
    jobs = [(100 + seed, 30) for seed in range(6)]
    # spawn, not fork: a forked worker inherits conftest's SIGTERM handler (which raises
    # KeyboardInterrupt), so the pool's terminate() at the end could kill one inside the
    # task queue's lock and leave another blocked on it for good (py-spy: the pool's join
    # waited on a worker in SemLock.acquire; two full-suite runs hung here for 600 s).
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        pool.starmap(
            _writer, [(migrated.mysql.model_dump(), seed, keys, n, None) for seed, n in jobs]
        )
    _check_final(conn, keys, jobs)


@pytest.mark.parametrize("expect_absent", [False, True], ids=["two-trips", "one-trip"])
@pytest.mark.parametrize("isolation", [None, "READ COMMITTED"])
def test_concurrent_first_inserts_of_same_key(migrated, conn, isolation, expect_absent):
    """Many writers insert the same new key at the same instant: no errors, max version wins
    (also when each expects the key absent and tries the one-round-trip insert first)."""
    for round_ in range(5):
        key = f"new:{round_}"
        n = 8
        barrier = threading.Barrier(n)
        versions = random.Random(round_).sample(range(1, 100), n)

        def write(v, key=key, barrier=barrier):
            c = db.connect(migrated.mysql)
            if isolation:
                c.cursor().execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {isolation}")
            try:
                barrier.wait()
                return guarded_write(
                    c, version_doc(key, v, n_items=v % 5), expect_absent=expect_absent
                )
            finally:
                c.close()

        with ThreadPoolExecutor(n) as pool:
            applied = list(pool.map(write, versions))
        assert any(applied)
        assert stored(conn, key) == version_doc(key, max(versions), n_items=max(versions) % 5)
        assert child_counts(conn, key)[1] == max(versions) % 5
        assert bookkeeping(conn, key)[1] == sum(applied)


# -- (source_rev, version): the stores' version counters drift apart (issue 9, hole 1) --------


def rev_doc(key: str, rev: int, version: int, tag: str) -> dict:
    doc = version_doc(key, version)
    return doc | {"source_rev": rev, "tracking_number": tag}


def test_a_newer_revision_wins_over_a_higher_version(conn):
    """After dual -> mongo -> dual -> mysql-primary, MySQL's counter and MongoDB's disagree:
    a live MySQL write (rev 10, version 6) must survive MongoDB's copy (rev 8, version 8)."""
    assert guarded_write(conn, rev_doc("k:d", 5, 5, "stale")) is True
    assert guarded_write(conn, rev_doc("k:d", 10, 6, "live"), written_epoch=9) is True
    # the backfill (or a lazy read, a repair, a reconcile) brings MongoDB's older content
    assert guarded_write(conn, rev_doc("k:d", 8, 8, "mongo")) is False
    result = apply_batch(conn.cursor(), [rev_doc("k:d", 8, 8, "mongo")])
    conn.commit()
    assert result.skipped_keys == ["k:d"]
    assert stored(conn, "k:d") == rev_doc("k:d", 10, 6, "live")
    # the same revision copied with a higher version (write-back's re-numbering) applies
    assert guarded_write(conn, rev_doc("k:d", 10, 9, "live")) is True
    assert stored(conn, "k:d")["version"] == 9
    # a newer revision applies whatever its version
    assert guarded_write(conn, rev_doc("k:d", 11, 2, "newest")) is True
    assert stored(conn, "k:d") == rev_doc("k:d", 11, 2, "newest")


def test_batch_keeps_the_newest_revision_per_key(conn):
    cur = conn.cursor()
    result = apply_batch(cur, [rev_doc("k:e", 9, 3, "new"), rev_doc("k:e", 4, 8, "old")])
    conn.commit()
    assert result.applied_keys == ["k:e"]
    assert stored(conn, "k:e") == rev_doc("k:e", 9, 3, "new")


def test_repair_replaces_equal_pair_but_never_older(conn):
    guarded_write(conn, rev_doc("k:r", 4, 4, "right"))
    cur = conn.cursor()
    cur.execute("UPDATE shipment SET tracking_number = 'corrupt' WHERE shipment_key = 'k:r'")
    conn.commit()
    assert apply_batch(cur, [rev_doc("k:r", 4, 4, "right")]).applied_keys == []
    assert apply_batch(cur, [rev_doc("k:r", 4, 4, "right")], repair=True).applied_keys == ["k:r"]
    assert apply_batch(cur, [rev_doc("k:r", 3, 9, "older")], repair=True).applied_keys == []
    conn.commit()
    assert stored(conn, "k:r") == rev_doc("k:r", 4, 4, "right")


def test_only_live_writes_are_stamped_for_rollback(conn):
    """Copies of MongoDB (epoch-fenced or not) leave written_epoch NULL; a live write stamps
    it; a newer copy over a stamped row clears it again (MongoDB has that content)."""
    set_control(conn, epoch=3)
    assert guarded_write(conn, rev_doc("k:s", 1, 1, "copy"), epoch=3) is True
    assert bookkeeping(conn, "k:s")[2] is None
    assert guarded_write(conn, rev_doc("k:s", 2, 2, "live"), written_epoch=3) is True
    assert bookkeeping(conn, "k:s")[2] == 3
    assert guarded_write(conn, rev_doc("k:s", 3, 3, "copy")) is True
    assert bookkeeping(conn, "k:s")[2] is None


@DB_EXAMPLES
@given(
    pairs=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 6)), min_size=1, max_size=10),
    batch_size=st.integers(1, 3),
)
def test_any_interleaving_ends_at_the_newest_revision_pair(conn, pairs, batch_size):
    """Whatever the order and batching of copies whose revisions and versions disagree (the
    stores' counters drift), the stored copy is the one with the highest (rev, version)."""
    cur = conn.cursor()
    cur.execute("DELETE FROM shipment")
    conn.commit()
    for i in range(0, len(pairs), batch_size):
        apply_batch(cur, [rev_doc("k:h", r, v, f"{r}.{v}") for r, v in pairs[i : i + batch_size]])
        conn.commit()
    r, v = max(pairs)
    assert stored(conn, "k:h") == rev_doc("k:h", r, v, f"{r}.{v}")
    cur.close()


class _PlainCursor:
    """A cursor without the connector's value conversion: the write falls back to
    parameters (`execute` with placeholders)."""

    def __init__(self, cursor) -> None:
        self._cursor = cursor

    def __getattr__(self, name: str):
        if name == "_connection":
            raise AttributeError(name)
        return getattr(self._cursor, name)


@pytest.mark.parametrize("plain", [False, True], ids=["literals", "parameters"])
def test_both_statement_builders_store_the_same_document(conn, plain):
    """Quotes, backslashes, NUL-free control text, astral characters, NULLs, floats and
    times reach MySQL exactly, whichever way the multi-row statement is built."""
    key = f"legacy:esc-{int(plain)}"
    doc = sample_doc(_id=key, key=key, tracking_number='it\'s \\ "q" %s %(x)s ;--')
    doc["items"] = [
        dict(doc["items"][0], sku=f"s{i}'\\", description="😀\t\n", weight_kg=0.1 * i)
        for i in range(700)  # more rows than one statement takes
    ]
    cur = conn.cursor()
    apply_batch(_PlainCursor(cur) if plain else cur, [doc])
    conn.commit()
    back = stored(conn, key)
    assert back is not None
    assert back["tracking_number"] == doc["tracking_number"]
    assert [i["sku"] for i in back["items"]] == [i["sku"] for i in doc["items"]]
    assert back["items"][5]["description"] == "😀\t\n"
    assert back["items"][3]["weight_kg"] == doc["items"][3]["weight_kg"]


# -- keys absent when locked: a plain INSERT, and its fallback under READ COMMITTED ------------


def counts_of(doc: dict) -> tuple[int, int, int]:
    parties = sum(doc[role] is not None for role in ("sender", "recipient"))
    return parties, len(doc["items"]), len(doc["events"])


def session_counts(cur) -> dict[str, int]:
    cur.execute("SHOW SESSION STATUS WHERE Variable_name IN ('Com_delete', 'Com_select')")
    return {name: int(value) for name, value in cur.fetchall()}


def test_absent_keys_take_no_child_delete_and_no_reread(conn):
    """A batch of new keys: one locking read, then inserts only; a key already stored (and
    older) in the same batch gets its children deleted and replaced as before."""
    guarded_write(conn, version_doc("k:m1", 1, n_items=4))
    cur = conn.cursor()
    before = session_counts(cur)
    result = apply_batch(cur, [version_doc(f"k:n{i}", 1, n_items=i % 3) for i in range(5)])
    conn.commit()
    after = session_counts(cur)
    assert result.applied_keys == [f"k:n{i}" for i in range(5)]
    assert after["Com_select"] - before["Com_select"] == 1  # the locking read only
    assert after["Com_delete"] == before["Com_delete"]
    mixed = [version_doc("k:m1", 2, n_items=1), version_doc("k:n9", 3, n_items=2)]
    mixed.append(version_doc("k:n0", 1, n_items=2))  # stored and equal: skipped
    before = session_counts(cur)
    result = apply_batch(cur, mixed)
    conn.commit()
    after = session_counts(cur)
    assert result == BatchResult(applied_keys=["k:m1", "k:n9"], skipped_keys=["k:n0"])
    assert after["Com_delete"] - before["Com_delete"] == 3  # the stored key's children
    assert stored(conn, "k:m1") == version_doc("k:m1", 2, n_items=1)
    assert child_counts(conn, "k:m1") == counts_of(version_doc("k:m1", 2, n_items=1))
    assert stored(conn, "k:n9") == version_doc("k:n9", 3, n_items=2)
    assert stored(conn, "k:n0") == version_doc("k:n0", 1, n_items=0)
    assert [bookkeeping(conn, k)[1] for k in ("k:m1", "k:n9", "k:n0")] == [2, 1, 1]


@pytest.mark.parametrize("rival", [2, 9], ids=["rival-older", "rival-newer"])
def test_concurrent_first_insert_under_read_committed_falls_back(conn, connect, monkeypatch, rival):
    """READ COMMITTED takes no gap locks: another writer inserts and commits a key of ours
    after our locking read found it absent. Our plain INSERT meets its duplicate key; the
    batch still commits without error, the newer copy of that key wins with its own
    children, and the batch's other keys (new and stored) are written as usual."""
    guarded_write(conn, version_doc("k:r0", 1, n_items=3))
    cur = conn.cursor()
    cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    other = connect()
    real = gw._stored_versions
    raced: list[bool] = []

    def read_then_rival_inserts(cursor, keys):
        found = real(cursor, keys)
        if not raced:  # once, right after our locking read
            raced.append(guarded_write(other, version_doc("k:r5", rival, n_items=rival % 4)))
        return found

    monkeypatch.setattr(gw, "_stored_versions", read_then_rival_inserts)
    batch = [version_doc(k, 5, n_items=1) for k in ("k:r0", "k:r3", "k:r5", "k:r7")]
    result = apply_batch(cur, batch)
    conn.commit()
    assert raced == [True]  # the rival's insert went through, uncontested
    won = rival > 5
    assert result == BatchResult(
        applied_keys=["k:r0", "k:r3"] + ([] if won else ["k:r5"]) + ["k:r7"],
        skipped_keys=["k:r5"] if won else [],
    )
    best = rival if won else 5
    expected = version_doc("k:r5", best, n_items=rival % 4 if won else 1)
    assert stored(conn, "k:r5") == expected
    assert child_counts(conn, "k:r5") == counts_of(expected)
    assert bookkeeping(conn, "k:r5")[1] == (1 if won else 2)
    for key in ("k:r0", "k:r3", "k:r7"):
        assert stored(conn, key) == version_doc(key, 5, n_items=1)
        assert child_counts(conn, key) == counts_of(version_doc(key, 5, n_items=1))


def _batch_writer(
    mysql_settings: dict, seed: int, keys: list[str], batches: int, isolation: str | None
) -> None:
    """Batches of random keys (new and stored ones mixed) at random versions."""
    rng = random.Random(seed)
    conn = db.connect(MySQLSettings(**mysql_settings))
    if isolation:
        conn.cursor().execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {isolation}")
    try:
        for _ in range(batches):
            docs = []
            for key in rng.sample(keys, rng.randint(1, len(keys))):
                v = rng.randint(1, 40)
                docs.append(version_doc(key, v, n_items=v % 5))
            db.run_in_transaction(conn, lambda cur, docs=docs: apply_batch(cur, docs))
    finally:
        conn.close()


@pytest.mark.parametrize("isolation", [None, "READ COMMITTED"])
def test_concurrent_mixed_batches_end_at_max_version(migrated, conn, isolation):
    """Concurrent batches, each mixing keys absent and stored: every key ends at the highest
    version written, with that version's children, whatever the isolation level."""
    for round_ in range(3):
        keys = [f"b{round_}:{i}" for i in range(6)]
        jobs = [(1000 * round_ + seed, 6) for seed in range(6)]
        with ThreadPoolExecutor(len(jobs)) as pool:
            futures = [
                pool.submit(_batch_writer, migrated.mysql.model_dump(), s, keys, n, isolation)
                for s, n in jobs
            ]
            for f in futures:
                f.result()  # no errors surfaced
        expected: dict[str, int] = {}
        for seed, batches in jobs:
            rng = random.Random(seed)
            for _ in range(batches):
                for key in rng.sample(keys, rng.randint(1, len(keys))):
                    expected[key] = max(expected.get(key, 0), rng.randint(1, 40))
        for key, v in expected.items():
            assert stored(conn, key) == version_doc(key, v, n_items=v % 5)
            assert child_counts(conn, key)[1] == v % 5
