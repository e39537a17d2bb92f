"""Rollback after the flip: shipments written in MySQL since the flip go back to MongoDB
before MongoDB is the truth again; afterwards verify is clean."""

from __future__ import annotations

import json

from helpers import MockSource, expected_state, run_cli
from lazyshift.core.mapping import stored_form

SEED = ["--seed", "31", "--malformed-fraction", "0.02"]


def test_rollback_from_mysql_primary_writes_back_and_verifies_clean(settings, mongo_db):
    # Stage 1: the first 600 messages of the log into MongoDB.
    first = MockSource(*SEED, "--count", "600").start()
    try:
        run_cli(
            "client",
            "run",
            "--exit-at-end",
            "--http-port",
            "-1",
            "--source-port",
            str(first.port),
            settings=settings,
        )
    finally:
        first.stop()
    run_cli("schema", "migrate", settings=settings)
    for mode in ("dual", "mysql-primary"):
        run_cli("mode", "set", mode, settings=settings)
    run_cli("backfill", "--workers", "1", "--partitions", "2", settings=settings)
    # Stage 3/4: the same log goes on (messages 601..1200) with MySQL as the primary.
    whole = MockSource(*SEED, "--count", "1200").start()
    try:
        out = json.loads(
            run_cli(
                "--json",
                "client",
                "run",
                "--mode",
                "control",
                "--exit-at-end",
                "--http-port",
                "-1",
                "--source-port",
                str(whole.port),
                settings=settings,
            ).stdout
        )
        exp = expected_state(whole.dump())
    finally:
        whole.stop()
    assert out["stored"] > 100  # updates really were written in MySQL after the flip
    before = {d["_id"]: d["version"] for d in mongo_db.shipments.find({}, {"version": 1})}
    assert any(before.get(k) != d["version"] for k, d in exp.docs.items())  # Mongo is behind

    result = json.loads(run_cli("--json", "rollback", settings=settings).stdout)
    assert result["from_mode"] == "mysql-primary" and result["to_mode"] == "dual"
    assert any("wrote" in n for n in result["notes"])

    stored = {d["_id"]: d for d in mongo_db.shipments.find({})}
    assert set(stored) == set(exp.docs)
    wrong = [k for k, d in exp.docs.items() if stored_form(stored[k]) != stored_form(d)]
    assert not wrong, f"{len(wrong)} shipments differ after rollback, e.g. {wrong[:3]}"
    verify = run_cli("--json", "verify", "--full", settings=settings, check=False)
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-2000:]
