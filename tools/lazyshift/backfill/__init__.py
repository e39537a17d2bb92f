"""Eager backfill (stage 4): copy every MongoDB shipment into MySQL through the guarded write.

One module per phase: plan.py (partitions of the `_id` key space and the operator's
controls), worker.py (lease a partition, read, write, checkpoint), throttle.py (when to
wait), supervisor.py (worker processes, progress), profile.py (the dry run).
"""

from lazyshift.backfill.options import BackfillError, BackfillOptions, Progress
from lazyshift.backfill.plan import partitions, plan, progress, reset, set_paused
from lazyshift.backfill.profile import DryRunReport, dry_run
from lazyshift.backfill.supervisor import RunResult, dead_letters, run

__all__ = [
    "BackfillError",
    "BackfillOptions",
    "DryRunReport",
    "Progress",
    "RunResult",
    "dead_letters",
    "dry_run",
    "partitions",
    "plan",
    "progress",
    "reset",
    "run",
    "set_paused",
]
