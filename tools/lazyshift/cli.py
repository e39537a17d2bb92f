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
from rich.markup import escape
from rich.table import Table

from lazyshift import __version__, logs
from lazyshift.config import DEFAULT_STATE_DIR, Settings, load_settings

console = Console(stderr=False)
err_console = Console(stderr=True, soft_wrap=True)

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
                      show_default=True, help="Where data, logs, pid files and ports live.")(fn)
    for name, usual in (("mysql", 3306), ("mongo", 27017), ("source", 8282)):
        fn = click.option(f"--{name}-port", type=click.IntRange(min=0), default=None,
                          envvar=f"LAZYSHIFT_DEV_{name.upper()}_PORT",
                          help=f"Default: the port this stack used last, else {usual}, else "
                               "any free port (taken ports are reported). 0: any free port; "
                               "a number: that port or fail.")(fn)
    fn = click.option("--no-source", is_flag=True, help="Do not start the mock source.")(fn)
    return fn


def _stack(state_dir: Path, mysql_port: int | None, mongo_port: int | None,
           source_port: int | None, no_source: bool, source_args: tuple[str, ...] = ()):
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
    Exit 3, starting nothing, if a part cannot start (port taken, binary missing...).
    """
    from lazyshift.devstack import StackError

    stack = _stack(source_args=source_args, **kw)
    try:
        endpoints = stack.up()
    except (StackError, OSError) as exc:
        # Log tails carry "[ERROR]" and the like: escape them so they print as they are.
        err_console.print(f"[red]dev up failed:[/red] {escape(str(exc))}", highlight=False)
        sys.exit(EXIT_UNAVAILABLE)
    for note in stack.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}", highlight=False)
    ctx.emit(endpoints, human=lambda: [console.print(f"{k:7} {v}", soft_wrap=True,
                                                     highlight=False)
                                       for k, v in endpoints.items()])


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
@click.option("--stage1-only", is_flag=True, help="Only stage 1 (mongo) and its reconciliation.")
@click.argument("source_args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def dev_demo(ctx: Ctx, stage1_only: bool, source_args: tuple[str, ...]) -> None:
    """Run the main job on the running dev stack and reconcile it with the source's log:
    all five stages with the stream flowing (wipes the dev databases first).

    SOURCE_ARGS (after `--`) must be the generation flags the stack's mock source was
    started with (`make demo` passes the same ones to both).
    """
    from lazyshift.demo import print_checks, print_ladder, run_ladder, run_stage1

    if "LAZYSHIFT_LOG_LEVEL" not in os.environ:
        logs.set_level("WARNING")  # the tables are the output here
    if stage1_only:
        checks = run_stage1(ctx.settings(), list(source_args), console)
        ctx.emit([c.__dict__ | {"ok": c.ok} for c in checks],
                 human=lambda: print_checks(checks, console))
        ok = all(c.ok for c in checks)
    else:
        results = run_ladder(ctx.settings(), list(source_args), console)
        ctx.emit([r.__dict__ for r in results], human=lambda: print_ladder(results, console))
        ok = all(r.ok for r in results)
    if not ok:
        sys.exit(EXIT_DIFFERENCES)


# -- client ---------------------------------------------------------------------------------
@main.group()
def client() -> None:
    """The stream consumer (and, from stage 2, the read API)."""


@client.command("run")
@click.option("--partition", default="0/1", show_default=True,
              help="Consume partition k of n (k/n); several clients share the stream.")
@click.option("--mode", "mode_source", type=click.Choice(["mongo", "control"]), default=None,
              help="`mongo`: stage 1, no MySQL (the default while no MySQL is configured). "
                   "`control`: follow the mode in MySQL's control table (stage 2 on). "
                   "Config: client.mode.")
@click.option("--source-host", default=None, help="Mock source host (config: source.host).")
@click.option("--source-port", type=int, default=None, help="Mock source port (source.port).")
@click.option("--mongo-uri", default=None, help="MongoDB URI (config: mongo.uri).")
@click.option("--mongo-database", default=None, help="MongoDB database (mongo.database).")
@click.option("--http-port", type=int, default=None,
              help="Read API port (config: client.http_port; 0 picks a free port; -1 = off).")
@click.option("--client-id", default=None, help="Name in the heartbeat table "
              "(default host:pid:partition).")
@click.option("--exit-at-end", is_flag=True,
              help="Exit once the source says its finite stream is exhausted.")
@pass_ctx
def client_run(ctx: Ctx, partition: str, mode_source: str | None, source_host: str | None,
               source_port: int | None, mongo_uri: str | None, mongo_database: str | None,
               http_port: int | None, client_id: str | None, exit_at_end: bool) -> None:
    """Consume the source stream into the current mode's store and serve reads.

    Stops cleanly on SIGTERM/SIGINT: the write in hand finishes, the offset is saved and the
    client leaves the heartbeat table so transitions do not wait for it.
    """
    from lazyshift.client.api import ReadAPI
    from lazyshift.client.consumer import Consumer, ConsumerOptions
    from lazyshift.client.follower import Follower, default_client_id
    from lazyshift.client.source import Partition
    from lazyshift.core.mongo_store import MongoStore, connect
    from lazyshift.router import Router

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
    client_over = {k: v for k, v in (("mode", mode_source), ("http_port", http_port))
                   if v is not None}
    if client_over:
        overrides["client"] = client_over
    settings = ctx.settings(**overrides)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    mongo = connect(settings.mongo.uri)
    store = MongoStore(mongo, settings.mongo.database, settings.mongo.collection)
    follower = None
    holder: dict[str, Any] = {}
    if settings.client.mode == "control":
        follower = Follower(
            settings, client_id or default_client_id(str(part)), str(part), stop,
            stats=lambda: {**holder["consumer"].counters.as_dict(),
                           "shadow": dict(holder["router"].shadow_counts)}
            if "consumer" in holder else {},
            write_connection_id=lambda: holder["router"].writer_connection_id()
            if "router" in holder else None,
        )
    router = Router(settings, store, follower=follower)
    holder["router"] = router
    consumer = Consumer(router, ConsumerOptions(settings.source.host, settings.source.port, part,
                                                exit_at_end=exit_at_end), stop=stop)
    holder["consumer"] = consumer
    api = None
    if settings.client.http_port >= 0:
        try:
            api = ReadAPI(router, settings.client.http_host, settings.client.http_port,
                          health=lambda: {"counters": consumer.counters.as_dict()},
                          counters=consumer.counters.as_dict)
        except OSError as exc:
            raise click.UsageError(
                f"cannot serve the read API on {settings.client.http_host}:"
                f"{settings.client.http_port}: {exc}. Pick another --http-port (or -1 for none)"
            ) from exc
        api.start()
    if follower is not None:
        follower.start()
    logs.event("client.start", mode_source=settings.client.mode, partition=str(part),
               source=f"{settings.source.host}:{settings.source.port}",
               http_port=api.port if api else None)
    try:
        counters = consumer.run()
    finally:
        stop.set()
        if api is not None:
            api.stop()
        if follower is not None:
            follower.join()
            follower.deregister()
        mongo.close()
    data = counters.as_dict()
    logs.event("client.stop", **data)
    ctx.emit(data, human=lambda: _print_counters(data))


def _print_counters(data: dict[str, Any]) -> None:
    table = Table("counter", "value", title="client run")
    for k, v in data.items():
        table.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
    console.print(table)


# -- schema -----------------------------------------------------------------------------------
@main.group()
def schema() -> None:
    """MySQL schema: versioned migrations, each applied once (stage 2 installs it)."""


@schema.command("migrate")
@pass_ctx
def schema_migrate_cmd(ctx: Ctx) -> None:
    """Apply the pending migrations in order (uses the DDL-capable migrate user)."""
    from lazyshift import schema_migrate

    settings = ctx.settings()
    with _unavailable_is_exit_3("MySQL"):
        applied = schema_migrate.migrate(settings)
    ctx.emit({"applied": applied},
             human=lambda: console.print(
                 "applied: " + (", ".join(f"{a['version']} {a['name']}" for a in applied)
                                or "nothing (up to date)")))


@schema.command("status")
@pass_ctx
def schema_status_cmd(ctx: Ctx) -> None:
    """List every migration and whether it is applied, pending or changed. Exit 1 unless
    everything is applied and unchanged."""
    from lazyshift import schema_migrate

    with _unavailable_is_exit_3("MySQL"):
        rows = schema_migrate.status(ctx.settings())

    def human() -> None:
        table = Table("version", "name", "state", "applied at")
        for r in rows:
            table.add_row(str(r.get("version")), str(r.get("name")), str(r.get("state")),
                          str(r.get("applied_at") or ""))
        console.print(table)

    ctx.emit(rows, human=human)
    if any(r.get("state") != "applied" for r in rows):
        sys.exit(EXIT_DIFFERENCES)


# -- modes ----------------------------------------------------------------------------------
@main.group()
def mode() -> None:
    """The mode ladder: mongo (1) -> dual (2) -> mysql-primary (3, 4) -> mysql (5)."""


@mode.command("show")
@pass_ctx
def mode_show(ctx: Ctx) -> None:
    """Print the current mode, epoch and whether a transition is draining."""
    from lazyshift.control import STAGE_OF_MODE, get_state

    with _unavailable_is_exit_3("MySQL"):
        st = get_state(ctx.settings())
    data = {"mode": st.mode, "stage": STAGE_OF_MODE[st.mode], "epoch": st.epoch,
            "state": st.state, "target_mode": st.target_mode, "flip_epoch": st.flip_epoch,
            "changed_at": st.changed_at}
    ctx.emit(data, human=lambda: console.print(
        f"mode [bold]{st.mode}[/bold] (stage {data['stage']}), epoch {st.epoch}, {st.state}"
        + (f" -> {st.target_mode}" if st.target_mode else "")))


@mode.command("set")
@click.argument("target", type=click.Choice(["mongo", "dual", "mysql-primary", "mysql"]))
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for every live client to acknowledge.")
@pass_ctx
def mode_set(ctx: Ctx, target: str, timeout: float) -> None:
    """Move one rung up or down the ladder; returns when every live client is in TARGET.

    Going down is a rollback (see `lazyshift rollback`). Fails, leaving the old mode in
    force, if a client does not acknowledge in time.
    """
    from lazyshift.transitions import change_mode

    _transition(ctx, lambda s: change_mode(s, target, timeout_s=timeout))


@mode.command("abort")
@pass_ctx
def mode_abort(ctx: Ctx) -> None:
    """Abandon a transition left draining by a `mode set` that died; the old mode stays."""
    from lazyshift.control import abort

    with _unavailable_is_exit_3("MySQL"):
        st = abort(ctx.settings())
    ctx.emit({"mode": st.mode, "epoch": st.epoch, "state": st.state},
             human=f"mode {st.mode}, epoch {st.epoch}, {st.state}")


@main.command("rollback")
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for every live client to acknowledge.")
@pass_ctx
def rollback_cmd(ctx: Ctx, timeout: float) -> None:
    """One rung down the ladder. From mysql-primary this first writes every shipment changed
    in MySQL since the flip back to MongoDB, then makes MongoDB the truth again."""
    from lazyshift.transitions import rollback

    _transition(ctx, lambda s: rollback(s, timeout_s=timeout))


def _transition(ctx: Ctx, run: Any) -> None:
    from lazyshift.control import TransitionError

    try:
        with _unavailable_is_exit_3("MySQL"):
            result = run(ctx.settings())
    except TransitionError as exc:
        err_console.print(f"[red]transition refused or failed:[/red] {exc}")
        if ctx.as_json:
            click.echo(json.dumps({"ok": False, "error": str(exc)}))
        sys.exit(EXIT_DIFFERENCES)
    data = {"ok": True, **result.__dict__}
    ctx.emit(data, human=lambda: console.print(
        f"{result.from_mode} -> [bold]{result.to_mode}[/bold] at epoch {result.epoch}; "
        f"writes paused {result.paused_s:.3f}s; acknowledged by "
        f"{len(result.acknowledged)} client(s)"
        + (f"; fenced out: {', '.join(result.fenced_out)}" if result.fenced_out else "")
        + "".join(f"\n  {n}" for n in result.notes)))


class _unavailable_is_exit_3:  # noqa: N801 - used like a function
    """A server that cannot be reached is exit code 3 with what to check, not a traceback."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        from mysql.connector import Error as MySQLError
        from pymongo.errors import PyMongoError

        from lazyshift.core.control_row import NoControlRow

        if isinstance(exc, NoControlRow) or (
                isinstance(exc, MySQLError) and getattr(exc, "errno", None) == 1146):
            err_console.print(f"[red]MySQL is not set up for lazyshift:[/red] {exc}\n"
                              "run `lazyshift schema migrate` (stage 2) first")
            sys.exit(EXIT_UNAVAILABLE)
        if exc is not None and isinstance(exc, MySQLError | PyMongoError) and not isinstance(
                exc, click.exceptions.Exit):
            err_console.print(f"[red]{self.what} unavailable:[/red] {exc}\n"
                              "check the config (`--config`, LAZYSHIFT_* variables) and that "
                              "the server runs (`lazyshift dev status` locally)")
            sys.exit(EXIT_UNAVAILABLE)
        return False


# -- infrastructure ---------------------------------------------------------------------------
@main.group()
def infra() -> None:
    """Glue between Terraform and the rest: configuration rendered from outputs."""


@infra.command("render", context_settings={"ignore_unknown_options": True,
                                           "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def infra_render(args: tuple[str, ...]) -> None:
    """Render the lazyshift config and Ansible inventory from `terraform output -json`.

    ARGS go to the renderer: [OUTPUTS_FILE|-] [--config-out F] [--inventory-out F]
    (`lazyshift infra render --help` for its own help).
    """
    from lazyshift.infra_config import main as render_main

    sys.exit(render_main(list(args)))


# -- status ---------------------------------------------------------------------------------
@main.command("status")
@pass_ctx
def status_cmd(ctx: Ctx) -> None:
    """The migration at a glance: mode, clients, backlog, dead letters, documents left to
    migrate, and the stage gate (can advance / can roll back, and why not)."""
    from lazyshift.status import collect, render

    with _unavailable_is_exit_3("MySQL"):
        data = collect(ctx.settings())
    ctx.emit(data, human=lambda: render(data, console))


from lazyshift.cli_data import register as _register_data; _register_data(main)  # noqa: E402, E702, I001

if __name__ == "__main__":
    main()
