"""`lazyshift backfill --dry-run`: map every document without writing anything, and report
what the mapping would change: type drift per field (a field seen with several types),
documents that would be rejected (grouped by field and problem) and silent coercions
(int -> double, -0.0, naive dates, millisecond truncation), each with example keys.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from lazyshift.config import Settings
from lazyshift.core import mapping
from lazyshift.core.document import InvalidDocument
from lazyshift.core.mongo_store import MongoStore


def path_pattern(path: str) -> str:
    """`items/3/value` -> `items/*/value` (for grouping per field, not per element)."""
    return "/".join("*" if part.isdigit() else part for part in path.split("/"))


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def _walk_types(node: Any, path: str, out: dict[str, Counter]) -> None:
    out.setdefault(path or "(document)", Counter())[_type_name(node)] += 1
    if isinstance(node, dict):
        for k, v in node.items():
            _walk_types(v, f"{path}/{k}" if path else str(k), out)
    elif isinstance(node, list | tuple):
        for v in node:
            _walk_types(v, f"{path}/*" if path else "*", out)


def _scalar_coercion(before: Any, after: Any) -> str | None:
    tb, ta = _type_name(before), _type_name(after)
    if tb != ta:
        return f"{tb} -> {ta}"
    if (
        isinstance(before, float)
        and before == 0.0
        and math.copysign(1.0, before) != math.copysign(1.0, after)
    ):
        return "-0.0 -> 0.0"
    if isinstance(before, datetime):
        if before.tzinfo is None:
            return "naive date -> UTC"
        return "date truncated to milliseconds" if before != after else None
    return "value changed" if before != after else None


def _coercions(before: Any, after: Any, path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(before, dict) and isinstance(after, dict):
        for k in before:
            if k in after:
                _coercions(before[k], after[k], f"{path}/{k}" if path else str(k), out)
    elif isinstance(before, list | tuple) and isinstance(after, list | tuple):
        for i, (b, a) in enumerate(zip(before, after, strict=False)):
            _coercions(b, a, f"{path}/{i}", out)
    elif (kind := _scalar_coercion(before, after)) is not None:
        out.append((path, kind))


_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|-?\b\d+(?:\.\d+)?(?:e[-+]?\d+)?\b")


@dataclass
class DryRunReport:
    docs: int = 0
    would_write: int = 0
    would_reject: int = 0
    type_drift: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)
    coercions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Profiler:
    """Groups what the dry run finds by field pattern, keeping a few example keys."""

    def __init__(self, examples: int) -> None:
        self.examples = examples
        self.report = DryRunReport()
        self.types: dict[str, Counter] = {}
        self.type_examples: dict[tuple[str, str], str] = {}
        self.rejections: dict[tuple[str, str], dict[str, Any]] = {}
        self.coercions: dict[tuple[str, str], dict[str, Any]] = {}

    def observe(self, doc: dict[str, Any]) -> None:
        self.report.docs += 1
        key = str(doc.get("_id"))
        per_doc: dict[str, Counter] = {}
        _walk_types(doc, "", per_doc)
        for path, counts in per_doc.items():
            for t in counts:
                self.types.setdefault(path, Counter())[t] += 1
                self.type_examples.setdefault((path, t), key)
        try:
            stored = mapping.stored_form(doc)
        except InvalidDocument as exc:
            self.report.would_reject += 1
            where, _, message = exc.reason.partition(": ")
            group = (path_pattern(where), _VALUES.sub("…", message))
            entry = self.rejections.setdefault(
                group, {"path": group[0], "problem": group[1], "count": 0, "examples": []}
            )
            entry["count"] += 1
            if len(entry["examples"]) < self.examples:
                entry["examples"].append({"key": key, "reason": exc.reason})
            return
        self.report.would_write += 1
        found: list[tuple[str, str]] = []
        _coercions(doc, stored, "", found)
        for path, kind in found:
            group = (path_pattern(path), kind)
            entry = self.coercions.setdefault(
                group, {"path": group[0], "coercion": kind, "count": 0, "examples": []}
            )
            entry["count"] += 1
            if len(entry["examples"]) < self.examples and key not in entry["examples"]:
                entry["examples"].append(key)

    def finish(self) -> DryRunReport:
        for path, counts in sorted(self.types.items()):
            if len([t for t in counts if t != "null"]) > 1:
                self.report.type_drift.append(
                    {
                        "path": path,
                        "types": dict(counts.most_common()),
                        "examples": {t: self.type_examples[(path, t)] for t in counts},
                    }
                )
        self.report.rejections = sorted(self.rejections.values(), key=lambda e: -e["count"])
        self.report.coercions = sorted(self.coercions.values(), key=lambda e: -e["count"])
        return self.report


def dry_run(
    settings: Settings, *, on_progress: Callable[[int], None] | None = None, examples: int = 3
) -> DryRunReport:
    """Map every document without writing; drift, rejections and coercions, grouped."""
    profiler = _Profiler(examples)
    mongo = MongoStore.open(settings, scan=True, timeout_ms=10_000)
    try:
        for doc in mongo.shipments.find({}, batch_size=1000):
            profiler.observe(doc)
            if on_progress is not None and profiler.report.docs % 1000 == 0:
                on_progress(profiler.report.docs)
    finally:
        mongo.close()
    return profiler.finish()
