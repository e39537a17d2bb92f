"""The migration runner's statement splitter (no server needed)."""

from __future__ import annotations

import pytest

from lazyshift.schema_migrate import SchemaMigrationError, split_statements


def test_split_statements():
    sql = """
    -- leading comment; with semicolon
    CREATE TABLE a (s VARCHAR(3) DEFAULT ';');  # hash comment ;
    /* block ; comment */ INSERT INTO a VALUES ('it''s;'), ("q\\";"), (`x;y`);
    --not-a-comment-in-mysql-without-space
    ;;
    """
    assert split_statements(sql) == [
        "CREATE TABLE a (s VARCHAR(3) DEFAULT ';')",
        "INSERT INTO a VALUES ('it''s;'), (\"q\\\";\"), (`x;y`)",
        "--not-a-comment-in-mysql-without-space",
    ]
    with pytest.raises(SchemaMigrationError, match="unterminated"):
        split_statements("SELECT 'oops;")
    with pytest.raises(SchemaMigrationError, match="unterminated /"):
        split_statements("SELECT 1 /* never closed")
