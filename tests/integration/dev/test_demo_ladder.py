"""`make demo`'s main job, on the test stack: all five stages with the stream flowing, and
the end state reconciled with what the source emitted."""

from __future__ import annotations

import contextlib

from helpers import MockSource
from lazyshift.dev.demo import StageResult, run_ladder

GEN = ["--seed", "8", "--count", "1500"]


class Recorder:
    """A Reporter that keeps what the demo would show."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def step(self, stage: str, what: str) -> contextlib.AbstractContextManager[None]:
        self.lines.append(f"{stage}: {what}")
        return contextlib.nullcontext()

    def done(self, result: StageResult) -> None:
        self.lines.append(f"{result.stage} {result.what}: {'ok' if result.ok else 'failed'}")

    def note(self, text: str) -> None:
        self.lines.append(text)


def test_the_ladder_end_to_end(settings) -> None:
    source = MockSource(*GEN).start()
    reporter = Recorder()
    try:
        settings.source.port = source.port
        results = run_ladder(settings, GEN, reporter)
    finally:
        source.stop()
    shown = "\n".join(reporter.lines)
    failed = [(r.stage, r.what) for r in results if not r.ok]
    assert not failed, f"{failed}\n{shown}"
    assert [r.stage for r in results][-2:] == ["stage 5 mysql", "end"]
    assert "MySQL holds" in shown
