"""The read API under hostile load (issue 9, hole 11): half-open connections cost no thread and
no MySQL connection, /healthz keeps answering, and reads share a bounded pool."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import http_get
from lazyshift.client.api import READ_WORKERS, ReadAPI
from lazyshift.core.mongo_store import MongoStore
from lazyshift.router import Router


class _Mode:
    """The router's view of the control plane for reads: only the mode in use matters."""

    mode_in_use = "mongo"


@pytest.fixture
def api(migrated) -> Iterator[ReadAPI]:
    store = MongoStore.open(migrated)
    api = ReadAPI(Router(migrated, store, follower=_Mode()), "127.0.0.1", 0)  # type: ignore[arg-type]
    api.start()
    try:
        yield api
    finally:
        api.stop()
        store.close()


def _half_open(port: int, n: int) -> list[socket.socket]:
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if i % 3 == 0:  # a request that never ends (slowloris)
            s.sendall(b"GET /shipments/x HTTP/1.1\r\nHost: a\r\n")
        elif i % 3 == 1:  # a whole read whose answer is never read; the rest send nothing
            s.sendall(f"GET /shipments/k{i} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
        socks.append(s)
    return socks


def test_healthz_answers_with_1500_half_open_connections(api, migrated, mysql_root) -> None:
    before = _mysql_connections(mysql_root, migrated.mysql.user)
    socks = _half_open(api.port, 1500)
    try:
        status, body, _ = http_get(api.port, "/healthz", timeout=30)
        assert status == 200 and body["status"] == "ok"
        assert http_get(api.port, "/shipments/nope", timeout=30)[0] == 404
        opened = _mysql_connections(mysql_root, migrated.mysql.user) - before
        assert opened <= READ_WORKERS
    finally:
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()


def _mysql_connections(mysql_root, user: str) -> int:
    cur = mysql_root.cursor()
    cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
    return cur.fetchone()[0]


def test_reads_share_a_bounded_mysql_pool(api, migrated, mysql_root) -> None:
    before = _mysql_connections(mysql_root, migrated.mysql.user)
    with ThreadPoolExecutor(64) as pool:
        statuses = list(
            pool.map(lambda i: http_get(api.port, f"/shipments/k{i}", 30)[0], range(400))
        )
    assert statuses == [404] * 400
    opened = _mysql_connections(mysql_root, migrated.mysql.user) - before
    assert 0 < opened <= READ_WORKERS


def test_keep_alive_and_bad_requests(api) -> None:
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as s:
        for _ in range(3):  # one connection, several requests
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
        s.sendall(b"POST /healthz HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
        assert s.recv(65536).startswith(b"HTTP/1.1 405")
    with socket.create_connection(("127.0.0.1", api.port), timeout=30) as s:
        s.sendall(b"garbage\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 400")
