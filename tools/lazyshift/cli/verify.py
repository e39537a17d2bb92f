"""`lazyshift verify`: documents versus rows, chunk checksums, per-document diffs."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from lazyshift.cli.output import Ctx, console, pass_ctx


@click.command("verify")
@click.option(
    "--sample",
    type=click.IntRange(1, None),
    default=None,
    help="Check N random documents by key instead of everything.",
)
@click.option("--full", is_flag=True, help="Check everything (the default).")
@click.option(
    "--chunk-size",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="Documents per checksum chunk.",
)
@click.option(
    "--truth",
    type=click.Choice(["mongo", "mysql"]),
    default="mongo",
    show_default=True,
    help="Source of truth: with mysql, rows MySQL holds newer or only (written "
    "after the flip) are expected, not differences.",
)
@click.option(
    "--against-archive",
    "archive",
    default=None,
    help="Compare an archive (DIR or s3://bucket/prefix) with MySQL instead of MongoDB.",
)
@click.option(
    "--s3-endpoint",
    envvar="LAZYSHIFT_ARCHIVE__S3_ENDPOINT",
    default=None,
    help="S3 endpoint URL (e.g. a moto server).",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON report to this file (for Jenkins).",
)
@click.option("--json", "local_json", is_flag=True, help="JSON report on stdout.")
@pass_ctx
def verify_cmd(
    ctx: Ctx,
    sample: int | None,
    full: bool,
    chunk_size: int,
    truth: str,
    archive: str | None,
    s3_endpoint: str | None,
    report_file: Path | None,
    local_json: bool,
) -> None:
    """Compare MongoDB (or an archive) with MySQL: counts, chunk checksums, per-document diffs.

    Exit 0 only with zero differences; 1 otherwise; 3 if a server or the archive is unavailable.
    """
    from lazyshift import verify as vf

    if full and sample:
        raise click.UsageError("--full and --sample exclude each other")
    settings = ctx.settings()
    report = vf.verify(
        settings,
        sample=sample,
        chunk_size=chunk_size,
        truth=truth,
        archive=archive,
        s3_endpoint=s3_endpoint,
    )
    data = report.as_dict()
    if report_file is not None:
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_text(json.dumps(data, indent=2, default=str) + "\n")

    def human() -> None:
        c = report.counts
        table = Table("", "value", title=f"verify {report.source} vs mysql (truth: {truth})")
        for label, value in (
            ("source documents", c.get("source_docs")),
            ("mysql rows", c.get("mysql_rows")),
            ("chunks (mismatched)", f"{c.get('chunks')} ({c.get('chunks_mismatched')})"),
            ("dead letters", report.dead_letters),
            ("differences", report.differences),
        ):
            table.add_row(label, str(value))
        for kind, n in sorted(report.by_kind.items()):
            table.add_row(f"  {kind}", str(n))
        console.print(table)
        if report.findings:
            t = Table(
                "kind",
                "key",
                "source v",
                "mysql v",
                "fields",
                "counts",
                title="findings (first 50)",
            )
            for f in report.findings[:50]:
                t.add_row(
                    f["kind"],
                    f["key"],
                    str(f.get("source_version")),
                    str(f.get("mysql_version")),
                    ", ".join(f.get("fields", [])[:6]),
                    "yes" if f["difference"] else "expected",
                )
            console.print(t)
        console.print(
            "[green]OK: no differences[/green]"
            if report.ok
            else f"[red]{report.differences} differences[/red]"
        )

    ctx.emit(data, human=None if ctx.json_out(local_json) else human)
    ctx.finish(report.ok)


COMMANDS = [verify_cmd]
