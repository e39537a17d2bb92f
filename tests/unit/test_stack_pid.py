"""Component.pid: a server of this stack is recognised by its command line even when the
pid file's time and the process's start time disagree (a wall clock stepped since)."""

import os
import subprocess
import sys
from pathlib import Path

from lazyshift.dev.stack import Component


def _component(state: Path, pid: int, age_s: float) -> Component:
    run = state / "run"
    run.mkdir(parents=True, exist_ok=True)
    pidfile = run / "x.pid"
    pidfile.write_text(f"{pid}\n")
    written = pidfile.stat().st_mtime - age_s
    os.utime(pidfile, (written, written))
    return Component("x", pidfile, state / "x.log")


def test_a_process_naming_the_stacks_folder_is_ours_whatever_the_times(tmp_path) -> None:
    state = tmp_path / "state"
    data = state / "data"
    data.mkdir(parents=True)
    code = "import sys, time; time.sleep(60)"
    ours = subprocess.Popen([sys.executable, "-c", code, f"--datadir={data}"])
    other = subprocess.Popen([sys.executable, "-c", code, "--datadir=/elsewhere"])
    try:
        assert _component(state, ours.pid, age_s=0).pid() == ours.pid
        assert _component(state, ours.pid, age_s=70).pid() == ours.pid
        # Not naming the folder: only the times can say, and 70 s apart they say no (a pid
        # reused by a later process).
        assert _component(state, other.pid, age_s=70).pid() is None
        assert _component(state, other.pid, age_s=0).pid() == other.pid
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait()
    assert _component(state, ours.pid, age_s=0).pid() is None
