"""MySQL / MariaDB access: connections, retry policy, and every dialect difference in one place.

The SQL the project writes runs unchanged on MariaDB 10.11 and MySQL 8.0:
- upserts are `INSERT ... ON DUPLICATE KEY UPDATE col = VALUES(col)` (never MySQL 8's
  `INSERT ... AS new`, which MariaDB rejects);
- shared row locks are `LOCK IN SHARE MODE` (`SHARE_LOCK`), not MySQL-only `FOR SHARE`;
- a `JSON` column is LONGTEXT + json_valid() on MariaDB and a native JSON column on MySQL,
  and the driver returns str or bytes for it: read it with `parse_json`;
- the server-side statement timeout has a different variable on each (`statement_timeout_sql`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import mysql.connector
from mysql.connector import errorcode
from mysql.connector.abstracts import MySQLConnectionAbstract
from mysql.connector.errors import get_mysql_exception
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from lazyshift.config import MySQLSettings

try:  # the C extension raises its own error, outside mysql.connector.Error (e.g. on commit)
    from _mysql_connector import MySQLInterfaceError
    from mysql.connector.connection_cext import CMySQLConnection
    from mysql.connector.cursor_cext import CMySQLCursor
except ImportError:  # pragma: no cover - the pure-Python connector has no such class
    MySQLInterfaceError = ConnectionError  # type: ignore[misc,assignment]
    CMySQLConnection = CMySQLCursor = None  # type: ignore[misc,assignment]

# What a failing MySQL raises: the connector's errors, and the C extension's own error for a
# connection that died inside a transaction or mid-result, which is not a mysql.connector.Error.
MYSQL_ERRORS = (mysql.connector.Error, MySQLInterfaceError)

# Strict mode on both servers: an out-of-range or over-long value is an error, never a
# silent truncation.
SQL_MODE = (
    "STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_bin"  # exists under this name on MariaDB and MySQL
CONNECT_TIMEOUT_S = 10
LOCK_WAIT_TIMEOUT_S = 10

SHARE_LOCK = "LOCK IN SHARE MODE"  # MySQL 8 also accepts it; FOR SHARE is MySQL-only

# Error numbers after which the same work can be tried again on a fresh transaction.
DEADLOCK = errorcode.ER_LOCK_DEADLOCK  # 1213
LOCK_WAIT_TIMEOUT = errorcode.ER_LOCK_WAIT_TIMEOUT  # 1205
CONNECTION_LOST = frozenset(
    {
        errorcode.CR_SERVER_GONE_ERROR,  # 2006
        errorcode.CR_SERVER_LOST,  # 2013
        errorcode.CR_SERVER_LOST_EXTENDED,  # 2055
        errorcode.CR_CONN_HOST_ERROR,  # 2003: server restarting / failing over
        errorcode.CR_CONNECTION_ERROR,  # 2002
        4031,  # MySQL 8.0.24+: disconnected by the server because of inactivity
        1927,  # MariaDB: ER_CONNECTION_KILLED
        errorcode.ER_SERVER_SHUTDOWN,  # 1053
    }
)
RETRYABLE = frozenset({DEADLOCK, LOCK_WAIT_TIMEOUT}) | CONNECTION_LOST


class RetryableConflict(Exception):
    """Raised by our own code when a transaction lost a race and must be rolled back and
    retried (e.g. a concurrent first insert of the same key under READ COMMITTED)."""


def connect(
    mysql_settings: MySQLSettings,
    *,
    migrate: bool = False,
    autocommit: bool = False,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    lock_wait_timeout: int = LOCK_WAIT_TIMEOUT_S,
    statement_timeout_s: float | None = None,
) -> MySQLConnectionAbstract:
    """A connection through the C extension, utf8mb4, strict, session time zone UTC.

    `migrate=True` logs in as the DDL-capable migrate user; otherwise the DML-only app user.
    The C extension of connector 9.1 exposes no client read timeout, so reads are bounded on
    the server side: `innodb_lock_wait_timeout` always, and a statement timeout if asked.
    Session settings are passed as connector options, so `conn.reconnect()` restores them.
    """
    user = mysql_settings.migrate_user if migrate else mysql_settings.user
    password = mysql_settings.migrate_password if migrate else mysql_settings.password
    conn = mysql.connector.connect(
        host=mysql_settings.host,
        port=mysql_settings.port,
        user=user,
        password=password,
        database=mysql_settings.database,
        use_pure=False,
        charset=CHARSET,
        collation=COLLATION,
        time_zone="+00:00",
        sql_mode=SQL_MODE,
        autocommit=autocommit,
        connection_timeout=max(1, int(connect_timeout)),
        init_command=f"SET SESSION innodb_lock_wait_timeout = {int(lock_wait_timeout)}",
    )
    if statement_timeout_s is not None:
        cur = conn.cursor()
        cur.execute(statement_timeout_sql(server_flavor(conn), statement_timeout_s))
        cur.close()
    return conn


def is_retryable(err: BaseException) -> bool:
    """Deadlock, lock-wait timeout, a lost connection, or a race we detected ourselves."""
    if isinstance(err, RetryableConflict):
        return True
    if isinstance(err, mysql.connector.Error):
        return err.errno in RETRYABLE
    return False


def is_connection_lost(err: BaseException) -> bool:
    return isinstance(err, mysql.connector.Error) and err.errno in CONNECTION_LOST


def retrying(attempts: int = 8, max_wait_s: float = 2.0) -> Retrying:
    """Tenacity retry loop for retryable MySQL errors; re-raises the last error.

    for attempt in retrying():
        with attempt:
            ...  # one whole transaction, rolled back on error
    """
    return Retrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(initial=0.01, max=max_wait_s, jitter=0.05),
        reraise=True,
    )


# -- dialect ---------------------------------------------------------------------------------


def server_flavor(conn: MySQLConnectionAbstract) -> str:
    """'mariadb' or 'mysql'."""
    return "mariadb" if "mariadb" in conn.get_server_info().lower() else "mysql"


def statement_timeout_sql(flavor: str, seconds: float) -> str:
    if flavor == "mariadb":
        return f"SET SESSION max_statement_time = {float(seconds)}"
    return f"SET SESSION max_execution_time = {int(seconds * 1000)}"  # SELECT only on MySQL


def parse_json(value: Any) -> Any:
    """A JSON column's value: str on MariaDB (LONGTEXT), str or bytes on MySQL."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return json.loads(value)
    return value  # already decoded by a driver that does so


