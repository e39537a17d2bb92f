"""Repair exactly the documents a verify report lists, through the guarded write.

A report is used only if its truth is the one the current mode holds: MongoDB in mongo and
dual (`--truth mongo`), MySQL from the flip on (`--truth mysql`: rows MySQL holds newer or
alone are its own writes since the flip, never repaired). In mysql (stage 5) MongoDB is gone
and there is nothing to repair from.

Per finding that the report counts as a difference, one MySQL transaction (retried on
retryable errors) re-reads the document from MongoDB by key and writes it through the one
guarded write (`apply_batch`), which decides by (source_rev, version):
- missing / stale: applied if newer than what MySQL holds now (else superseded);
- different (same revision and version, other content: corruption): re-applied with
  `repair=True`, which lets the equal pair through: never a silently bumped version, never
  over a newer one;
- extra: deleted only with `delete_extra`, only while MongoDB is the truth (never in
  mysql-primary, where such rows are shipments created since the flip), and only if MongoDB
  still has no such key;
- newer (MySQL ahead of a truth=mongo report): refused, the guarded write never overwrites
  newer data; resolve it by hand.
A document that cannot be mapped is dead-lettered (origin 'backfill') and counts as not
repaired.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from lazyshift.config import Settings
from lazyshift.control import ladder
from lazyshift.core import mysql_store as store
from lazyshift.core.document import InvalidDocument
from lazyshift.core.guarded_write import apply_batch, map_or_reject, order_key
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.mysql import connect, run_in_transaction
from lazyshift.core.mysql_store import document_dead_letter
from lazyshift.errors import ProblemFound, UsageError

ORIGIN = "backfill"
KINDS = frozenset({"missing", "extra", "different", "stale", "newer"})


class RepairError(UsageError):
    """The report cannot be used for a repair."""


class RepairRefused(ProblemFound):
    """The report does not fit the migration's current state."""


@dataclass
class RepairResult:
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def repaired(self) -> int:
        return sum(1 for a in self.actions if a["ok"])

    @property
    def failed(self) -> int:
        return sum(1 for a in self.actions if not a["ok"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.failed == 0,
            "repaired": self.repaired,
            "failed": self.failed,
            "actions": self.actions,
        }


def findings_of(report: Any) -> list[dict[str, Any]]:
    """The findings to repair; RepairError naming what is wrong with a malformed report."""
    if not isinstance(report, dict) or not isinstance(report.get("findings"), list):
        raise RepairError("not a verify report: no `findings` list (use `verify --report F`)")
    if not str(report.get("source", "")).startswith("mongo"):
        raise RepairError(
            f"report compares {report.get('source')!r}: repair re-migrates from "
            "MongoDB only; run `lazyshift verify` against MongoDB first"
        )
    if report.get("truth") not in ("mongo", "mysql"):
        raise RepairError(f"report has no valid `truth` (mongo or mysql): {report.get('truth')!r}")
    out = []
    for i, f in enumerate(report["findings"]):
        if (
            not isinstance(f, dict)
            or not isinstance(f.get("key"), str)
            or f.get("kind") not in KINDS
        ):
            raise RepairError(
                f"finding #{i} is not a verify finding (needs a string `key` and a `kind` "
                f"in {', '.join(sorted(KINDS))}): {str(f)[:200]}"
            )
        if f.get("difference", True):
            out.append(f)
    return out


def _check_mode(mode: str, truth: str, delete_extra: bool) -> None:
    wanted = ladder.TRUTH[ladder.parse_mode(mode)]
    if wanted is None:
        raise RepairRefused(
            f"the mode is {mode}: MongoDB has been archived and removed, nothing to repair from"
        )
    if truth != wanted:
        raise RepairRefused(
            f"the report took {truth} as the truth but in {mode} the truth is {wanted}: "
            f"run `lazyshift verify --truth {wanted} --report F` and repair that report"
        )
    if delete_extra and wanted == "mysql":
        raise RepairRefused(
            f"--delete-extra is refused in {mode}: rows only MySQL holds are shipments "
            "written since the flip"
        )


def repair(
    settings: Settings, report: dict[str, Any], *, delete_extra: bool = False
) -> RepairResult:
    findings = findings_of(report)
    result = RepairResult()
    conn = connect(settings.mysql)
    try:
        mode = store.read_control(conn.cursor()).mode
        conn.commit()
        _check_mode(mode, report["truth"], delete_extra)
        mongo = MongoStore.open(settings, timeout_ms=10_000)
        try:
            for finding in findings:
                key, kind = finding["key"], finding["kind"]
                action: dict[str, Any] = {"key": key, "kind": kind}
                action.update(
                    run_in_transaction(
                        conn,
                        lambda cur, key=key, kind=kind: _repair_one(
                            cur, mongo.shipments, key, kind, delete_extra
                        ),
                    )
                )
                result.actions.append(action)
        finally:
            mongo.close()
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return result


def _repair_extra(cur: Any, key: str, in_mongo: bool, delete_extra: bool) -> dict[str, Any]:
    if in_mongo:
        return {"action": "kept", "ok": True, "detail": "MongoDB has the key again"}
    if not delete_extra:
        return {
            "action": "kept",
            "ok": False,
            "detail": "row only in MySQL; rerun with --delete-extra to delete it",
        }
    # the mode was checked before: this runs only while MongoDB is the truth
    store.delete_shipment(cur, key)
    return {"action": "deleted", "ok": True}


def _repair_one(cur: Any, coll: Any, key: str, kind: str, delete_extra: bool) -> dict[str, Any]:
    doc = coll.find_one({"_id": key})
    locked = store.lock_version(cur, key)
    if kind == "extra" or (doc is None and locked is not None):
        return _repair_extra(cur, key, doc is not None, delete_extra)
    if doc is None:
        return {"action": "none", "ok": True, "detail": "in neither store any more"}
    rows_by_key, rejected = map_or_reject([doc])
    if rejected:
        store.insert_dead_letters(
            cur, [document_dead_letter(ORIGIN, d, why) for d, why in rejected]
        )
        return {"action": "dead-lettered", "ok": False, "detail": rejected[0][1]}
    rows = rows_by_key[key]
    stored = None if locked is None else (locked[1], locked[0])  # (source_rev, version)
    if stored is not None and stored > order_key(rows):
        if kind == "newer":
            return {
                "action": "refused",
                "ok": False,
                "detail": f"MySQL holds (revision, version) {stored}, newer than MongoDB's "
                f"{order_key(rows)}; the guarded write never overwrites newer data",
            }
        return {"action": "superseded", "ok": True, "detail": f"MySQL now holds newer {stored}"}
    try:
        # A copy of MongoDB: not stamped as a live write. `repair` lets an equal pair with
        # other (corrupted) content through, and nothing older.
        applied = apply_batch(cur, [rows], repair=kind == "different")
    except InvalidDocument as exc:  # pragma: no cover - mapped above
        return {"action": "failed", "ok": False, "detail": exc.reason}
    if not applied.applied_keys:
        return {"action": "unchanged", "ok": True, "detail": "MySQL already as new"}
    return {
        "action": "replaced" if stored == order_key(rows) else "applied",
        "ok": True,
        "detail": f"revision {rows.root['source_rev']}, version {rows.version}",
    }
