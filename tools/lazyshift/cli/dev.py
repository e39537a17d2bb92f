"""`lazyshift dev up|down|status|demo`: the local stack and the demo."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from lazyshift import logs
from lazyshift.cli.output import Ctx, console, err_console, pass_ctx
from lazyshift.config import DEFAULT_STATE_DIR, MONGO_PORT, MYSQL_PORT, SOURCE_PORT
from lazyshift.errors import Unavailable


@click.group()
def dev() -> None:
    """Local stack: MariaDB, FerretDB and the mock source as ordinary processes."""


def _stack_options(fn: Any) -> Any:
    fn = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_STATE_DIR,
        envvar="LAZYSHIFT_STATE_DIR",
        show_default=True,
        help="Where data, logs, pid files and ports live.",
    )(fn)
    for name, usual in (("mysql", MYSQL_PORT), ("mongo", MONGO_PORT), ("source", SOURCE_PORT)):
        fn = click.option(
            f"--{name}-port",
            type=click.IntRange(min=0),
            default=None,
            envvar=f"LAZYSHIFT_DEV_{name.upper()}_PORT",
            help=f"Default: the port this stack used last, else {usual}, else "
            "any free port (taken ports are reported). 0: any free port; "
            "a number: that port or fail.",
        )(fn)
    fn = click.option("--no-source", is_flag=True, help="Do not start the mock source.")(fn)
    return fn


def _stack(
    state_dir: Path,
    mysql_port: int | None,
    mongo_port: int | None,
    source_port: int | None,
    no_source: bool,
    source_args: tuple[str, ...] = (),
) -> Any:
    from lazyshift.dev.stack import DevStack, StackPorts

    return DevStack(
        state_dir,
        StackPorts(mysql_port, mongo_port, source_port),
        with_source=not no_source,
        source_args=list(source_args),
    )


@dev.command("up", context_settings={"ignore_unknown_options": True})
@_stack_options
@click.argument("source_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def dev_up(ctx: Ctx, source_args: tuple[str, ...], **kw: Any) -> None:
    """Start the stack (idempotent) and wait until every part answers.

    Arguments after `--` go to the mock source, e.g. `lazyshift dev up -- --rate 200`.
    Exit 3, starting nothing, if a part cannot start (port taken, binary missing...).
    """
    stack = _stack(source_args=source_args, **kw)
    try:
        endpoints = stack.up()
    except OSError as exc:
        raise Unavailable(f"dev up failed: {exc}") from exc
    for note in stack.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    ctx.emit(
        endpoints,
        human=lambda: [
            console.print(f"{k:7} {v}", soft_wrap=True, highlight=False)
            for k, v in endpoints.items()
        ],
    )


@dev.command("down")
@_stack_options
@pass_ctx
def dev_down(ctx: Ctx, **kw: Any) -> None:
    """Stop the processes this stack started (by pid file); nothing else."""
    stopped = _stack(**kw).down()
    ctx.emit({"stopped": stopped}, human=f"stopped: {', '.join(stopped) or 'nothing'}")


@dev.command("status")
@_stack_options
@pass_ctx
def dev_status(ctx: Ctx, **kw: Any) -> None:
    """Show each component, its pid and whether it answers. Exit 3 if any is down."""
    rows = _stack(**kw).status()

    def human() -> None:
        table = Table("component", "port", "pid", "answering")
        for r in rows:
            table.add_row(
                str(r["component"]),
                str(r["port"]),
                str(r["pid"] or "-"),
                "yes" if r["answering"] else "[red]no[/red]",
            )
        console.print(table)

    ctx.emit(rows, human=human)
    if not all(r["answering"] for r in rows):
        raise click.exceptions.Exit(3)


class _ConsoleReporter:
    """How `dev demo` shows the ladder's steps as they run."""

    @contextlib.contextmanager
    def step(self, stage: str, what: str) -> Iterator[None]:
        with console.status(f"{stage}: {what}"):
            yield

    def done(self, result: Any) -> None:
        console.print(
            f"[bold]{result.stage}[/bold] {result.what}: "
            + ("[green]ok[/green]" if result.ok else "[red]failed[/red]")
        )

    def note(self, text: str) -> None:
        console.print(f"  {text}")


