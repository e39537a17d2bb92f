"""What a backfill is asked to do, what it reports, and how it fails."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from lazyshift.errors import Unavailable

ORIGIN = "backfill"  # dead_letter.origin of what the backfill cannot map


class BackfillError(Unavailable):
    """The backfill cannot run as asked; the message says why and what to do."""


@dataclass(frozen=True)
class BackfillOptions:
    workers: int = 1
    partitions: int = 8
    batch_size: int = 500
    lease_seconds: float = 60.0
    max_rate: float | None = None  # docs/s for this command, all its workers together
    max_threads_running: int = 0  # 0 = no check

    def per_worker_rate(self) -> float | None:
        return None if not self.max_rate else self.max_rate / max(1, self.workers)


@dataclass
class Progress:
    partitions: int = 0
    partitions_done: int = 0
    total: int = 0  # MongoDB documents when planned
    done: int = 0  # scanned by the backfill
    written: int = 0  # applied by the backfill (the rest were already as new in MySQL)
    dead: int = 0
    mysql_rows: int = 0
    left_to_migrate: int = 0  # MongoDB documents not in MySQL yet, lazy migration included
    paused: bool = False
    states: dict[str, int] = field(default_factory=dict)
    rate: float | None = None  # docs/s, set by the caller that samples over time
    eta_s: float | None = None

    @property
    def complete(self) -> bool:
        return self.partitions > 0 and self.partitions_done == self.partitions

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "complete": self.complete}
