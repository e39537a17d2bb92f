"""The history checker: judges a fault run from what it recorded, nothing else.

Pure: it takes the source's log (what was emitted), the history (reads, acknowledged
offsets, faults, mode changes) and the final state (MySQL's documents and dead letters, the
verify verdict), and returns every violation it finds:

- lost: a write whose offset the client stored (acknowledged) but whose effect is not in the
  final store (the shipment is missing or at an older source revision);
- stale: a read that returned an older revision than one already returned for that key by a
  read that completed before it began, or than a write acknowledged before it began (a 404
  for such a key is stale too);
- read errors: a read that failed while neither its client nor a store that read needs was
  under a fault (a MySQL outage does not excuse a failed read in `mongo` or `dual`, which do
  not need MySQL);
- dead letters: a malformed message not dead-lettered, dead-lettered more than once, or a
  well-formed message dead-lettered;
- final state: MySQL not equal to the state the source's log implies; verify not clean.

Dead letters are matched by the log's sequence number; one stored without a seq (a hostile
message whose seq is itself the hostility, `hostile:huge-seq`) is matched by its payload.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# After a store or a client is back, reads may still fail for a moment (a pooled connection
# found broken, a client that is still starting): failures this close to a fault are its own.
GRACE_S = 3.0
CLIENT_FAULTS = ("client-kill", "client-stop")
# Which store outage excuses a failed read, by the mode in force during it.
NEEDS = {
    "mongo": {"mongo-kill"},
    "dual": {"mongo-kill"},
    "mysql-primary": {"mysql-kill", "mongo-kill"},  # a miss falls back to MongoDB
    "mysql": {"mysql-kill"},
}
EXAMPLES = 20


@dataclass(frozen=True)
class Write:
    """A well-formed message of the source's log."""

    seq: int
    partition: int
    key: str
    source_rev: int


@dataclass
class SourceLog:
    writes: list[Write]
    malformed: set[int]  # seqs that must end up dead-lettered, once
    partitions: int
    expected_docs: dict[str, dict[str, Any]]  # key -> the stored form the log implies
    malformed_payloads: dict[str, int] = field(default_factory=dict)  # payload -> its seq

    @property
    def emitted(self) -> int:
        return len(self.writes) + len(self.malformed)


@dataclass
class FinalState:
    docs: dict[str, dict[str, Any]]  # key -> stored form read back from MySQL
    dead_letters: dict[int, int]  # source seq -> dead-letter records of it
    verify_clean: bool
    verify_detail: str = ""
    unsequenced: list[str] = field(default_factory=list)  # payloads of letters without a seq


@dataclass
class Verdict:
    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)
    excused_read_failures: int = 0
    reads: int = 0
    dead_letter_missing: list[int] = field(default_factory=list)
    dead_letter_duplicates: list[int] = field(default_factory=list)
    dead_letter_unexpected: list[int] = field(default_factory=list)
    final_mismatches: list[str] = field(default_factory=list)
    verify_clean: bool = True
    verify_detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verify_clean and not (
            self.lost
            or self.stale_reads
            or self.read_errors
            or self.dead_letter_missing
            or self.dead_letter_duplicates
            or self.dead_letter_unexpected
            or self.final_mismatches
        )

    def failures(self) -> list[str]:
        """One line per kind of violation, with the first examples."""
        out = []
        for name, items in (
            ("acknowledged writes lost", self.lost),
            ("stale reads", self.stale_reads),
            ("read errors outside faults", self.read_errors),
            ("malformed messages not dead-lettered", self.dead_letter_missing),
            ("messages dead-lettered more than once", self.dead_letter_duplicates),
            ("well-formed messages dead-lettered", self.dead_letter_unexpected),
            ("MySQL differs from the source's log", self.final_mismatches),
        ):
            if items:
                shown = "; ".join(str(i) for i in items[:5])
                out.append(f"{len(items)} {name}: {shown}")
        if not self.verify_clean:
            out.append(f"verify not clean: {self.verify_detail}")
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "acknowledged": self.acknowledged,
            "lost": len(self.lost),
            "stale_reads": len(self.stale_reads),
            "reads": self.reads,
            "read_errors": len(self.read_errors),
            "excused_read_failures": self.excused_read_failures,
            "dead_letter_missing": len(self.dead_letter_missing),
            "dead_letter_duplicates": len(self.dead_letter_duplicates),
            "dead_letter_unexpected": len(self.dead_letter_unexpected),
            "final_mismatches": len(self.final_mismatches),
            "verify_clean": self.verify_clean,
            "failures": self.failures(),
            "examples": {
                "lost": self.lost[:EXAMPLES],
                "stale_reads": self.stale_reads[:EXAMPLES],
                "read_errors": self.read_errors[:EXAMPLES],
                "dead_letter_missing": self.dead_letter_missing[:EXAMPLES],
                "dead_letter_duplicates": self.dead_letter_duplicates[:EXAMPLES],
                "dead_letter_unexpected": self.dead_letter_unexpected[:EXAMPLES],
                "final_mismatches": self.final_mismatches[:EXAMPLES],
            },
        }


