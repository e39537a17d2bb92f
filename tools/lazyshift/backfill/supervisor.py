"""The backfill command: plan if needed, start worker processes, report progress.

Workers are separate processes (`spawn`), so one command uses every core it is given; more
hosts running the same command lease the same partitions (DESIGN.md §8). Progress is read
from the partitions in MySQL, with a rate over a sliding window and an ETA.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lazyshift.backfill.options import ORIGIN, BackfillOptions, Progress
from lazyshift.backfill.plan import plan, progress
from lazyshift.backfill.worker import worker_main
from lazyshift.config import Settings
from lazyshift.core import mysql_store as store
from lazyshift.core.mysql import connect


def dead_letters(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    conn = connect(settings.mysql, autocommit=True)
    try:
        return store.dead_letter_samples(conn.cursor(), ORIGIN, limit)
    finally:
        conn.close()


def _worker_process(settings: Settings, options: BackfillOptions, name: str) -> None:
    raise SystemExit(worker_main(settings, options, name))


@dataclass
class RunResult:
    progress: Progress
    worker_exit_codes: list[int]
    dead_samples: list[dict[str, Any]]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        return (
            self.progress.complete and self.progress.dead == 0 and not any(self.worker_exit_codes)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "elapsed_s": round(self.elapsed_s, 3),
            "worker_exit_codes": self.worker_exit_codes,
            "dead_letters": self.dead_samples,
            **self.progress.as_dict(),
        }


class RateMeter:
    """Docs/s over a sliding window of (time, done) samples."""

    def __init__(self, window_s: float = 15.0) -> None:
        self.window_s = window_s
        self.samples: list[tuple[float, int]] = []

    def update(self, p: Progress) -> Progress:
        now = time.monotonic()
        self.samples.append((now, p.done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.pop(0)
        t0, d0 = self.samples[0]
        if now - t0 > 0.2 and p.done >= d0:
            p.rate = (p.done - d0) / (now - t0)
            remaining = max(0, p.total - p.done)
            p.eta_s = remaining / p.rate if p.rate > 0 else None
        return p


def run(
    settings: Settings,
    options: BackfillOptions,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    progress_interval: float = 1.0,
) -> RunResult:
    """Plan if needed, run `options.workers` worker processes to completion."""
    started = time.monotonic()
    plan(settings, options)
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(max(1, options.workers)):
        proc = ctx.Process(
            target=_worker_process,
            args=(settings, options, f"w{i}"),
            name=f"lazyshift-backfill-w{i}",
        )
        proc.start()
        procs.append(proc)
    conn = connect(settings.mysql, autocommit=True)
    meter = RateMeter()
    try:
        while any(p.is_alive() for p in procs):
            if on_progress is not None:
                on_progress(meter.update(progress(settings, conn)))
            deadline = time.monotonic() + progress_interval
            for p in procs:
                p.join(timeout=max(0.0, deadline - time.monotonic()))
    except KeyboardInterrupt:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join()
    try:
        final = meter.update(progress(settings, conn))
    finally:
        conn.close()
    if on_progress is not None:
        on_progress(final)
    codes = [p.exitcode if p.exitcode is not None else -1 for p in procs]
    samples = dead_letters(settings) if final.dead else []
    return RunResult(final, codes, samples, time.monotonic() - started)
