"""The nemesis: a seeded fault schedule and the thread that injects it.

`plan(seed, ...)` is a pure function: the same seed gives the same schedule (the kinds, the
targets, when and for how long, and at which ladder steps `mode set` and the backfill are
killed), which the report keeps. The `Nemesis` injects one fault at a time and always heals
it (SIGCONT, restart) before the next, also when it is told to stop; the start and the end
of every fault go into the history, so the checker knows which failures a fault explains.
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from lazyshift.dev.history import History

# What the nemesis does between ladder steps; `mode-set-kill` and `backfill-kill` are done
# by the run itself at the step the schedule names.
FAULT_KINDS = ("client-kill", "client-stop", "mysql-kill", "mongo-kill", "source-pause")
DURATION_S = {
    "client-kill": (0.2, 2.0),  # until the restart
    "client-stop": (0.5, 4.0),  # SIGSTOP .. SIGCONT
    "mysql-kill": (0.2, 2.0),
    "mongo-kill": (0.2, 2.0),
    "source-pause": (0.5, 4.0),
}


@dataclass(frozen=True)
class PlannedFault:
    at_s: float  # seconds after the nemesis starts
    kind: str
    target: str
    duration_s: float


@dataclass
class Schedule:
    seed: int
    faults: list[PlannedFault]
    # Ladder step index -> seconds after its drain began when `mode set` gets SIGKILL.
    mode_set_kills: dict[int, float] = field(default_factory=dict)
    backfill_kill_after_s: float | None = None
    dwell_s: list[float] = field(default_factory=list)  # wait before each ladder step

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "faults": [asdict(f) for f in self.faults],
            "mode_set_kills": {str(k): v for k, v in self.mode_set_kills.items()},
            "backfill_kill_after_s": self.backfill_kill_after_s,
            "dwell_s": self.dwell_s,
        }


def plan(
    seed: int,
    *,
    window_s: float,
    clients: list[str],
    ladder_steps: int,
    gap_s: tuple[float, float] = (1.5, 5.0),
    kinds: tuple[str, ...] = FAULT_KINDS,
    dwell_s: tuple[float, float] = (1.0, 4.0),
) -> Schedule:
    """Faults over `window_s` seconds, one at a time, with random gaps between them."""
    rng = random.Random(seed)
    faults: list[PlannedFault] = []
    t = rng.uniform(*gap_s)
    while t < window_s:
        kind = rng.choice(kinds)
        target = rng.choice(clients) if kind.startswith("client") else kind.split("-")[0]
        duration = round(rng.uniform(*DURATION_S[kind]), 2)
        faults.append(PlannedFault(round(t, 2), kind, target, duration))
        t += duration + rng.uniform(*gap_s)
    # About one `mode set` in three is killed, at least one of them.
    kills = {i: round(rng.uniform(0.0, 0.3), 2) for i in range(ladder_steps) if rng.random() < 0.35}
    if not kills and ladder_steps:
        kills[rng.randrange(ladder_steps)] = round(rng.uniform(0.0, 0.3), 2)
    return Schedule(
        seed=seed,
        faults=faults,
        mode_set_kills=kills,
        backfill_kill_after_s=round(rng.uniform(0.0, 1.0), 2),  # after its first batch
        dwell_s=[round(rng.uniform(*dwell_s), 2) for _ in range(ladder_steps)],
    )


class Targets(Protocol):
    """What the nemesis can break and mend (workload.Cluster implements it)."""

    def kill_client(self, name: str) -> None: ...

    def restart_client(self, name: str) -> None: ...  # returns when it answers again

    def stop_client(self, name: str) -> None: ...

    def cont_client(self, name: str) -> None: ...

    def kill_store(self, name: str) -> None: ...

    def restart_store(self, name: str) -> None: ...  # returns when it answers again

    def pause_source(self) -> None: ...

    def resume_source(self) -> None: ...


_BREAK = {
    "client-kill": lambda tg, name: tg.kill_client(name),
    "client-stop": lambda tg, name: tg.stop_client(name),
    "mysql-kill": lambda tg, name: tg.kill_store("mysql"),
    "mongo-kill": lambda tg, name: tg.kill_store("mongo"),
    "source-pause": lambda tg, name: tg.pause_source(),
}
_MEND = {
    "client-kill": lambda tg, name: tg.restart_client(name),
    "client-stop": lambda tg, name: tg.cont_client(name),
    "mysql-kill": lambda tg, name: tg.restart_store("mysql"),
    "mongo-kill": lambda tg, name: tg.restart_store("mongo"),
    "source-pause": lambda tg, name: tg.resume_source(),
}


class Nemesis:
    def __init__(self, schedule: Schedule, targets: Targets, history: History) -> None:
        self.schedule = schedule
        self.targets = targets
        self.history = history
        self.injected: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._t0 = 0.0

    def start(self) -> Nemesis:
        self._t0 = self.history.now()
        self._thread.start()
        return self

    def finish(self) -> None:
        """Returns once every planned fault has been injected and healed."""
        self._thread.join()

    def stop(self) -> None:
        """No new fault from now on; returns once the one in progress is healed."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        for fault in self.schedule.faults:
            wait = self._t0 + fault.at_s - self.history.now()
            if self._stop.wait(max(0.0, wait)):
                return
            self.inject(fault)

    def inject(self, fault: PlannedFault) -> None:
        h = self.history
        h.add("fault", fault=fault.kind, target=fault.target, phase="start")
        try:
            _BREAK[fault.kind](self.targets, fault.target)
        except Exception as exc:  # noqa: BLE001 - a fault that could not be made is reported
            self.errors.append(f"{fault.kind} {fault.target}: could not inject: {exc}")
        # Healing is not cut short by stop(): a paused process left paused would hang the run.
        threading.Event().wait(fault.duration_s)
        try:
            _MEND[fault.kind](self.targets, fault.target)
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"{fault.kind} {fault.target}: could not heal: {exc}")
        h.add("fault", fault=fault.kind, target=fault.target, phase="end")
        self.injected.append({**asdict(fault), "injected_at": h.now()})
