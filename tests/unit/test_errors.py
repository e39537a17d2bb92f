"""One error root, caught once at the CLI's edge: every error maps to its documented exit
code (1 problem found, 2 usage, 3 unavailable) and a message, never a traceback."""

from __future__ import annotations

import json
import socket

import click
import pytest
from click.testing import CliRunner
from mysql.connector import errors as mysql_errors
from pymongo.errors import ServerSelectionTimeoutError

from lazyshift.cli import _as_lazyshift_error, main
from lazyshift.control.ladder import TransitionError
from lazyshift.core.mysql import MySQLInterfaceError
from lazyshift.errors import (
    EXIT_PROBLEM,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    NotMigrated,
    ProblemFound,
    Unavailable,
    UsageError,
)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ProblemFound("x"), EXIT_PROBLEM),
        (TransitionError("x"), EXIT_PROBLEM),
        (UsageError("x"), EXIT_USAGE),
        (Unavailable("x"), EXIT_UNAVAILABLE),
        (NotMigrated(), EXIT_UNAVAILABLE),
        (mysql_errors.InterfaceError("gone", errno=2003), EXIT_UNAVAILABLE),
        (mysql_errors.ProgrammingError("no table", errno=1146), EXIT_UNAVAILABLE),
        (ServerSelectionTimeoutError("down"), EXIT_UNAVAILABLE),
        (MySQLInterfaceError("Lost connection to MySQL server during query"), EXIT_UNAVAILABLE),
    ],
)
def test_errors_map_to_exit_codes(exc, code) -> None:
    error = _as_lazyshift_error(exc)
    assert error is not None and error.exit_code == code


def test_a_missing_table_means_schema_migrate() -> None:
    error = _as_lazyshift_error(mysql_errors.ProgrammingError("no table", errno=1146))
    assert "lazyshift schema migrate" in (error.hint or "")


def test_other_exceptions_are_not_swallowed() -> None:
    assert _as_lazyshift_error(ZeroDivisionError()) is None


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Run the real CLI in-process with a clean environment and an empty state folder."""
    for key in list(__import__("os").environ):
        if key.startswith("LAZYSHIFT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LAZYSHIFT_STATE_DIR", str(tmp_path))

    def run(*args: str, env: dict[str, str] | None = None):
        return CliRunner(mix_stderr=False).invoke(main, list(args), env=env, catch_exceptions=False)

    yield run
    # `--config` exports LAZYSHIFT_CONFIG for the processes a command starts; in-process, it
    # would leak a broken config file into the tests that run after this one.
    __import__("os").environ.pop("LAZYSHIFT_CONFIG", None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def test_missing_config_file_is_a_usage_error(cli, tmp_path) -> None:
    out = cli("--config", str(tmp_path / "nope.toml"), "status")
    assert out.exit_code == EXIT_USAGE and "does not exist" in out.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[mysql\nport = 1", "not valid TOML"),
        ("[clinet]\nmode = 'control'", "clinet"),
        ("[mysql]\npasword = 'x'", "mysql.pasword"),
        ("[mysql]\nport = 'three'", "mysql.port"),
    ],
)
def test_bad_config_files_are_usage_errors(cli, tmp_path, text, says) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = cli("--config", str(config), "mode", "show")
    assert out.exit_code == EXIT_USAGE, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr


def test_bad_environment_is_a_usage_error(cli) -> None:
    out = cli("status", env={"LAZYSHIFT_MYSQL__PORT": "not-a-number"})
    assert out.exit_code == EXIT_USAGE and "mysql.port" in out.stderr


def test_unreachable_mysql_is_unavailable_with_json(cli) -> None:
    env = {"LAZYSHIFT_MYSQL__PORT": str(_closed_port())}
    out = cli("--json", "mode", "show", env=env)
    assert out.exit_code == EXIT_UNAVAILABLE
    assert "MySQL unavailable" in out.stderr
    body = json.loads(out.stdout)
    assert body["ok"] is False and body["exit_code"] == EXIT_UNAVAILABLE


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield (*path, name)
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_every_command_has_help(cli) -> None:
    paths = list(_commands(main))
    assert len(paths) > 20
    for path in paths:
        out = cli(*path, "--help")
        assert out.exit_code == 0, (path, out.stderr)
        assert "Usage:" in out.stdout, path


# Every command that talks to a database, with its required arguments.
def _walk(tmp_path) -> list[list[str]]:
    report = tmp_path / "report.json"
    report.write_text('{"source": "mongo:x", "truth": "mongo", "findings": []}')
    return [
        ["status"],
        ["mode", "show"],
        ["mode", "set", "dual"],
        ["mode", "abort"],
        ["mode", "reconcile"],
        ["rollback"],
        ["schema", "migrate"],
        ["schema", "status"],
        ["backfill"],
        ["backfill", "status"],
        ["backfill", "pause"],
        ["verify"],
        ["verify", "--full"],
        ["repair", str(report)],
        ["archive", "--to", str(tmp_path / "arch")],
    ]


def test_every_command_with_the_databases_down_says_so(cli, tmp_path) -> None:
    """Issue 9: every command with MySQL and MongoDB down: exit 3 and a message naming the
    server, never a traceback (CliRunner re-raises anything that escapes the edge)."""
    env = {
        "LAZYSHIFT_MYSQL__PORT": str(_closed_port()),
        "LAZYSHIFT_MONGO__URI": f"mongodb://127.0.0.1:{_closed_port()}/",
    }
    for args in _walk(tmp_path):
        out = cli(*args, env=env)
        assert out.exit_code == EXIT_UNAVAILABLE, (args, out.exit_code, out.stderr)
        assert "unavailable" in out.stderr.lower(), (args, out.stderr)
        assert "Traceback" not in out.stderr + out.stdout, args


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["repair", "{report}"], "not a verify report"),
        (["mode", "set", "sideways"], "Invalid value"),
        (["verify", "--truth", "both"], "truth"),
        (["backfill", "--workers", "zero"], "workers"),
    ],
)
def test_bad_input_is_a_usage_error(cli, tmp_path, args, says) -> None:
    bad = tmp_path / "report.json"
    bad.write_text("{broken")
    out = cli(*[a.replace("{report}", str(bad)) for a in args])
    assert out.exit_code == EXIT_USAGE, (args, out.stderr)
    assert says in out.stderr, out.stderr
