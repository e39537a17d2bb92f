"""`lazyshift schema migrate|status`: the versioned MySQL migrations."""

from __future__ import annotations

import click
from rich.table import Table

from lazyshift.cli.output import Ctx, console, pass_ctx


@click.group()
def schema() -> None:
    """MySQL schema: versioned migrations, each applied once (stage 2 installs it)."""


@schema.command("migrate")
@pass_ctx
def schema_migrate_cmd(ctx: Ctx) -> None:
    """Apply the pending migrations in order (uses the DDL-capable migrate user)."""
    from lazyshift import schema_migrate

    applied = schema_migrate.migrate(ctx.settings())
    ctx.emit(
        {"applied": applied},
        human=lambda: console.print(
            "applied: "
            + (", ".join(f"{a['version']} {a['name']}" for a in applied) or "nothing (up to date)")
        ),
    )


@schema.command("status")
@pass_ctx
def schema_status_cmd(ctx: Ctx) -> None:
    """List every migration and whether it is applied, pending or changed. Exit 1 unless
    everything is applied and unchanged."""
    from lazyshift import schema_migrate

    rows = schema_migrate.status(ctx.settings())

    def human() -> None:
        table = Table("version", "name", "state", "applied at")
        for r in rows:
            table.add_row(
                str(r.get("version")),
                str(r.get("name")),
                str(r.get("state")),
                str(r.get("applied_at") or ""),
            )
        console.print(table)

    ctx.emit(rows, human=human)
    ctx.finish(all(r.get("state") == "applied" for r in rows))


COMMANDS = [schema]
