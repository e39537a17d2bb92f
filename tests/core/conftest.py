"""Fixtures for the core tests: a migrated database and connections to it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from lazyshift import schema_migrate
from lazyshift.config import Settings
from lazyshift.core import mysql as db


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