def _print_checks(checks: list[Any]) -> None:
    table = Table("check", "source says", "lazyshift has", "", title="stage 1 reconciliation")
    for ch in checks:
        table.add_row(
            ch.what,
            str(ch.expected),
            str(ch.actual),
            "[green]ok[/green]" if ch.ok else "[red]MISMATCH[/red]",
        )
    console.print(table)


def _print_ladder(results: list[Any]) -> None:
    table = Table("stage", "step", "seconds", "", title="the ladder, end to end")
    for r in results:
        table.add_row(
            r.stage,
            r.what,
            f"{r.seconds:.2f}",
            "[green]ok[/green]" if r.ok else "[red]FAILED[/red]",
        )
    console.print(table)


@dev.command("demo", context_settings={"ignore_unknown_options": True})
@click.option("--stage1-only", is_flag=True, help="Only stage 1 (mongo) and its reconciliation.")
@click.option(
    "--faults",
    "fault_seed",
    type=click.IntRange(min=0, max=2**32 - 1),
    default=None,
    metavar="SEED",
    help="Walk the ladder up and down under a seeded fault schedule and check the history "
    "(same seed, same schedule); writes demo.json, history.jsonl, timeline.png.",
)
@click.option(
    "--count",
    type=click.IntRange(min=100),
    default=3000,
    show_default=True,
    help="With --faults: messages the run's own mock source emits.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=1),
    default=50.0,
    show_default=True,
    help="With --faults: messages per second.",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="With --faults: where the report, history and timeline go.",
)
@click.argument("source_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def dev_demo(
    ctx: Ctx,
    stage1_only: bool,
    fault_seed: int | None,
    count: int,
    rate: float,
    report_dir: Path,
    source_args: tuple[str, ...],
) -> None:
    """Run the main job on the running dev stack and reconcile it with the source's log:
    all five stages with the stream flowing (wipes the dev databases first).

    SOURCE_ARGS (after `--`) must be the generation flags the stack's mock source was
    started with (`make demo` passes the same ones to both).
    """
    from lazyshift.dev.demo import run_ladder, run_stage1

    if "LAZYSHIFT_LOG_LEVEL" not in os.environ:
        logs.set_level("WARNING")  # the tables are the output here
    if fault_seed is not None:
        _fault_demo(ctx, fault_seed, count, rate, report_dir)
    if stage1_only:
        with Progress(
            TextColumn("stage 1 [bold]mongo[/bold]: ingesting"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} messages"),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("ingest", total=None)
            checks = run_stage1(
                ctx.settings(),
                list(source_args),
                lambda done, total: bar.update(task, completed=done, total=total),
            )
        ctx.emit([c.__dict__ | {"ok": c.ok} for c in checks], human=lambda: _print_checks(checks))
        ctx.finish(all(c.ok for c in checks))
    results = run_ladder(ctx.settings(), list(source_args), _ConsoleReporter())
    ctx.emit([r.__dict__ for r in results], human=lambda: _print_ladder(results))
    ctx.finish(all(r.ok for r in results))


def _fault_demo(ctx: Ctx, seed: int, count: int, rate: float, report_dir: Path) -> None:
    from lazyshift.dev.fault_run import FaultRunOptions, run_with_faults
    from lazyshift.dev.stack import DevStack

    settings = ctx.settings()
    stack = DevStack(Path(settings.state_dir))
    if not all(r["answering"] for r in stack.status() if r["component"] != "source"):
        raise Unavailable(
            f"the dev stack in {settings.state_dir} is not running: `lazyshift dev up` first"
        )
    opts = FaultRunOptions(seed=seed, count=count, rate=rate, report_dir=report_dir)
    with console.status(f"fault run, seed {seed}: the ladder under a nemesis"):
        report = run_with_faults(
            settings, stack, opts, lambda text: console.print(f"  {escape(text)}")
        )

    def human() -> None:
        table = Table("", "", title=f"fault run, seed {seed}")
        for key in (
            "emitted",
            "applied",
            "dead_lettered",
            "lost",
            "stale_reads",
            "read_errors",
            "max_write_pause_s",
            "faults_injected",
        ):
            table.add_row(key, str(report[key]))
        console.print(table)
        for line in report["verdict"]["failures"] + report["problems"]:
            console.print(f"[red]✗[/red] {escape(line)}")
        console.print(f"report: {report_dir / 'demo.json'}; timeline: {report['timeline']}")

    ctx.emit(report, human=human)
    ctx.finish(bool(report["ok"]))


COMMANDS = [dev]
