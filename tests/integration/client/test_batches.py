"""Micro-batched writes under the control plane (issue 10, goal 5): one gate per batch.

A batch is written entirely in the mode and epoch its gate returned, or (fenced) entirely
again in the new one; a transition's drain waits for the batch in flight. A document the
store cannot hold is dead-lettered and the rest of its batch commits; one the version guard
refuses is never acknowledged; a client killed between the MongoDB half and the MySQL half
of a dual batch loses nothing (replay + backlog).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dataset import key_for, make_doc
from helpers import (
    MockSource,
    expected_state,
    free_port,
    http_get,
    kill,
    poll,
    running_statements,
    start_cli,
    start_in_thread,
)
from lazyshift.client.consumer import (
    BATCH_TARGET_DEEP_S,
    BATCH_TARGET_S,
    Consumer,
    ConsumerOptions,
    _Letter,
)
from lazyshift.client.follower import Follower
from lazyshift.client.source import Partition
from lazyshift.config import Settings
from lazyshift.control import plane
from lazyshift.core import guarded_write as gw
from lazyshift.core import mysql as my
from lazyshift.core.mapping import stored_form
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.mysql_store import load_documents
from lazyshift.router import GuardSkipped, Router, Unstorable

# A price MySQL's DECIMAL(20,6) cannot hold: MongoDB takes it, the mapping refuses it.
UNMAPPABLE_PRICE = {"amount": "1234567890123456", "currency": "EUR"}


def message(i: int, rev: int, **fields: Any) -> dict[str, Any]:
    """Shipment `i` at revision `rev`, as the consumer hands it to the sink (no version)."""
    doc = make_doc(i, rev) | fields
    del doc["version"]
    return doc


@pytest.fixture
def router(migrated: Settings) -> Iterator[Router]:
    """A router under a real control-plane follower (heartbeats, acks), in this process."""
    stop = threading.Event()
    mongo = MongoStore.open(migrated)
    routers: list[Router] = []
    follower = Follower(
        migrated,
        "batch-test",
        "0/1",
        stop,
        write_connection_id=lambda: routers[0].writer_connection_id() if routers else None,
    )
    routers.append(Router(migrated, mongo, follower=follower))
    follower.start()
    try:
        yield routers[0]
    finally:
        stop.set()
        follower.join()
        follower.deregister()
        routers[0].reset()
        mongo.close()


def _walk(settings: Settings, *modes: str) -> None:
    for m in modes:
        plane.set_mode(settings, m)


def _mysql(settings: Settings, keys: list[str]) -> dict[str, dict]:
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        return load_documents(conn.cursor(), keys)
    finally:
        conn.close()


def _written_epochs(settings: Settings, keys: list[str]) -> dict[str, int | None]:
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT shipment_key, written_epoch FROM shipment WHERE shipment_key IN ("
            + my.placeholders(len(keys))
            + ")",
            tuple(keys),
        )
        return dict(cur.fetchall())
    finally:
        conn.close()


def test_a_flip_waits_for_the_batch_in_flight(migrated, router, connect, mysql_root) -> None:
    """A batch gated in dual is written entirely in dual (MongoDB, then MySQL as a copy),
    though `mode set mysql-primary` begins while it is in flight: the drain waits for it."""
    _walk(migrated, "dual")
    first = [message(i, 1) for i in range(20)]
    assert router.write_many(first) == [True] * 20
    batch = [message(i, 2) for i in range(20)] + [message(i, 1) for i in range(20, 40)]
    keys = [d["key"] for d in batch]
    # Hold one shipment row the batch's MySQL half must lock: the batch stops in flight,
    # after its MongoDB half, holding the gate and the control row's share lock (long
    # enough for a `mode set` to get going on a loaded machine).
    wcur = router.writer_connection().cursor()
    wcur.execute("SET SESSION innodb_lock_wait_timeout = 300")
    wcur.close()
    blocker = connect()
    blocker.start_transaction()
    bcur = blocker.cursor()
    bcur.execute("SELECT 1 FROM shipment WHERE shipment_key = %s FOR UPDATE", (key_for(5),))
    bcur.fetchall()
    results: dict[str, Any] = {}

    try:
        writer = start_in_thread(results, "batch", lambda: router.write_many(batch))
        poll(
            lambda: any(
                "FROM shipment" in q and "FOR UPDATE" in q for q in running_statements(mysql_root)
            ),
            "the batch to wait",
        )
        flip = start_in_thread(
            results, "flip", lambda: plane.set_mode(migrated, "mysql-primary", timeout_s=60)
        )
        poll(
            lambda: not flip.is_alive()
            or any("lazyshift_control" in q for q in running_statements(mysql_root)),
            "the flip to wait for the batch",
            timeout=120,
        )
        assert flip.is_alive(), f"the flip did not wait for the batch: {results.get('flip')}"
        assert writer.is_alive(), results.get("batch")
        assert plane.get_state(migrated).mode == "dual"
    finally:
        blocker.rollback()
    writer.join(timeout=60)
    flip.join(timeout=120)
    assert results["batch"] == [True] * 40, results["batch"]
    moved = results["flip"]
    assert not isinstance(moved, BaseException), moved
    assert moved.to_mode == "mysql-primary" and "batch-test" in moved.acknowledged
    # Every document of the batch is in MongoDB and, as a dual-write copy (no written
    # epoch), in MySQL at MongoDB's version: nothing of it was written in mysql-primary.
    stored = _mysql(migrated, keys)
    for doc in batch:
        truth = router.mongo.get(doc["key"])
        assert truth is not None and truth["source_rev"] == doc["source_rev"]
        assert stored[doc["key"]] == stored_form(truth), doc["key"]
    assert set(_written_epochs(migrated, keys).values()) == {None}
    # The next batch is gated in mysql-primary: MySQL only, stamped with the new epoch.
    after = [message(i, 3) for i in range(10)]
    assert router.write_many(after) == [True] * 10
    assert all(router.mongo.get(d["key"])["source_rev"] == 2 for d in after)
    epochs = _written_epochs(migrated, [d["key"] for d in after])
    assert set(epochs.values()) == {moved.epoch}


def test_mysql_primary_batch_migrates_what_mysql_has_not_seen(migrated, router) -> None:
    """Shipments only MongoDB holds (written in stage 1) are migrated on write, in the
    batch's transaction: an update lands on top of MongoDB's version, a repeat changes
    nothing but still brings the shipment over."""
    assert router.write_many([message(i, 1) for i in range(10)]) == [True] * 10  # mongo
    _walk(migrated, "dual", "mysql-primary")
    epoch = plane.get_state(migrated).epoch
    batch = [message(i, 2) for i in range(5)] + [message(i, 1) for i in range(5, 10)]
    assert router.write_many(batch) == [True] * 5 + [False] * 5
    keys = [d["key"] for d in batch]
    stored = _mysql(migrated, keys)
    assert [stored[k]["source_rev"] for k in keys] == [2] * 5 + [1] * 5
    assert [stored[k]["version"] for k in keys] == [2] * 5 + [1] * 5
    assert _written_epochs(migrated, keys) == {
        k: epoch if i < 5 else None for i, k in enumerate(keys)
    }
    assert all(router.mongo.get(k)["source_rev"] == 1 for k in keys)  # MongoDB untouched


def _consumer(router: Router) -> Consumer:
    return Consumer(router, ConsumerOptions("127.0.0.1", 1, Partition(0, 1)))


def _flush(consumer: Consumer, docs: list[dict[str, Any]]) -> None:
    """Hand `docs` to the consumer as one micro-batch in hand and flush it."""
    consumer._batch = [(json.dumps({"seq": d["source_seq"]}).encode(), d) for d in docs]
    consumer.counters.received += len(docs)
    consumer._flush_batch()


def _dead_letters(settings: Settings) -> list[tuple[str, str, str]]:
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute("SELECT origin, shipment_key, reason FROM dead_letter ORDER BY id")
        return [tuple(r) for r in cur.fetchall()]
    finally:
        conn.close()


def test_an_unstorable_document_is_dead_lettered_and_its_batch_commits(migrated, router) -> None:
    _walk(migrated, "dual", "mysql-primary")
    batch = [message(i, 1) for i in range(10)]
    batch[4] = message(4, 1, price=UNMAPPABLE_PRICE)
    outcomes = router.write_many(batch)
    assert isinstance(outcomes[4], Unstorable)
    assert "DECIMAL(20,6)" in outcomes[4].reason
    assert outcomes[:4] + outcomes[5:] == [True] * 9
    # Through the consumer: the refused one is dead-lettered, the others are stored.
    consumer = _consumer(router)
    again = [message(i, 2) for i in range(10, 20)]
    again[7] = message(17, 2, price=UNMAPPABLE_PRICE)
    _flush(consumer, again)
    assert (consumer.counters.stored, consumer.counters.dead_lettered) == (9, 1)
    assert consumer.counters.dead_letter_categories == {"unmappable": 1}
    assert consumer._pending_offset == max(d["source_seq"] for d in again)
    keys = [d["key"] for d in batch + again]
    stored = _mysql(migrated, keys)
    assert set(stored) == set(keys) - {key_for(4), key_for(17)}
    letters = _dead_letters(migrated)
    assert [(o, k) for o, k, _ in letters] == [("stream", key_for(17))]
    assert "DECIMAL(20,6)" in letters[0][2]


def test_dual_batch_dead_letters_what_mysql_cannot_hold(migrated, router) -> None:
    """dual: MongoDB (the truth) takes the whole batch; MySQL takes all but the unmappable
    one, which is recorded as a dual dead letter in the same transaction."""
    _walk(migrated, "dual")
    batch = [message(i, 1) for i in range(8)]
    batch[2] = message(2, 1, price=UNMAPPABLE_PRICE)
    assert router.write_many(batch) == [True] * 8
    keys = [d["key"] for d in batch]
    assert all(router.mongo.get(k) is not None for k in keys)
    assert set(_mysql(migrated, keys)) == set(keys) - {key_for(2)}
    assert [(o, k) for o, k, _ in _dead_letters(migrated)] == [("dual", key_for(2))]
    assert router.mongo.backlog_size() == 0


def test_a_document_the_guard_refuses_is_never_acknowledged(
    migrated, router, mysql_root, monkeypatch
) -> None:
    """The guard refusing a write it should have applied must not be acked as stored or
    stale: the batch rolls back, is written again one by one, and the refused document is
    dead-lettered with the guard's reason; the others are stored.

    The refusal is staged as a concurrent first insert that left another (source_rev,
    version) would: the plain INSERT of the batch's new keys reports the race (a duplicate
    key, which rolls back that whole statement), and a trigger rewrites the version of one
    key's insert, so the guarded upsert + re-read of the fallback finds a pair not ours."""
    _walk(migrated, "dual", "mysql-primary")
    refused = key_for(3)
    real_insert_roots = gw._insert_roots

    def raced(cursor: Any, batch: list[Any], written_epoch: int | None) -> bool:
        if any(rows.key == refused for rows in batch):
            return False
        return real_insert_roots(cursor, batch, written_epoch)

    monkeypatch.setattr(gw, "_insert_roots", raced)
    cur = mysql_root.cursor()
    cur.execute(
        "CREATE TRIGGER lz_test_guard BEFORE INSERT ON shipment FOR EACH ROW "
        f"IF NEW.shipment_key = '{refused}' THEN SET NEW.version = NEW.version + 100; END IF"
    )
    try:
        batch = [message(i, 1) for i in range(6)]
        with pytest.raises(GuardSkipped):
            router.write_many(batch)
        assert _mysql(migrated, [d["key"] for d in batch]) == {}  # nothing of it committed
        consumer = _consumer(router)
        _flush(consumer, batch)
    finally:
        cur.execute("DROP TRIGGER lz_test_guard")
    assert consumer.counters.stored == 5 and consumer.counters.stale == 0
    assert consumer.counters.dead_letter_categories == {"unstorable": 1}
    assert set(_mysql(migrated, [d["key"] for d in batch])) == {
        d["key"] for d in batch if d["key"] != refused
    }
    ((origin, key, reason),) = _dead_letters(migrated)
    assert (origin, key) == ("stream", refused) and "version guard skipped" in reason


