"""The fault run's history checker (dev/checker.py) is pure: each violation it must catch is
fed to it in a small hand-made history, next to the same history without the violation."""

from __future__ import annotations

from typing import Any

from lazyshift.dev.checker import FinalState, SourceLog, Write, check

# Two partitions; key a in partition 0 (rev 1 then 2), key b in partition 1; seq 3 malformed.
WRITES = [Write(1, 0, "a", 1), Write(2, 1, "b", 1), Write(4, 0, "a", 2)]


def doc(key: str, rev: int, version: int) -> dict[str, Any]:
    return {"key": key, "source_rev": rev, "version": version, "status": f"s{rev}"}


def log() -> SourceLog:
    return SourceLog(
        writes=list(WRITES),
        malformed={3},
        partitions=2,
        expected_docs={"a": doc("a", 2, 2), "b": doc("b", 1, 1)},
    )


def final(**kw: Any) -> FinalState:
    base: dict[str, Any] = {
        "docs": {"a": doc("a", 2, 2), "b": doc("b", 1, 1)},
        "dead_letters": {3: 1},
        "verify_clean": True,
    }
    return FinalState(**{**base, **kw})


def ack(t: float, part: str, seq: int) -> dict[str, Any]:
    return {"type": "ack", "t": t, "partition": part, "seq": seq}


def read(start: float, end: float, key: str, rev: int | None, status: int = 200, client="c0"):
    return {
        "type": "read",
        "invoke_t": start,
        "t": end,
        "key": key,
        "client": client,
        "status": status,
        "source_rev": rev,
        "store": "mongo",
    }


def fault(t: float, kind: str, target: str, phase: str) -> dict[str, Any]:
    return {"type": "fault", "t": t, "fault": kind, "target": target, "phase": phase}


def clean_history() -> list[dict[str, Any]]:
    return [
        ack(1.0, "0/2", 1),
        ack(1.0, "1/2", 2),
        read(1.5, 1.6, "a", 1),
        ack(2.0, "0/2", 4),
        read(2.5, 2.6, "a", 2),
        read(2.7, 2.8, "b", 1),
        {"type": "mode", "t": 3.0, "phase": "start", "target": "dual"},
        {"type": "mode", "t": 3.5, "phase": "ok", "target": "dual"},
    ]


def test_a_clean_history_passes() -> None:
    v = check(log(), clean_history(), final())
    assert v.ok, v.failures()
    assert v.acknowledged == 3
    assert v.reads == 3


def test_an_acknowledged_write_missing_at_the_end_is_lost() -> None:
    # a's rev 2 was acknowledged (offset 4 stored) but MySQL ends with rev 1.
    v = check(log(), clean_history(), final(docs={"a": doc("a", 1, 1), "b": doc("b", 1, 1)}))
    assert not v.ok
    assert len(v.lost) == 1 and "seq 4" in v.lost[0]
    assert v.final_mismatches  # and the end state differs from the log


def test_an_unacknowledged_write_is_not_lost_but_the_end_state_still_differs() -> None:
    history = [e for e in clean_history() if not (e["type"] == "ack" and e["seq"] == 4)]
    history = [e for e in history if not (e["type"] == "read" and e["source_rev"] == 2)]
    v = check(log(), history, final(docs={"a": doc("a", 1, 1), "b": doc("b", 1, 1)}))
    assert v.lost == []
    assert v.final_mismatches and not v.ok


def test_a_read_older_than_a_returned_read_is_stale() -> None:
    history = [*clean_history(), read(3.0, 3.1, "a", 1)]
    v = check(log(), history, final())
    assert len(v.stale_reads) == 1 and "rev 1 after rev 2" in v.stale_reads[0]


def test_concurrent_reads_may_see_either_version() -> None:
    # The second read began before the first finished: it may return the older revision.
    history = [ack(1.0, "0/2", 1), read(2.0, 2.5, "a", 2), read(2.2, 2.6, "a", 1)]
    assert check(log(), history, final()).stale_reads == []


