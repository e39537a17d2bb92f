"""Versioned migrations on the real MariaDB, least privilege, and the connection layer."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import mysql.connector
import pytest
from mysql.connector.connection_cext import CMySQLConnection

from lazyshift import schema_migrate
from lazyshift.core import mysql as db
from lazyshift.schema_migrate import SchemaMigrationError

TABLES = {
    "shipment",
    "shipment_party",
    "shipment_item",
    "shipment_event",
    "dead_letter",
    "lazyshift_control",
    "client_heartbeat",
    "client_offset",
    "backfill_partition",
    "backfill_control",
    "archive_record",
    "schema_migrations",
}


def tables(mysql_root) -> set[str]:
    cur = mysql_root.cursor()
    cur.execute("SHOW TABLES")
    return {r[0] for r in cur.fetchall()}


@pytest.fixture
def migrations_dir(tmp_path: Path) -> Path:
    """A copy of the project's migrations that a test may change."""
    target = tmp_path / "migrations"
    shutil.copytree(schema_migrate.default_directory(), target)
    return target


# -- migrate / status ----------------------------------------------------------------------------


def test_applies_once_and_rerun_is_noop(settings, mysql_root):
    before = schema_migrate.status(settings)
    assert before and all(m["state"] == "pending" for m in before)
    applied = schema_migrate.migrate(settings)
    assert [m["version"] for m in applied] == [m["version"] for m in before]
    assert applied[0]["name"] == "initial" and len(applied[0]["sha256"]) == 64
    assert tables(mysql_root) >= TABLES
    assert schema_migrate.migrate(settings) == []
    after = schema_migrate.status(settings)
    assert all(m["state"] == "applied" and m["applied_at"] for m in after)
    cur = mysql_root.cursor()
    cur.execute("SELECT COUNT(*) FROM schema_migrations")
    assert cur.fetchone()[0] == len(applied)


def test_seeds_control_plane(migrated, mysql_root):
    cur = mysql_root.cursor(dictionary=True)
    cur.execute("SELECT id, mode, epoch, state, target_mode, flip_epoch FROM lazyshift_control")
    assert cur.fetchall() == [
        {
            "id": 1,
            "mode": "mongo",
            "epoch": 1,
            "state": "stable",
            "target_mode": None,
            "flip_epoch": None,
        }
    ]
    cur.execute("SELECT id, paused FROM backfill_control")
    assert cur.fetchall() == [{"id": 1, "paused": 0}]


def test_keys_are_binary_collated(migrated, mysql_root):
    cur = mysql_root.cursor()
    cur.execute(
        "SELECT table_name, column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = DATABASE() AND column_name IN "
        "('shipment_key', 'dedup_key', 'lower_key', 'upper_key', 'checkpoint_key')"
    )
    rows = cur.fetchall()
    assert len(rows) >= 9
    assert {r[2] for r in rows} == {"utf8mb4_bin"}


def test_new_file_applied_incrementally(settings, migrations_dir, mysql_root):
    schema_migrate.migrate(settings, directory=migrations_dir)
    (migrations_dir / "0900_extra_index.sql").write_text(
        "-- a comment; with a semicolon\n"
        "CREATE INDEX ix_item_sku ON shipment_item (sku);\n"
        "INSERT INTO client_offset (partition_spec, seq) VALUES ('a;b', 1);\n"
    )
    applied = schema_migrate.migrate(settings, directory=migrations_dir)
    assert [(m["version"], m["name"]) for m in applied] == [(900, "extra_index")]
    cur = mysql_root.cursor()
    cur.execute("SELECT partition_spec FROM client_offset")
    assert cur.fetchall() == [("a;b",)]
    assert schema_migrate.migrate(settings, directory=migrations_dir) == []


def test_changed_checksum_is_an_error(settings, migrations_dir):
    schema_migrate.migrate(settings, directory=migrations_dir)
    path = migrations_dir / "0001_initial.sql"
    path.write_text(path.read_text() + "\n-- edited after the fact\n")
    with pytest.raises(
        SchemaMigrationError, match="0001_initial.sql was changed after it was applied"
    ) as info:
        schema_migrate.migrate(settings, directory=migrations_dir)
    assert "add the change as a new numbered file" in str(info.value)
    states = {
        m["version"]: m["state"] for m in schema_migrate.status(settings, directory=migrations_dir)
    }
    assert states[1] == "changed"


