"""Versioned DDL: `migrations/NNNN_name.sql` applied in order, each once, recorded in
`schema_migrations` (version, name, sha256 of the file, applied_at).

- runs as the migrate user (the app user has DML only);
- one migrator at a time per database (GET_LOCK, works on MariaDB and MySQL);
- each file is one step: its statements, then its row in schema_migrations. DDL commits
  implicitly in MySQL, so a file that fails half-way leaves its earlier statements applied and
  is not recorded; the project's files use IF NOT EXISTS / INSERT IGNORE so that re-running
  after fixing the cause completes it;
- a file changed after it was applied, or an applied version with no file, is an error: never
  edit an applied migration, add the next number instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC
from importlib import resources
from pathlib import Path
from typing import Any

import mysql.connector

from lazyshift.config import Settings
from lazyshift.core.mysql import connect, rows_as_dicts
from lazyshift.errors import ProblemFound

FILE_RE = re.compile(r"^(\d{4,})_([A-Za-z0-9_]+)\.sql$")
LOCK_TIMEOUT_S = 60

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INT          NOT NULL,
  name       VARCHAR(255) NOT NULL,
  sha256     CHAR(64)     NOT NULL,
  applied_at DATETIME(6)  NOT NULL,
  PRIMARY KEY (version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""


class SchemaMigrationError(ProblemFound):
    """Migrations cannot be applied as they are; the message says why and what to do."""


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str
    filename: str
    sha256: str
    sql: str


def default_directory() -> Path:
    return Path(str(resources.files("lazyshift").joinpath("migrations")))


def discover(directory: Path | None = None) -> list[MigrationFile]:
    """The migration files in version order; a duplicate version or a stray name is an error."""
    directory = directory or default_directory()
    found: dict[int, MigrationFile] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = FILE_RE.match(path.name)
        if not match:
            raise SchemaMigrationError(
                f"{path}: migration files are named NNNN_name.sql (e.g. 0002_add_index.sql)"
            )
        data = path.read_bytes()
        mig = MigrationFile(
            version=int(match.group(1)),
            name=match.group(2),
            filename=path.name,
            sha256=hashlib.sha256(data).hexdigest(),
            sql=data.decode("utf-8"),
        )
        if mig.version in found:
            raise SchemaMigrationError(
                f"two migration files have version {mig.version}: "
                f"{found[mig.version].filename} and {mig.filename}"
            )
        found[mig.version] = mig
    return [found[v] for v in sorted(found)]


def _quoted_end(sql: str, i: int) -> int:
    """Index just past the quoted string (', " or `) that starts at `i`."""
    quote, j, n = sql[i], i + 1, len(sql)
    while j < n:
        escaped = sql[j] == "\\" and quote != "`"
        doubled = sql[j] == quote and j + 1 < n and sql[j + 1] == quote
        if escaped or doubled:
            j += 2
        elif sql[j] == quote:
            return j + 1
        else:
            j += 1
    raise SchemaMigrationError(f"unterminated {quote} quote starting at offset {i}")


def _comment_end(sql: str, i: int) -> int | None:
    """Index just past the comment that starts at `i`, or None if none starts there."""
    ch, nxt, n = sql[i], sql[i + 1 : i + 2], len(sql)
    if (ch == "-" and nxt == "-" and (i + 2 >= n or sql[i + 2] in " \t\r\n")) or ch == "#":
        j = sql.find("\n", i)
        return n if j < 0 else j + 1
    if ch == "/" and nxt == "*":
        j = sql.find("*/", i + 2)
        if j < 0:
            raise SchemaMigrationError(f"unterminated /* comment starting at offset {i}")
        return j + 2
    return None


def split_statements(sql: str) -> list[str]:
    """Split on `;` outside quotes, backticks and comments; drop comments and empty parts.

    Enough for DDL and DML files (no stored programs, so no DELIMITER)."""
    statements: list[str] = []
    buf: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"', "`"):
            j = _quoted_end(sql, i)
            buf.append(sql[i:j])
        elif (j := _comment_end(sql, i)) is not None:
            buf.append("\n" if sql[j - 1] == "\n" or j == n else " ")
        elif ch == ";":
            statements.append("".join(buf))
            buf = []
            j = i + 1
        else:
            buf.append(ch)
            j = i + 1
        i = j
    statements.append("".join(buf))
    return [s.strip() for s in statements if s.strip()]


def _applied(cursor: Any) -> dict[int, dict[str, Any]]:
    cursor.execute("SELECT version, name, sha256, applied_at FROM schema_migrations")
    return {int(r["version"]): r for r in rows_as_dicts(cursor, cursor.fetchall())}


def _table_exists(cursor: Any) -> bool:
    cursor.execute(
        "SELECT COUNT(*) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name = 'schema_migrations'"
    )
    return bool(cursor.fetchall()[0][0])


def _check_consistent(files: list[MigrationFile], applied: dict[int, dict[str, Any]]) -> None:
    by_version = {m.version: m for m in files}
    for version, row in sorted(applied.items()):
        mig = by_version.get(version)
        if mig is None:
            raise SchemaMigrationError(
                f"migration {version:04d}_{row['name']} is applied to the database but its file "
                "is missing: this code is older than the schema; deploy the newer tools"
            )
        if mig.sha256 != row["sha256"]:
            raise SchemaMigrationError(
                f"migration {mig.filename} was changed after it was applied "
                f"(applied sha256 {row['sha256']}, file now {mig.sha256}); never edit an "
                "applied migration: restore the file and add the change as a new numbered file"
            )


def migrate(settings: Settings, *, directory: Path | None = None) -> list[dict[str, Any]]:
    """Apply pending migrations in order as the migrate user; the ones applied now, as
    [{"version", "name", "sha256"}]. Re-running is a no-op."""
    files = discover(directory)
    conn = connect(settings.mysql, migrate=True, autocommit=True)
    lock_name = f"lazyshift.schema_migrate.{settings.mysql.database}"[:64]
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT GET_LOCK(%s, %s)", (lock_name, LOCK_TIMEOUT_S))
        if cursor.fetchall()[0][0] != 1:
            raise SchemaMigrationError(
                f"another schema migration holds lock {lock_name!r} for more than "
                f"{LOCK_TIMEOUT_S}s; wait for it to finish and run again"
            )
        try:
            cursor.execute(CREATE_TABLE)
            applied = _applied(cursor)
            _check_consistent(files, applied)
            done: list[dict[str, Any]] = []
            for mig in files:
                if mig.version in applied:
                    continue
                _apply_one(conn, mig)
                done.append({"version": mig.version, "name": mig.name, "sha256": mig.sha256})
            return done
        finally:
            cursor.execute("SELECT RELEASE_LOCK(%s)", (lock_name,))
            cursor.fetchall()
    finally:
        conn.close()


def _apply_one(conn: Any, mig: MigrationFile) -> None:
    cursor = conn.cursor()
    statements = split_statements(mig.sql)
    for number, statement in enumerate(statements, start=1):
        try:
            cursor.execute(statement)
            if cursor.with_rows:
                cursor.fetchall()
        except mysql.connector.Error as exc:
            raise SchemaMigrationError(
                f"migration {mig.filename} failed at statement {number} of {len(statements)} "
                f"({statement.splitlines()[0][:80]}...): {exc}. Statements before it are "
                "applied (DDL commits implicitly); fix the cause and run again"
            ) from exc
    cursor.execute(
        "INSERT INTO schema_migrations (version, name, sha256, applied_at) "
        "VALUES (%s, %s, %s, UTC_TIMESTAMP(6))",
        (mig.version, mig.name, mig.sha256),
    )
    cursor.close()


def status(settings: Settings, *, directory: Path | None = None) -> list[dict[str, Any]]:
    """Every known migration with its state: 'applied', 'pending', 'changed' (file differs
    from what was applied) or 'missing-file'. Read-only: uses the app user."""
    files = discover(directory)
    conn = connect(settings.mysql, autocommit=True)
    try:
        cursor = conn.cursor()
        applied = _applied(cursor) if _table_exists(cursor) else {}
    finally:
        conn.close()
    out: list[dict[str, Any]] = []
    by_version = {m.version: m for m in files}
    for version in sorted(set(by_version) | set(applied)):
        mig, row = by_version.get(version), applied.get(version)
        if row is None:
            state = "pending"
        elif mig is None:
            state = "missing-file"
        elif mig.sha256 != row["sha256"]:
            state = "changed"
        else:
            state = "applied"
        applied_at = row["applied_at"].replace(tzinfo=UTC).isoformat() if row else None
        out.append(
            {
                "version": version,
                "name": mig.name if mig else row["name"],
                "sha256": mig.sha256 if mig else row["sha256"],
                "state": state,
                "applied_at": applied_at,
            }
        )
    return out
