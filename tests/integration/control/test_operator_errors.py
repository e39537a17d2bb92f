"""Issue 9, "the operator gets a clear error": the listed cases against the real servers,
each a message and its exit code, never a traceback. (Bad configuration, bad environment,
malformed reports and every command with both databases down: tests/unit/test_errors.py;
`dev status --state-dir`: tests/integration/dev/test_checkout_location.py.)"""

from __future__ import annotations

from helpers import free_port, run_cli
from lazyshift.errors import EXIT_UNAVAILABLE


def _clean(proc) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-2000:]


def test_verify_before_schema_migrate(settings) -> None:
    proc = run_cli("verify", settings=settings, check=False)
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    assert "lazyshift schema migrate" in proc.stderr
    _clean(proc)


def test_verify_and_archive_with_mongodb_down(migrated) -> None:
    down = migrated.model_copy(
        update={
            "mongo": migrated.mongo.model_copy(
                update={"uri": f"mongodb://127.0.0.1:{free_port()}/"}
            )
        }
    )
    for args in (("verify", "--full"), ("archive", "--to", "/tmp/unused-lazyshift-archive")):
        proc = run_cli(*args, settings=down, check=False)
        assert proc.returncode == EXIT_UNAVAILABLE, (args, proc.stderr)
        assert "MongoDB unavailable" in proc.stderr, (args, proc.stderr)
        _clean(proc)


def test_archive_to_an_unwritable_place_or_s3_without_credentials(migrated, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_cli("archive", "--to", str(blocker / "arch"), settings=migrated, check=False)
    assert proc.returncode == EXIT_UNAVAILABLE and "cannot write the archive" in proc.stderr
    _clean(proc)
    no_credentials = {
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    proc = run_cli(
        "archive",
        "--to",
        "s3://lazyshift-archive/x",
        "--s3-endpoint",
        f"http://127.0.0.1:{free_port()}",
        settings=migrated,
        env=no_credentials,
        check=False,
    )
    assert proc.returncode == EXIT_UNAVAILABLE, proc.stderr
    assert "credentials" in proc.stderr, proc.stderr
    _clean(proc)
