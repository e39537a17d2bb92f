"""Stage 1 end to end: the real mock streams, the real client stores into real FerretDB."""

from __future__ import annotations

import json
import signal

import pytest

from helpers import MockSource, expected_state, kill, poll, run_cli, start_cli

GEN = [
    "--seed",
    "11",
    "--count",
    "2500",
    "--malformed-fraction",
    "0.03",
    "--replay-fraction",
    "0.03",
]


def _assert_store_matches(mongo_db, exp) -> None:
    stored = {d["_id"]: d for d in mongo_db.shipments.find({})}
    assert set(stored) == set(exp.docs), "set of shipments differs from what the source emitted"
    wrong = [k for k, d in exp.docs.items() if stored[k] != d]
    assert not wrong, f"{len(wrong)} shipments differ, e.g. {wrong[:3]}"
    dead = {d["source_seq"] for d in mongo_db.dead_letters.find({})}
    assert dead == exp.dead_seqs
    assert mongo_db.dead_letters.count_documents({}) == len(exp.dead_seqs)  # no duplicates
    for d in mongo_db.dead_letters.find({}):
        assert d["reason"] and ("payload" in d or "payload_b64" in d)


@pytest.fixture
def mock():
    source = MockSource(*GEN, "--rate", "0").start()
    yield source
    source.stop()


def test_drains_the_stream_to_the_expected_state(settings, mongo_db, mock) -> None:
    exp = expected_state(mock.dump())
    assert exp.dead_seqs and len(exp.docs) > 100  # the log really has updates and bad input
    proc = run_cli(
        "--json",
        "client",
        "run",
        "--http-port",
        "-1",
        "--exit-at-end",
        "--source-port",
        str(mock.port),
        settings=settings,
    )
    counters = json.loads(proc.stdout)
    assert counters["received"] == exp.emitted
    assert counters["dead_lettered"] == len(exp.dead_seqs)
    assert counters["stored"] == sum(d["version"] for d in exp.docs.values())
    _assert_store_matches(mongo_db, exp)
    # Idempotent: a second full replay from seq 0 changes nothing.
    mongo_db.client_offsets.delete_many({})
    again = json.loads(
        run_cli(
            "--json",
            "client",
            "run",
            "--http-port",
            "-1",
            "--exit-at-end",
            "--source-port",
            str(mock.port),
            settings=settings,
        ).stdout
    )
    assert again["stored"] == 0 and again["stale"] + again["dead_lettered"] == exp.emitted
    _assert_store_matches(mongo_db, exp)


def test_kill_mid_stream_and_restart_loses_and_duplicates_nothing(settings, mongo_db) -> None:
    source = MockSource(*GEN, "--rate", "1500").start()
    try:
        exp = expected_state(source.dump())
        for _ in range(2):  # two kills at different points
            proc = start_cli(
                "client",
                "run",
                "--http-port",
                "-1",
                "--source-port",
                str(source.port),
                settings=settings,
            )
            before = mongo_db.client_offsets.find_one({"_id": "0/1"})
            start = before["seq"] if before else 0
            poll(
                lambda s=start: (o := mongo_db.client_offsets.find_one({"_id": "0/1"}))
                and o["seq"] > s + 300,
                "client to make progress",
            )
            kill(proc, signal.SIGKILL)
        run_cli(
            "client",
            "run",
            "--http-port",
            "-1",
            "--exit-at-end",
            "--source-port",
            str(source.port),
            settings=settings,
        )
        _assert_store_matches(mongo_db, exp)
    finally:
        source.stop()


def test_partitions_share_the_stream(settings, mongo_db, mock) -> None:
    exp = expected_state(mock.dump())
    procs = [
        start_cli(
            "client",
            "run",
            "--http-port",
            "-1",
            "--exit-at-end",
            "--partition",
            f"{k}/3",
            "--source-port",
            str(mock.port),
            settings=settings,
        )
        for k in range(3)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    _assert_store_matches(mongo_db, exp)
    assert {o["_id"] for o in mongo_db.client_offsets.find({})} == {"0/3", "1/3", "2/3"}


def test_source_restart_and_sigterm(settings, mongo_db) -> None:
    source = MockSource(*GEN, "--rate", "1000").start()
    exp = expected_state(source.dump())
    proc = start_cli(
        "client", "run", "--http-port", "-1", "--source-port", str(source.port), settings=settings
    )
    try:
        poll(lambda: mongo_db.shipments.count_documents({}) > 50, "first shipments")
        source.stop()  # the source goes away mid-stream ...
        source = MockSource(*GEN, "--rate", "0", port=source.port).start()  # ... and returns
        poll(
            lambda: mongo_db.client_offsets.find_one({"_id": "0/1", "seq": 2500}),
            "client to resume and reach the end",
            timeout=120,
        )
        kill(proc, signal.SIGTERM)
        assert proc.returncode == 0
        assert '"reconnects": 0' not in proc.stdout
        _assert_store_matches(mongo_db, exp)
    finally:
        kill(proc)
        source.stop()


def test_partition_flag_misuse_is_explained(settings) -> None:
    proc = run_cli(
        "client", "run", "--http-port", "-1", "--partition", "3/2", settings=settings, check=False
    )
    assert proc.returncode == 2
    assert "--partition" in proc.stderr and "0 <= k < n" in proc.stderr
