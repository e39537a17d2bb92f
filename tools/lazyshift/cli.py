"""The `lazyshift` command line: argument parsing and output only; logic lives below."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lazyshift import __version__, logs
from lazyshift.config import DEFAULT_STATE_DIR, Settings, load_settings

console = Console(stderr=False)
err_console = Console(stderr=True)

# Exit codes Jenkins can gate on.
EXIT_OK = 0
EXIT_DIFFERENCES = 1  # the command ran and found a problem (differences, dead letters...)
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3  # a server could not be reached / a component failed


class Ctx:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def settings(self, **overrides: Any) -> Settings:
        try:
            return load_settings(**overrides)
        except FileNotFoundError as exc:
            raise click.UsageError(str(exc)) from exc

    def emit(self, data: Any, human: Any = None) -> None:
        """JSON with --json (or when stdout is not a terminal and no human form exists)."""
        if self.as_json or human is None:
            click.echo(json.dumps(data, default=str, indent=None if self.as_json else 2))
        elif callable(human):
            human()
        else:
            console.print(human)


pass_ctx = click.make_pass_decorator(Ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lazyshift")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="LAZYSHIFT_CONFIG",
              help="Config file (TOML). Default: <state dir>/lazyshift.toml if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, as_json: bool) -> None:
    """lazyshift: move a live service from MongoDB to MySQL without stopping writes.

    Stages and modes: 1 mongo, 2 dual, 3 mysql-primary (flip), 4 backfill, 5 mysql (cleanup).
    """
    if config_file is not None:
        if not config_file.is_file():
            raise click.BadParameter(f"{config_file} does not exist", param_hint="--config")
        os.environ["LAZYSHIFT_CONFIG"] = str(config_file)
    logs.setup(os.environ.get("LAZYSHIFT_LOG_LEVEL", "INFO"))
    ctx.obj = Ctx(as_json)


# -- dev stack ------------------------------------------------------------------------------
@main.group()
def dev() -> None:
    """Local stack: MariaDB, FerretDB and the mock source as ordinary processes."""


def _stack_options(fn):
    fn = click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
                      default=DEFAULT_STATE_DIR, envvar="LAZYSHIFT_STATE_DIR",
                      show_default=True, help="Where data, logs and pid files live.")(fn)
    fn = click.option("--mysql-port", type=int, default=3306, envvar="LAZYSHIFT_DEV_MYSQL_PORT",
                      show_default=True)(fn)
    fn = click.option("--mongo-port", type=int, default=27017,
                      envvar="LAZYSHIFT_DEV_MONGO_PORT", show_default=True)(fn)
    fn = click.option("--source-port", type=int, default=8282,
                      envvar="LAZYSHIFT_DEV_SOURCE_PORT", show_default=True)(fn)
    fn = click.option("--no-source", is_flag=True, help="Do not start the mock source.")(fn)
    return fn


def _stack(state_dir: Path, mysql_port: int, mongo_port: int, source_port: int,
           no_source: bool, source_args: tuple[str, ...] = ()):
    from lazyshift.devstack import DevStack, StackPorts

    return DevStack(state_dir, StackPorts(mysql_port, mongo_port, source_port),
                    with_source=not no_source, source_args=list(source_args))


@dev.command("up", context_settings={"ignore_unknown_options": True})
@_stack_options
@click.argument("source_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def dev_up(ctx: Ctx, source_args: tuple[str, ...], **kw: Any) -> None:
    """Start the stack (idempotent) and wait until every part answers.

    Arguments after `--` go to the mock source, e.g. `lazyshift dev up -- --rate 200`.
    """
    from lazyshift.devstack import StackError

    stack = _stack(source_args=source_args, **kw)
    try:
        endpoints = stack.up()
    except StackError as exc:
        err_console.print(f"[red]dev up failed:[/red] {exc}")
        sys.exit(EXIT_UNAVAILABLE)
    ctx.emit(endpoints, human=lambda: [console.print(f"{k:7} {v}") for k, v in
                                       endpoints.items()])


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
            table.add_row(str(r["component"]), str(r["port"]), str(r["pid"] or "-"),
                          "yes" if r["answering"] else "[red]no[/red]")
        console.print(table)

    ctx.emit(rows, human=human)
    if not all(r["answering"] for r in rows):
        sys.exit(EXIT_UNAVAILABLE)


@dev.command("demo", context_settings={"ignore_unknown_options": True})
@click.argument("source_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def dev_demo(ctx: Ctx, source_args: tuple[str, ...]) -> None:
    """Run the main job on the running dev stack and reconcile it with the source's log.

    SOURCE_ARGS (after `--`) must be the generation flags the stack's mock source was
    started with (`make demo` passes the same ones to both).
    """
    from lazyshift.demo import print_checks, run_stage1

    if "LAZYSHIFT_LOG_LEVEL" not in os.environ:
        logs.set_level("WARNING")  # the reconciliation table is the output here
    checks = run_stage1(ctx.settings(), list(source_args), console)
    ctx.emit([c.__dict__ | {"ok": c.ok} for c in checks],
             human=lambda: print_checks(checks, console))
    if not all(c.ok for c in checks):
        sys.exit(EXIT_DIFFERENCES)


# -- client ---------------------------------------------------------------------------------
@main.group()
def client() -> None:
    """The stream consumer (and, from stage 2, the read API)."""


@client.command("run")
@click.option("--partition", default="0/1", show_default=True,
              help="Consume partition k of n (k/n); several clients share the stream.")
@click.option("--source-host", default=None, help="Mock source host (config: source.host).")
@click.option("--source-port", type=int, default=None, help="Mock source port (source.port).")
@click.option("--mongo-uri", default=None, help="MongoDB URI (config: mongo.uri).")
@click.option("--mongo-database", default=None, help="MongoDB database (mongo.database).")
@click.option("--exit-at-end", is_flag=True,
              help="Exit once the source says its finite stream is exhausted.")
@pass_ctx
def client_run(ctx: Ctx, partition: str, source_host: str | None, source_port: int | None,
               mongo_uri: str | None, mongo_database: str | None, exit_at_end: bool) -> None:
    """Consume the source stream and store every shipment in the current mode's store.

    Stops cleanly on SIGTERM/SIGINT: the current write finishes and the offset is saved.
    """
    from lazyshift.client.consumer import Consumer, ConsumerOptions
    from lazyshift.client.source import Partition
    from lazyshift.core.mongo_store import MongoStore, connect
    from lazyshift.router import MongoSink

    try:
        part = Partition.parse(partition)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--partition") from exc
    overrides: dict[str, Any] = {}
    if source_host or source_port:
        overrides["source"] = {k: v for k, v in (("host", source_host), ("port", source_port))
                               if v is not None}
    if mongo_uri or mongo_database:
        overrides["mongo"] = {k: v for k, v in (("uri", mongo_uri),
                                                ("database", mongo_database)) if v is not None}
    settings = ctx.settings(**overrides)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    mongo = connect(settings.mongo.uri)
    sink = MongoSink(MongoStore(mongo, settings.mongo.database, settings.mongo.collection))
    consumer = Consumer(sink, ConsumerOptions(settings.source.host, settings.source.port, part,
                                              exit_at_end=exit_at_end), stop=stop)
    logs.event("client.start", mode=sink.mode, partition=str(part),
               source=f"{settings.source.host}:{settings.source.port}")
    counters = consumer.run()
    mongo.close()
    data = counters.as_dict()
    logs.event("client.stop", **data)
    ctx.emit(data, human=lambda: _print_counters(data))


def _print_counters(data: dict[str, Any]) -> None:
    table = Table("counter", "value", title="client run")
    for k, v in data.items():
        table.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
    console.print(table)


if __name__ == "__main__":
    main()
