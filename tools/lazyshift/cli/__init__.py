"""The `lazyshift` command line: argument parsing and output only; the work is done below.

One module per command group; each registers its commands on `main`. Errors are caught
here, once: a `LazyshiftError` (or a database driver error that escaped a command) becomes
a message and its exit code (0 ok, 1 found a problem, 2 usage, 3 unavailable), never a
traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from lazyshift import __version__, logs
from lazyshift.cli.output import Ctx, report_error
from lazyshift.errors import LazyshiftError, NotMigrated, Unavailable, UsageError

MYSQL_NO_SUCH_TABLE = 1146


def _as_lazyshift_error(exc: BaseException) -> LazyshiftError | None:
    """The error a driver exception means for the operator, or None if it is not one."""
    from mysql.connector import Error as MySQLError
    from pymongo.errors import PyMongoError

    from lazyshift.core.mysql import MySQLInterfaceError

    if isinstance(exc, LazyshiftError):
        return exc
    if isinstance(exc, MySQLError):
        if getattr(exc, "errno", None) == MYSQL_NO_SUCH_TABLE:
            return NotMigrated(str(exc))
        return Unavailable(f"MySQL unavailable: {exc}", hint=_CHECK_SERVER)
    if isinstance(exc, MySQLInterfaceError):  # the server died mid-commit, and the like
        return Unavailable(f"MySQL unavailable: {exc}", hint=_CHECK_SERVER)
    if isinstance(exc, PyMongoError):
        return Unavailable(f"MongoDB unavailable: {exc}", hint=_CHECK_SERVER)
    return None


_CHECK_SERVER = (
    "check the config (--config, LAZYSHIFT_* variables) and that the server "
    "runs (`lazyshift dev status` locally)"
)


class _Edge(click.Group):
    """The top-level group: every command runs inside its `invoke`, so errors end here."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise click.exceptions.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - mapped to an exit code, or re-raised
            error = _as_lazyshift_error(exc)
            if error is None:
                raise
            obj = ctx.find_object(Ctx)
            report_error(error, obj.as_json if obj is not None else False)


@click.group(cls=_Edge, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lazyshift")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LAZYSHIFT_CONFIG",
    help="Config file (TOML). Default: <state dir>/lazyshift.toml if it exists.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, as_json: bool) -> None:
    """lazyshift: move a live service from MongoDB to MySQL without stopping writes.

    Stages and modes: 1 mongo, 2 dual, 3 mysql-primary (flip), 4 backfill, 5 mysql (cleanup).
    Exit codes: 0 ok, 1 a problem was found, 2 usage error, 3 something is unavailable.
    """
    ctx.obj = Ctx(as_json)
    if config_file is not None:
        if not config_file.is_file():
            report_error(
                UsageError(
                    f"config file {config_file} does not exist",
                    hint="pass an existing file to --config",
                ),
                as_json,
            )
        os.environ["LAZYSHIFT_CONFIG"] = str(config_file)
    logs.setup(os.environ.get("LAZYSHIFT_LOG_LEVEL", "INFO"))


def _register() -> None:
    from lazyshift.cli import (
        archive,
        backfill,
        client,
        dev,
        mode,
        repair,
        schema,
        status,
        verify,
    )

    for module in (dev, client, schema, mode, backfill, verify, repair, archive, status):
        for command in module.COMMANDS:
            main.add_command(command)


_register()

if __name__ == "__main__":
    main()
