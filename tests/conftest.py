"""Shared fixtures: one real MariaDB + FerretDB stack for the whole run, fresh databases per test.

The stack is started with the project's own dev-stack code in its own state folder, on free
ports (recorded in that folder, so `make test` and pytest agree on them and a developer's
`lazyshift dev up`, or another checkout's stacks, are left alone), and reused if running.
What this session started, it stops, also when interrupted (SIGINT, SIGTERM).
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import mysql.connector
import pymongo
import pytest

from lazyshift.config import Settings
from lazyshift.dev.stack import REPO_ROOT, DevStack, StackPorts

TEST_STATE = Path(os.environ.get("LAZYSHIFT_TEST_STATE_DIR", REPO_ROOT / ".state" / "test"))
# 0: any free port (the one recorded in TEST_STATE if it is free); a number: that port.
TEST_PORTS = StackPorts(
    mysql=int(os.environ.get("LAZYSHIFT_TEST_MYSQL_PORT", "0")),
    mongo=int(os.environ.get("LAZYSHIFT_TEST_MONGO_PORT", "0")),
)


def pytest_configure(config: pytest.Config) -> None:
    # pytest runs fixture teardown on Ctrl-C (KeyboardInterrupt) but not on SIGTERM: make
    # SIGTERM an interrupt too, so the session's servers are stopped either way.
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session")
def stack() -> Iterator[DevStack]:
    s = DevStack(TEST_STATE, TEST_PORTS, with_source=False)
    already_running = {c.name for c in s.components() if c.pid() is not None}
    s.up()
    try:
        yield s
    finally:
        for comp in reversed(s.components()):
            if comp.name not in already_running:
                s.stop_component(comp.name)


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
            "port": stack.ports.mysql,
            "database": mysql_db,
            "user": stack_credentials["app_user"],
            "password": stack_credentials["app_password"],
            "migrate_user": stack_credentials["migrate_user"],
            "migrate_password": stack_credentials["migrate_password"],
        },
        mongo={"uri": f"mongodb://127.0.0.1:{stack.ports.mongo}/", "database": mongo_db},
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
        unix_socket=str(stack.mysql_socket),
        user=stack.admin_user,
        database=settings.mysql.database,
    )
    yield conn
    conn.close()