# -- acknowledgements --------------------------------------------------------------------------
class Acks:
    """When each partition's offset reached what: `upto(partition, t)` is the highest seq
    acknowledged at or before `t`."""

    def __init__(self, events: Iterable[dict[str, Any]]) -> None:
        by_part: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for e in events:
            if e["type"] == "ack":
                by_part[e["partition"]].append((e["t"], int(e["seq"])))
        self._times: dict[str, list[float]] = {}
        self._seqs: dict[str, list[int]] = {}
        for part, rows in by_part.items():
            rows.sort()
            best, times, seqs = 0, [], []
            for t, seq in rows:
                best = max(best, seq)
                times.append(t)
                seqs.append(best)
            self._times[part], self._seqs[part] = times, seqs

    def upto(self, partition: str, t: float | None = None) -> int:
        seqs = self._seqs.get(partition)
        if not seqs:
            return 0
        if t is None:
            return seqs[-1]
        i = bisect.bisect_right(self._times[partition], t)
        return seqs[i - 1] if i else 0


def _part(w: Write, n: int) -> str:
    return f"{w.partition}/{n}"


def lost_writes(log: SourceLog, final: FinalState, acks: Acks) -> tuple[int, list[str]]:
    acknowledged, lost = 0, []
    for w in log.writes:
        if w.seq > acks.upto(_part(w, log.partitions)):
            continue
        acknowledged += 1
        doc = final.docs.get(w.key)
        have = None if doc is None else doc.get("source_rev")
        if have is None or have < w.source_rev:
            lost.append(f"seq {w.seq} ({w.key} rev {w.source_rev}): final has rev {have}")
    return acknowledged, lost


# -- reads ---------------------------------------------------------------------------------------
class _KeyFloors:
    """The revision a read of a key must at least return, from acknowledged writes."""

    def __init__(self, log: SourceLog, acks: Acks) -> None:
        self.log, self.acks = log, acks
        self._writes: dict[str, list[Write]] = defaultdict(list)
        for w in log.writes:
            self._writes[w.key].append(w)

    def acked_rev(self, key: str, t: float) -> int:
        best = 0
        for w in self._writes.get(key, ()):
            if w.seq <= self.acks.upto(_part(w, self.log.partitions), t):
                best = max(best, w.source_rev)
        return best


