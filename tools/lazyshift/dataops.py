"""Helpers shared by backfill, verify, repair and archive (the data commands).

- a MongoDB client for long scans: FerretDB evaluates range filters and sorts over a full scan
  before answering the first batch, so the socket timeout must outlast that scan;
- the dead-letter insert used by the backfill and repair, in the caller's transaction;
- JSON of an arbitrary (possibly malformed) MongoDB document, for dead letters and archives;
- a URI without its credentials, for reports and manifests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pymongo
from bson import json_util
from pymongo.collection import Collection

from lazyshift.config import Settings
from lazyshift.core import document
from lazyshift.core.document import Document
from lazyshift.core.mysql import placeholders

SCAN_SOCKET_TIMEOUT_MS = 3_600_000  # a sorted scan of millions of documents on FerretDB
DEDUP_MAX = 191
KEY_MAX = 96


def mongo_client(settings: Settings, timeout_ms: int = 10_000) -> pymongo.MongoClient:
    """Like core.mongo_store.connect (tz_aware, UTC), with a socket timeout for long scans."""
    return pymongo.MongoClient(
        settings.mongo.uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms, socketTimeoutMS=SCAN_SOCKET_TIMEOUT_MS,
    )


def shipments(client: pymongo.MongoClient, settings: Settings) -> Collection:
    return client[settings.mongo.database][settings.mongo.collection]


def key_filter(after: str | None, upper: str | None) -> dict[str, Any]:
    """String _ids in (after, upper]; None = unbounded. `$gte ""` keeps non-string _ids out
    (MongoDB compares within one BSON type only)."""
    cond: dict[str, Any] = {"$gt": after} if after is not None else {"$gte": ""}
    if upper is not None:
        cond["$lte"] = upper
    return {"_id": cond}


def doc_json(doc: Any) -> str:
    """Canonical JSON text of any document (BSON types MongoDB may hold as extended JSON)."""
    try:
        body = document.to_json(doc) if isinstance(doc, dict) else doc
    except Exception:  # noqa: BLE001 - a malformed document is still archived / dead-lettered
        body = doc
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=json_util.default)


def dedup_key(doc_id: Any) -> str:
    text = f"_id:{doc_id}" if isinstance(doc_id, str) else f"_id:{json_util.dumps(doc_id)}"
    if len(text) > DEDUP_MAX:
        text = "_id:sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text


def insert_dead_letters(cursor: Any, origin: str, rejected: Sequence[tuple[Document, str]]
                        ) -> int:
    """Dead-letter `rejected` (doc, reason) pairs, once per (origin, _id); rows inserted."""
    if not rejected:
        return 0
    values: list[Any] = []
    for doc, reason in rejected:
        doc_id = doc.get("_id") if isinstance(doc, dict) else None
        key = doc_id if isinstance(doc_id, str) and len(doc_id) <= KEY_MAX else None
        payload = doc_json(doc).encode("utf-8", "replace").decode("utf-8")
        values.extend([origin, dedup_key(doc_id), key, reason, payload])
    row = "(" + placeholders(5) + ")"
    cursor.execute(
        "INSERT INTO dead_letter (origin, dedup_key, shipment_key, reason, payload) VALUES "
        + ", ".join([row] * len(rejected))
        + " ON DUPLICATE KEY UPDATE id = id",
        tuple(values),
    )
    return max(0, cursor.rowcount)


def redact_uri(uri: str) -> str:
    """`uri` without user:password (mongodb://u:p@h/ -> mongodb://h/)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return re.sub(r"//[^@/]*@", "//", uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def path_pattern(path: str) -> str:
    """`items/3/value` -> `items/*/value` (for grouping per field, not per element)."""
    return "/".join("*" if part.isdigit() else part for part in path.split("/"))
