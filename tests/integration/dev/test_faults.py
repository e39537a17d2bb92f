"""Issue 9's proof on the test stack: a short fixed fault schedule (kills and pauses of the
clients, MariaDB, FerretDB and the source, `mode set` and the backfill killed, hostile
messages when the mock source has them) while the ladder is walked up and down; the
history checker must find nothing."""

from __future__ import annotations

import json
import os

import pytest

from helpers import run_cli
from lazyshift.dev.fault_run import FaultRunOptions, run_with_faults
from lazyshift.dev.faults import FAULT_KINDS

# A seed whose schedule injects every kind of fault within the window (unit-tested below the
# nemesis: tests/unit/test_fault_schedule.py). LAZYSHIFT_TEST_FAULT_SEED runs another seed's
# schedule the same way (its report is in the test's tmp_path/reports/demo.json).
SEED = int(os.environ.get("LAZYSHIFT_TEST_FAULT_SEED", "9"))
COUNT = 2400


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_fixed_fault_schedule_leaves_a_clean_history(settings, stack, tmp_path) -> None:
    opts = FaultRunOptions(
        seed=SEED,
        count=COUNT,
        rate=25.0,  # the stream flows until about the last flip
        window_s=90.0,
        report_dir=tmp_path / "reports",
        wipe=False,  # the fixture's databases are fresh
    )
    report = run_with_faults(settings, stack, opts)
    shown = json.dumps(
        {k: report[k] for k in ("verdict", "problems", "faults_by_kind", "steps", "aborted")},
        indent=1,
        default=str,
    )
    assert report["emitted"] == COUNT
    assert report["aborted"] is None, shown
    assert set(report["faults_by_kind"]) >= {*FAULT_KINDS, "mode-set-kill", "backfill-kill"}, shown
    assert report["reads"] > 100, shown
    assert report["ok"], shown
    assert report["lost"] == report["stale_reads"] == report["read_errors"] == 0
    assert (tmp_path / "reports" / "timeline.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "reports" / "demo.json").read_text())
    assert saved["seed"] == SEED and saved["schedule"] == report["schedule"]


def test_the_fault_demo_says_what_to_do_without_a_stack(tmp_path) -> None:
    proc = run_cli(
        "dev", "demo", "--faults", "1", check=False, env={"LAZYSHIFT_STATE_DIR": str(tmp_path)}
    )
    assert proc.returncode == 3, proc.stderr
    assert "`lazyshift dev up` first" in proc.stderr and "Traceback" not in proc.stderr
    bad = run_cli("dev", "demo", "--faults", "seven", check=False)
    assert bad.returncode == 2 and "--faults" in bad.stderr