def test_a_read_older_than_an_acknowledged_write_is_stale() -> None:
    history = [ack(1.0, "0/2", 4), read(2.0, 2.1, "a", 1)]
    v = check(log(), history, final())
    assert len(v.stale_reads) == 1 and "acknowledged write" in v.stale_reads[0]


def test_a_miss_after_a_key_was_read_is_stale() -> None:
    history = [*clean_history(), read(4.0, 4.1, "b", None, status=404)]
    assert len(check(log(), history, final()).stale_reads) == 1


def test_a_double_dead_letter_is_flagged() -> None:
    v = check(log(), clean_history(), final(dead_letters={3: 2}))
    assert v.dead_letter_duplicates == [3] and not v.ok


def test_a_malformed_message_not_dead_lettered_is_flagged() -> None:
    v = check(log(), clean_history(), final(dead_letters={}))
    assert v.dead_letter_missing == [3] and not v.ok


def test_a_well_formed_message_dead_lettered_is_flagged() -> None:
    v = check(log(), clean_history(), final(dead_letters={3: 1, 4: 1}))
    assert v.dead_letter_unexpected == [4] and not v.ok


def test_a_failed_read_outside_any_fault_is_a_read_error() -> None:
    history = [*clean_history(), read(5.0, 5.1, "a", None, status=503)]
    v = check(log(), history, final())
    assert len(v.read_errors) == 1 and not v.ok


def test_a_failed_read_of_a_killed_client_is_excused() -> None:
    history = [
        *clean_history(),
        fault(4.0, "client-kill", "c0", "start"),
        read(5.0, 5.1, "a", None, status=0),
        fault(6.0, "client-kill", "c0", "end"),
        read(5.0, 5.1, "a", None, status=503, client="c1"),  # the other client: no excuse
    ]
    v = check(log(), history, final())
    assert v.excused_read_failures == 1
    assert len(v.read_errors) == 1 and "c1" in v.read_errors[0]


def test_a_mysql_outage_excuses_failed_reads_only_where_reads_need_mysql() -> None:
    outage = [fault(4.0, "mysql-kill", "mysql", "start"), fault(8.0, "mysql-kill", "mysql", "end")]
    in_dual = [*clean_history(), *outage, read(5.0, 5.1, "a", None, status=503)]
    assert len(check(log(), in_dual, final()).read_errors) == 1
    primary = [
        {"type": "mode", "t": 3.6, "phase": "start", "target": "mysql-primary"},
        {"type": "mode", "t": 3.9, "phase": "ok", "target": "mysql-primary"},
    ]
    in_primary = [*clean_history(), *primary, *outage, read(5.0, 5.1, "a", None, status=503)]
    v = check(log(), in_primary, final())
    assert v.read_errors == [] and v.excused_read_failures == 1


def test_verify_not_clean_fails_the_run() -> None:
    v = check(log(), clean_history(), final(verify_clean=False, verify_detail="2 differences"))
    assert not v.ok and any("verify" in f for f in v.failures())


def _log_with_payload() -> SourceLog:
    return SourceLog(**{**log().__dict__, "malformed_payloads": {'{"seq": 1e99}': 3}})


def test_a_dead_letter_without_a_seq_is_matched_by_its_payload() -> None:
    v = check(
        _log_with_payload(), clean_history(), final(dead_letters={}, unsequenced=['{"seq": 1e99}'])
    )
    assert v.ok, v.failures


def test_a_seqless_dead_letter_twice_or_unknown_is_flagged() -> None:
    twice = final(dead_letters={}, unsequenced=['{"seq": 1e99}'] * 2)
    assert check(_log_with_payload(), clean_history(), twice).dead_letter_duplicates == [3]
    stranger = final(unsequenced=["not in the log"])
    assert check(_log_with_payload(), clean_history(), stranger).dead_letter_unexpected == [-1]
