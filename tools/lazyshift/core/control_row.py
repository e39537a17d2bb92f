"""The control row in MySQL (`lazyshift_control`, id 1): the mode, its epoch, and whether a
transition is draining. Stored here, read by the router on every controlled read and by
clients' followers; changed only by the control plane (lazyshift.control)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lazyshift.core.mysql import rows_as_dicts


class NoControlRow(RuntimeError):
    """The schema is not migrated: there is no control row yet."""


@dataclass(frozen=True)
class ControlState:
    mode: str
    epoch: int
    state: str
    target_mode: str | None
    flip_epoch: int | None
    changed_at: datetime | None

    @property
    def stable(self) -> bool:
        return self.state == "stable"


def read_state(cursor: Any) -> ControlState:
    cursor.execute("SELECT mode, epoch, state, target_mode, flip_epoch, changed_at "
                   "FROM lazyshift_control WHERE id = 1")
    rows = rows_as_dicts(cursor, cursor.fetchall())
    if not rows:
        raise NoControlRow("no control row: run `lazyshift schema migrate` first")
    r = rows[0]
    return ControlState(r["mode"], int(r["epoch"]), r["state"], r["target_mode"],
                        r["flip_epoch"], r["changed_at"])
