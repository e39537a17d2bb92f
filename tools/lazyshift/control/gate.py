"""The stage gate a pipeline reads: can it advance to the next stage, can it roll back one,
and why not. A pure function of `ladder.Facts`, over the ladder's own tables."""

from __future__ import annotations

from typing import Any

from lazyshift.control.ladder import (
    STAGES,
    Facts,
    TransitionError,
    previous_mode,
    rung,
)


def _fencing(f: Facts) -> list[str]:
    if not f.stable:
        return ["a transition is draining"]
    if f.behind:
        return [f"client(s) not yet at epoch {f.epoch}: {', '.join(f.behind[:5])}"]
    return []


def evaluate(f: Facts) -> dict[str, Any]:
    stage = STAGES[f.stage]
    advance = _fencing(f) + stage.ready(f)
    back = ["a transition is draining"] if not f.stable else []
    previous = previous_mode(f.mode)
    if previous is None:
        back.append("stage 1 is the start of the ladder")
    else:
        try:
            back += rung(f.mode, previous).requires(f)
        except TransitionError as exc:
            back.append(str(exc))
    return {
        "stage": f.stage,
        "next": stage.next_step or None,
        "previous": previous.value if previous is not None else None,
        "can_advance": not advance,
        "cannot_advance_because": advance,
        "can_roll_back": not back,
        "cannot_roll_back_because": back,
        "notes": stage.notes(f),
    }
