"""Which mode reads may assume while MySQL is unreachable (issue 9, hole 8): the follower's
last control row, while its lease holds, if it is stable or drains between two modes that
both read MongoDB. A drain towards mysql-primary may finish without this client: no mode."""

from __future__ import annotations

import threading
import time

import pytest

from lazyshift.client.follower import Follower
from lazyshift.config import Settings
from lazyshift.core.mysql_store import ControlState


def _follower(mode: str, state: str, target: str | None, age_s: float) -> Follower:
    f = Follower(Settings(), "c", "0/1", threading.Event())
    f._state = ControlState(mode, 3, state, target, None, None)
    f._last_ok = time.monotonic() - age_s
    return f


@pytest.mark.parametrize(
    ("mode", "state", "target", "known"),
    [
        ("dual", "stable", None, "dual"),
        ("mongo", "stable", None, "mongo"),
        ("dual", "draining", "mongo", "dual"),
        ("mongo", "draining", "dual", "mongo"),
        ("dual", "draining", "mysql-primary", None),
        ("mysql-primary", "draining", "dual", None),
    ],
)
def test_the_mode_reads_may_assume(mode, state, target, known) -> None:
    assert _follower(mode, state, target, age_s=0.0).known_mode() == known


def test_no_mode_once_the_lease_has_run_out() -> None:
    f = _follower("dual", "stable", None, age_s=0.0)
    f._last_ok = time.monotonic() - f.lease_s - 0.01
    assert f.known_mode() is None
