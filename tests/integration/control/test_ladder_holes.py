"""The control-plane holes of issue 9 (each fails on the code before its fix):

1. after `dual -> mongo -> dual -> mysql-primary` a newer MySQL write survives the backfill,
   and the flip waits for the reconcile that re-entering dual runs;
2. write-back after rollback compares (source_rev, version), not the versions alone;
4. `mode set mysql` needs a verify started after the backfill and an archive read back after
   that verify;
5. dead letters follow the primary store (into MySQL at the flip, back on rollback);
and issue 10 goal 7: rollback re-reads only what was written live since the flip.
Without clients the drain is immediate, so `set_mode` runs in-process."""

from __future__ import annotations

import json

import pytest

from dataset import load_mongo, make_doc
from helpers import run_cli
from lazyshift.control import facts, plane, steps
from lazyshift.control.ladder import TransitionError
from lazyshift.core import mysql_store as store
from lazyshift.core.guarded_write import guarded_write
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.mysql import read_snapshot


def doc(i: int, rev: int, version: int, tag: str) -> dict:
    return make_doc(i) | {"source_rev": rev, "version": version, "tracking_number": tag}


def mysql_doc(conn, key: str) -> dict | None:
    with read_snapshot(conn):
        return store.load_documents(conn.cursor(), [key]).get(key)


def live_write(settings, conn, d: dict) -> None:
    """What the router does in mysql-primary: a guarded write stamped with the epoch."""
    epoch = plane.get_state(settings).epoch
    assert guarded_write(conn, d, epoch=epoch, written_epoch=epoch)


def test_dual_reentry_reconciles_and_a_newer_mysql_write_survives_the_backfill(
    migrated, collection, app_conn, conn
):
    load_mongo(collection, 20)
    key = make_doc(3)["key"]
    plane.set_mode(migrated, "dual")
    # dual: the shipment reaches both stores at (rev 5, version 5)
    collection.replace_one({"_id": key}, doc(3, 5, 5, "dual"))
    guarded_write(conn, doc(3, 5, 5, "dual"))
    plane.set_mode(migrated, "mongo")
    assert facts.collect(migrated).reconcile_epoch is not None
    # mongo mode: MongoDB counts on (rev 8, version 8); MySQL stands still at 5
    collection.replace_one({"_id": key}, doc(3, 8, 8, "mongo"))
    result = plane.set_mode(migrated, "dual")
    assert any("reconciled MySQL with MongoDB" in n for n in result.notes), result.notes
    assert mysql_doc(conn, key)["tracking_number"] == "mongo"
    assert facts.collect(migrated).reconcile_epoch is None
    plane.set_mode(migrated, "mysql-primary")
    # mysql-primary: MySQL counts on from its own copy: (rev 10, version 9)
    live_write(migrated, conn, doc(3, 10, 9, "live"))
    # MongoDB (read-only now) somehow holds a higher version of older content
    collection.replace_one({"_id": key}, doc(3, 8, 12, "mongo-drifted"))
    run_cli("backfill", "--workers", "1", "--partitions", "2", settings=migrated, timeout=1800)
    got = mysql_doc(conn, key)
    assert (got["tracking_number"], got["source_rev"]) == ("live", 10)


def test_the_flip_waits_for_the_reconcile(migrated, collection, app_conn, conn):
    load_mongo(collection, 10)
    plane.set_mode(migrated, "dual")
    plane.set_mode(migrated, "mongo")
    # The reconcile that `mode set dual` runs was killed: the mark stays.
    app_conn.cursor().execute("UPDATE lazyshift_control SET mode = 'dual' WHERE id = 1")
    with pytest.raises(TransitionError, match="lazyshift mode reconcile"):
        plane.set_mode(migrated, "mysql-primary")
    gate = json.loads(run_cli("--json", "status", settings=migrated).stdout)["gate"]
    assert any("reconcile" in r for r in gate["cannot_advance_because"]), gate
    out = run_cli("--json", "mode", "reconcile", settings=migrated)
    assert "reconciled" in out.stdout
    assert plane.set_mode(migrated, "mysql-primary").to_mode == "mysql-primary"


def test_write_back_compares_revisions_not_versions(migrated, collection, app_conn, conn):
    load_mongo(collection, 10)
    drifted, late = make_doc(1)["key"], make_doc(2)["key"]
    plane.set_mode(migrated, "dual")
    plane.set_mode(migrated, "mysql-primary")
    # MySQL took newer writes, but MongoDB's counter is ahead (the round trips before)
    live_write(migrated, conn, doc(1, 10, 6, "mysql-newer"))
    collection.replace_one({"_id": drifted}, doc(1, 8, 8, "mongo-older"))
    # a write that landed in MongoDB after the flip carries a newer revision than MySQL's
    live_write(migrated, conn, doc(2, 11, 12, "mysql-older"))
    collection.replace_one({"_id": late}, doc(2, 12, 3, "mongo-late"))
    result = plane.rollback(migrated)
    assert result.to_mode == "dual"
    mongo_1 = collection.find_one({"_id": drifted})
    assert (mongo_1["tracking_number"], mongo_1["source_rev"]) == ("mysql-newer", 10)
    assert mongo_1["version"] == 9  # MongoDB's 8 + 1: never backwards
    assert mysql_doc(conn, drifted)["version"] == 9  # both stores hold the same document
    assert collection.find_one({"_id": late})["tracking_number"] == "mongo-late"


