"""A reader cut off from MySQL for longer than its lease (issue 9, hole 8): in mongo and dual
it still answers from MongoDB, by the control plane's mode mirror there; once a transition
that takes the truth away from MongoDB has started (its intent is in the mirror) it refuses
(StoreUnavailable, a 503) rather than risk a stale read. And a reader whose MySQL connection
dies mid-read (the C extension's MySQLInterfaceError) is handled like any MySQL failure.

The cut-off reader points at a port where no MySQL listens: it never had a lease (its
follower never read the control row), which is where a long outage leaves it. The control
plane runs in-process on the real MySQL, with a registered client that acknowledges only
when the test says so, to hold a flip in its drain.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from dataset import load_mongo
from helpers import free_port, poll
from lazyshift.client.follower import Follower
from lazyshift.config import Settings
from lazyshift.control import plane
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.mongo_store import MongoStore
from lazyshift.router import Router, StoreUnavailable

HOLDER = "flip-holder"
HB_TIMEOUT_S = 600.0  # the holder's one heartbeat stays live for the whole test


def _router(settings: Settings, **client: object) -> tuple[Router, MongoStore]:
    mongo = MongoStore.open(settings)
    s = settings.model_copy(update={"client": settings.client.model_copy(update=client)})
    follower = Follower(s, "cut-off-reader", "0/1", threading.Event())  # never started
    return Router(s, mongo, follower=follower), mongo


@pytest.fixture
def cut_off(migrated: Settings) -> Iterator[Router]:
    """A reader whose MySQL is a port nobody listens on."""
    dead = migrated.model_copy(
        update={"mysql": migrated.mysql.model_copy(update={"port": free_port()})}
    )
    router, mongo = _router(dead)
    yield router
    mongo.close()


@pytest.fixture
def loaded(migrated: Settings, collection) -> str:
    load_mongo(collection, 20)
    return sorted(d["_id"] for d in collection.find({}, {"_id": 1}))[0]


def _beat(settings: Settings, acked: int) -> None:
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        hb = store.Heartbeat(
            HOLDER, socket.gethostname(), os.getpid(), "0/1", None, acked, None, {}
        )
        store.beat(conn.cursor(), hb)
    finally:
        conn.close()


@contextlib.contextmanager
def _releasing(settings: Settings) -> Iterator[ThreadPoolExecutor]:
    """A thread for a transition the holder holds; released (acknowledged) whatever happens,
    so a failing test does not wait for the transition's timeout."""
    with ThreadPoolExecutor(1) as pool:
        try:
            yield pool
        finally:
            _beat(settings, 10**9)


def _set(settings: Settings, target: str) -> plane.TransitionResult:
    return plane.set_mode(settings, target, timeout_s=120, heartbeat_timeout_s=HB_TIMEOUT_S)


def test_a_cut_off_reader_answers_in_dual_and_mongo(migrated, loaded, cut_off, collection) -> None:
    _set(migrated, "dual")
    got = cut_off.read(loaded)
    assert (
        got.doc is not None
        and got.doc["version"] == collection.find_one({"_id": loaded})["version"]
    )
    assert (got.mode, got.store) == ("dual", "mongo")
    assert cut_off.read("no-such-key").doc is None  # a miss is a 404, not a 503
    _set(migrated, "mongo")
    assert cut_off.read(loaded).mode == "mongo"


def test_a_started_flip_makes_a_cut_off_reader_refuse(migrated, loaded, cut_off) -> None:
    epoch = _set(migrated, "dual").epoch
    _beat(migrated, epoch)  # a live client on the current epoch: the flip will wait for it
    with _releasing(migrated) as pool:
        flip = pool.submit(_set, migrated, "mysql-primary")
        poll(lambda: not plane.get_state(migrated).stable, "the flip draining")
        # Writes are paused, MongoDB still holds every latest version; but the flip may
        # commit at any moment and the cut-off reader would not know: it refuses.
        with pytest.raises(StoreUnavailable, match="mode mirror"):
            cut_off.read(loaded)
        _beat(migrated, epoch + 1)  # acknowledge: the flip commits
        assert flip.result(timeout=120).to_mode == "mysql-primary"
    with pytest.raises(StoreUnavailable):
        cut_off.read(loaded)  # MySQL is the truth now
    _beat(migrated, epoch + 1)
    with _releasing(migrated) as pool:  # rollback: MongoDB is the truth again once committed
        back = pool.submit(_set, migrated, "dual")
        poll(lambda: not plane.get_state(migrated).stable, "the rollback draining")
        with pytest.raises(StoreUnavailable):
            cut_off.read(loaded)
        _beat(migrated, epoch + 2)
        assert back.result(timeout=120).to_mode == "dual"
    assert cut_off.read(loaded).store == "mongo"


