"""The stage-4 gate a pipeline reads: `status --json` may advance to stage 5 only once the
backfill finished and a full verify after it found no difference."""

from __future__ import annotations

import json

from dataset import load_mongo
from helpers import run_cli


def _gate(settings) -> dict:
    return json.loads(run_cli("--json", "status", settings=settings).stdout)


def test_stage4_gate_waits_for_backfill_and_a_clean_verify(migrated, collection, app_conn):
    load_mongo(collection, 300)
    for mode in ("dual", "mysql-primary"):
        run_cli("mode", "set", mode, settings=migrated)
    assert _gate(migrated)["stage"] == 3
    run_cli("backfill", "--workers", "1", "--partitions", "2", settings=migrated)
    status = _gate(migrated)
    assert status["stage"] == 4 and status["gate"]["can_advance"] is False
    assert (
        "no full `lazyshift verify` started after the backfill finished"
        in (status["gate"]["cannot_advance_because"])
    )
    # A difference closes the gate with the reason ...
    app_conn.cursor().execute("DELETE FROM shipment ORDER BY shipment_key LIMIT 1")
    assert run_cli("verify", settings=migrated, check=False).returncode == 1
    reasons = _gate(migrated)["gate"]["cannot_advance_because"]
    assert any("found 1 difference" in r for r in reasons), reasons
    # ... and a sample is not a full verify.
    run_cli("backfill", "reset", "--yes", settings=migrated)
    run_cli("backfill", "--workers", "1", settings=migrated)
    run_cli("verify", "--sample", "10", settings=migrated)
    assert _gate(migrated)["gate"]["can_advance"] is False
    run_cli("verify", settings=migrated)
    status = _gate(migrated)
    assert status["gate"]["can_advance"] is True, status["gate"]
    assert status["gate"]["can_roll_back"] is True
