"""The mode ladder: the only place that knows the order of the stages and what each rung needs.

    stage 1 mongo -> 2 dual -> 3 mysql-primary (flip) -> 4 mysql-primary + backfill -> 5 mysql

Two tables:
- `STAGES`: for each stage, what must hold before the pipeline may start the next one (the
  gate `lazyshift status` reports and Jenkins waits on).
- `RUNGS`: for each (from, to) move of the control plane, what must hold (the same checks as
  the stage it leaves, plus what the rung itself needs), and the steps that copy data while
  writes still flow (`before_pause`) and while they are paused (`during_pause`).

`lazyshift status` (gate.py) and `lazyshift mode set` (plane.py) both read these tables, so
what the gate says and what `mode set` allows cannot disagree. Everything here is pure: the
checks look at `Facts` collected elsewhere (facts.py), the steps live in steps.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from lazyshift.errors import ProblemFound, UsageError


class Mode(StrEnum):
    MONGO = "mongo"
    DUAL = "dual"
    MYSQL_PRIMARY = "mysql-primary"
    MYSQL = "mysql"


ORDER: tuple[Mode, ...] = tuple(Mode)
MODE_NAMES: tuple[str, ...] = tuple(m.value for m in ORDER)
# Modes in which MySQL takes the writes (and MongoDB, if it still exists, is read-only).
MYSQL_WRITES: frozenset[Mode] = frozenset({Mode.MYSQL_PRIMARY, Mode.MYSQL})
# The store holding the truth in each mode while both exist (a verify report or a repair
# must take it as its truth); in `mysql` MongoDB is archived and gone: nothing to compare.
TRUTH: dict[Mode, str | None] = {
    Mode.MONGO: "mongo",
    Mode.DUAL: "mongo",
    Mode.MYSQL_PRIMARY: "mysql",
    Mode.MYSQL: None,
}


class TransitionError(ProblemFound):
    """A transition was refused or could not complete; the old mode stays in force."""


def parse_mode(name: str) -> Mode:
    try:
        return Mode(name)
    except ValueError:
        raise UsageError(f"unknown mode {name!r}: one of {', '.join(MODE_NAMES)}") from None


# -- what the checks look at -------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyRun:
    differences: int
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True)
class ArchiveRun:
    created_at: datetime
    verified_at: datetime  # read back whole, matching its manifest


@dataclass(frozen=True)
class Facts:
    """A snapshot of the migration, collected by `control.facts.collect`."""

    mode: Mode
    epoch: int
    stable: bool = True
    behind: tuple[str, ...] = ()  # live clients that have not acknowledged `epoch`
    mongo_reachable: bool = True
    dual_backlog: int = 0
    shadow_differences: int = 0
    backfill_partitions: int = 0
    backfill_done: int = 0
    backfill_finished_at: datetime | None = None
    last_full_verify: VerifyRun | None = None
    archives: int = 0
    last_verified_archive: ArchiveRun | None = None
    # set when dual was left for mongo: MySQL's copies are stale until a reconcile ran
    reconcile_epoch: int | None = None

    @property
    def stage(self) -> int:
        return stage_of(self.mode, self.backfill_partitions > 0)


def stage_of(mode: Mode, backfill_planned: bool = False) -> int:
    """Stages 3 and 4 share the mode mysql-primary; the backfill is what stage 4 adds."""
    if mode is Mode.MYSQL_PRIMARY and backfill_planned:
        return 4
    return {Mode.MONGO: 1, Mode.DUAL: 2, Mode.MYSQL_PRIMARY: 3, Mode.MYSQL: 5}[mode]


Check = Callable[[Facts], list[str]]  # reasons the move cannot be made now; [] = it can


def _none(_: Facts) -> list[str]:
    return []


def _dual_ready(f: Facts) -> list[str]:
    """Safe to flip: MongoDB is there to flush from, and no shadow read found MySQL holding
    other content than MongoDB at the same version (or a version MongoDB never had). MySQL
    lagging (in flight, or in the backlog) is not a reason: the flip's pause flushes it."""
    out = []
    if not f.mongo_reachable:
        out.append("MongoDB is unreachable")
    if f.shadow_differences:
        out.append(f"{f.shadow_differences} shadow read(s) found MySQL differing from MongoDB")
    if f.reconcile_epoch is not None:
        out.append(
            f"MySQL missed the writes made in mongo mode (since epoch {f.reconcile_epoch}) and "
            "the reconcile that copies them has not finished: `lazyshift mode reconcile`"
        )
    return out


def _dual_notes(f: Facts) -> list[str]:
    if f.dual_backlog:
        return [
            f"{f.dual_backlog} shipment(s) wait in the dual-write backlog: written to "
            "MySQL as it accepts them, the rest during the flip's pause"
        ]
    return []


def _backfill_verified(f: Facts) -> list[str]:
    if f.backfill_partitions == 0:
        return ["no backfill has run: `lazyshift backfill` (stage 4)"]
    if f.backfill_done < f.backfill_partitions:
        return [
            f"backfill not finished ({f.backfill_done}/{f.backfill_partitions} partitions done)"
        ]
    last = f.last_full_verify
    # started after: a verify running while the backfill was still writing proves nothing
    if last is None or f.backfill_finished_at is None or last.started_at < f.backfill_finished_at:
        return ["no full `lazyshift verify` started after the backfill finished"]
    if last.differences:
        return [
            f"the last full verify found {last.differences} difference(s): "
            "`lazyshift repair REPORT`, then verify again"
        ]
    return []


