"""`lazyshift mode show|set|abort|reconcile` and `lazyshift rollback`: the control plane."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from lazyshift.cli.output import Ctx, console, pass_ctx
from lazyshift.control.ladder import MODE_NAMES


@click.group()
def mode() -> None:
    """The mode ladder: mongo (1) -> dual (2) -> mysql-primary (3, 4) -> mysql (5)."""


@mode.command("show")
@pass_ctx
def mode_show(ctx: Ctx) -> None:
    """Print the current mode, epoch and whether a transition is draining."""
    from lazyshift.control.ladder import Mode, stage_of
    from lazyshift.control.plane import get_state, held

    st = get_state(ctx.settings())
    held_for = None if st.stable else held(ctx.settings())
    data = {
        "mode": st.mode,
        "stage": stage_of(Mode(st.mode)),
        "epoch": st.epoch,
        "state": st.state,
        "target_mode": st.target_mode,
        "flip_epoch": st.flip_epoch,
        "changed_at": st.changed_at,
        "held": held_for is not None,
    }
    ctx.emit(
        data,
        human=lambda: console.print(
            f"mode [bold]{st.mode}[/bold] (stage {data['stage']}), epoch {st.epoch}, {st.state}"
            + (f" -> {st.target_mode}" if st.target_mode else "")
            + (", held until `lazyshift mode release`" if held_for is not None else "")
        ),
    )


@mode.command("set")
@click.argument("target", type=click.Choice(MODE_NAMES))
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for every live client to acknowledge (and, with --hold, as long "
    "again for the release).",
)
@click.option(
    "--hold",
    is_flag=True,
    help="Once every client acknowledged (writes paused), wait for `lazyshift mode release` "
    "before committing TARGET; not released within --timeout: the old mode stays.",
)
@pass_ctx
def mode_set(ctx: Ctx, target: str, timeout: float, hold: bool) -> None:
    """Move one rung up or down the ladder; returns when every live client is in TARGET.

    Refused (exit 1, nothing changed) when the rung's requirements do not hold: the same
    reasons `lazyshift status` gives for its gate. Going down is a rollback (see `lazyshift
    rollback`). Fails, leaving the old mode in force, if a client does not acknowledge in
    time.

    With --hold, a step that must happen while writes are paused runs between the drain and
    the commit: stage 3 revokes MongoDB's write role, then runs `lazyshift mode release`. If
    that step dies, the held transition times out and the old mode stays (give back anything
    the step took away, e.g. MongoDB's write role, and run stage 3 again).
    """
    from lazyshift.control.plane import set_mode

    _transition(ctx, lambda s: set_mode(s, target, timeout_s=timeout, hold=hold))


@mode.command("release")
@pass_ctx
def mode_release(ctx: Ctx) -> None:
    """Let a `mode set --hold` commit its mode (the step it waited for is done).

    Fails (exit 1) when no transition is draining: the held `mode set` timed out and the old
    mode stays, or none was started."""
    from lazyshift.control.plane import release

    epoch = release(ctx.settings())
    ctx.emit({"ok": True, "released_epoch": epoch}, human=f"released epoch {epoch}")


@mode.command("abort")
@pass_ctx
def mode_abort(ctx: Ctx) -> None:
    """Abandon a transition left draining by a `mode set` that died; the old mode stays."""
    from lazyshift.control.plane import abort

    st = abort(ctx.settings())
    ctx.emit(
        {"mode": st.mode, "epoch": st.epoch, "state": st.state},
        human=f"mode {st.mode}, epoch {st.epoch}, {st.state}",
    )


@mode.command("reconcile")
@pass_ctx
def mode_reconcile(ctx: Ctx) -> None:
    """Stage 2, back in dual after mongo: copy every MongoDB document over MySQL's stale copy
    (guarded: only newer ones land) while dual writes flow. `mode set dual` runs it; the
    flip is refused until it has finished."""
    from lazyshift.control.plane import reconcile

    note = reconcile(ctx.settings())
    ctx.emit({"ok": True, "note": note}, human=note)


@click.command("rollback")
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for every live client to acknowledge.",
)
@pass_ctx
def rollback_cmd(ctx: Ctx, timeout: float) -> None:
    """One rung down the ladder. From mysql-primary this first writes every shipment changed
    in MySQL since the flip back to MongoDB, then makes MongoDB the truth again."""
    from lazyshift.control.plane import rollback

    _transition(ctx, lambda s: rollback(s, timeout_s=timeout))


def _transition(ctx: Ctx, run: Callable[[Any], Any]) -> None:
    result = run(ctx.settings())
    data = {"ok": True, **result.__dict__}
    ctx.emit(
        data,
        human=lambda: console.print(
            f"{result.from_mode} -> [bold]{result.to_mode}[/bold] at epoch {result.epoch}; "
            f"writes paused {result.paused_s:.3f}s; acknowledged by "
            f"{len(result.acknowledged)} client(s)"
            + (f"; fenced out: {', '.join(result.fenced_out)}" if result.fenced_out else "")
            + "".join(f"\n  {n}" for n in result.notes)
        ),
    )


COMMANDS = [mode, rollback_cmd]