# json.dumps with any option builds a new encoder at each call: a few us a backfilled row.
_JSON_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def dump_json(value: Any) -> str:
    """JSON text for a JSON column (compact, UTF-8, NaN refused)."""
    return _JSON_ENCODE(value)


def placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


def chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def rows_as_dicts(cursor: Any, rows: Iterable[Any]) -> list[dict[str, Any]]:
    """Rows from a tuple or dictionary cursor, as dicts keyed by column name."""
    rows = list(rows)
    if not rows or isinstance(rows[0], dict):
        return rows
    names = list(cursor.column_names)
    return [dict(zip(names, row, strict=True)) for row in rows]


@contextmanager
def read_snapshot(conn: MySQLConnectionAbstract) -> Iterator[MySQLConnectionAbstract]:
    """One consistent read-only snapshot for several queries (e.g. a document's four tables).

    Inside an already open transaction this adds nothing and leaves it open.
    """
    if conn.in_transaction:
        yield conn
        return
    # Not conn.start_transaction(readonly=True): the connector refuses it on MariaDB, whose
    # handshake version reads "5.5.5-10.11...". The statement itself works on both.
    cursor = conn.cursor()
    cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
    cursor.close()
    try:
        yield conn
    finally:
        conn.rollback()


def cursor_without_ping(conn: MySQLConnectionAbstract) -> Any:
    """A plain cursor on `conn`, without the round trip `conn.cursor()` spends on a ping
    (it checks the connection before every cursor it opens). A dead connection shows at the
    cursor's first statement instead, as a lost connection (2006/2013), which
    `run_in_transaction` retries on a new one; the ping's own "not available" was not."""
    if CMySQLConnection is not None and type(conn) is CMySQLConnection:
        conn.handle_unread_result()
        return CMySQLCursor(conn)
    return conn.cursor()


