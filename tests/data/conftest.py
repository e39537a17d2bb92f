"""Fixtures for the data-command tests: a migrated database, a loaded MongoDB collection,
and a real moto S3 server on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import poll
from lazyshift import schema_migrate
from lazyshift.config import Settings
from lazyshift.core import mysql as db

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def migrated(settings: Settings) -> Settings:
    schema_migrate.migrate(settings)
    return settings


@pytest.fixture
def collection(migrated: Settings, mongo_db):
    return mongo_db[migrated.mongo.collection]


@pytest.fixture
def app_conn(migrated: Settings):
    conn = db.connect(migrated.mysql, autocommit=True)
    yield conn
    conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError as exc:
        return getattr(exc, "code", None) is not None  # an HTTP error is an answer


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto's real server on a free loopback port (started here, stopped after); its URL."""
    port = _free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
