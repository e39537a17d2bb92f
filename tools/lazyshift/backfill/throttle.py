"""When a backfill worker waits. Measuring (worker.py reads MySQL) is kept apart from
deciding (here, pure), as gh-ost's throttler does: `reason` says why to wait, or None."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Signals:
    paused: bool  # the operator's `lazyshift backfill pause`
    threads_running: int  # MySQL's Threads_running (0 when the check is off)


def reason(signals: Signals, max_threads_running: int) -> str | None:
    """'paused', 'throttled' (MySQL is busy) or None (go on)."""
    if signals.paused:
        return "paused"
    if max_threads_running and signals.threads_running > max_threads_running:
        return "throttled"
    return None


class Pacer:
    """Keeps a worker at or under `rate` documents per second, averaged since it started."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.done = 0

    def delay(self, done: int) -> float:
        """Seconds to wait now that `done` documents are done (0 = go on)."""
        self.done = done
        if not self.rate:
            return 0.0
        return max(0.0, done / self.rate - (time.monotonic() - self.started))
