"""What every command shares: the context (JSON or human output, settings), the consoles,
and how a result or an error is printed. Output formatting (rich) lives only in cli/."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from lazyshift.config import Settings, load_settings
from lazyshift.errors import EXIT_OK, EXIT_PROBLEM, LazyshiftError

console = Console(stderr=False)
err_console = Console(stderr=True, soft_wrap=True)


class Ctx:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def settings(self, **overrides: Any) -> Settings:
        """Settings from the config file and environment, `overrides` (flags) on top.
        A config problem raises UsageError (config.ConfigError)."""
        return load_settings(**overrides)

    def json_out(self, local_json: bool = False) -> bool:
        return self.as_json or local_json

    def emit(
        self,
        data: Any,
        human: Callable[[], Any] | str | None = None,
        *,
        as_json: bool | None = None,
    ) -> None:
        """`data` as JSON with --json (or when there is no human form), else `human`."""
        if (self.as_json if as_json is None else as_json) or human is None:
            click.echo(json.dumps(data, default=str, indent=None if self.as_json else 2))
        elif callable(human):
            human()
        else:
            console.print(human)

    def finish(self, ok: bool) -> NoReturn:
        """Exit 0 if the command found nothing wrong, 1 (ProblemFound) if it did."""
        sys.exit(EXIT_OK if ok else EXIT_PROBLEM)


pass_ctx = click.make_pass_decorator(Ctx)


def report_error(exc: LazyshiftError, as_json: bool) -> NoReturn:
    """The CLI's one way out on an error: message (and hint) on stderr, JSON on stdout with
    --json, the error's exit code."""
    # Messages carry log tails with "[ERROR]" and the like: escaped, they print as they are.
    err_console.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
    if exc.hint:
        err_console.print(f"  {escape(exc.hint)}", highlight=False)
    if as_json:
        click.echo(
            json.dumps(
                {"ok": False, "error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
            )
        )
    sys.exit(exc.exit_code)


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
