"""A client's write lease is renewed only once its heartbeat has committed (issue 9, hole 2).

The control plane stops waiting for a client whose heartbeat is older than the timeout; a
client that can still read the control row but cannot record its heartbeat must stop
writing before then, or a write of its old mode can land after the flip. Real MariaDB: the
heartbeat table is renamed away (as root) so the beat fails while the control read works.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lazyshift.client.follower import Follower
from lazyshift.config import Settings

DEADLINE_S = 60.0  # against hangs only


def wait_for(cond: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling interval, not synchronisation


def test_lease_lapses_while_the_heartbeat_fails_and_returns_after(migrated, mysql_root) -> None:
    settings: Settings = migrated.model_copy(
        update={
            "client": migrated.client.model_copy(
                update={"heartbeat_timeout_s": 1.0, "poll_interval_s": 0.05}
            )
        }
    )
    stop = threading.Event()
    f = Follower(settings, "lease-test", "0/1", stop)
    f.start()
    cur = mysql_root.cursor()
    renamed = False
    try:
        wait_for(lambda: f.known_mode() is not None, "a first lease")
        epoch = f.gate()[1]
        f.release()
        assert f.lease_valid(epoch)
        cur.execute("RENAME TABLE client_heartbeat TO client_heartbeat_away")
        renamed = True
        # the control row is still readable, the heartbeat is not: the lease must lapse
        wait_for(lambda: not f.lease_valid(epoch), "the lease to lapse")
        assert f.known_mode() is None
        cur.execute("RENAME TABLE client_heartbeat_away TO client_heartbeat")
        renamed = False
        wait_for(lambda: f.lease_valid(epoch), "the lease to come back")
    finally:
        if renamed:
            cur.execute("RENAME TABLE client_heartbeat_away TO client_heartbeat")
        stop.set()
        f.join(timeout=10)
        cur.close()