def _client(settings: Settings, port: int) -> Any:
    http = free_port()
    proc = start_cli(
        "client", "run", "--mode", "control", "--source-port", str(port),
        "--http-port", str(http), "--client-id", "batch-kill",
        settings=settings,
    )  # fmt: skip

    def healthy() -> bool:
        try:
            return http_get(http, "/healthz")[0] == 200
        except OSError:
            return False

    poll(healthy, "client read API to answer", timeout=30)
    return proc


def test_kill_9_between_the_halves_of_a_dual_batch_loses_nothing(
    migrated, mongo_db, connect, mysql_root
) -> None:
    _walk(migrated, "dual")
    # 10 s of stream from the client's subscription: still flowing when the control row is
    # locked below, however slowly the client started on a loaded machine.
    gen = ["--seed", "31", "--count", "3000", "--malformed-fraction", "0.02", "--rate", "300"]
    source = MockSource(*gen, "--clock-from-subscribe").start()
    exp = expected_state(source.dump())
    last_seq = max(m["seq"] for m in source.dump())

    def behind_in_mysql() -> list[str]:
        in_mongo = {d["_id"]: d["version"] for d in mongo_db.shipments.find({}, {"version": 1})}
        in_mysql = _mysql(migrated, list(in_mongo))
        return [k for k, v in in_mongo.items() if k not in in_mysql or in_mysql[k]["version"] < v]

    try:
        proc = _client(migrated, source.port)
        poll(lambda: mongo_db.shipments.count_documents({}) > 100, "ingest in dual")
        # The control row locked: every MySQL half waits for it (the fence), so the next
        # batch's MongoDB half is done without its MySQL half. Kill -9 the client right there.
        blocker = connect()
        blocker.start_transaction()
        bcur = blocker.cursor()
        try:
            bcur.execute("SELECT epoch FROM lazyshift_control WHERE id = 1 FOR UPDATE")
            bcur.fetchall()
            poll(
                lambda: any(
                    "lazyshift_control" in q and "LOCK IN SHARE MODE" in q
                    for q in running_statements(mysql_root)
                ),
                "a MySQL half to wait on the fence",
            )
            # Not only any statement waiting there (an idle backlog retry fences too): a
            # MongoDB half written that MySQL does not have.
            behind = poll(behind_in_mysql, "a MongoDB half without its MySQL half")
            kill(proc, signal.SIGKILL)
        finally:
            blocker.rollback()
        proc = _client(migrated, source.port)
        poll(
            lambda: (mongo_db.client_offsets.find_one({"_id": "0/1"}) or {}).get("seq", 0)
            >= last_seq,
            "the stream to be consumed",
            timeout=240,
        )
        poll(lambda: mongo_db.mysql_backlog.count_documents({}) == 0, "the backlog to drain")
        kill(proc, signal.SIGTERM)
    finally:
        source.stop()
    stored = {d["_id"]: d for d in mongo_db.shipments.find({})}
    assert set(stored) == set(exp.docs)
    wrong = [k for k, d in exp.docs.items() if stored_form(stored[k]) != stored_form(d)]
    assert not wrong, f"{len(wrong)} differ in MongoDB, e.g. {wrong[:3]}"
    mysql_docs = _mysql(migrated, list(exp.docs))
    lost = [k for k in exp.docs if mysql_docs.get(k) != stored_form(stored[k])]
    assert not lost, f"{len(lost)} behind in MySQL, e.g. {lost[:3]} (behind at kill: {behind[:3]})"


