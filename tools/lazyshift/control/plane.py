"""The control plane: the current mode and epoch in MySQL, and fenced transitions.

A transition (`set_mode`) bumps the epoch and marks it `draining`. From that commit on no
write can pass `guarded_write.check_epoch` (old epoch: wrong number; new epoch: not stable),
so writes pause. Every live client notices within one poll, finishes the write in hand,
acknowledges the new epoch in its heartbeat and waits. When every client seen within the
heartbeat timeout has acknowledged, the rung's pause step runs (steps.py) and the new mode
is committed as `stable`; writes resume in it. A client whose heartbeat is older than the
timeout is fenced out: its writes carry an old epoch and the database refuses them; its own
lease (half the timeout) stops it writing to MongoDB, which cannot refuse anything, before.

What a rung needs and does comes from the ladder (ladder.py); this module only runs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from mysql.connector.abstracts import MySQLConnectionAbstract
from mysql.connector.errors import DatabaseError

from lazyshift import logs
from lazyshift.config import Settings
from lazyshift.control import facts, steps
from lazyshift.control.ladder import (
    RUNGS,
    TRUTH,
    Mode,
    Rung,
    TransitionError,
    parse_mode,
    previous_mode,
    rung,
)
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.mysql_store import ControlState

ACK_POLL_S = 0.02
HOLD_POLL_S = 0.1


@dataclass
class TransitionResult:
    from_mode: str
    to_mode: str
    epoch: int
    paused_s: float
    acknowledged: list[str] = field(default_factory=list)
    fenced_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Where the write pause went (s): the drain's epoch bump, waiting for the clients'
    # acknowledgements, the rung's pause step, committing the new mode.
    pause_phases: dict[str, float] = field(default_factory=dict)


def get_state(settings: Settings) -> ControlState:
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        return store.read_control(conn.cursor())
    finally:
        conn.close()


def set_mode(
    settings: Settings,
    target: str,
    *,
    timeout_s: float = 30.0,
    heartbeat_timeout_s: float | None = None,
    hold: bool = False,
) -> TransitionResult:
    """Move the control plane one rung; return when every live client acknowledged.

    Refused (TransitionError, nothing changed) when the rung does not exist or its
    requirements do not hold. Any failure after the drain began restores the old mode under
    a fresh epoch. `hold`: once every client acknowledged, wait (up to `timeout_s` more) for
    `lazyshift mode release` before committing; not released in time = a failed transition.
    """
    target_mode = parse_mode(target)
    hb_timeout = heartbeat_timeout_s or settings.client.heartbeat_timeout_s
    conn = my.connect(settings.mysql, lock_wait_timeout=max(2, int(hb_timeout)))
    try:
        cur = conn.cursor()
        st = store.read_control(cur)
        conn.commit()
        if not st.stable:
            raise TransitionError(
                f"a transition to {st.target_mode} is in progress (epoch {st.epoch}, since "
                f"{st.changed_at} UTC); wait for it, or run `lazyshift mode abort` if the "
                "command that started it died"
            )
        if target_mode == st.mode:
            return _already_in(settings, conn, st, target_mode)
        step = rung(Mode(st.mode), target_mode)
        reasons = step.requires(facts.collect(settings, conn))
        conn.commit()
        if reasons:
            raise TransitionError(f"refusing {st.mode} -> {target}: " + "; ".join(reasons))
        memo: dict[str, Any] = {}
        notes = []
        try:
            if step.before_pause:
                notes.append(
                    "before the pause: " + steps.run(step.before_pause, settings, conn, st, memo)
                )
            if step.during_pause:
                steps.prepare(settings, memo)  # connect to MongoDB before writes pause
            intent = _leaves_mongo(step)
            if intent:
                _mirror_intent(settings, memo, st, step)
            try:
                result = _drain_and_commit(
                    settings, conn, st, step, memo, notes, hb_timeout, timeout_s, hold
                )
            finally:
                notes.append(_sync_mirror(settings, conn, memo, clear_intent=intent))
            if step.after_commit:
                _after_commit(settings, conn, step, memo, result)
        finally:
            steps.close(memo)
        return result
    finally:
        conn.close()


def _already_in(
    settings: Settings, conn: MySQLConnectionAbstract, st: ControlState, target: Mode
) -> TransitionResult:
    """Nothing to move; but a follow-up step of the rung into `target` that failed (or was
    killed) last time is run again."""
    result = TransitionResult(
        st.mode, target.value, st.epoch, 0.0, notes=[f"already in {target}: nothing to do"]
    )
    previous = previous_mode(target)
    into = RUNGS.get((previous, target)) if previous is not None else None
    if into is None or not into.after_commit:
        return result
    result.notes = [f"already in {target}"]
    memo: dict[str, Any] = {}
    try:
        result.notes.append(_sync_mirror(settings, conn, memo, clear_intent=False))
        _after_commit(settings, conn, into, memo, result)
    finally:
        steps.close(memo)
    return result


def _after_commit(
    settings: Settings,
    conn: MySQLConnectionAbstract,
    step: Rung,
    memo: dict[str, Any],
    result: TransitionResult,
) -> None:
    """The rung's step once the new mode is in force (writes flow): a failure leaves the new
    mode in place and says what to run again."""
    assert step.after_commit is not None
    try:
        st = store.read_control(conn.cursor())
        conn.commit()
        result.notes.append(
            "after the switch: " + steps.run(step.after_commit, settings, conn, st, memo)
        )
    except Exception as exc:  # noqa: BLE001 - the switch itself stands; say what is left
        again = (
            "`lazyshift mode reconcile`"
            if step.after_commit == "reconcile_if_needed"
            else f"`lazyshift mode set {step.target}` (it resumes)"
        )
        raise TransitionError(
            f"{step.source} -> {step.target} is in force (epoch {result.epoch}), but its "
            f"follow-up step {step.after_commit} failed: {type(exc).__name__}: {exc}. "
            f"Run {again} once the cause is fixed"
        ) from exc


def reconcile(settings: Settings) -> str:
    """Copy MongoDB over MySQL's stale copies (stage 2, after a spell in mongo mode)."""
    conn = my.connect(settings.mysql)
    try:
        return steps.reconcile(settings, conn)
    finally:
        conn.close()


