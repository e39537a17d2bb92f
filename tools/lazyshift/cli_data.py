"""CLI of the data commands: `backfill`, `verify`, `repair`, `archive` (parsing and output only).

Registered on the main group by `register(main)` from the end of `lazyshift.cli`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from lazyshift.cli import (
    EXIT_DIFFERENCES,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    Ctx,
    console,
    err_console,
    pass_ctx,
)


def _json_out(ctx: Ctx, local_json: bool) -> bool:
    return ctx.as_json or local_json


def _fail(message: str, code: int = EXIT_UNAVAILABLE) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    sys.exit(code)


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


# -- backfill -------------------------------------------------------------------------------


def _run_options(fn):
    opts = [
        click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
                     help="Worker processes on this host (other hosts may run more)."),
        click.option("--partitions", type=click.IntRange(1, 100_000), default=8,
                     show_default=True,
                     help="_id ranges to plan (only when no plan exists yet). On FerretDB each "
                          "partition costs one full collection scan."),
        click.option("--batch-size", type=click.IntRange(1, 10_000), default=500,
                     show_default=True, help="Documents per MySQL transaction."),
        click.option("--lease-seconds", type=click.FloatRange(0.5, None), default=60.0,
                     show_default=True,
                     help="A partition whose lease is not renewed for this long is taken over."),
        click.option("--max-rate", type=click.FloatRange(0, None, min_open=True), default=None,
                     help="Documents per second for this command (all workers together)."),
        click.option("--max-threads-running", type=click.IntRange(0, None), default=0,
                     show_default=True,
                     help="Pause while MySQL's Threads_running exceeds this (0 = off)."),
        click.option("--dry-run", is_flag=True,
                     help="Map every document without writing; report drift, rejections, "
                          "coercions. Exit 1 if any document would be rejected."),
        click.option("--progress-interval", type=click.FloatRange(0.05, None), default=None,
                     help="Seconds between progress updates (default 1 on a terminal, 5 "
                          "otherwise)."),
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
def backfill_run(ctx: Ctx, workers: int, partitions: int, batch_size: int, lease_seconds: float,
                 max_rate: float | None, max_threads_running: int, dry_run: bool,
                 progress_interval: float | None, local_json: bool) -> None:
    """Run the backfill until every partition is done (plans it first if needed)."""
    from lazyshift import backfill as bf

    as_json = _json_out(ctx, local_json)
    settings = ctx.settings()
    if dry_run:
        _dry_run(settings, as_json)
        return
    options = bf.BackfillOptions(workers=workers, partitions=partitions, batch_size=batch_size,
                                 lease_seconds=lease_seconds, max_rate=max_rate,
                                 max_threads_running=max_threads_running)
    tty = sys.stderr.isatty() and not as_json
    interval = progress_interval or (1.0 if tty else 5.0)
    try:
        if tty:
            with Progress(TextColumn("[bold]backfill"), BarColumn(), TaskProgressColumn(),
                          TextColumn("{task.completed}/{task.total} docs"),
                          TextColumn("{task.fields[rate]} docs/s"),
                          TextColumn("left to migrate {task.fields[left]}"),
                          TextColumn("{task.fields[state]}"), TimeRemainingColumn(),
                          console=err_console) as bar:
                task = bar.add_task("backfill", total=None, rate="-", left="-", state="")

                def show(p: bf.Progress) -> None:
                    bar.update(task, total=p.total or None, completed=p.done,
                               rate=f"{p.rate:.0f}" if p.rate is not None else "-",
                               left=p.left_to_migrate,
                               state="[yellow]paused[/yellow]" if p.paused else "")

                result = bf.run(settings, options, on_progress=show, progress_interval=interval)
        else:
            def emit(p: bf.Progress) -> None:
                click.echo(json.dumps({"event": "backfill.progress", **p.as_dict()}),
                           err=True)

            result = bf.run(settings, options, on_progress=emit, progress_interval=interval)
    except bf.BackfillError as exc:
        _fail(str(exc))
        return
    data = result.as_dict()

    def human() -> None:
        p = result.progress
        table = Table("", "value", title="backfill")
        for label, value in (("partitions done", f"{p.partitions_done}/{p.partitions}"),
                             ("documents scanned", p.done), ("written", p.written),
                             ("already as new in MySQL", p.done - p.written - p.dead),
                             ("dead-lettered", p.dead), ("left to migrate", p.left_to_migrate),
                             ("elapsed", _fmt_s(result.elapsed_s))):
            table.add_row(label, str(value))
        console.print(table)
        if result.dead_samples:
            dead = Table("document", "reason", title="dead-lettered (first 20)")
            for row in result.dead_samples:
                dead.add_row(row["dedup_key"], row["reason"])
            console.print(dead)

    ctx.emit(data, human=None if as_json else human)
    if any(result.worker_exit_codes) or not result.progress.complete:
        sys.exit(EXIT_UNAVAILABLE)
    sys.exit(EXIT_DIFFERENCES if result.progress.dead else EXIT_OK)


def _dry_run(settings: Any, as_json: bool) -> None:
    from lazyshift import backfill as bf

    report = bf.dry_run(settings)
    data = report.as_dict()

    def human() -> None:
        console.print(f"{report.docs} documents: {report.would_write} would be written, "
                      f"{report.would_reject} rejected")
        if report.type_drift:
            t = Table("field", "types (count)", "example keys", title="type drift")
            for e in report.type_drift:
                t.add_row(e["path"], ", ".join(f"{k} {v}" for k, v in e["types"].items()),
                          ", ".join(f"{k}: {v}" for k, v in e["examples"].items()))
            console.print(t)
        if report.rejections:
            t = Table("field", "problem", "count", "example", title="would be rejected")
            for e in report.rejections:
                t.add_row(e["path"], e["problem"], str(e["count"]),
                          f"{e['examples'][0]['key']}: {e['examples'][0]['reason']}")
            console.print(t)
        if report.coercions:
            t = Table("field", "coercion", "count", "examples", title="coercions")
            for e in report.coercions:
                t.add_row(e["path"], e["coercion"], str(e["count"]), ", ".join(e["examples"]))
            console.print(t)

    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        human()
    sys.exit(EXIT_DIFFERENCES if report.would_reject else EXIT_OK)


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
    try:
        p = bf.progress(settings)
        parts = bf.partitions(settings)
    except bf.BackfillError as exc:
        _fail(str(exc))
        return
    data = {**p.as_dict(), "partition_rows": parts}

    def human() -> None:
        t = Table("id", "kind", "range", "checkpoint", "status", "lease", "done", "written",
                  "dead", title=f"backfill: {p.partitions_done}/{p.partitions} partitions done, "
                                f"{p.left_to_migrate} left to migrate"
                                + (" [yellow](paused)[/yellow]" if p.paused else ""))
        for r in parts:
            t.add_row(str(r["id"]), r["kind"], f"({r['lower_key']}, {r['upper_key']}]",
                      str(r["checkpoint_key"]), r["status"], str(r["lease_owner"] or "-"),
                      f"{r['docs_done']}/{r['docs_estimate']}", str(r["docs_written"]),
                      str(r["docs_dead"]))
        console.print(t)

    ctx.emit(data, human=None if _json_out(ctx, local_json) else human)


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


# -- verify ----------------------------------------------------------------------------------


@click.command("verify")
@click.option("--sample", type=click.IntRange(1, None), default=None,
              help="Check N random documents by key instead of everything.")
@click.option("--full", is_flag=True, help="Check everything (the default).")
@click.option("--chunk-size", type=click.IntRange(1, 1_000_000), default=1000,
              show_default=True, help="Documents per checksum chunk.")
@click.option("--truth", type=click.Choice(["mongo", "mysql"]), default="mongo",
              show_default=True,
              help="Source of truth: with mysql, rows MySQL holds newer or only (written "
                   "after the flip) are expected, not differences.")
@click.option("--against-archive", "archive", default=None,
              help="Compare an archive (DIR or s3://bucket/prefix) with MySQL instead of MongoDB.")
@click.option("--s3-endpoint", envvar="LAZYSHIFT_ARCHIVE__S3_ENDPOINT", default=None,
              help="S3 endpoint URL (e.g. a moto server).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the JSON report to this file (for Jenkins).")
@click.option("--json", "local_json", is_flag=True, help="JSON report on stdout.")
@pass_ctx
def verify_cmd(ctx: Ctx, sample: int | None, full: bool, chunk_size: int, truth: str,
               archive: str | None, s3_endpoint: str | None, report_file: Path | None,
               local_json: bool) -> None:
    """Compare MongoDB (or an archive) with MySQL: counts, chunk checksums, per-document diffs.

    Exit 0 only with zero differences; 1 otherwise; 3 if a server or the archive is unavailable.
    """
    from lazyshift import verify as vf
    from lazyshift.archive import ArchiveError

    if full and sample:
        raise click.UsageError("--full and --sample exclude each other")
    settings = ctx.settings()
    try:
        report = vf.verify(settings, sample=sample, chunk_size=chunk_size, truth=truth,
                           archive=archive, s3_endpoint=s3_endpoint)
    except (ArchiveError, vf.VerifyError) as exc:
        _fail(str(exc))
        return
    data = report.as_dict()
    if report_file is not None:
        report_file.parent.mkdir(parents=True, exist_ok=True)
        report_file.write_text(json.dumps(data, indent=2, default=str) + "\n")

    def human() -> None:
        c = report.counts
        table = Table("", "value", title=f"verify {report.source} vs mysql (truth: {truth})")
        for label, value in (("source documents", c.get("source_docs")),
                             ("mysql rows", c.get("mysql_rows")),
                             ("chunks (mismatched)", f"{c.get('chunks')} "
                                                     f"({c.get('chunks_mismatched')})"),
                             ("dead letters", report.dead_letters),
                             ("differences", report.differences)):
            table.add_row(label, str(value))
        for kind, n in sorted(report.by_kind.items()):
            table.add_row(f"  {kind}", str(n))
        console.print(table)
        if report.findings:
            t = Table("kind", "key", "source v", "mysql v", "fields", "counts",
                      title="findings (first 50)")
            for f in report.findings[:50]:
                t.add_row(f["kind"], f["key"], str(f.get("source_version")),
                          str(f.get("mysql_version")), ", ".join(f.get("fields", [])[:6]),
                          "yes" if f["difference"] else "expected")
            console.print(t)
        console.print("[green]OK: no differences[/green]" if report.ok
                      else f"[red]{report.differences} differences[/red]")

    ctx.emit(data, human=None if _json_out(ctx, local_json) else human)
    sys.exit(EXIT_OK if report.ok else EXIT_DIFFERENCES)


# -- repair ----------------------------------------------------------------------------------


@click.command("repair")
@click.argument("report_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--delete-extra", is_flag=True,
              help="Delete rows MySQL holds for keys MongoDB does not have.")
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
    try:
        result = rp.repair(ctx.settings(), report, delete_extra=delete_extra)
    except rp.RepairError as exc:
        _fail(str(exc), EXIT_DIFFERENCES)
        return
    data = result.as_dict()

    def human() -> None:
        t = Table("key", "kind", "action", "detail", title="repair")
        for a in result.actions:
            t.add_row(a["key"], a["kind"], a["action"], a.get("detail", ""))
        console.print(t)
        console.print(f"repaired {result.repaired}, not repaired {result.failed}")

    ctx.emit(data, human=None if _json_out(ctx, local_json) else human)
    sys.exit(EXIT_OK if result.failed == 0 else EXIT_DIFFERENCES)


# -- archive ---------------------------------------------------------------------------------


@click.command("archive")
@click.option("--to", "target", required=True,
              help="Folder or s3://bucket/prefix for shipments.jsonl.gz + manifest.json.")
@click.option("--s3-endpoint", envvar="LAZYSHIFT_ARCHIVE__S3_ENDPOINT", default=None,
              help="S3 endpoint URL (e.g. a moto server).")
@click.option("--force", is_flag=True, help="Overwrite an existing archive at the target.")
@click.option("--json", "local_json", is_flag=True, help="JSON output.")
@pass_ctx
def archive_cmd(ctx: Ctx, target: str, s3_endpoint: str | None, force: bool,
                local_json: bool) -> None:
    """Export the MongoDB collection (gzip JSON Lines sorted by _id) with a checksummed
    manifest, and record it in MySQL (archive_record)."""
    from lazyshift import archive as ar

    try:
        manifest = ar.archive(ctx.settings(), target, s3_endpoint=s3_endpoint, force=force)
    except ar.ArchiveError as exc:
        _fail(str(exc))
        return

    def human() -> None:
        t = Table("", "value", title=f"archive {manifest['location']}")
        for k in ("count", "sha256", "gz_sha256", "gz_bytes", "created_at", "source"):
            t.add_row(k, str(manifest[k]))
        console.print(t)

    ctx.emit(manifest, human=None if _json_out(ctx, local_json) else human)


def register(main: click.Group) -> None:
    main.add_command(backfill)
    main.add_command(verify_cmd)
    main.add_command(repair_cmd)
    main.add_command(archive_cmd)