def test_a_key_repeated_in_a_batch_is_written_once_at_the_version_of_one_by_one(
    migrated, router
) -> None:
    """A batch keeps a live stream's repeated keys (older, newer, repeated revisions of one
    shipment): in every mode each outcome, and the version and content stored in MongoDB
    and MySQL, are those of writing the documents one after the other."""
    revs = [(0, 1), (1, 1), (0, 3), (0, 2), (1, 1), (0, 4), (2, 1)]
    want = [True, True, True, False, False, True, True]
    # mongo (stage 1): versions 3, 1, 1 for shipments 0, 1, 2.
    assert router.write_many([message(i, r) for i, r in revs]) == want
    assert [router.mongo.get(key_for(i))["version"] for i in range(3)] == [3, 1, 1]
    # dual: MongoDB and MySQL end at the same version, the newest revision.
    _walk(migrated, "dual")
    again = [(0, 6), (0, 5), (3, 1), (0, 7), (3, 1)]
    assert router.write_many([message(i, r) for i, r in again]) == [True, False, True, True, False]
    keys = [key_for(i) for i in (0, 3)]
    stored = _mysql(migrated, keys)
    for k, version, rev in ((keys[0], 5, 7), (keys[1], 1, 1)):
        truth = router.mongo.get(k)
        assert (truth["version"], truth["source_rev"]) == (version, rev)
        assert stored[k] == stored_form(truth), k
    # mysql-primary: shipment 1 is migrated from MongoDB (v1 rev 1), then moved on twice.
    _walk(migrated, "mysql-primary")
    last = [(1, 2), (1, 1), (1, 4), (0, 7), (1, 3), (0, 8)]
    assert router.write_many([message(i, r) for i, r in last]) == [
        True,
        False,
        True,
        False,
        False,
        True,
    ]
    stored = _mysql(migrated, [key_for(0), key_for(1)])
    assert (stored[key_for(1)]["version"], stored[key_for(1)]["source_rev"]) == (3, 4)
    assert (stored[key_for(0)]["version"], stored[key_for(0)]["source_rev"]) == (6, 8)


