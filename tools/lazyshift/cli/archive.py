"""`lazyshift archive --to DIR|s3://...` (stage 5)."""

from __future__ import annotations

import click
from rich.table import Table

from lazyshift.cli.output import Ctx, console, pass_ctx


@click.command("archive")
@click.option(
    "--to",
    "target",
    required=True,
    help="Folder or s3://bucket/prefix for shipments.jsonl.gz + manifest.json.",
)
@click.option(
    "--s3-endpoint",
    envvar="LAZYSHIFT_ARCHIVE__S3_ENDPOINT",
    default=None,
    help="S3 endpoint URL (e.g. a moto server).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing archive at the target.")
@click.option("--json", "local_json", is_flag=True, help="JSON output.")
@pass_ctx
def archive_cmd(
    ctx: Ctx, target: str, s3_endpoint: str | None, force: bool, local_json: bool
) -> None:
    """Export the MongoDB collection (gzip JSON Lines sorted by _id) with a checksummed
    manifest, and record it in MySQL (archive_record)."""
    from lazyshift import archive as ar

    manifest = ar.archive(ctx.settings(), target, s3_endpoint=s3_endpoint, force=force)

    def human() -> None:
        t = Table("", "value", title=f"archive {manifest['location']}")
        for k in ("count", "sha256", "gz_sha256", "gz_bytes", "created_at", "source"):
            t.add_row(k, str(manifest[k]))
        console.print(t)

    ctx.emit(manifest, human=None if ctx.json_out(local_json) else human)


COMMANDS = [archive_cmd]
