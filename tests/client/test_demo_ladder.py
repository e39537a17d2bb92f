"""`make demo`'s main job, on the test stack: all five stages with the stream flowing, and
the end state reconciled with what the source emitted."""

from __future__ import annotations

import io

from rich.console import Console

from helpers import MockSource
from lazyshift.demo import run_ladder

GEN = ["--seed", "8", "--count", "1500"]


def test_the_ladder_end_to_end(settings) -> None:
    source = MockSource(*GEN).start()
    try:
        settings.source.port = source.port
        out = io.StringIO()
        results = run_ladder(settings, GEN, Console(file=out, width=200))
    finally:
        source.stop()
    failed = [(r.stage, r.what) for r in results if not r.ok]
    assert not failed, f"{failed}\n{out.getvalue()}"
    assert [r.stage for r in results][-2:] == ["stage 5 mysql", "end"]
    assert "MySQL holds" in out.getvalue()
