"""The one error root: every error lazyshift raises on purpose carries its exit code.

The CLI catches `LazyshiftError` once, at its edge (`lazyshift.cli`), prints the message and
exits with `exit_code`, so no command ends in a traceback and Jenkins can gate on the code:

    0  ok
    1  ProblemFound  the command ran and found a problem (differences, dead letters, a refused
                     transition, a gate that is closed)
    2  UsageError    the command was called wrongly (bad flag, bad config, unusable input file)
    3  Unavailable   a server, a file or a component needed to run could not be reached

Library code raises the subclass that says what the caller can do about it; a driver error
(MySQL, MongoDB) that escapes a command is reported as `Unavailable` by the same edge.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class LazyshiftError(Exception):
    """Base of every error lazyshift raises on purpose; `exit_code` is what the CLI returns."""

    exit_code = EXIT_UNAVAILABLE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint  # what to do about it, printed on its own line

    def __str__(self) -> str:
        return self.message


class ProblemFound(LazyshiftError):
    """The command ran and found a problem the operator must look at."""

    exit_code = EXIT_PROBLEM


class UsageError(LazyshiftError):
    """The command cannot run as asked: wrong arguments, configuration or input."""

    exit_code = EXIT_USAGE


class Unavailable(LazyshiftError):
    """Something the command needs (a server, a file, a bucket) cannot be reached."""

    exit_code = EXIT_UNAVAILABLE


class NotMigrated(Unavailable):
    """MySQL is reachable but has no lazyshift schema yet."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "MySQL is not set up for lazyshift" + (f": {detail}" if detail else ""),
            hint="run `lazyshift schema migrate` (stage 2) first",
        )