def test_missing_file_is_an_error(settings, migrations_dir):
    (migrations_dir / "0900_more.sql").write_text("CREATE TABLE t2 (id INT PRIMARY KEY);")
    schema_migrate.migrate(settings, directory=migrations_dir)
    (migrations_dir / "0900_more.sql").unlink()
    with pytest.raises(SchemaMigrationError, match="0900_more is applied .* file is missing"):
        schema_migrate.migrate(settings, directory=migrations_dir)
    assert schema_migrate.status(settings, directory=migrations_dir)[-1]["state"] == "missing-file"


def test_failing_statement_names_file_and_statement(settings, migrations_dir):
    (migrations_dir / "0900_broken.sql").write_text(
        "CREATE TABLE ok_one (id INT PRIMARY KEY);\nCREATE TABLE broken (id NOPE);\n"
    )
    with pytest.raises(SchemaMigrationError, match=r"0900_broken.sql failed at statement 2 of 2"):
        schema_migrate.migrate(settings, directory=migrations_dir)
    states = {
        m["version"]: m["state"] for m in schema_migrate.status(settings, directory=migrations_dir)
    }
    assert states.pop(900) == "pending"
    assert set(states.values()) == {"applied"}


def test_bad_file_name_is_an_error(settings, migrations_dir):
    (migrations_dir / "2_bad name.sql").write_text("SELECT 1;")
    with pytest.raises(SchemaMigrationError, match="named NNNN_name.sql"):
        schema_migrate.migrate(settings, directory=migrations_dir)


def test_concurrent_migrators_apply_once(settings):
    results, errors = [], []

    def run():
        try:
            results.append(schema_migrate.migrate(settings))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    shipped = len(schema_migrate.discover())
    assert sorted(len(r) for r in results) == [0, 0, 0, shipped]


# -- least privilege -----------------------------------------------------------------------------


def test_app_user_cannot_run_ddl(migrated):
    conn = db.connect(migrated.mysql)
    cur = conn.cursor()
    for ddl in (
        "CREATE TABLE sneaky (id INT PRIMARY KEY)",
        "DROP TABLE dead_letter",
        "ALTER TABLE shipment ADD COLUMN x INT",
        "CREATE INDEX ix_x ON shipment (source)",
    ):
        with pytest.raises(mysql.connector.Error) as info:
            cur.execute(ddl)
        assert info.value.errno == 1142, ddl  # ER_TABLEACCESS_DENIED_ERROR
    cur.execute("SELECT COUNT(*) FROM shipment")  # DML is fine
    assert cur.fetchone() == (0,)
    conn.close()


def test_migrate_as_app_user_fails(settings):
    app_only = settings.model_copy(
        update={
            "mysql": settings.mysql.model_copy(
                update={
                    "migrate_user": settings.mysql.user,
                    "migrate_password": settings.mysql.password,
                }
            )
        }
    )
    with pytest.raises(mysql.connector.Error) as info:
        schema_migrate.migrate(app_only)
    assert info.value.errno == 1142


# -- the connection layer ------------------------------------------------------------------------


def test_c_extension_is_used(migrated):
    assert mysql.connector.HAVE_CEXT is True
    conn = db.connect(migrated.mysql)
    assert isinstance(conn, CMySQLConnection)
    conn.close()


def test_session_settings(migrated):
    conn = db.connect(migrated.mysql, migrate=True, autocommit=True, statement_timeout_s=30)
    cur = conn.cursor()
    cur.execute(
        "SELECT @@session.time_zone, @@session.sql_mode, @@session.character_set_client,"
        " @@session.innodb_lock_wait_timeout, @@session.autocommit, CURRENT_USER()"
    )
    tz, mode, charset, lock_wait, autocommit, user = cur.fetchone()
    assert tz == "+00:00"
    assert "STRICT_TRANS_TABLES" in mode
    assert charset == "utf8mb4"
    assert lock_wait == db.LOCK_WAIT_TIMEOUT_S
    assert autocommit == 1
    assert user.startswith(migrated.mysql.migrate_user + "@")
    assert db.server_flavor(conn) == "mariadb"
    cur.execute("SELECT @@session.max_statement_time")
    assert float(cur.fetchone()[0]) == 30.0
    conn.reconnect()  # session settings survive a reconnect
    cur = conn.cursor()
    cur.execute("SELECT @@session.time_zone, @@session.innodb_lock_wait_timeout")
    assert cur.fetchone() == ("+00:00", db.LOCK_WAIT_TIMEOUT_S)
    conn.close()


