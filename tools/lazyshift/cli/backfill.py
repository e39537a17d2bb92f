"""`lazyshift backfill [run|pause|resume|status|reset]` (stage 4)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from lazyshift.cli.output import Ctx, console, err_console, fmt_duration, pass_ctx
from lazyshift.errors import EXIT_UNAVAILABLE


def _run_options(fn):
    opts = [
        click.option(
            "--workers",
            type=click.IntRange(1, 256),
            default=1,
            show_default=True,
            help="Worker processes on this host (other hosts may run more).",
        ),
        click.option(
            "--partitions",
            type=click.IntRange(1, 100_000),
            default=8,
            show_default=True,
            help="_id ranges to plan (only when no plan exists yet); split points come "
            "from the lowest and highest _id, no documents are read to plan.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(1, 10_000),
            default=500,
            show_default=True,
            help="Documents per MySQL transaction.",
        ),
        click.option(
            "--lease-seconds",
            type=click.FloatRange(0.5, None),
            default=60.0,
            show_default=True,
            help="A partition whose lease is not renewed for this long is taken over.",
        ),
        click.option(
            "--max-rate",
            type=click.FloatRange(0, None, min_open=True),
            default=None,
            help="Documents per second for this command (all workers together).",
        ),
        click.option(
            "--max-threads-running",
            type=click.IntRange(0, None),
            default=0,
            show_default=True,
            help="Pause while MySQL's Threads_running exceeds this (0 = off).",
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            help="Map every document without writing; report drift, rejections, "
            "coercions. Exit 1 if any document would be rejected.",
        ),
        click.option(
            "--progress-interval",
            type=click.FloatRange(0.05, None),
            default=None,
            help="Seconds between progress updates (default 1 on a terminal, 5 otherwise).",
        ),
        click.option("--json", "local_json", is_flag=True, help="JSON output."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


@click.group("backfill", invoke_without_command=True)
@_run_options
@click.pass_context
def backfill(cctx: click.Context, **kw: Any) -> None:
    """Copy every MongoDB shipment into MySQL (resumable, parallel, throttled).

    Without a subcommand: `run`. Exit 0 when complete, 1 if documents were dead-lettered,
    3 if a worker failed or a server was unreachable.
    """
    if cctx.invoked_subcommand is None:
        cctx.invoke(backfill_run, **kw)


@backfill.command("run")
@_run_options
@pass_ctx
def backfill_run(
    ctx: Ctx,
    workers: int,
    partitions: int,
    batch_size: int,
    lease_seconds: float,
    max_rate: float | None,
    max_threads_running: int,
    dry_run: bool,
    progress_interval: float | None,
    local_json: bool,
) -> None:
    """Run the backfill until every partition is done (plans it first if needed)."""
    from lazyshift import backfill as bf

    as_json = ctx.json_out(local_json)
    settings = ctx.settings()
    if dry_run:
        _dry_run(ctx, settings, as_json)
        return
    options = bf.BackfillOptions(
        workers=workers,
        partitions=partitions,
        batch_size=batch_size,
        lease_seconds=lease_seconds,
        max_rate=max_rate,
        max_threads_running=max_threads_running,
    )
    tty = sys.stderr.isatty() and not as_json
    interval = progress_interval or (1.0 if tty else 5.0)
    if tty:
        with Progress(
            TextColumn("[bold]backfill"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.completed}/{task.total} docs"),
            TextColumn("{task.fields[rate]} docs/s"),
            TextColumn("left to migrate {task.fields[left]}"),
            TextColumn("{task.fields[state]}"),
            TimeRemainingColumn(),
            console=err_console,
        ) as bar:
            task = bar.add_task("backfill", total=None, rate="-", left="-", state="")

            def show(p: bf.Progress) -> None:
                bar.update(
                    task,
                    total=p.total or None,
                    completed=p.done,
                    rate=f"{p.rate:.0f}" if p.rate is not None else "-",
                    left=p.left_to_migrate,
                    state="[yellow]paused[/yellow]" if p.paused else "",
                )

            result = bf.run(settings, options, on_progress=show, progress_interval=interval)
    else:

        def emit(p: bf.Progress) -> None:
            click.echo(json.dumps({"event": "backfill.progress", **p.as_dict()}), err=True)

        result = bf.run(settings, options, on_progress=emit, progress_interval=interval)
    data = result.as_dict()

    def human() -> None:
        p = result.progress
        table = Table("", "value", title="backfill")
        for label, value in (
            ("partitions done", f"{p.partitions_done}/{p.partitions}"),
            ("documents scanned", p.done),
            ("written", p.written),
            ("already as new in MySQL", p.done - p.written - p.dead),
            ("dead-lettered", p.dead),
            ("left to migrate", p.left_to_migrate),
            ("elapsed", fmt_duration(result.elapsed_s)),
        ):
            table.add_row(label, str(value))
        console.print(table)
        if result.dead_samples:
            dead = Table("document", "reason", title="dead-lettered (first 20)")
            for row in result.dead_samples:
                dead.add_row(row["dedup_key"], row["reason"])
            console.print(dead)

    ctx.emit(data, human=None if as_json else human)
    if any(result.worker_exit_codes) or not result.progress.complete:
        raise click.exceptions.Exit(EXIT_UNAVAILABLE)
    ctx.finish(not result.progress.dead)


def _dry_run(ctx: Ctx, settings: Any, as_json: bool) -> None:
    from lazyshift import backfill as bf

    report = bf.dry_run(settings)
    data = report.as_dict()

    def human() -> None:
        console.print(
            f"{report.docs} documents: {report.would_write} would be written, "
            f"{report.would_reject} rejected"
        )
        if report.type_drift:
            t = Table("field", "types (count)", "example keys", title="type drift")
            for e in report.type_drift:
                t.add_row(
                    e["path"],
                    ", ".join(f"{k} {v}" for k, v in e["types"].items()),
                    ", ".join(f"{k}: {v}" for k, v in e["examples"].items()),
                )
            console.print(t)
        if report.rejections:
            t = Table("field", "problem", "count", "example", title="would be rejected")
            for e in report.rejections:
                t.add_row(
                    e["path"],
                    e["problem"],
                    str(e["count"]),
                    f"{e['examples'][0]['key']}: {e['examples'][0]['reason']}",
                )
            console.print(t)
        if report.coercions:
            t = Table("field", "coercion", "count", "examples", title="coercions")
            for e in report.coercions:
                t.add_row(e["path"], e["coercion"], str(e["count"]), ", ".join(e["examples"]))
            console.print(t)

    ctx.emit(data, human=human, as_json=as_json)
    ctx.finish(not report.would_reject)


@backfill.command("pause")
@pass_ctx
def backfill_pause(ctx: Ctx) -> None:
    """Pause every running backfill worker (they obey within about a second)."""
    from lazyshift import backfill as bf

    bf.set_paused(ctx.settings(), True)
    ctx.emit({"paused": True}, human="backfill paused")


@backfill.command("resume")
@pass_ctx
def backfill_resume(ctx: Ctx) -> None:
    """Resume a paused backfill."""
    from lazyshift import backfill as bf

    bf.set_paused(ctx.settings(), False)
    ctx.emit({"paused": False}, human="backfill resumed")


@backfill.command("status")
@click.option("--json", "local_json", is_flag=True, help="JSON output.")
@pass_ctx
def backfill_status(ctx: Ctx, local_json: bool) -> None:
    """Partitions, checkpoints, leases and documents left to migrate."""
    from lazyshift import backfill as bf

    settings = ctx.settings()
    p = bf.progress(settings)
    parts = bf.partitions(settings)
    data = {**p.as_dict(), "partition_rows": parts}

    def human() -> None:
        t = Table(
            "id",
            "kind",
            "range",
            "checkpoint",
            "status",
            "lease",
            "done",
            "written",
            "dead",
            title=f"backfill: {p.partitions_done}/{p.partitions} partitions done, "
            f"{p.left_to_migrate} left to migrate"
            + (" [yellow](paused)[/yellow]" if p.paused else ""),
        )
        for r in parts:
            t.add_row(
                str(r["id"]),
                r["kind"],
                f"({r['lower_key']}, {r['upper_key']}]",
                str(r["checkpoint_key"]),
                r["status"],
                str(r["lease_owner"] or "-"),
                f"{r['docs_done']}/{r['docs_estimate']}",
                str(r["docs_written"]),
                str(r["docs_dead"]),
            )
        console.print(t)

    ctx.emit(data, human=None if ctx.json_out(local_json) else human)


@backfill.command("reset")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def backfill_reset(ctx: Ctx, yes: bool) -> None:
    """Forget the plan and checkpoints (rows already in MySQL stay); the next run re-plans."""
    from lazyshift import backfill as bf

    if not yes and sys.stdin.isatty():
        click.confirm("Forget every backfill checkpoint?", abort=True)
    removed = bf.reset(ctx.settings())
    ctx.emit({"partitions_removed": removed}, human=f"removed {removed} partitions")


COMMANDS = [backfill]
