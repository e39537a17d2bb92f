"""The nemesis' schedule is a pure function of the seed: same seed, same schedule."""

from __future__ import annotations

from lazyshift.dev.faults import FAULT_KINDS, plan

CLIENTS = ["faults-client-0", "faults-client-1"]


def schedule(seed: int, window_s: float = 90.0):
    return plan(seed, window_s=window_s, clients=CLIENTS, ladder_steps=7)


def test_the_same_seed_gives_the_same_schedule() -> None:
    assert schedule(9).as_dict() == schedule(9).as_dict()
    assert schedule(9).as_dict() != schedule(10).as_dict()


def test_faults_are_one_at_a_time_inside_the_window() -> None:
    s = schedule(3, window_s=120)
    for a, b in zip(s.faults, s.faults[1:], strict=False):
        assert b.at_s >= a.at_s + a.duration_s
    assert all(f.at_s < 120 for f in s.faults)
    assert {f.target for f in s.faults if f.kind.startswith("client")} <= set(CLIENTS)


def test_some_mode_set_is_killed_and_the_backfill_is() -> None:
    for seed in range(20):
        s = schedule(seed)
        assert s.mode_set_kills and all(0 <= i < 7 for i in s.mode_set_kills)
        assert s.backfill_kill_after_s is not None
        assert len(s.dwell_s) == 7


def test_the_integration_tests_seed_injects_every_kind() -> None:
    # tests/integration/dev/test_faults.py relies on this.
    assert {f.kind for f in schedule(9).faults} == set(FAULT_KINDS)