def test_strict_mode_refuses_truncation(conn):
    cur = conn.cursor()
    with pytest.raises(mysql.connector.Error) as info:
        cur.execute("INSERT INTO client_offset (partition_spec, seq) VALUES (%s, 1)", ("x" * 33,))
    assert info.value.errno == 1406  # data too long, not a silent cut
    conn.rollback()


def test_parse_json_accepts_str_and_bytes():
    assert db.parse_json('{"a": 1}') == {"a": 1}
    assert db.parse_json(b'{"a": [1.5]}') == {"a": [1.5]}
    assert db.parse_json(None) is None
    assert db.parse_json({"already": True}) == {"already": True}


def test_real_deadlock_is_retryable(connect):
    a, b = connect(), connect()
    for c in (a, b):
        cur = c.cursor()
        cur.execute(
            "INSERT IGNORE INTO client_offset (partition_spec, seq) VALUES ('x', 1), ('y', 1)"
        )
        c.commit()
    ca, cb = a.cursor(), b.cursor()
    ca.execute("UPDATE client_offset SET seq = 2 WHERE partition_spec = 'x'")
    cb.execute("UPDATE client_offset SET seq = 3 WHERE partition_spec = 'y'")
    errors: list[Exception] = []

    def second(cur, spec):
        try:
            cur.execute("UPDATE client_offset SET seq = 4 WHERE partition_spec = %s", (spec,))
        except mysql.connector.Error as exc:
            errors.append(exc)

    t = threading.Thread(target=second, args=(ca, "y"))
    t.start()
    second(cb, "x")
    if not errors:  # b won: a is the victim, wait for it
        t.join(15)
    else:
        b.rollback()
        t.join(15)
    assert errors and errors[0].errno == db.DEADLOCK
    assert db.is_retryable(errors[0])
    a.rollback()
    b.rollback()


def test_is_retryable_classification():
    def err(errno):
        return mysql.connector.errors.DatabaseError(msg="x", errno=errno)

    assert db.is_retryable(err(1213)) and db.is_retryable(err(1205))
    assert db.is_retryable(err(2013)) and db.is_retryable(err(2006))
    assert db.is_connection_lost(err(2013)) and not db.is_connection_lost(err(1213))
    assert not db.is_retryable(err(1062)) and not db.is_retryable(err(1142))
    assert not db.is_retryable(ValueError("x"))
    assert db.is_retryable(db.RetryableConflict("raced"))


def test_retrying_retries_only_retryable_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise mysql.connector.errors.DatabaseError(msg="deadlock", errno=1213)
        return "ok"

    for attempt in db.retrying():
        with attempt:
            result = flaky()
    assert result == "ok" and len(calls) == 3

    calls.clear()
    with pytest.raises(mysql.connector.errors.IntegrityError):
        for attempt in db.retrying():
            with attempt:
                calls.append(1)
                raise mysql.connector.errors.IntegrityError(msg="dup", errno=1062)
    assert len(calls) == 1


def test_guarded_write_survives_a_killed_connection(conn, mysql_root):
    """A lost connection mid-write is retried on a new connection (guarded_write reconnects)."""
    from lazyshift.core.guarded_write import guarded_write
    from strategies import sample_document

    cur = conn.cursor()
    cur.execute("SELECT CONNECTION_ID()")
    conn_id = cur.fetchone()[0]
    conn.rollback()
    mysql_root.cursor().execute(f"KILL CONNECTION {int(conn_id)}")
    assert guarded_write(conn, sample_document()) is True
    cur = conn.cursor()
    cur.execute("SELECT version FROM shipment")
    assert cur.fetchall() == [(1,)]