def test_an_aborted_flip_lets_a_cut_off_reader_answer_again(migrated, loaded, cut_off) -> None:
    epoch = _set(migrated, "dual").epoch
    _beat(migrated, epoch)  # never acknowledges: the flip times out and is rolled back
    with pytest.raises(plane.TransitionError):
        plane.set_mode(migrated, "mysql-primary", timeout_s=1, heartbeat_timeout_s=HB_TIMEOUT_S)
    assert plane.get_state(migrated).mode == "dual"
    assert cut_off.read(loaded).store == "mongo"


def test_a_mirror_left_by_a_killed_flip_is_cleared_by_mode_abort(migrated, loaded, cut_off) -> None:
    st = _set(migrated, "dual")
    mongo = MongoStore.open(migrated)
    try:  # what a `mode set mysql-primary` killed right after writing its intent leaves
        assert mongo.write_mode_mirror("dual", st.epoch, intent="mysql-primary")
    finally:
        mongo.close()
    with pytest.raises(StoreUnavailable):
        cut_off.read(loaded)
    plane.abort(migrated)
    assert cut_off.read(loaded).store == "mongo"


def test_the_mirror_never_goes_back(migrated) -> None:
    mongo = MongoStore.open(migrated)
    try:
        assert mongo.read_mode_mirror() is None
        assert mongo.write_mode_mirror("dual", 4)
        assert mongo.write_mode_mirror("dual", 4, intent="mysql-primary")
        # A late writer that read epoch 4 before the intent cannot erase it ...
        assert not mongo.write_mode_mirror("dual", 4)
        assert not mongo.write_mode_mirror("mongo", 3)
        assert mongo.read_mode_mirror().intent == "mysql-primary"
        # ... only the epoch the transition moves to (commit or abort) replaces it.
        assert mongo.write_mode_mirror("mysql-primary", 5)
        mirror = mongo.read_mode_mirror()
        assert (mirror.mode, mirror.epoch, mirror.intent) == ("mysql-primary", 5, None)
    finally:
        mongo.close()


def test_a_connection_dying_mid_read_is_a_mysql_failure(
    migrated, loaded, mysql_root, connect
) -> None:
    """The C extension raises its own MySQLInterfaceError (outside mysql.connector.Error)
    when the connection dies inside a transaction: here the shadow read's snapshot, killed
    while it waits for a table lock. The read falls back to MongoDB (dual) and the next
    read reconnects."""
    _set(migrated, "dual")
    router, mongo = _router(migrated, shadow_read_fraction=1.0)
    root = mysql_root.cursor()
    try:
        assert router.read(loaded).store == "mongo"  # the reader's connection exists
        root.execute("LOCK TABLES shipment WRITE")
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(router.read, loaded)
            watch = connect(autocommit=True).cursor()
            victim = poll(lambda: _waiting_reader(watch), "the shadow read waiting")
            store.kill_connection(watch, victim)
            got = pending.result(timeout=60)
        root.execute("UNLOCK TABLES")
        assert got.doc is not None and (got.mode, got.store) == ("dual", "mongo")
        assert router.read(loaded).store == "mongo"
    finally:
        root.execute("UNLOCK TABLES")
        mongo.close()


def _waiting_reader(cur) -> int | None:
    cur.execute(
        "SELECT id FROM information_schema.processlist WHERE state LIKE 'Waiting for table%'"
        " AND info LIKE '%shipment%'"
    )
    row = cur.fetchone()
    return int(row[0]) if row else None


def test_before_any_transition_a_reader_seeds_the_mirror(migrated, loaded, cut_off) -> None:
    """Between `schema migrate` and the first `mode set`, clients follow the control row in
    mongo and no transition has written the mirror yet: a reader that read the mode in MySQL
    leaves it there (safe: a mirror write never outranks an intent), so a reader cut off
    later still answers."""
    router, mongo = _router(migrated)
    try:
        assert router.read(loaded).mode == "mongo"
    finally:
        mongo.close()
    assert cut_off.read(loaded).mode == "mongo"