def test_dual_mysql_half_overlaps_and_never_differs_from_mongodb(migrated, router) -> None:
    """dual writes MySQL while MongoDB writes, with the copies MongoDB is expected to end
    with; when another writer moved a key on behind the client's back the guess is wrong,
    and MySQL still ends with exactly MongoDB's copy (version and content)."""
    _walk(migrated, "dual")
    assert router.write_many([message(i, 1) for i in range(4)]) == [True] * 4
    other = MongoStore.open(migrated)
    try:
        assert other.apply_snapshot(message(0, 5)).version == 2  # unseen by the client
        assert other.apply_snapshot(message(1, 2)).version == 2
    finally:
        other.close()
    batch = [message(0, 3), message(1, 3), message(2, 2), message(3, 1), message(4, 1)]
    assert router.write_many(batch) == [False, True, True, False, True]
    keys = [key_for(i) for i in range(5)]
    stored = _mysql(migrated, keys)
    want = {0: (2, 5), 1: (3, 3), 2: (2, 2), 3: (1, 1), 4: (1, 1)}
    for i, k in enumerate(keys):
        truth = router.mongo.get(k)
        assert (truth["version"], truth["source_rev"]) == want[i], k
        assert stored[k] == stored_form(truth), k
    assert router.mongo.backlog_size() == 0