def sql_literals(conn: MySQLConnectionAbstract, params: Sequence[Any]) -> list[bytes] | None:
    """`params` as SQL literals for this connection (the connector's own quoting and escaping,
    what `execute` does with parameters), or None where the connector has no such call."""
    prepare = getattr(conn, "prepare_for_mysql", None)
    return None if prepare is None else list(prepare(tuple(params)))


def execute_script(conn: MySQLConnectionAbstract, statements: Sequence[bytes]) -> list[Any]:
    """`statements` (complete SQL, values already literals) in ONE round trip, as one
    multi-statement query; for each statement (column names, rows), or None if it returns
    no result set.

    The server stops at the first statement that fails (none after it runs) and that error
    is raised as the connector's own `mysql.connector.Error` with its errno, so the retry
    policy sees a deadlock or a lost connection whichever statement met it (the C extension
    raises a later statement's error as its own MySQLInterfaceError).

    Results are walked on the connection, not with `cursor.execute(multi=True)`: that one
    re-parses the statements and raises and catches an error, whose message it looks up by
    scanning every error code, for each statement without a result set (START TRANSACTION,
    INSERT, COMMIT): most of the client time of a one-document write."""
    if CMySQLConnection is None or type(conn) is not CMySQLConnection:
        cursor = conn.cursor()
        try:
            return [
                (list(r.column_names), r.fetchall()) if r.with_rows else None
                for r in cursor.execute(b";".join(statements), multi=True)
            ]
        finally:
            cursor.close()
    results: list[Any] = []
    try:
        first = conn.cmd_query(b";".join(statements))
        columns = first.get("columns") if isinstance(first, dict) else None
        while True:
            if conn.result_set_available:
                names = [c[0] for c in columns] if columns else []
                results.append((names, conn.get_rows()[0]))
            else:
                results.append(None)
            if not conn.next_result():
                return results
            columns = conn.fetch_eof_columns()["columns"] if conn.result_set_available else None
    except MySQLInterfaceError as exc:
        raise get_mysql_exception(
            msg=getattr(exc, "msg", str(exc)),
            errno=getattr(exc, "errno", None),
            sqlstate=getattr(exc, "sqlstate", None),
        ) from exc


T = TypeVar("T")


def run_in_transaction(
    conn: MySQLConnectionAbstract,
    fn: Callable[[Any], T],
    *,
    retry: Retrying | None = None,
    fn_begins_and_commits: bool = False,
) -> T:
    """`fn(cursor)` in one transaction, committed; retried as a whole on deadlocks,
    lock-wait timeouts and lost connections (reconnecting first). Any other error rolls
    back and propagates. `fn` must be safe to run again (it is, when all it does is SQL
    inside this transaction).

    `fn_begins_and_commits`: `fn` sends START TRANSACTION and COMMIT itself, as parts of
    its own multi-statement round trips (`execute_script`), and leaves no transaction open
    when it returns; this only retries it and rolls back what an error left open."""
    reconnect = False
    for attempt in retry or retrying():
        with attempt:
            if reconnect:
                conn.reconnect()
                reconnect = False
            try:
                if not fn_begins_and_commits:
                    conn.start_transaction()
                elif conn.in_transaction:  # as start_transaction: never commit the caller's
                    raise mysql.connector.ProgrammingError("Transaction already in progress")
                cursor = cursor_without_ping(conn)
                try:
                    out = fn(cursor)
                finally:
                    cursor.close()
                if not fn_begins_and_commits:
                    conn.commit()
                return out
            except BaseException as exc:
                if is_connection_lost(exc):
                    reconnect = True
                else:
                    with contextlib.suppress(Exception):  # the original error matters
                        conn.rollback()
                raise
    raise AssertionError("unreachable: retrying() re-raises the last error")
