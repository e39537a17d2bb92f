"""The rung table (control/ladder.py): which moves exist and what each one requires."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from lazyshift.control.ladder import (
    ORDER,
    RUNGS,
    STAGES,
    ArchiveRun,
    Facts,
    Mode,
    TransitionError,
    VerifyRun,
    next_mode,
    previous_mode,
    rung,
    stage_of,
)
from lazyshift.errors import EXIT_PROBLEM

T0 = datetime(2026, 12, 1, 12, 0, 0)


def facts(mode: Mode = Mode.DUAL, **kw) -> Facts:
    return Facts(mode=mode, epoch=3, **kw)


def stage4(**kw) -> Facts:
    """mysql-primary with a finished backfill, a clean verify after it, and an archive."""
    base = dict(
        backfill_partitions=2,
        backfill_done=2,
        backfill_finished_at=T0,
        last_full_verify=VerifyRun(0, T0, T0 + timedelta(seconds=5)),
        archives=1,
        last_verified_archive=ArchiveRun(T0 + timedelta(seconds=6), T0 + timedelta(seconds=7)),
    )
    return facts(Mode.MYSQL_PRIMARY, **{**base, **kw})


def test_every_adjacent_pair_is_a_rung_except_back_from_mysql() -> None:
    for lower, upper in zip(ORDER, ORDER[1:], strict=False):
        assert rung(lower, upper).target is upper
        if lower is not Mode.MYSQL_PRIMARY:
            assert rung(upper, lower).is_rollback
    assert set(RUNGS) == {(a, b) for a, b in zip(ORDER, ORDER[1:], strict=False)} | {
        (Mode.DUAL, Mode.MONGO),
        (Mode.MYSQL_PRIMARY, Mode.DUAL),
    }


@pytest.mark.parametrize(
    ("source", "target", "says"),
    [
        (Mode.MONGO, Mode.MYSQL_PRIMARY, r"only the next or previous rung \(dual\)"),
        (Mode.DUAL, Mode.MYSQL, "only the next or previous rung"),
        (Mode.MONGO, Mode.MYSQL, "only the next or previous rung"),
        (Mode.MYSQL, Mode.MYSQL_PRIMARY, "mysql is final"),
        (Mode.MYSQL, Mode.DUAL, "mysql is final"),
    ],
)
def test_moves_off_the_ladder_are_refused_with_the_reason(source, target, says) -> None:
    with pytest.raises(TransitionError, match=says) as err:
        rung(source, target)
    assert err.value.exit_code == EXIT_PROBLEM


@pytest.mark.parametrize(
    ("f", "reasons"),
    [
        (facts(), []),
        (facts(dual_backlog=3), []),  # flushed in the flip's pause
        (facts(shadow_differences=2), ["2 shadow read(s) found MySQL differing from MongoDB"]),
        (facts(mongo_reachable=False), ["MongoDB is unreachable"]),
        (
            facts(reconcile_epoch=9),
            [
                "MySQL missed the writes made in mongo mode (since epoch 9) and the reconcile "
                "that copies them has not finished: `lazyshift mode reconcile`"
            ],
        ),
    ],
)
def test_the_flip_requires_a_clean_dual_stage(f, reasons) -> None:
    assert rung(Mode.DUAL, Mode.MYSQL_PRIMARY).requires(f) == reasons
    assert STAGES[2].ready(f) == reasons  # the gate and `mode set` read the same check


@pytest.mark.parametrize(
    ("f", "fragment"),
    [
        (stage4(), None),
        (stage4(backfill_partitions=0, backfill_done=0), "no backfill has run"),
        (stage4(backfill_done=1), "backfill not finished (1/2"),
        (stage4(last_full_verify=None), "no full `lazyshift verify` started after the backfill"),
        (
            stage4(
                last_full_verify=VerifyRun(0, T0 - timedelta(seconds=2), T0 - timedelta(seconds=1))
            ),
            "no full `lazyshift verify` started after the backfill",
        ),
        # a verify that ran while the backfill was still writing proves nothing (hole 4)
        (
            stage4(
                last_full_verify=VerifyRun(0, T0 - timedelta(seconds=1), T0 + timedelta(seconds=1))
            ),
            "no full `lazyshift verify` started after the backfill",
        ),
        (
            stage4(last_full_verify=VerifyRun(4, T0, T0 + timedelta(seconds=1))),
            "found 4 difference(s)",
        ),
        (
            stage4(archives=1, last_verified_archive=None),
            "no archive of MongoDB is recorded",
        ),
        (
            stage4(last_verified_archive=ArchiveRun(T0 + timedelta(seconds=4), T0)),
            "the last archive was made before the last full verify",
        ),
    ],
)
def test_cleanup_requires_backfill_verify_and_archive(f, fragment) -> None:
    reasons = rung(Mode.MYSQL_PRIMARY, Mode.MYSQL).requires(f)
    if fragment is None:
        assert reasons == []
    else:
        assert any(fragment in r for r in reasons), reasons


def test_rollback_after_the_flip_needs_mongodb() -> None:
    back = rung(Mode.MYSQL_PRIMARY, Mode.DUAL)
    assert back.requires(facts(Mode.MYSQL_PRIMARY)) == []
    assert back.requires(facts(Mode.MYSQL_PRIMARY, mongo_reachable=False)) == [
        "MongoDB is unreachable: nothing to roll back to"
    ]
    assert (back.before_pause, back.during_pause) == ("write_back", "write_back_moved")
    assert rung(Mode.DUAL, Mode.MYSQL_PRIMARY).during_pause == "flush_backlog"


def test_dead_letters_follow_the_primary_and_dual_reentry_reconciles() -> None:
    flip = rung(Mode.DUAL, Mode.MYSQL_PRIMARY)
    assert (flip.before_pause, flip.after_commit) == ("prepare_flip", "dead_letters_to_mysql")
    assert rung(Mode.DUAL, Mode.MONGO).leaves_mysql_stale
    assert rung(Mode.MONGO, Mode.DUAL).after_commit == "reconcile_if_needed"
    assert not any(r.leaves_mysql_stale for r in RUNGS.values() if r.target is not Mode.MONGO)


def test_every_named_step_exists() -> None:
    from lazyshift.control.steps import STEPS

    for r in RUNGS.values():
        for name in (r.before_pause, r.during_pause, r.after_commit):
            assert name is None or name in STEPS


def test_stages_and_neighbours() -> None:
    assert [stage_of(m) for m in ORDER] == [1, 2, 3, 5]
    assert stage_of(Mode.MYSQL_PRIMARY, backfill_planned=True) == 4
    assert [s.mode for s in STAGES.values()] == [
        Mode.MONGO,
        Mode.DUAL,
        Mode.MYSQL_PRIMARY,
        Mode.MYSQL_PRIMARY,
        Mode.MYSQL,
    ]
    assert next_mode(Mode.MONGO) is Mode.DUAL and next_mode(Mode.MYSQL) is None
    assert previous_mode(Mode.MONGO) is None and previous_mode(Mode.MYSQL) is Mode.MYSQL_PRIMARY


def test_every_mode_names_its_truth() -> None:
    # A repair or verify report must take this store as its truth; after MongoDB is gone
    # (mode mysql) there is nothing to compare against.
    from lazyshift.control.ladder import TRUTH, Mode

    assert set(TRUTH) == set(Mode)
    assert [TRUTH[m] for m in Mode] == ["mongo", "mongo", "mysql", None]
