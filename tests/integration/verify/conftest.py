"""Fixtures shared by the verify tests: the same documents in MongoDB and in MySQL."""

from __future__ import annotations

import pytest

from dataset import load_mongo, make_doc, write_mysql


@pytest.fixture
def synced(request, migrated, collection, app_conn):
    """The test module's N documents in MongoDB and the same in MySQL."""
    n = request.module.N
    load_mongo(collection, n)
    write_mysql(app_conn, [make_doc(i) for i in range(n)])
    return migrated
