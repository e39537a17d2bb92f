"""Shared fixtures: one real MariaDB + FerretDB stack for the whole run, fresh databases per test.

The stack is started with the project's own dev-stack code on test ports (so a developer's
`lazyshift dev up` on the default ports is left alone) and reused if already running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import mysql.connector
import pymongo
import pytest

from lazyshift.config import Settings
from lazyshift.dev.stack import REPO_ROOT, DevStack, StackPorts

TEST_STATE = Path(os.environ.get("LAZYSHIFT_TEST_STATE_DIR", REPO_ROOT / ".state" / "test"))
TEST_PORTS = StackPorts(
    mysql=int(os.environ.get("LAZYSHIFT_TEST_MYSQL_PORT", "13306")),
    mongo=int(os.environ.get("LAZYSHIFT_TEST_MONGO_PORT", "37017")),
    source=0,
)


@pytest.fixture(scope="session")
def stack() -> DevStack:
    s = DevStack(TEST_STATE, TEST_PORTS, with_source=False)
    s.up()
    return s


@pytest.fixture(scope="session")
def stack_credentials(stack: DevStack) -> dict[str, str]:
    return stack._credentials()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(stack: DevStack, stack_credentials: dict[str, str]) -> Iterator[Settings]:
    """Settings pointing at a fresh, empty MySQL database and a fresh MongoDB database."""
    mysql_db = _unique("lzt")
    mongo_db = _unique("lzt")
    grants = []
    for host in ("localhost", "127.0.0.1"):
        grants.append(
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{mysql_db}`.* "
            f"TO '{stack_credentials['app_user']}'@'{host}'"
        )
        grants.append(
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES "
            f"ON `{mysql_db}`.* TO '{stack_credentials['migrate_user']}'@'{host}'"
        )
    stack.root_sql(f"CREATE DATABASE `{mysql_db}` CHARACTER SET utf8mb4;" + ";".join(grants))
    s = Settings(
        mysql={
            "host": "127.0.0.1",
            "port": TEST_PORTS.mysql,
            "database": mysql_db,
            "user": stack_credentials["app_user"],
            "password": stack_credentials["app_password"],
            "migrate_user": stack_credentials["migrate_user"],
            "migrate_password": stack_credentials["migrate_password"],
        },
        mongo={"uri": f"mongodb://127.0.0.1:{TEST_PORTS.mongo}/", "database": mongo_db},
        state_dir=TEST_STATE,
    )
    yield s
    stack.root_sql(f"DROP DATABASE IF EXISTS `{mysql_db}`")
    client = pymongo.MongoClient(s.mongo.uri)
    client.drop_database(mongo_db)
    client.close()


@pytest.fixture
def mongo_db(settings: Settings) -> Iterator[pymongo.database.Database]:
    client = pymongo.MongoClient(settings.mongo.uri, tz_aware=True)
    yield client[settings.mongo.database]
    client.close()


@pytest.fixture
def mysql_root(stack: DevStack, settings: Settings):
    """A root connection over the socket, for assertions that need to look under the hood."""
    conn = mysql.connector.connect(
        unix_socket=str(stack.mysql_socket), user="root", database=settings.mysql.database
    )
    yield conn
    conn.close()
