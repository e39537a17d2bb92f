"""Repair exactly the documents a verify report lists, through the guarded write.

Per finding that the report counts as a difference, one MySQL transaction (retried on
retryable errors) re-reads the document from MongoDB by key and:
- missing / stale: `apply_batch` (the guard still refuses anything older than MySQL holds);
- different (same version, corrupted content): locks the row, deletes it (children cascade)
  and re-applies the document, in the same transaction: never a silently bumped version;
  if MySQL meanwhile holds a newer version, nothing is done (superseded);
- extra: deleted only with `delete_extra`, and only if MongoDB still has no such key;
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
from lazyshift.core import mysql_store as store
from lazyshift.core.document import InvalidDocument
from lazyshift.core.guarded_write import apply_batch, map_or_reject
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.mysql import connect, run_in_transaction
from lazyshift.core.mysql_store import document_dead_letter
from lazyshift.errors import UsageError

ORIGIN = "backfill"


class RepairError(UsageError):
    """The report cannot be used for a repair."""


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


def repair(
    settings: Settings, report: dict[str, Any], *, delete_extra: bool = False
) -> RepairResult:
    if not isinstance(report, dict) or "findings" not in report:
        raise RepairError("not a verify report (no findings)")
    if not str(report.get("source", "mongo")).startswith("mongo"):
        raise RepairError(
            f"report compares {report.get('source')}: repair re-migrates from "
            "MongoDB only; run `lazyshift verify` against MongoDB first"
        )
    findings = [f for f in report["findings"] if f.get("difference", True)]
    result = RepairResult()
    conn = connect(settings.mysql)
    mongo = MongoStore.open(settings, timeout_ms=10_000)
    coll = mongo.shipments
    try:
        for finding in findings:
            key, kind = finding["key"], finding["kind"]
            action: dict[str, Any] = {"key": key, "kind": kind}
            action.update(
                run_in_transaction(
                    conn,
                    lambda cur, key=key, kind=kind: _repair_one(cur, coll, key, kind, delete_extra),
                )
            )
            result.actions.append(action)
    finally:
        mongo.close()
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
    store.delete_shipment(cur, key)
    return {"action": "deleted", "ok": True}


def _repair_one(cur: Any, coll: Any, key: str, kind: str, delete_extra: bool) -> dict[str, Any]:
    doc = coll.find_one({"_id": key})
    locked = store.lock_version(cur, key)
    stored = None if locked is None else locked[0]
    if kind == "extra" or (doc is None and stored is not None):
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
    epoch = store.current_epoch(cur)
    if stored is not None and stored > rows.version:
        if kind == "newer":
            return {
                "action": "refused",
                "ok": False,
                "detail": f"MySQL version {stored} is newer than MongoDB's {rows.version}; "
                "the guarded write never overwrites newer data",
            }
        return {
            "action": "superseded",
            "ok": True,
            "detail": f"MySQL now holds newer version {stored}",
        }
    replaced = False
    if stored is not None and stored == rows.version:
        # Same version, different content (corruption): replace, never bump the version.
        store.delete_shipment(cur, key)
        replaced = True
    try:
        applied = apply_batch(cur, [rows], epoch=None, written_epoch=epoch)
    except InvalidDocument as exc:  # pragma: no cover - mapped above
        return {"action": "failed", "ok": False, "detail": exc.reason}
    if not applied.applied_keys:
        return {"action": "unchanged", "ok": True, "detail": "MySQL already as new"}
    return {
        "action": "replaced" if replaced else "applied",
        "ok": True,
        "detail": f"version {rows.version}",
    }
