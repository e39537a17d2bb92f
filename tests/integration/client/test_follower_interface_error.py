"""The follower's poller survives the C extension's own MySQLInterfaceError (outside
mysql.connector.Error), as it survives any other MySQL failure: it reconnects and the
lease comes back. Uncaught, the error ended the poller thread and the client never wrote
again. Real MariaDB; the error is raised once where the control row is read (what a
connection dying mid-result raises there)."""

from __future__ import annotations

import threading

from helpers import poll
from lazyshift.client import follower as follower_module
from lazyshift.client.follower import Follower
from lazyshift.config import Settings
from lazyshift.core.mysql import MySQLInterfaceError


def test_poller_survives_an_interface_error(migrated, monkeypatch) -> None:
    settings: Settings = migrated.model_copy(
        update={"client": migrated.client.model_copy(update={"poll_interval_s": 0.05})}
    )
    real_read = follower_module.store.read_control
    raised = threading.Event()

    def read_control(cur):
        if not raised.is_set():
            raised.set()
            raise MySQLInterfaceError("Lost connection to server during query")
        return real_read(cur)

    monkeypatch.setattr(follower_module.store, "read_control", read_control)
    stop = threading.Event()
    f = Follower(settings, "interface-error-test", "0/1", stop)
    f.start()
    try:
        poll(raised.is_set, "the injected error")
        poll(lambda: f.known_mode() is not None, "a lease after the error")
        assert f._thread.is_alive()
        epoch = f.gate()[1]
        f.release()
        assert f.lease_valid(epoch)
    finally:
        stop.set()
        f.join(timeout=10)