def _archived(f: Facts) -> list[str]:
    """An archive written and read back whole after the clean verify: MongoDB's last
    state, proven readable, before it is removed."""
    archive, last = f.last_verified_archive, f.last_full_verify
    if archive is None:
        return [
            "no archive of MongoDB is recorded (written and read back after the last clean "
            "full verify): run `lazyshift archive --to DIR|s3://bucket/prefix` first"
        ]
    if last is not None and archive.created_at < last.finished_at:
        return [
            "the last archive was made before the last full verify: run `lazyshift archive` again"
        ]
    return []


def _mongo_reachable(f: Facts) -> list[str]:
    return [] if f.mongo_reachable else ["MongoDB is unreachable: nothing to roll back to"]


@dataclass(frozen=True)
class Stage:
    number: int
    mode: Mode
    next_step: str  # what the pipeline does to leave this stage
    ready: Check  # what must hold before it may
    notes: Check = _none  # worth knowing before it does, but no reason to wait


STAGES: dict[int, Stage] = {
    s.number: s
    for s in (
        Stage(1, Mode.MONGO, "mode set dual (stage 2)", _none),
        Stage(2, Mode.DUAL, "mode set mysql-primary (stage 3, the flip)", _dual_ready, _dual_notes),
        Stage(3, Mode.MYSQL_PRIMARY, "lazyshift backfill (stage 4)", _none),
        Stage(
            4,
            Mode.MYSQL_PRIMARY,
            "lazyshift archive, then mode set mysql (stage 5)",
            _backfill_verified,
        ),
        Stage(5, Mode.MYSQL, "", lambda f: ["stage 5 is the end of the ladder"]),
    )
}


@dataclass(frozen=True)
class Rung:
    source: Mode
    target: Mode
    requires: Check = _none
    # Names of steps in control.steps: copy while writes flow, then the rest in the pause.
    before_pause: str | None = None
    during_pause: str | None = None
    # ... and once the new mode is in force and writes flow again
    after_commit: str | None = None
    # MySQL stops getting writes in the target mode: its copies go stale (reconcile later)
    leaves_mysql_stale: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_rollback(self) -> bool:
        return ORDER.index(self.target) < ORDER.index(self.source)


def _all(*checks: Check) -> Check:
    return lambda f: [reason for check in checks for reason in check(f)]


RUNGS: dict[tuple[Mode, Mode], Rung] = {
    (r.source, r.target): r
    for r in (
        # Needs the schema, which reading the control row already proved. Back in dual after
        # a spell in mongo, MySQL holds stale copies: once dual writes flow into both stores,
        # every MongoDB document is copied over them (guarded); the flip waits for that.
        Rung(Mode.MONGO, Mode.DUAL, after_commit="reconcile_if_needed"),
        # The flip: whatever got into the backlog since the check is flushed in the pause, so
        # MySQL holds every shipment's latest version before it becomes the one that is read.
        # Most of the backlog is flushed before the pause, while writes flow; the pause only
        # flushes what was queued since. Dead letters move with the shipments: before the
        # pause, and what arrived meanwhile once MySQL is primary (reading them all again
        # would lengthen the pause).
        Rung(
            Mode.DUAL,
            Mode.MYSQL_PRIMARY,
            requires=_dual_ready,
            before_pause="prepare_flip",
            during_pause="flush_backlog",
            after_commit="dead_letters_to_mysql",
        ),
        Rung(Mode.MYSQL_PRIMARY, Mode.MYSQL, requires=_all(_backfill_verified, _archived)),
        # MongoDB has been the truth all along; MySQL's copies go stale from here on.
        Rung(Mode.DUAL, Mode.MONGO, leaves_mysql_stale=True),
        # Every shipment written in MySQL since the flip goes back to MongoDB: most of it while
        # writes still flow, the rest (what moved meanwhile) in the pause.
        Rung(
            Mode.MYSQL_PRIMARY,
            Mode.DUAL,
            requires=_mongo_reachable,
            before_pause="write_back",
            during_pause="write_back_moved",
        ),
    )
}


def rung(source: Mode, target: Mode) -> Rung:
    """The rung from `source` to `target`, or TransitionError saying which moves exist."""
    found = RUNGS.get((source, target))
    if found is not None:
        return found
    if source is Mode.MYSQL:
        raise TransitionError(
            "mysql is final: MongoDB has been archived and removed; "
            "restore it from the archive to go back"
        )
    allowed = [t.value for (s, t) in RUNGS if s is source]
    raise TransitionError(
        f"cannot go from {source} to {target}: only the next or previous "
        f"rung ({' or '.join(allowed)}) is allowed"
    )


def next_mode(mode: Mode) -> Mode | None:
    i = ORDER.index(mode)
    return ORDER[i + 1] if i + 1 < len(ORDER) else None


def previous_mode(mode: Mode) -> Mode | None:
    i = ORDER.index(mode)
    return ORDER[i - 1] if i > 0 else None


def describe() -> list[dict[str, Any]]:
    """The ladder as data (for `lazyshift mode ladder` and the docs)."""
    return [{"stage": s.number, "mode": s.mode.value, "next": s.next_step} for s in STAGES.values()]
