"""Fixtures shared by the integration tests, one per concept: a migrated database
(`migrated`), app-user connections to it (`connect`, `conn`, `app_conn`), its MongoDB
collection (`collection`), and a real moto S3 server on loopback (`moto_server`, `aws_env`).
The stack and the fresh per-test databases come from tests/conftest.py."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import free_port, poll
from lazyshift import schema_migrate
from lazyshift.config import Settings
from lazyshift.core import mysql as db

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    """`settings` whose MySQL database has every migration applied."""
    schema_migrate.migrate(settings)
    return settings


@pytest.fixture
def connect(migrated: Settings) -> Iterator[Callable[..., object]]:
    """Open app-user connections to the migrated database; all closed after the test."""
    opened = []

    def _connect(**kwargs):
        conn = db.connect(migrated.mysql, **kwargs)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        with contextlib.suppress(Exception):  # an already broken connection is fine to drop
            conn.close()


@pytest.fixture
def conn(connect):
    """One app-user connection (autocommit off) to the migrated database."""
    return connect()


@pytest.fixture
def collection(migrated: Settings, mongo_db):
    return mongo_db[migrated.mongo.collection]


@pytest.fixture
def app_conn(connect):
    """One app-user connection in autocommit mode."""
    return connect(autocommit=True)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError as exc:
        return getattr(exc, "code", None) is not None  # an HTTP error is an answer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's real server on a free loopback port (started here, stopped after); its URL."""
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: proc.poll() is not None or _answers(url), "moto server", timeout=60)
        assert proc.poll() is None, "moto server exited"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def aws_env(monkeypatch) -> dict[str, str]:
    for k, v in AWS_ENV.items():
        monkeypatch.setenv(k, v)
    return dict(AWS_ENV)
