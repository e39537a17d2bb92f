"""`lazyshift repair REPORT`: re-migrate what a verify report lists."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from lazyshift.cli.output import Ctx, console, pass_ctx


@click.command("repair")
@click.argument("report_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--delete-extra", is_flag=True, help="Delete rows MySQL holds for keys MongoDB does not have."
)
@click.option("--json", "local_json", is_flag=True, help="JSON output.")
@pass_ctx
def repair_cmd(ctx: Ctx, report_file: Path, delete_extra: bool, local_json: bool) -> None:
    """Re-migrate exactly the documents a verify report lists, through the guarded write.

    Exit 0 if every difference was repaired, 1 otherwise.
    """
    from lazyshift import repair as rp

    try:
        report = json.loads(report_file.read_text())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"not a verify report: {exc}", param_hint="REPORT") from exc
    result = rp.repair(ctx.settings(), report, delete_extra=delete_extra)
    data = result.as_dict()

    def human() -> None:
        t = Table("key", "kind", "action", "detail", title="repair")
        for a in result.actions:
            t.add_row(a["key"], a["kind"], a["action"], a.get("detail", ""))
        console.print(t)
        console.print(f"repaired {result.repaired}, not repaired {result.failed}")

    ctx.emit(data, human=None if ctx.json_out(local_json) else human)
    ctx.finish(result.failed == 0)


COMMANDS = [repair_cmd]
