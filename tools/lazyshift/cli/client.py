"""`lazyshift client run`: the stream consumer and its read API."""

from __future__ import annotations

import json
import signal
from typing import Any

import click
from rich.table import Table

from lazyshift.cli.output import Ctx, console, pass_ctx


@click.group()
def client() -> None:
    """The stream consumer (and, from stage 2, the read API)."""


def _overrides(
    source_host: str | None,
    source_port: int | None,
    mongo_uri: str | None,
    mongo_database: str | None,
    mode_source: str | None,
    http_port: int | None,
) -> dict[str, Any]:
    sections = {
        "source": {"host": source_host, "port": source_port},
        "mongo": {"uri": mongo_uri, "database": mongo_database},
        "client": {"mode": mode_source, "http_port": http_port},
    }
    return {
        name: {k: v for k, v in values.items() if v is not None}
        for name, values in sections.items()
        if any(v is not None for v in values.values())
    }


@client.command("run")
@click.option(
    "--partition",
    default="0/1",
    show_default=True,
    help="Consume partition k of n (k/n); several clients share the stream.",
)
@click.option(
    "--mode",
    "mode_source",
    type=click.Choice(["mongo", "control"]),
    default=None,
    help="`mongo`: stage 1, no MySQL (the default while no MySQL is configured). "
    "`control`: follow the mode in MySQL's control table (stage 2 on). "
    "Config: client.mode.",
)
@click.option("--source-host", default=None, help="Mock source host (config: source.host).")
@click.option("--source-port", type=int, default=None, help="Mock source port (source.port).")
@click.option("--mongo-uri", default=None, help="MongoDB URI (config: mongo.uri).")
@click.option("--mongo-database", default=None, help="MongoDB database (mongo.database).")
@click.option(
    "--http-port",
    type=int,
    default=None,
    help="Read API port (config: client.http_port; 0 picks a free port; -1 = off).",
)
@click.option(
    "--client-id", default=None, help="Name in the heartbeat table (default host:pid:partition)."
)
@click.option(
    "--exit-at-end", is_flag=True, help="Exit once the source says its finite stream is exhausted."
)
@pass_ctx
def client_run(
    ctx: Ctx, partition: str, client_id: str | None, exit_at_end: bool, **flags: Any
) -> None:
    """Consume the source stream into the current mode's store and serve reads.

    Stops cleanly on SIGTERM/SIGINT: the write in hand finishes, the offset is saved and the
    client leaves the heartbeat table so transitions do not wait for it.
    """
    from lazyshift.client.app import ClientApp, ClientOptions
    from lazyshift.client.source import Partition

    try:
        part = Partition.parse(partition)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--partition") from exc
    app = ClientApp(
        ctx.settings(**_overrides(**flags)),
        ClientOptions(part, client_id=client_id, exit_at_end=exit_at_end),
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: app.stop.set())
    data = app.run().as_dict()

    def human() -> None:
        table = Table("counter", "value", title="client run")
        for k, v in data.items():
            table.add_row(k, json.dumps(v) if isinstance(v, dict) else str(v))
        console.print(table)

    ctx.emit(data, human=human)


COMMANDS = [client]
