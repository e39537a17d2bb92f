"""MongoDB side (FerretDB here): the revision-guarded upsert, dead letters, stream offsets.

The write is one atomic `findAndModify`: it matches only while the stored revision is older
than the message's, sets the snapshot and bumps `version` by one. If the stored revision is
newer or equal, the filter misses, the upsert tries to insert the same `_id` and the server
refuses with a duplicate key: that refusal *is* the "already applied" answer, so a repeated
or late message changes nothing, atomically, without a read-then-write race.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pymongo
from pymongo import ReturnDocument
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from lazyshift.core.document import Document

SHIPMENTS = "shipments"
DEAD_LETTERS = "dead_letters"
OFFSETS = "client_offsets"


@dataclass(frozen=True)
class MongoWrite:
    applied: bool
    version: int | None  # the stored version after the write (None if unknown)
    document: Document | None  # the stored document when applied


def connect(uri: str, timeout_ms: int = 5000) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms, socketTimeoutMS=max(timeout_ms, 10000),
    )


class MongoStore:
    def __init__(self, client: pymongo.MongoClient, database: str,
                 collection: str = SHIPMENTS) -> None:
        self.client = client
        self.db = client[database]
        self.shipments: Collection = self.db[collection]
        self.dead_letters: Collection = self.db[DEAD_LETTERS]
        self.offsets: Collection = self.db[OFFSETS]

    def apply_snapshot(self, doc: Document) -> MongoWrite:
        """Upsert `doc` (no `version` key) if its source_rev is newer than the stored one."""
        body = {k: v for k, v in doc.items() if k not in ("_id", "version")}
        try:
            stored = self.shipments.find_one_and_update(
                {"_id": doc["_id"], "source_rev": {"$lt": doc["source_rev"]}},
                {"$set": body, "$inc": {"version": 1}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            return MongoWrite(False, None, None)
        return MongoWrite(True, stored["version"], stored)

    def replace_if_newer(self, doc: Document) -> bool:
        """Write a whole document (with its own version) unless MongoDB holds a newer one.

        Used on the way back (rollback): MySQL's version numbers are carried over as they are.
        """
        body = {k: v for k, v in doc.items() if k != "_id"}
        try:
            self.shipments.update_one(
                {"_id": doc["_id"], "version": {"$lt": doc["version"]}},
                {"$set": body}, upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    def get(self, key: str) -> Document | None:
        return self.shipments.find_one({"_id": key})

    # -- dead letters ----------------------------------------------------------------------
    def dead_letter(self, *, origin: str, reason: str, category: str, raw: bytes,
                    seq: int | None, key: str | None = None) -> bool:
        """Store a message that could not be applied. Idempotent per (origin, seq)."""
        dedup = f"seq:{seq}" if seq is not None else "sha256:" + hashlib.sha256(raw).hexdigest()
        try:
            payload: dict[str, Any] = {"payload": raw.decode("utf-8")}
        except UnicodeDecodeError:
            payload = {"payload_b64": base64.b64encode(raw).decode()}
        entry = {
            "_id": f"{origin}:{dedup}", "origin": origin, "category": category,
            "reason": reason, "source_seq": seq, "shipment_key": key,
            "received_at": datetime.now(UTC), **payload,
        }
        try:
            self.dead_letters.insert_one(entry)
        except DuplicateKeyError:
            return False
        return True

    # -- stream offsets ----------------------------------------------------------------------
    def load_offset(self, partition: str) -> int:
        row = self.offsets.find_one({"_id": partition})
        return int(row["seq"]) if row else 0

    def save_offset(self, partition: str, seq: int) -> None:
        # $max: a slower writer can never move the offset backwards.
        self.offsets.update_one({"_id": partition}, {"$max": {"seq": seq}}, upsert=True)
