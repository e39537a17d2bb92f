"""The control plane: the current mode and epoch in MySQL, client heartbeats, fenced
transitions.

A transition (`set_mode`) bumps the epoch and marks it `draining`. From that commit on no
write can pass `check_epoch` (old epoch: wrong number; new epoch: not stable), so writes
pause. Every live client notices within one poll, finishes the write in hand, acknowledges
the new epoch in its heartbeat and waits. When every client seen within the heartbeat
timeout has acknowledged, the new mode is committed as `stable` and writes resume in it.
A client whose heartbeat is older than the timeout is fenced out: its writes carry an old
epoch and the database refuses them; its own lease (half the timeout) stops it writing to
MongoDB, which cannot refuse anything, before that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mysql.connector.abstracts import MySQLConnectionAbstract
from mysql.connector.errors import DatabaseError

from lazyshift.config import Settings
from lazyshift.core import mysql as my
from lazyshift.core.control_row import ControlState, read_state
from lazyshift.core.mysql import rows_as_dicts

LADDER = ("mongo", "dual", "mysql-primary", "mysql")
STAGE_OF_MODE = {"mongo": 1, "dual": 2, "mysql-primary": 3, "mysql": 5}


class TransitionError(RuntimeError):
    """A transition was refused or could not complete; the old mode stays in force."""


@dataclass
class TransitionResult:
    from_mode: str
    to_mode: str
    epoch: int
    paused_s: float
    acknowledged: list[str] = field(default_factory=list)
    fenced_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def get_state(settings: Settings) -> ControlState:
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        return read_state(cur)
    finally:
        conn.close()


def check_rung(current: str, target: str) -> int:
    """+1 (advance) or -1 (roll back); anything else is refused with the reason."""
    if target not in LADDER:
        raise TransitionError(f"unknown mode {target!r}: one of {', '.join(LADDER)}")
    step = LADDER.index(target) - LADDER.index(current)
    if step not in (1, -1):
        allowed = [m for m in LADDER if abs(LADDER.index(m) - LADDER.index(current)) == 1]
        raise TransitionError(
            f"cannot go from {current} to {target}: only the next or previous rung "
            f"({' or '.join(allowed)}) is allowed"
        )
    if current == "mysql" and target == "mysql-primary":
        raise TransitionError("mysql is final: MongoDB has been archived and removed; "
                              "restore it from the archive to go back")
    return step


def clients(cursor: Any, heartbeat_timeout_s: float) -> list[dict[str, Any]]:
    cursor.execute(
        "SELECT client_id, host, pid, partition_spec, mode, acked_epoch, mysql_connection_id, "
        "stats, last_seen, TIMESTAMPDIFF(MICROSECOND, last_seen, UTC_TIMESTAMP(6)) / 1e6 AS age_s "
        "FROM client_heartbeat ORDER BY client_id"
    )
    rows = rows_as_dicts(cursor, cursor.fetchall())
    for r in rows:
        r["stats"] = my.parse_json(r["stats"]) if r.get("stats") is not None else None
        r["age_s"] = float(r["age_s"])
        r["live"] = r["age_s"] <= heartbeat_timeout_s
    return rows


DrainHook = Callable[[MySQLConnectionAbstract, ControlState], list[str] | None]


def set_mode(settings: Settings, target: str, *, timeout_s: float = 30.0,
             heartbeat_timeout_s: float | None = None,
             during_drain: DrainHook | None = None,
             precondition: Callable[[MySQLConnectionAbstract, ControlState], None] | None = None,
             ) -> TransitionResult:
    """Move the control plane one rung; return when every live client acknowledged.

    `during_drain` runs while writes are paused (e.g. flushing the dual-write backlog, or
    writing MySQL's changes back to MongoDB on a rollback); it may return notes. Any failure
    aborts the transition: the old mode is restored under a fresh epoch.
    """
    hb_timeout = heartbeat_timeout_s or settings.client.heartbeat_timeout_s
    conn = my.connect(settings.mysql, lock_wait_timeout=max(2, int(hb_timeout)))
    try:
        cur = conn.cursor()
        conn.start_transaction()
        st = read_state(cur)
        conn.commit()
        if not st.stable:
            raise TransitionError(
                f"a transition to {st.target_mode} is in progress (epoch {st.epoch}, since "
                f"{st.changed_at} UTC); wait for it, or run `lazyshift mode abort` if the "
                "command that started it died")
        if target == st.mode:
            return TransitionResult(st.mode, target, st.epoch, 0.0,
                                    notes=[f"already in {target}: nothing to do"])
        check_rung(st.mode, target)
        if precondition is not None:
            precondition(conn, st)
        new_epoch = st.epoch + 1
        started = time.monotonic()
        _begin_drain(conn, cur, st, target, new_epoch, hb_timeout)
        result = TransitionResult(st.mode, target, new_epoch, 0.0)
        try:
            _wait_for_acks(cur, conn, new_epoch, hb_timeout, timeout_s, result)
            conn.commit()  # the hook starts its own transactions
            if during_drain is not None:
                result.notes += during_drain(conn, st) or []
                if conn.in_transaction:
                    conn.commit()
            flip = new_epoch if (st.mode, target) == ("dual", "mysql-primary") else None
            cur.execute(
                "UPDATE lazyshift_control SET mode = %s, state = 'stable', target_mode = NULL, "
                "flip_epoch = COALESCE(%s, CASE WHEN %s IN ('mongo', 'dual') THEN NULL "
                "ELSE flip_epoch END), changed_at = UTC_TIMESTAMP(6), note = %s "
                "WHERE id = 1 AND epoch = %s AND state = 'draining'",
                (target, flip, target, f"{st.mode} -> {target}", new_epoch),
            )
            if cur.rowcount != 1:
                raise TransitionError("the control row changed during the transition "
                                      "(another `mode set` or `mode abort`?)")
            conn.commit()
        except BaseException as exc:
            _abort(conn, new_epoch, st.mode)
            if isinstance(exc, TransitionError):
                raise
            raise TransitionError(f"{st.mode} -> {target} failed and was rolled back: "
                                  f"{type(exc).__name__}: {exc}") from exc
        result.paused_s = time.monotonic() - started
        return result
    finally:
        conn.close()


def _begin_drain(conn: MySQLConnectionAbstract, cur: Any, st: ControlState, target: str,
                 new_epoch: int, hb_timeout: float) -> None:
    """Bump the epoch under the row's exclusive lock: in-flight MySQL writes finish first.

    A client that stopped (SIGSTOP, a hung host) inside a MySQL write keeps the row's share
    lock. Once its heartbeat is stale its connection is killed: the write rolls back, and
    the client, when it resumes, queues that shipment for a retry under the new epoch.
    """
    for attempt in range(3):
        try:
            conn.start_transaction()
            cur.execute(
                "UPDATE lazyshift_control SET state = 'draining', target_mode = %s, "
                "epoch = %s, changed_at = UTC_TIMESTAMP(6) "
                "WHERE id = 1 AND epoch = %s AND state = 'stable'",
                (target, new_epoch, st.epoch),
            )
            if cur.rowcount != 1:
                conn.rollback()
                raise TransitionError("the control row changed meanwhile; run it again")
            conn.commit()
            return
        except DatabaseError as exc:
            conn.rollback()
            if getattr(exc, "errno", None) != 1205:
                raise TransitionError(f"could not start draining: {exc}") from exc
            killed = _kill_stale_clients(conn, cur, hb_timeout)
            if attempt == 2:
                raise TransitionError(
                    "a client holds the control row and does not finish its write "
                    f"(killed stale: {', '.join(killed) or 'none'}); find it with "
                    "`lazyshift status` and run the transition again. The old mode stays"
                ) from exc


def _kill_stale_clients(conn: MySQLConnectionAbstract, cur: Any, hb_timeout: float
                        ) -> list[str]:
    killed = []
    for c in clients(cur, hb_timeout):
        if not c["live"] and c["mysql_connection_id"]:
            try:
                cur.execute(f"KILL CONNECTION {int(c['mysql_connection_id'])}")
                killed.append(c["client_id"])
            except DatabaseError:
                pass  # already gone
    conn.commit()
    return killed


def _wait_for_acks(cur: Any, conn: MySQLConnectionAbstract, epoch: int, hb_timeout: float,
                   timeout_s: float, result: TransitionResult) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        conn.commit()  # a fresh snapshot each poll
        rows = clients(cur, hb_timeout)
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
                "check those clients (`lazyshift status`) or raise --timeout")
        time.sleep(0.02)


def _abort(conn: MySQLConnectionAbstract, epoch: int, old_mode: str) -> None:
    """Restore the old mode under a fresh epoch (clients re-sync and resume)."""
    try:
        conn.rollback()
    except DatabaseError:
        conn.reconnect()
    cur = conn.cursor()
    cur.execute(
        "UPDATE lazyshift_control SET mode = %s, state = 'stable', target_mode = NULL, "
        "epoch = %s, changed_at = UTC_TIMESTAMP(6), note = 'transition aborted' "
        "WHERE id = 1 AND epoch = %s",
        (old_mode, epoch + 1, epoch),
    )
    conn.commit()


def abort(settings: Settings) -> ControlState:
    """Abandon a transition left draining by a command that died; keep the old mode."""
    conn = my.connect(settings.mysql)
    try:
        cur = conn.cursor()
        st = read_state(cur)
        conn.commit()
        if st.stable:
            return st
        _abort(conn, st.epoch, st.mode)
        return read_state(cur)
    finally:
        conn.close()
