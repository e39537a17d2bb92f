"""A client's side of the control plane: follow the mode, heartbeat, acknowledge epochs.

The consumer thread brackets every write with `gate()` ... `release()`. `gate()` returns the
mode and epoch to write in, waiting while a transition drains or while the client's lease
(its last successful read of the control row) is older than half the heartbeat timeout.
An epoch is acknowledged only while no write is in hand, so an acknowledgement means
"I will not write under the old epoch again".
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from lazyshift import logs
from lazyshift.config import Settings
from lazyshift.control.ladder import MODE_NAMES, MYSQL_WRITES, Mode
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.mysql import MYSQL_ERRORS
from lazyshift.core.mysql_store import ControlState, Heartbeat


class Stopped(Exception):
    """The client is shutting down while waiting at the gate."""


def default_client_id(partition: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{partition}"[:64]


class Follower:
    def __init__(
        self,
        settings: Settings,
        client_id: str,
        partition: str,
        stop: threading.Event,
        stats: Callable[[], dict[str, Any]] | None = None,
        write_connection_id: Callable[[], int | None] | None = None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.partition = partition
        self.stop = stop
        self.stats = stats or (lambda: {})
        self.write_connection_id = write_connection_id or (lambda: None)
        self.poll_s = settings.client.poll_interval_s
        self.lease_s = settings.client.heartbeat_timeout_s / 2
        self._cond = threading.Condition()
        self._state: ControlState | None = None
        self._last_ok = float("-inf")
        self._busy = False
        self.acked_epoch = 0
        self.mode_in_use: str | None = None
        self._conn: Any = None
        self._thread = threading.Thread(target=self._loop, name="control-follower", daemon=True)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)
        if self._conn is not None:
            with contextlib.suppress(*MYSQL_ERRORS):
                self._conn.close()

    # -- consumer side -----------------------------------------------------------------------
    def gate(self) -> tuple[str, int]:
        """Wait until a write may proceed; return (mode, epoch) to write in."""
        with self._cond:
            while True:
                st = self._state
                if st is not None and time.monotonic() - self._last_ok < self.lease_s:
                    if st.epoch != self.acked_epoch:
                        self.acked_epoch = st.epoch  # nothing in hand: safe to acknowledge
                        self._cond.notify_all()  # let the poller write the ack now
                    if st.stable:
                        self._busy = True
                        self.mode_in_use = st.mode
                        return st.mode, st.epoch
                if self.stop.is_set():
                    raise Stopped()
                self._cond.wait(0.02)

    def release(self) -> None:
        with self._cond:
            self._busy = False

    def refresh_now(self) -> None:
        """After a Fenced write: re-read the control row before the next gate."""
        with self._cond:
            self._last_ok = float("-inf")
            self._cond.notify_all()

    def lease_valid(self, epoch: int) -> bool:
        """Is `epoch` still the current, stable epoch as of a recent read of the control row?
        (After a SIGSTOP the poller may refresh first: fresh, but a newer epoch.)"""
        with self._cond:
            st = self._state
            return (
                st is not None
                and st.epoch == epoch
                and st.stable
                and time.monotonic() - self._last_ok < self.lease_s
            )

    def stable_mode(self) -> str | None:
        """The mode of the last control row read if it is stable (no drain under way): where
        the next gated write will go, which may differ from `mode_in_use` when nothing was
        written since a transition (the stream is all read)."""
        with self._cond:
            st = self._state
            return st.mode if st is not None and st.stable else None

    def known_mode(self) -> str | None:
        """The mode of the last control row read, while the lease holds; else None. A drain
        counts only between two modes that both read MongoDB (mongo <-> dual): MongoDB is
        the truth on both sides of it, so a read from MongoDB cannot be stale whichever way
        it ends. A drain towards mysql-primary may have ended without us: None."""
        with self._cond:
            st = self._state
            if st is None or time.monotonic() - self._last_ok >= self.lease_s:
                return None
            if st.stable:
                return st.mode
            sides = (st.mode, st.target_mode or "")
            if all(m in MODE_NAMES and Mode(m) not in MYSQL_WRITES for m in sides):
                return st.mode
            return None

    # -- poller --------------------------------------------------------------------------------
    def _loop(self) -> None:
        failures = 0
        while not self.stop.is_set():
            try:
                if self._conn is None:
                    self._conn = my.connect(self.settings.mysql, autocommit=True)
                cur = self._conn.cursor()
                # The lease runs from before the read, and is renewed only once the
                # heartbeat has committed: a client whose heartbeat fails stops writing
                # before the control plane stops waiting for it.
                read_at = time.monotonic()
                st = store.read_control(cur)
                with self._cond:
                    self._state = st
                    if not self._busy and st.epoch != self.acked_epoch:
                        self.acked_epoch = st.epoch
                    acked = self.acked_epoch
                    self._cond.notify_all()
                self._beat(cur, acked)
                cur.close()
                with self._cond:
                    self._last_ok = read_at
                    self._cond.notify_all()
                if failures:
                    logs.event("control.reconnected", client_id=self.client_id)
                failures = 0
            except MYSQL_ERRORS as exc:  # the C extension's own error too: uncaught, it would
                # end this thread and with it the lease, and the client would stop writing
                failures += 1
                if failures == 1:
                    logs.event("control.unreachable", error=str(exc), client_id=self.client_id)
                if self._conn is not None:
                    with contextlib.suppress(*MYSQL_ERRORS):
                        self._conn.close()
                self._conn = None
            with self._cond:
                draining = self._state is not None and not self._state.stable
                pending = self._state is not None and self._state.epoch != self.acked_epoch
                # Poll fast while a transition drains so acks and resumption are prompt.
                self._cond.wait(0.02 if (draining or pending) else self.poll_s)

    def _beat(self, cur: Any, acked: int) -> None:
        store.beat(
            cur,
            Heartbeat(
                self.client_id,
                socket.gethostname(),
                os.getpid(),
                self.partition,
                self.mode_in_use,
                acked,
                self.write_connection_id(),
                self.stats(),
            ),
        )

    def deregister(self) -> None:
        """On a clean exit: leave the heartbeat table so transitions do not wait for us."""
        try:
            conn = my.connect(self.settings.mysql, autocommit=True)
            store.remove_client(conn.cursor(), self.client_id)
            conn.close()
        except MYSQL_ERRORS as exc:
            logs.event("control.deregister_failed", error=str(exc))