def _reads(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((e for e in events if e["type"] == "read"), key=lambda e: e["invoke_t"])


def stale_reads(events: list[dict[str, Any]], log: SourceLog, acks: Acks) -> list[str]:
    floors = _KeyFloors(log, acks)
    done: dict[str, list[tuple[float, int]]] = defaultdict(list)  # key -> (completed, rev)
    for r in _reads(events):
        if r["status"] == 200:
            done[r["key"]].append((r["t"], int(r["source_rev"])))
    for rows in done.values():
        rows.sort()
    times = {k: [t for t, _ in rows] for k, rows in done.items()}
    prefix_max = {k: _running_max([rev for _, rev in rows]) for k, rows in done.items()}
    stale = []
    for r in _reads(events):
        if r["status"] not in (200, 404):
            continue
        key, start = r["key"], r["invoke_t"]
        i = bisect.bisect_left(times.get(key, []), start)
        seen = prefix_max[key][i - 1] if i else 0
        acked = floors.acked_rev(key, start)
        floor = max(seen, acked)
        got = int(r["source_rev"]) if r["status"] == 200 else 0
        if got < floor:
            why = "a read" if seen >= acked else "an acknowledged write"
            stale.append(
                f"t={start:.2f} {r.get('client')} read {key}: rev {got or 'none'} after "
                f"rev {floor} from {why} ({r.get('store') or r['status']})"
            )
    return stale


def _running_max(values: list[int]) -> list[int]:
    out, best = [], 0
    for v in values:
        best = max(best, v)
        out.append(best)
    return out


def _windows(events: list[dict[str, Any]]) -> list[tuple[str, str, float, float]]:
    """(fault, target, start, end) of every fault; one still open ends at infinity."""
    open_: dict[tuple[str, str], float] = {}
    out = []
    for e in sorted((e for e in events if e["type"] == "fault"), key=lambda e: e["t"]):
        ident = (e["fault"], e.get("target", ""))
        if e["phase"] == "start":
            open_[ident] = e["t"]
        elif ident in open_:
            out.append((*ident, open_.pop(ident), e["t"]))
    out += [(*ident, start, float("inf")) for ident, start in open_.items()]
    return out


def _mode_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted((e for e in events if e["type"] == "mode"), key=lambda e: e["t"])


def _modes_during(modes: list[dict[str, Any]], a: float, b: float) -> set[str]:
    """The modes that may have been in force at some point between a and b: the one at a,
    one draining in at a, and every one a transition started or committed meanwhile.
    `modes`: the history's mode events in time order."""
    current, in_flight = "mongo", None
    at_a: set[str] | None = None
    during: set[str] = set()
    for e in modes:
        if e["t"] > b:
            break
        if e["t"] >= a:
            if at_a is None:
                at_a = {current} | ({in_flight} if in_flight else set())
            during.add(e["target"])
        if e["phase"] == "start":
            in_flight = e["target"]
        else:
            current = e["target"] if e["phase"] == "ok" else current
            in_flight = None
    if at_a is None:
        at_a = {current} | ({in_flight} if in_flight else set())
    return at_a | during


def _excused(r: dict[str, Any], windows: list[tuple[str, str, float, float]], modes: set[str]):
    a, b = r["invoke_t"], r["t"]
    needed = set().union(*(NEEDS.get(m, set()) for m in modes))
    for fault, target, start, end in windows:
        if start > b or end + GRACE_S < a:
            continue
        if fault in CLIENT_FAULTS and target == r.get("client"):
            return True
        if fault in needed:
            return True
    return False


def read_errors(events: list[dict[str, Any]]) -> tuple[list[str], int]:
    windows = _windows(events)
    mode_events = _mode_events(events)
    errors, excused = [], 0
    for r in _reads(events):
        if r["status"] in (200, 404):
            continue
        modes = _modes_during(mode_events, r["invoke_t"], r["t"])
        if _excused(r, windows, modes):
            excused += 1
            continue
        errors.append(
            f"t={r['invoke_t']:.2f} {r.get('client')} read {r['key']} in "
            f"{'/'.join(sorted(modes))}: {r['status'] or ''} {r.get('error') or ''}".strip()
        )
    return errors, excused


# -- end state ------------------------------------------------------------------------------------
def dead_letter_findings(log: SourceLog, final: FinalState) -> tuple[list, list, list]:
    counts = dict(final.dead_letters)
    unmatched = 0
    for payload in final.unsequenced:
        seq = log.malformed_payloads.get(payload)
        if seq is None:
            unmatched += 1
        else:
            counts[seq] = counts.get(seq, 0) + 1
    missing = sorted(s for s in log.malformed if counts.get(s, 0) == 0)
    twice = sorted(s for s, n in counts.items() if n > 1)
    unexpected = sorted(s for s in counts if s not in log.malformed) + [-1] * unmatched
    return missing, twice, unexpected


def final_mismatches(log: SourceLog, final: FinalState) -> list[str]:
    out = []
    for key, want in sorted(log.expected_docs.items()):
        have = final.docs.get(key)
        if have is None:
            out.append(f"{key}: missing (want rev {want.get('source_rev')})")
        elif have != want:
            out.append(
                f"{key}: rev {have.get('source_rev')} v{have.get('version')}, want rev "
                f"{want.get('source_rev')} v{want.get('version')}"
                + ("" if have.get("source_rev") != want.get("source_rev") else " (content)")
            )
    out += [
        f"{key}: not in the source's log"
        for key in sorted(set(final.docs) - set(log.expected_docs))
    ]
    return out


def check(log: SourceLog, events: list[dict[str, Any]], final: FinalState) -> Verdict:
    acks = Acks(events)
    v = Verdict(verify_clean=final.verify_clean, verify_detail=final.verify_detail)
    v.acknowledged, v.lost = lost_writes(log, final, acks)
    v.stale_reads = stale_reads(events, log, acks)
    v.reads = sum(1 for e in events if e["type"] == "read")
    v.read_errors, v.excused_read_failures = read_errors(events)
    v.dead_letter_missing, v.dead_letter_duplicates, v.dead_letter_unexpected = (
        dead_letter_findings(log, final)
    )
    v.final_mismatches = final_mismatches(log, final)
    return v
