"""Which failures the consumer waits out (reconnect and retry the same frame) and which it
cannot fix by retrying (the frame is dead-lettered with the reason and the stream goes on).

Only connection-level failures are transient: a store or the source that is down, restarting
or unreachable, and lock conflicts that a retry resolves. Everything a message itself causes
(a value a store refuses, a bug its content triggers) would fail again on every retry and
would stop the partition forever, so it is not.
"""

from __future__ import annotations

import mysql.connector
from mysql.connector import errors as my_errors
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from lazyshift.client.follower import Stopped
from lazyshift.core.framing import FramingError
from lazyshift.core.mongo_store import ConcurrentWrite
from lazyshift.core.mysql import MySQLInterfaceError

# MySQL errnos a retry can fix: deadlock, lock wait, too many connections, server shutdown,
# killed connection, a statement timeout under load, and the client's "can't connect",
# "gone away" and "lost connection" family.
MYSQL_TRANSIENT_ERRNO = frozenset(
    {1040, 1053, 1205, 1213, 1927, 1969, 2002, 2003, 2005, 2006, 2013, 2026, 2055, 3024}
)
# MongoDB server codes of a node that is stepping down, shutting down or out of time.
MONGO_TRANSIENT_CODES = frozenset(
    {6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436}
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, Stopped):
        return False
    if isinstance(exc, OSError | ConnectionError | FramingError | ConcurrentWrite):
        return True
    if isinstance(exc, MySQLInterfaceError):
        return True  # "Lost connection to MySQL server during query" and its kin
    if isinstance(exc, mysql.connector.Error):
        return _mysql_transient(exc)
    if isinstance(exc, PyMongoError):
        return _mongo_transient(exc)
    return False


def _mysql_transient(exc: mysql.connector.Error) -> bool:
    if exc.errno in MYSQL_TRANSIENT_ERRNO:
        return True
    # No errno: the connector's own "not connected" / pool errors are about the connection.
    return exc.errno in (None, -1) and isinstance(
        exc, my_errors.InterfaceError | my_errors.OperationalError | my_errors.PoolError
    )


def _mongo_transient(exc: PyMongoError) -> bool:
    if isinstance(exc, ConnectionFailure):  # AutoReconnect, NetworkTimeout, selection timeout
        return True
    if exc.has_error_label("TransientTransactionError") or exc.has_error_label(
        "RetryableWriteError"
    ):
        return True
    return isinstance(exc, OperationFailure) and exc.code in MONGO_TRANSIENT_CODES