def test_rollback_rereads_only_live_writes_since_the_flip(migrated, collection, conn):
    load_mongo(collection, 200)
    plane.set_mode(migrated, "dual")
    plane.set_mode(migrated, "mysql-primary")
    run_cli("backfill", "--workers", "1", "--partitions", "2", settings=migrated, timeout=1800)
    # a lazy read's copy is a copy too
    guarded_write(conn, make_doc(250), epoch=plane.get_state(migrated).epoch)
    for i in (5, 6, 7):
        live_write(migrated, conn, doc(i, 50, 50, f"live-{i}"))
    result = plane.rollback(migrated)
    text = " ".join(result.notes)
    assert "wrote 3 shipment(s)" in text and "(0 already current there)" in text, text
    assert collection.find_one({"_id": make_doc(6)["key"]})["tracking_number"] == "live-6"


def test_dead_letters_follow_the_primary_store(migrated, collection, app_conn, conn):
    plane.set_mode(migrated, "dual")
    mongo = MongoStore.open(migrated)
    try:
        for seq in (11, 12):
            mongo.dead_letter(
                origin="stream", reason="bad json", category="malformed", raw=b"{x", seq=seq
            )
        mongo.dead_letter(
            origin="stream", reason="not utf8", category="malformed", raw=b"\xff\xfe", seq=13
        )
        plane.set_mode(migrated, "mysql-primary")
        cur = app_conn.cursor()
        assert store.dead_letter_seqs(cur, "stream") == {11, 12, 13}
        # mysql-primary: a dead letter recorded in MySQL goes back to MongoDB on rollback
        letter = store.message_dead_letter("stream", b"{y", "malformed: bad json", 14, None)
        store.insert_dead_letters(cur, [letter])
        plane.rollback(migrated)
        seqs = {d["source_seq"] for d in mongo.dead_letters.find({})}
        assert seqs == {11, 12, 13, 14}
        # a second flip carries nothing twice
        plane.set_mode(migrated, "mysql-primary")
        assert store.dead_letter_count(cur) == 4
    finally:
        mongo.close()


def test_mode_set_mysql_needs_verify_after_backfill_and_archive_after_verify(
    migrated, collection, tmp_path
):
    load_mongo(collection, 50)
    MongoStore.open(migrated).dead_letter(
        origin="stream", reason="bad", category="malformed", raw=b"{", seq=1
    )
    for mode in ("dual", "mysql-primary"):
        plane.set_mode(migrated, mode)
    run_cli("backfill", "--workers", "1", settings=migrated, timeout=1800)
    run_cli("verify", "--full", settings=migrated)
    with pytest.raises(TransitionError, match="no archive of MongoDB is recorded"):
        plane.set_mode(migrated, "mysql")
    manifest = json.loads(
        run_cli("--json", "archive", "--to", str(tmp_path / "a1"), settings=migrated).stdout
    )
    # every collection is in the archive, and it was read back
    assert {"shipments", "dead_letters"} <= set(manifest["collections"])
    assert manifest["collections"]["dead_letters"]["count"] == 1
    assert manifest["read_back"]["ok"] is True
    # a verify after the archive: the archive no longer shows the state that was verified
    run_cli("verify", "--full", settings=migrated)
    with pytest.raises(TransitionError, match="archive was made before the last full verify"):
        plane.set_mode(migrated, "mysql")
    run_cli("archive", "--to", str(tmp_path / "a2"), settings=migrated)
    assert plane.set_mode(migrated, "mysql").to_mode == "mysql"


def test_rollback_copies_before_the_pause_until_little_is_left(migrated, collection, conn):
    """More than WRITE_BACK_CONVERGED live writes: the copy before the pause takes a second
    pass (which finds nothing moved here), and the pause has nothing left to copy."""
    load_mongo(collection, 10)
    plane.set_mode(migrated, "dual")
    plane.set_mode(migrated, "mysql-primary")
    n = steps.WRITE_BACK_CONVERGED + 20
    for i in range(100, 100 + n):
        live_write(migrated, conn, doc(i, 50, 50, f"live-{i}"))
    result = plane.rollback(migrated)
    before = [x for x in result.notes if "during the pause" not in x and "wrote" in x]
    during = [x for x in result.notes if "during the pause" in x]
    assert any(f"wrote {n} shipment(s)" in x and f"in 2 passes ({n}, 0)" in x for x in before), (
        result.notes
    )
    assert any("wrote 0 shipment(s)" in x for x in during), result.notes
    assert collection.count_documents({"tracking_number": {"$regex": "^live-"}}) == n
