"""The data a rung copies (named in ladder.RUNGS, run by plane.set_mode).

- prepare_flip (the flip, before the pause): the dead letters (below), then the dual-write
  backlog flushed in batches while writes flow, until a batch finds little.
- flush_backlog (the flip, in the pause): what is left of the backlog is flushed from
  MongoDB into MySQL, so MySQL has every latest version before it becomes the primary store.
- dead_letters_to_mysql (the flip, before the pause and again once MySQL is primary): the
  dead letters of stages 1-2 (kept in MongoDB) are carried into MySQL. Dead letters follow
  the primary store like shipments do.
- write_back (rollback from mysql-primary, before the pause): every shipment written live in
  MySQL since the flip goes back to MongoDB, and so do the dead letters recorded in MySQL,
  while writes still flow.
- write_back_moved (the same rollback, in the pause): only what moved since write_back, so
  the write pause is the delta, not every change since the flip (gh-ost's cut-over idea, for
  the way back). Versions, not timestamps, decide what moved: a transaction can commit long
  after it stamped its row. Only live writes are stamped (guarded_write.py): the backfill's
  and lazy reads' copies of MongoDB are never read again here.
- reconcile_if_needed (back in dual after mongo, once dual writes flow): every MongoDB
  document is copied over MySQL's stale copy through the guarded write; then the flip may go.

Which copy is newer is decided by (source_rev, version), never by the version alone: each
store counts versions on its own, so after a round trip the counters disagree.

Each step returns a one-line note for the transition's result.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mysql.connector.abstracts import MySQLConnectionAbstract
from pymongo.errors import BulkWriteError

from lazyshift import logs
from lazyshift.config import Settings
from lazyshift.control.ladder import TransitionError
from lazyshift.core import mysql_store as store
from lazyshift.core.document import Document
from lazyshift.core.guarded_write import Fenced, apply_batch, map_or_reject
from lazyshift.core.mongo_store import DUPLICATE_KEY, MongoStore
from lazyshift.core.mysql import read_snapshot, run_in_transaction
from lazyshift.core.mysql_store import ControlState, DeadLetter, document_dead_letter

WRITE_BACK_BATCH = 500
WRITE_BACK_SCAN = 5000  # (key, version) pairs per page of the scan of live writes
# The write-back before the pause repeats (at most this many passes) until a pass copies no
# more than this many shipments: what is left is copied in the pause.
WRITE_BACK_PASSES = 10
WRITE_BACK_CONVERGED = 50
WRITE_BACK_SHRINK = 0.9  # ... or until a pass copied not much less than the one before
BACKLOG_BATCH = 500
# The backlog flush before the flip's pause takes at most this many batches, and stops
# after one that found no more than this many entries: the pause flushes what is left.
BACKLOG_PASSES = 5
BACKLOG_CONVERGED = 50
RECONCILE_BATCH = 500
DEAD_LETTER_BATCH = 500

Step = Callable[[Settings, MySQLConnectionAbstract, ControlState, dict[str, Any]], str]


def _mongo(settings: Settings, memo: dict[str, Any]) -> MongoStore:
    """One MongoDB client per transition, opened before the pause (plane.set_mode closes it):
    connecting inside the pause would hold writes for the handshake."""
    if memo.get("mongo") is None:
        memo["mongo"] = MongoStore.open(settings)
    return memo["mongo"]


def prepare(settings: Settings, memo: dict[str, Any]) -> None:
    _mongo(settings, memo)


def close(memo: dict[str, Any]) -> None:
    mongo = memo.pop("mongo", None)
    if mongo is not None:
        mongo.close()


def newer(a: Document, b: Document | None) -> bool:
    """Is `a` a newer copy of the shipment than `b`? (source_rev, version), in that order."""
    if b is None:
        return True
    return (int(a["source_rev"]), int(a["version"])) > (
        int(b.get("source_rev", -1)),
        int(b.get("version", 0)),
    )


# -- the flip ----------------------------------------------------------------------------------


def flush_backlog(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    """In the pause: the whole backlog (what the flush before it left, and the writes the
    drain fenced out). No epoch: this runs inside the drain, the one writer allowed now."""
    flushed = _flush_backlog(_mongo(settings, memo), conn, None, passes=None)
    logs.event("transition.backlog_flushed", shipments=flushed.keys, dead=flushed.dead)
    return flushed.note()


def prepare_flip(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    """Before the flip's pause, while writes flow: the dead letters, then the backlog until
    little is left, so the pause only flushes what was queued in the last few moments."""
    letters = dead_letters_to_mysql(settings, conn, st, memo)
    try:
        flushed = _flush_backlog(_mongo(settings, memo), conn, st.epoch, passes=BACKLOG_PASSES)
    except Fenced as exc:
        raise TransitionError(
            f"the control row changed while the backlog was flushed before the pause ({exc}): "
            "another `mode set`? Nothing was switched; run it again"
        ) from exc
    return f"{letters}; {flushed.note()}"


@dataclass
class _Flushed:
    keys: int = 0  # backlog entries handled (copied, already current, or dead-lettered)
    dead: int = 0

    def note(self) -> str:
        dead = f", {self.dead} unmappable (dead-lettered)" if self.dead else ""
        return f"flushed {self.keys} backlogged shipment(s) into MySQL{dead}"


def _flush_backlog(
    mongo: MongoStore, conn: MySQLConnectionAbstract, epoch: int | None, passes: int | None
) -> _Flushed:
    """Backlog batches into MySQL: MongoDB's copies read in one `$in`, written in one
    guarded transaction (unmappable ones dead-lettered beside them), the entries removed in
    one bulk. `epoch` fences the writes while clients write too (before the pause); then
    at most `passes` batches, stopping once one read the whole backlog and found no more
    than BACKLOG_CONVERGED entries. `passes=None`: until the backlog is empty (in the
    pause: nothing adds to it).

    An entry is removed only if it was queued at or before the version copied: a key
    written (and queued) again after its copy was read stays for the next batch."""
    done = _Flushed()
    batches = 0
    while passes is None or batches < passes:
        queued = mongo.backlog_entries(limit=BACKLOG_BATCH)
        if not queued:
            break
        docs = mongo.get_many(list(queued))
        rows, rejected = map_or_reject(docs.values())
        letters = [document_dead_letter("dual", d, why) for d, why in rejected]

        def tx(cur: Any, rows: dict[str, Any] = rows, letters: list[DeadLetter] = letters) -> None:
            if letters:
                store.insert_dead_letters(cur, letters)
            if rows:
                apply_batch(cur, list(rows.values()), epoch=epoch)

        run_in_transaction(conn, tx)
        # What MySQL holds now for each key: MongoDB's copy as read (written, already
        # current, or dead-lettered); a key MongoDB lacks is only what was queued.
        copied = {k: int(docs[k]["version"]) if k in docs else v for k, v in queued.items()}
        removed = mongo.backlog_remove_flushed(copied)
        if not removed and passes is None:
            # Nothing adds to the backlog in the pause: entries queued at versions MongoDB
            # does not have would make this loop forever. Fail: the old mode stays.
            raise TransitionError(
                f"{len(queued)} backlog entries are queued at versions newer than MongoDB's "
                "copies and could not be flushed; see the mysql_backlog collection"
            )
        done.keys += len(queued)
        done.dead += len(rejected)
        batches += 1
        whole = len(queued) < BACKLOG_BATCH
        if passes is not None and whole and len(queued) <= BACKLOG_CONVERGED:
            break  # that read saw the whole backlog: only what was queued since is left
    return done


def _mongo_letter(entry: dict[str, Any]) -> DeadLetter:
    """A MongoDB dead letter (router.dead_letter's shape) as a MySQL one, same dedup key."""
    origin = str(entry.get("origin") or "stream")
    dedup = str(entry["_id"])
    dedup = dedup[len(origin) + 1 :] if dedup.startswith(origin + ":") else dedup
    if "payload" in entry:
        payload = str(entry["payload"])
    else:
        raw = base64.b64decode(entry.get("payload_b64") or b"")
        payload = raw.decode("utf-8", errors="replace")
    category = entry.get("category")
    reason = f"{category}: {entry.get('reason')}" if category else str(entry.get("reason"))
    seq = entry.get("source_seq")
    return DeadLetter(
        origin if origin in ("stream", "backfill", "lazy", "dual") else "stream",
        dedup,
        reason,
        payload,
        int(seq) if isinstance(seq, int) else None,
        entry.get("shipment_key") if isinstance(entry.get("shipment_key"), str) else None,
    )


def _dead_letters_to_mysql(
    mongo: MongoStore, conn: MySQLConnectionAbstract, copied: set[Any]
) -> int:
    """MongoDB's dead letters not yet in `copied` -> MySQL (once per origin + dedup key)."""
    moved = 0
    batch: list[DeadLetter] = []
    ids: list[Any] = []
    for entry in mongo.dead_letters.find({}):
        if entry["_id"] in copied:
            continue
        batch.append(_mongo_letter(entry))
        ids.append(entry["_id"])
        if len(batch) >= DEAD_LETTER_BATCH:
            moved += _insert_letters(conn, batch)
            copied.update(ids)
            batch, ids = [], []
    moved += _insert_letters(conn, batch)
    copied.update(ids)
    return moved


def _insert_letters(conn: MySQLConnectionAbstract, letters: list[DeadLetter]) -> int:
    if not letters:
        return 0
    return int(run_in_transaction(conn, lambda cur: store.insert_dead_letters(cur, letters)))


def dead_letters_to_mysql(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    moved = _dead_letters_to_mysql(_mongo(settings, memo), conn, memo.setdefault("letters", set()))
    return f"carried {moved} dead letter(s) from MongoDB into MySQL"


# -- rollback after the flip -------------------------------------------------------------------


def write_back(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    """While writes flow: one pass over everything written since the flip, then passes over
    what moved during the pass before, until one copies little: the pause is then left with
    the last pass's few seconds of writes (gh-ost's row copy converges the same way)."""
    passes = [_write_back(settings, conn, st, memo, only_moved=False)]
    while len(passes) < WRITE_BACK_PASSES and passes[-1].written > WRITE_BACK_CONVERGED:
        if len(passes) > 1 and passes[-1].written > WRITE_BACK_SHRINK * passes[-2].written:
            break  # writes arrive about as fast as they are copied: more passes won't help
        passes.append(_write_back(settings, conn, st, memo, only_moved=True))
    return _written_back_note(passes)


def write_back_moved(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    return _written_back_note([_write_back(settings, conn, st, memo, only_moved=True)])


@dataclass(frozen=True)
class _Pass:
    written: int
    skipped: int
    letters: int
    flipped: bool  # a flip epoch is recorded (else nothing was written in mysql-primary)


def _written_back_note(passes: list[_Pass]) -> str:
    letters = sum(p.letters for p in passes)
    if not passes[0].flipped:
        return (
            "no flip epoch recorded: nothing written in mysql-primary mode to write back"
            f"; {letters} dead letter(s) carried back to MongoDB"
        )
    written, skipped = sum(p.written for p in passes), sum(p.skipped for p in passes)
    each = (
        ""
        if len(passes) == 1
        else f" in {len(passes)} passes ({', '.join(str(p.written) for p in passes)})"
    )
    return (
        f"wrote {written} shipment(s) changed in MySQL since the flip back to MongoDB{each} "
        f"({skipped} already current there); {letters} dead letter(s) carried back"
    )


def _write_back(
    settings: Settings,
    conn: MySQLConnectionAbstract,
    st: ControlState,
    memo: dict[str, Any],
    only_moved: bool,
) -> _Pass:
    """One pass: MySQL's live writes since the flip -> MongoDB, each only if newer than
    MongoDB's copy; then MySQL's dead letters not yet in MongoDB.

    memo["copied"] collects key -> version of what was handled; with `only_moved`, keys whose
    MySQL version still equals the one there are skipped (handled by an earlier pass).
    """
    copied: dict[str, int] = memo.setdefault("copied", {})
    mongo = _mongo(settings, memo)
    written = skipped = 0
    letters = _dead_letters_to_mongo(conn, mongo, memo)
    if st.flip_epoch is None:
        return _Pass(0, 0, letters, flipped=False)

    def copy(keys: list[str]) -> None:
        nonlocal written, skipped
        with read_snapshot(conn):
            docs = store.load_documents(conn.cursor(), keys)
        loaded = [docs[k] for k in keys if k in docs]
        done = _write_back_batch(conn, mongo, loaded, copied, memo.setdefault("in_mongo", {}))
        written += done
        skipped += len(keys) - done

    # The scan of (key, version) is cheap (MySQL's index); MongoDB's round trips are not:
    # the keys to copy are gathered across scan pages into full batches.
    pending: list[str] = []
    after = ""
    while True:
        with read_snapshot(conn):
            found = store.written_since(conn.cursor(), st.flip_epoch, after, WRITE_BACK_SCAN)
        if not found:
            break
        pending += [k for k, v in found if not (only_moved and copied.get(k) == v)]
        while len(pending) >= WRITE_BACK_BATCH:
            copy(pending[:WRITE_BACK_BATCH])
            del pending[:WRITE_BACK_BATCH]
        after = found[-1][0]
    if pending:
        copy(pending)
    logs.event("transition.written_back", written=written, already_current=skipped)
    return _Pass(written, skipped, letters, flipped=True)


def _write_back_batch(
    conn: MySQLConnectionAbstract,
    mongo: MongoStore,
    docs: list[Document],
    copied: dict[str, int],
    known: dict[str, dict[str, Any]],
) -> int:
    """Shipments back to MongoDB where MySQL's copy is newer by (source_rev, version); how
    many were written. A few round trips per batch (writes are paused while this runs).

    `known` holds MongoDB's (source_rev, version) of the keys an earlier batch of this
    transition copied or compared: MongoDB is read-only in mysql-primary, so the moved keys
    of the later passes (and of the pause) need no read of MongoDB's copies first. Were one
    wrong, its compare-and-swap misses and it is settled alone (replace_many_if_newer).

    MongoDB's own counter may be ahead of MySQL's (a write that landed there after the flip,
    or the round trips before it): the copy then takes MongoDB's version + 1, so a version
    never goes backwards in MongoDB, and MySQL is given the same number first (same revision,
    higher version: the guard lets it through), so both stores hold the same document again."""
    currents = {d["key"]: known[d["key"]] for d in docs if d["key"] in known}
    currents |= mongo.currents([d["key"] for d in docs if d["key"] not in known])
    todo: list[Document] = []
    bumped: list[Document] = []
    for doc in docs:
        current = currents.get(doc["key"])
        if not newer(doc, current):
            copied[doc["key"]] = doc["version"]
            if current is not None:
                known[doc["key"]] = current
            continue
        if current is not None and int(current.get("version", 0)) >= doc["version"]:
            doc = {**doc, "version": int(current["version"]) + 1}
            bumped.append(doc)
        todo.append(doc)
    if bumped:
        # Not stamped: MongoDB has this content now. A live write meanwhile wins (newer rev).
        run_in_transaction(conn, lambda cur: apply_batch(cur, bumped))
    applied = mongo.replace_many_if_newer(todo, currents)
    for doc, landed in zip(todo, applied, strict=True):
        copied[doc["key"]] = doc["version"]
        if landed:
            known[doc["key"]] = {"source_rev": doc["source_rev"], "version": doc["version"]}
        else:
            known.pop(doc["key"], None)  # lost to another writer: read it again next time
    return sum(applied)


def _mongo_entry(row: dict[str, Any]) -> dict[str, Any]:
    """A MySQL dead letter in MongoDB's shape (router.dead_letter), same dedup key."""
    reason = str(row["reason"])
    category, sep, rest = reason.partition(": ")
    return {
        "_id": f"{row['origin']}:{row['dedup_key']}",
        "origin": row["origin"],
        "category": category if sep else "mysql",
        "reason": rest if sep else reason,
        "source_seq": row["source_seq"],
        "shipment_key": row["shipment_key"],
        "received_at": row["created_at"],
        "payload": row["payload"],
    }


def _dead_letters_to_mongo(
    conn: MySQLConnectionAbstract, mongo: MongoStore, memo: dict[str, Any]
) -> int:
    """MySQL's dead letters (after memo's last id) -> MongoDB, where they are kept once."""
    after = int(memo.get("letters_after", 0))
    moved = 0
    while True:
        with read_snapshot(conn):
            rows = store.dead_letters_since(conn.cursor(), after, DEAD_LETTER_BATCH)
        if not rows:
            break
        # One indexed `$in` for the ones MongoDB has, one unordered insert of the rest
        # (this also runs in the pause: round trips per letter would lengthen it).
        entries = {e["_id"]: e for e in map(_mongo_entry, rows)}
        have = {
            d["_id"] for d in mongo.dead_letters.find({"_id": {"$in": list(entries)}}, {"_id": 1})
        }
        missing = [e for i, e in entries.items() if i not in have]
        if missing:
            try:
                moved += len(mongo.dead_letters.insert_many(missing, ordered=False).inserted_ids)
            except BulkWriteError as exc:
                if any(e.get("code") != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                    raise
                moved += int(exc.details.get("nInserted", 0))  # the rest were there already
        after = int(rows[-1]["id"])
    memo["letters_after"] = after
    return moved


# -- back in dual after mongo ------------------------------------------------------------------


def reconcile(settings: Settings, conn: MySQLConnectionAbstract) -> str:
    """Copy every MongoDB document over MySQL's copy (guarded: only newer ones land), then
    clear the control row's reconcile mark if the mode stayed dual at the same epoch."""
    st = store.read_control(conn.cursor())
    conn.commit()
    if st.mode != "dual" or not st.stable:
        return f"no reconcile: the mode is {st.mode} ({st.state}), not a stable dual"
    mongo = MongoStore.open(settings, scan=True, timeout_ms=10_000)
    applied = seen = dead = 0
    try:
        batch: list[Document] = []
        for doc in mongo.shipments.find({}).batch_size(1000):
            batch.append(doc)
            if len(batch) >= RECONCILE_BATCH:
                a, d = _reconcile_batch(conn, batch)
                applied, dead, seen = applied + a, dead + d, seen + len(batch)
                batch = []
        a, d = _reconcile_batch(conn, batch)
        applied, dead, seen = applied + a, dead + d, seen + len(batch)
    finally:
        mongo.close()
    cleared = run_in_transaction(conn, lambda cur: store.clear_reconcile(cur, st.epoch))
    logs.event("transition.reconciled", seen=seen, applied=applied, dead=dead, cleared=cleared)
    note = f"reconciled MySQL with MongoDB: {applied} of {seen} shipment(s) were stale or missing"
    if dead:
        note += f", {dead} unmappable (dead-lettered)"
    if not cleared:
        raise TransitionError(
            note + "; but the mode changed meanwhile: run `lazyshift mode reconcile` again"
        )
    return note


def _reconcile_batch(conn: MySQLConnectionAbstract, docs: list[Document]) -> tuple[int, int]:
    if not docs:
        return 0, 0
    rows, rejected = map_or_reject(docs)
    letters = [document_dead_letter("dual", d, why) for d, why in rejected]

    def tx(cur: Any) -> int:
        store.insert_dead_letters(cur, letters)
        return len(apply_batch(cur, list(rows.values())).applied_keys)

    return int(run_in_transaction(conn, tx)), len(rejected)


def reconcile_if_needed(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, memo: dict[str, Any]
) -> str:
    since = store.reconcile_needed(conn.cursor())
    conn.commit()
    if since is None:
        return "MySQL has not missed any write: nothing to reconcile"
    return reconcile(settings, conn)


STEPS: dict[str, Step] = {
    "flush_backlog": flush_backlog,
    "prepare_flip": prepare_flip,
    "dead_letters_to_mysql": dead_letters_to_mysql,
    "write_back": write_back,
    "write_back_moved": write_back_moved,
    "reconcile_if_needed": reconcile_if_needed,
}


def run(
    name: str,
    settings: Settings,
    conn: MySQLConnectionAbstract,
    st: ControlState,
    memo: dict[str, Any],
) -> str:
    return STEPS[name](settings, conn, st, memo)