def rollback(settings: Settings, *, timeout_s: float = 30.0) -> TransitionResult:
    """One rung down the ladder."""
    st = get_state(settings)
    previous = previous_mode(Mode(st.mode))
    if previous is None:
        raise TransitionError("already in mongo (stage 1): there is nothing to roll back to")
    return set_mode(settings, previous, timeout_s=timeout_s)


def _drain_and_commit(
    settings: Settings,
    conn: MySQLConnectionAbstract,
    st: ControlState,
    step: Rung,
    memo: dict[str, Any],
    notes: list[str],
    hb_timeout: float,
    timeout_s: float,
    hold: bool = False,
) -> TransitionResult:
    cur = conn.cursor()
    target, during_pause = step.target, step.during_pause
    new_epoch = st.epoch + 1
    started = time.monotonic()
    _begin_drain(conn, cur, st, target, new_epoch, hb_timeout)
    result = TransitionResult(st.mode, target.value, new_epoch, 0.0, notes=notes)
    phases = result.pause_phases
    mark = time.monotonic()
    phases["drain"] = mark - started

    def lap(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = round(phases.get(name, 0.0) + now - mark, 4)
        mark = now

    try:
        _wait_for_acks(cur, conn, new_epoch, hb_timeout, timeout_s, result)
        lap("acks")
        if hold:
            _wait_for_release(cur, conn, new_epoch, timeout_s, result)
            lap("hold")
        conn.commit()  # the pause step starts its own transactions
        if during_pause:
            result.notes.append(
                "during the pause: " + steps.run(during_pause, settings, conn, st, memo)
            )
            if conn.in_transaction:
                conn.commit()
            lap("step")
        flip = new_epoch if (st.mode, target) == (Mode.DUAL, Mode.MYSQL_PRIMARY) else None
        if not store.commit_mode(cur, target.value, flip, f"{st.mode} -> {target}", new_epoch):
            raise TransitionError(
                "the control row changed during the transition "
                "(another `mode set` or `mode abort`?)"
            )
        if step.leaves_mysql_stale:
            store.mark_reconcile_needed(cur, new_epoch)
        conn.commit()
        lap("commit")
    except BaseException as exc:
        _abort(conn, new_epoch, st.mode)
        if isinstance(exc, TransitionError):
            raise
        raise TransitionError(
            f"{st.mode} -> {target} failed and was rolled back: {type(exc).__name__}: {exc}"
        ) from exc
    result.paused_s = time.monotonic() - started
    phases["drain"] = round(phases["drain"], 4)
    logs.event("transition.paused", paused_s=round(result.paused_s, 4), **phases)
    return result


def _begin_drain(
    conn: MySQLConnectionAbstract,
    cur: Any,
    st: ControlState,
    target: Mode,
    new_epoch: int,
    hb_timeout: float,
) -> None:
    """Bump the epoch under the row's exclusive lock: in-flight MySQL writes finish first.

    A client that stopped (SIGSTOP, a hung host) inside a MySQL write keeps the row's share
    lock. Once its heartbeat is stale its connection is killed: the write rolls back, and
    the client, when it resumes, queues that shipment for a retry under the new epoch.
    """
    for attempt in range(3):
        try:
            conn.start_transaction()
            if not store.begin_drain(cur, target.value, new_epoch, st.epoch):
                conn.rollback()
                raise TransitionError("the control row changed meanwhile; run it again")
            conn.commit()
            return
        except DatabaseError as exc:
            conn.rollback()
            if getattr(exc, "errno", None) != my.LOCK_WAIT_TIMEOUT:
                raise TransitionError(f"could not start draining: {exc}") from exc
            killed = _kill_stale_clients(conn, cur, hb_timeout)
            if attempt == 2:
                raise TransitionError(
                    "a client holds the control row and does not finish its write "
                    f"(killed stale: {', '.join(killed) or 'none'}); find it with "
                    "`lazyshift status` and run the transition again. The old mode stays"
                ) from exc


def _kill_stale_clients(conn: MySQLConnectionAbstract, cur: Any, hb_timeout: float) -> list[str]:
    killed = []
    for c in store.clients(cur, hb_timeout):
        if not c["live"] and c["mysql_connection_id"]:
            try:
                store.kill_connection(cur, c["mysql_connection_id"])
                killed.append(c["client_id"])
            except DatabaseError:
                pass  # already gone
    conn.commit()
    return killed


def _wait_for_acks(
    cur: Any,
    conn: MySQLConnectionAbstract,
    epoch: int,
    hb_timeout: float,
    timeout_s: float,
    result: TransitionResult,
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        conn.commit()  # a fresh snapshot each poll
        rows = store.clients(cur, hb_timeout)
        live = [c for c in rows if c["live"]]
        pending = [c["client_id"] for c in live if (c["acked_epoch"] or 0) < epoch]
        if not pending:
            result.acknowledged = [c["client_id"] for c in live]
            result.fenced_out = [c["client_id"] for c in rows if not c["live"]]
            return
        if time.monotonic() > deadline:
            raise TransitionError(
                f"{len(pending)} live client(s) did not acknowledge epoch {epoch} within "
                f"{timeout_s:.0f}s: {', '.join(pending[:5])}. The old mode stays in force; "
                "check those clients (`lazyshift status`) or raise --timeout"
            )
        time.sleep(ACK_POLL_S)


def _wait_for_release(
    cur: Any, conn: MySQLConnectionAbstract, epoch: int, timeout_s: float, result: TransitionResult
) -> None:
    """`--hold`: writes are paused everywhere; the operator's step (stage 3: revoke MongoDB's
    writes) runs now, and `lazyshift mode release` lets the new mode be committed."""
    store.begin_hold(cur, epoch)
    deadline = time.monotonic() + timeout_s
    while True:
        conn.commit()  # a fresh snapshot each poll
        if store.released(cur, epoch):
            result.notes.append(f"held until released (epoch {epoch})")
            return
        if time.monotonic() > deadline:
            raise TransitionError(
                f"held at epoch {epoch} and not released (`lazyshift mode release`) within "
                f"{timeout_s:.0f}s: the old mode stays in force"
            )
        time.sleep(HOLD_POLL_S)


def _abort(conn: MySQLConnectionAbstract, epoch: int, old_mode: str) -> None:
    """Restore the old mode under a fresh epoch (clients re-sync and resume)."""
    try:
        conn.rollback()
    except DatabaseError:
        conn.reconnect()
    store.restore_mode(conn.cursor(), old_mode, epoch)
    conn.commit()


def abort(settings: Settings) -> ControlState:
    """Abandon a transition left draining by a command that died; keep the old mode."""
    conn = my.connect(settings.mysql)
    memo: dict[str, Any] = {}
    try:
        cur = conn.cursor()
        st = store.read_control(cur)
        conn.commit()
        if not st.stable:
            _abort(conn, st.epoch, st.mode)
        # Also for a stable mode: the command that died may have left its intent in the
        # mirror before it began draining.
        logs.event("control.mirror", note=_sync_mirror(settings, conn, memo, clear_intent=True))
        st = store.read_control(cur)
        conn.commit()
        return st
    finally:
        steps.close(memo)
        conn.close()


def held(settings: Settings) -> int | None:
    """The epoch a `mode set --hold` is waiting to be released for, if any."""
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        return store.held_epoch(conn.cursor())
    finally:
        conn.close()


def release(settings: Settings) -> int:
    """Let a `mode set --hold` commit: release the transition draining now; its epoch."""
    conn = my.connect(settings.mysql)
    try:
        epoch = store.release_draining(conn.cursor())
        conn.commit()
    finally:
        conn.close()
    if epoch is None:
        raise TransitionError(
            "no transition is draining: nothing to release (the held `mode set` already "
            "timed out and the old mode stays, or it was never started); see `lazyshift mode show`"
        )
    return epoch


# -- the mode mirror in MongoDB (router.read's answer when it cannot reach MySQL) ----------------


def _leaves_mongo(step: Rung) -> bool:
    """A rung after which MongoDB no longer holds the truth (the flip)."""
    return TRUTH[step.source] == "mongo" and TRUTH[step.target] != "mongo"


def _mirror_intent(settings: Settings, memo: dict[str, Any], st: ControlState, step: Rung) -> None:
    """Before the drain of a rung that takes the truth away from MongoDB: its intent goes
    into the mirror, so a reader cut off from MySQL stops answering from MongoDB before the
    new mode can commit. Nothing has changed yet if this fails: the transition is refused."""
    try:
        steps.prepare(settings, memo)
        written = memo["mongo"].write_mode_mirror(st.mode, st.epoch, intent=step.target.value)
    except Exception as exc:  # noqa: BLE001 - any failure refuses the transition
        raise TransitionError(
            f"refusing {st.mode} -> {step.target}: could not write its intent into the mode "
            f"mirror in MongoDB ({type(exc).__name__}: {exc}); nothing was changed"
        ) from exc
    if not written:
        raise TransitionError(
            f"refusing {st.mode} -> {step.target}: the mode mirror in MongoDB is ahead of "
            f"epoch {st.epoch} (another transition?); nothing was changed, run it again"
        )


def _sync_mirror(
    settings: Settings, conn: MySQLConnectionAbstract, memo: dict[str, Any], *, clear_intent: bool
) -> str:
    """Mirror the control row's stable mode into MongoDB; a note saying what happened.

    Best effort: a mirror left behind only makes readers cut off from MySQL refuse (its
    intent, or a mode in which MongoDB is not the truth), never answer stale. An intent left
    at the current stable epoch (its transition failed before draining, or its command was
    killed) outranks that epoch's state: with `clear_intent`, the epoch is bumped first,
    which also fences off that transition should it still be alive.
    """
    try:
        cur = conn.cursor()
        st = store.read_control(cur)
        conn.commit()
        if not st.stable or st.mode == Mode.MYSQL:  # draining: its intent is there already
            return f"mode mirror left as it is ({st.mode}, {st.state})"
        steps.prepare(settings, memo)
        mongo = memo["mongo"]
        if mongo.write_mode_mirror(st.mode, st.epoch):
            return f"mode mirror: {st.mode} (epoch {st.epoch})"
        left = mongo.read_mode_mirror()
        if not clear_intent or left is None or left.intent is None or left.epoch != st.epoch:
            return f"mode mirror already newer than epoch {st.epoch}: {left}"
        store.restore_mode(cur, st.mode, st.epoch)
        conn.commit()
        st = store.read_control(cur)
        conn.commit()
        if st.stable and mongo.write_mode_mirror(st.mode, st.epoch):
            return f"mode mirror: {st.mode} (epoch {st.epoch}, a left-over intent cleared)"
        return f"mode mirror still shows an intent to {left.intent}: run `lazyshift mode abort`"
    except Exception as exc:  # noqa: BLE001 - the mode itself stands; say what is left
        return (
            f"the mode mirror in MongoDB could not be updated ({type(exc).__name__}: {exc}): "
            "until `lazyshift mode abort` or the next transition updates it, readers that "
            "cannot reach MySQL answer 503"
        )
