"""The stage gate (control/gate.py) is a pure function of the collected facts."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from lazyshift.control.gate import evaluate
from lazyshift.control.ladder import Facts, Mode, VerifyRun

T0 = datetime(2026, 12, 1, 12, 0, 0)


def f(mode: Mode, **kw) -> Facts:
    return Facts(mode=mode, epoch=7, **kw)


@pytest.mark.parametrize(
    ("facts", "stage", "advance", "back"),
    [
        (f(Mode.MONGO), 1, [], ["stage 1 is the start of the ladder"]),
        (f(Mode.DUAL), 2, [], []),
        (
            f(Mode.DUAL, shadow_differences=1),
            2,
            ["1 shadow read(s) found MySQL differing from MongoDB"],
            [],
        ),
        (f(Mode.MYSQL_PRIMARY), 3, [], []),
        (
            f(Mode.MYSQL_PRIMARY, mongo_reachable=False),
            3,
            [],
            ["MongoDB is unreachable: nothing to roll back to"],
        ),
        (
            f(
                Mode.MYSQL_PRIMARY,
                backfill_partitions=4,
                backfill_done=4,
                backfill_finished_at=T0,
                last_full_verify=VerifyRun(0, T0, T0 + timedelta(1)),
            ),
            4,
            [],
            [],
        ),
        (
            f(Mode.MYSQL_PRIMARY, backfill_partitions=4, backfill_done=3),
            4,
            ["backfill not finished (3/4 partitions done)"],
            [],
        ),
    ],
)
def test_gate_per_stage(facts, stage, advance, back) -> None:
    gate = evaluate(facts)
    assert gate["stage"] == stage
    assert gate["cannot_advance_because"] == advance
    assert gate["can_advance"] is (not advance)
    assert gate["cannot_roll_back_because"] == back
    assert gate["can_roll_back"] is (not back)


def test_a_backlog_is_a_note_not_a_reason() -> None:
    gate = evaluate(f(Mode.DUAL, dual_backlog=4))
    assert gate["can_advance"] is True
    assert gate["notes"] and "4 shipment(s) wait in the dual-write backlog" in gate["notes"][0]


def test_fencing_closes_every_gate() -> None:
    draining = evaluate(f(Mode.DUAL, stable=False))
    assert draining["cannot_advance_because"] == ["a transition is draining"]
    assert draining["cannot_roll_back_because"] == ["a transition is draining"]
    behind = evaluate(f(Mode.DUAL, behind=("c1", "c2")))
    assert behind["cannot_advance_because"] == ["client(s) not yet at epoch 7: c1, c2"]


def test_the_last_stage() -> None:
    gate = evaluate(f(Mode.MYSQL))
    assert gate["stage"] == 5 and gate["next"] is None
    assert gate["cannot_advance_because"] == ["stage 5 is the end of the ladder"]
    assert any("mysql is final" in r for r in gate["cannot_roll_back_because"])
