"""`lazyshift status`: the migration at a glance and the stage gate."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from lazyshift.cli.output import Ctx, console, pass_ctx


def render(data: dict[str, Any]) -> None:
    console.print(
        f"mode [bold]{data['mode']}[/bold] (stage {data['stage']}), epoch "
        f"{data['epoch']}, {data['state']}"
    )
    table = Table("client", "partition", "mode", "acked epoch", "heartbeat age", "live")
    for c in data["clients"]:
        table.add_row(
            c["client_id"],
            str(c["partition_spec"]),
            str(c["mode"]),
            str(c["acked_epoch"]),
            f"{c['age_s']:.1f}s",
            "yes" if c["live"] else "[red]no[/red]",
        )
    console.print(table)
    m, y = data["mongo"], data["mysql"]
    console.print(
        f"MongoDB: {m.get('shipments', '-')} shipments, backlog "
        f"{m.get('dual_backlog', '-')}, dead letters {m.get('dead_letters', '-')}"
        + ("" if m.get("reachable") else " [red](unreachable)[/red]")
    )
    console.print(
        f"MySQL:   {y['shipments']} shipments, dead letters {y['dead_letters']}, "
        f"archives {y['archives']}; left to migrate: "
        f"{data['documents_left_to_migrate']}"
    )
    g = data["gate"]
    for label, ok, why in (
        ("advance: " + str(g["next"]), g["can_advance"], g["cannot_advance_because"]),
        ("roll back to " + str(g["previous"]), g["can_roll_back"], g["cannot_roll_back_because"]),
    ):
        console.print(
            f"can {label}: " + ("[green]yes[/green]" if ok else "[red]no[/red] — " + "; ".join(why))
        )


@click.command("status")
@pass_ctx
def status_cmd(ctx: Ctx) -> None:
    """The migration at a glance: mode, clients, backlog, dead letters, documents left to
    migrate, and the stage gate (can advance / can roll back, and why not)."""
    from lazyshift.status import collect

    data = collect(ctx.settings())
    ctx.emit(data, human=lambda: render(data))


COMMANDS = [status_cmd]
