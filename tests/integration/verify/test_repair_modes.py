"""`lazyshift repair` (issue 9, hole 3): a report is used only under the truth the mode
holds, every write goes through the guard (which decides by revision, then version),
`--delete-extra` never deletes in mysql-primary, and a malformed report is a usage error."""

from __future__ import annotations

import json

import pytest

from dataset import load_mongo, make_doc
from helpers import run_cli
from lazyshift.control import plane
from lazyshift.core import mysql_store as store
from lazyshift.core.guarded_write import guarded_write
from lazyshift.core.mysql import read_snapshot
from lazyshift.errors import EXIT_PROBLEM, EXIT_USAGE


def report(truth: str, *findings: tuple[str, str]) -> dict:
    return {
        "source": "mongo:test",
        "truth": truth,
        "findings": [{"kind": k, "key": key, "difference": True} for k, key in findings],
    }


def run_repair(settings, tmp_path, body, *args: str):
    path = tmp_path / "report.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return run_cli("repair", str(path), "--json", *args, settings=settings, check=False)


def in_mysql(conn, key: str) -> dict | None:
    with read_snapshot(conn):
        return store.load_documents(conn.cursor(), [key]).get(key)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("{not json", "not a verify report"),
        ({"source": "mongo:x", "truth": "mongo"}, "no `findings` list"),
        ({"source": "mongo:x", "findings": []}, "no valid `truth`"),
        (
            {"source": "mongo:x", "truth": "mongo", "findings": [{"kind": "stale"}]},
            "finding #0 is not a verify finding",
        ),
        (
            {"source": "mongo:x", "truth": "mongo", "findings": ["k"]},
            "finding #0 is not a verify finding",
        ),
    ],
)
def test_malformed_report_is_a_usage_error(migrated, tmp_path, body, says):
    out = run_repair(migrated, tmp_path, body)
    assert out.returncode == EXIT_USAGE, out.stderr
    assert says in out.stderr and "Traceback" not in out.stderr


def test_report_truth_must_match_the_mode(migrated, collection, tmp_path):
    load_mongo(collection, 5)
    key = make_doc(1)["key"]
    out = run_repair(migrated, tmp_path, report("mysql", ("missing", key)))
    assert out.returncode == EXIT_PROBLEM and "the truth is mongo" in out.stderr
    plane.set_mode(migrated, "dual")
    plane.set_mode(migrated, "mysql-primary")
    out = run_repair(migrated, tmp_path, report("mongo", ("missing", key)))
    assert out.returncode == EXIT_PROBLEM and "the truth is mysql" in out.stderr
    assert run_repair(migrated, tmp_path, report("mysql", ("missing", key))).returncode == 0


def test_delete_extra_is_refused_in_mysql_primary(migrated, collection, conn, tmp_path):
    plane.set_mode(migrated, "dual")
    plane.set_mode(migrated, "mysql-primary")
    created = make_doc(900)  # a shipment created since the flip: only in MySQL
    guarded_write(conn, created, written_epoch=plane.get_state(migrated).epoch)
    out = run_repair(
        migrated, tmp_path, report("mysql", ("extra", created["key"])), "--delete-extra"
    )
    assert out.returncode == EXIT_PROBLEM and "--delete-extra is refused" in out.stderr
    assert in_mysql(conn, created["key"]) is not None


def test_repair_goes_through_the_guard(migrated, collection, conn, tmp_path):
    """A `different` finding whose row MySQL has meanwhile written with a newer revision (but
    the same version number) is superseded, never replaced by MongoDB's older content."""
    load_mongo(collection, 5)
    key = make_doc(2)["key"]
    newer = make_doc(2) | {"source_rev": 10, "tracking_number": "newer"}
    guarded_write(conn, newer)
    out = run_repair(migrated, tmp_path, report("mongo", ("different", key)))
    actions = {a["key"]: a for a in json.loads(out.stdout)["actions"]}
    assert actions[key]["action"] == "superseded", actions
    assert in_mysql(conn, key)["tracking_number"] == "newer"
