"""`lazyshift mode set --hold` (strict stage-3 ordering): once every client acknowledged the
draining epoch, the flip waits for `lazyshift mode release` (the stage 3 playbook revokes
MongoDB's writes first) and commits only then; never released, it times out and the old
mode stays, like any failed transition. Without clients the drain is immediate, so the hold
is reached at once; the CLI runs as its own process, as the playbook runs it."""

from __future__ import annotations

import json
import subprocess

from helpers import kill, poll, run_cli, start_cli
from lazyshift.control import plane
from lazyshift.errors import EXIT_PROBLEM


def _show(settings) -> dict:
    return json.loads(run_cli("--json", "mode", "show", settings=settings).stdout)


def _held(settings) -> dict | None:
    shown = _show(settings)
    return shown if shown["held"] else None


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill(proc)
    return proc.returncode, out, err


def test_a_held_flip_commits_only_once_released(migrated) -> None:
    plane.set_mode(migrated, "dual")
    flip = start_cli(
        "--json", "mode", "set", "mysql-primary", "--hold", "--timeout", "300", settings=migrated
    )
    try:
        shown = poll(lambda: _held(migrated), "the flip to hold for a release", timeout=120)
        # Held: still draining towards mysql-primary, the old mode in force, still running.
        assert (shown["mode"], shown["state"], shown["target_mode"]) == (
            "dual",
            "draining",
            "mysql-primary",
        )
        assert flip.poll() is None, flip.communicate()
        released = json.loads(run_cli("--json", "mode", "release", settings=migrated).stdout)
        assert released["released_epoch"] == shown["epoch"]
        rc, out, err = _finish(flip)
    finally:
        kill(flip)
    assert rc == 0, err
    assert json.loads(out)["to_mode"] == "mysql-primary"
    after = _show(migrated)
    assert (after["mode"], after["state"], after["held"]) == ("mysql-primary", "stable", False)


def test_a_held_flip_never_released_times_out_and_stays_dual(migrated) -> None:
    plane.set_mode(migrated, "dual")
    before = plane.get_state(migrated).epoch
    proc = start_cli("mode", "set", "mysql-primary", "--hold", "--timeout", "3", settings=migrated)
    rc, _, err = _finish(proc)
    assert rc == EXIT_PROBLEM, err
    assert "not released" in err and "Traceback" not in err, err
    st = plane.get_state(migrated)
    assert (st.mode, st.state) == ("dual", "stable") and st.epoch > before + 1
    # The playbook's release after a timed-out hold fails (and it gives MongoDB's writes back).
    late = run_cli("mode", "release", settings=migrated, check=False)
    assert late.returncode == EXIT_PROBLEM and "nothing to release" in late.stderr, late.stderr


def _held_flip(settings) -> subprocess.Popen[str]:
    return start_cli(
        "mode", "set", "mysql-primary", "--hold", "--timeout", "300", settings=settings
    )


def test_an_earlier_flips_release_does_not_release_the_next(migrated) -> None:
    plane.set_mode(migrated, "dual")
    first = _held_flip(migrated)
    try:
        poll(lambda: _held(migrated), "the first flip to hold", timeout=120)
        run_cli("mode", "release", settings=migrated)
        assert _finish(first)[0] == 0
    finally:
        kill(first)
    plane.rollback(migrated)  # back to dual: the next flip has a new epoch
    second = _held_flip(migrated)
    try:
        shown = poll(lambda: _held(migrated), "the second flip to hold", timeout=120)
        assert shown["mode"] == "dual" and second.poll() is None
        run_cli("mode", "release", settings=migrated)
        rc, _, err = _finish(second)
    finally:
        kill(second)
    assert rc == 0, err
    assert plane.get_state(migrated).mode == "mysql-primary"