@pytest.mark.parametrize("rungs", [(), ("dual", "mysql-primary")], ids=["mongo", "mysql-primary"])
def test_a_batch_s_dead_letters_are_stored_together_and_once(migrated, router, rungs) -> None:
    """The rejected frames of a batch go to the mode's store in one write; replayed after a
    crash, they are not stored twice; the offset passes them once they are stored."""
    _walk(migrated, *rungs)
    consumer = _consumer(router)
    letters = [
        _Letter(f'{{"seq":{s},"bad'.encode(), s, "bad-json", "Expecting ',' delimiter", None)
        for s in (5, 6, 7)
    ]
    letters.append(_Letter(b"\xff\xfe", None, "bad-encoding", "payload is not UTF-8", None))
    doc = message(1, 1, source_seq=4)
    for _ in range(2):  # the second time: a replay
        consumer._batch = [(b'{"seq":4}', doc)]
        consumer._letters = list(letters)
        consumer.counters.received += 1 + len(letters)
        consumer._flush_batch()
    assert consumer.counters.dead_letter_categories == {"bad-json": 6, "bad-encoding": 2}
    assert consumer._pending_offset == 7
    if rungs:
        stored = _dead_letters(migrated)
        assert sorted(r for _, _, r in stored) == sorted(
            f"{x.category}: {x.reason}" for x in letters
        )
    else:
        stored = list(router.mongo.dead_letters.find({}, {"category": 1, "source_seq": 1}))
        assert sorted((d["category"], d["source_seq"] or 0) for d in stored) == [
            ("bad-encoding", 0),
            ("bad-json", 5),
            ("bad-json", 6),
            ("bad-json", 7),
        ]


def test_batches_grow_past_the_live_target_only_while_the_source_is_far_ahead(router) -> None:
    consumer = _consumer(router)
    consumer._batch_max = 100
    consumer._fit_batch(100, BATCH_TARGET_S, deep=False)
    assert consumer._batch_max == 100  # on target
    consumer._fit_batch(100, BATCH_TARGET_S, deep=True)
    assert consumer._batch_max == int(100 * BATCH_TARGET_DEEP_S / BATCH_TARGET_S)
