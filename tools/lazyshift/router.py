"""What a write or a read does in the current mode.

Stage 1 (`mongo`) needs no MySQL: MongoDB holds documents, dead letters and offsets.
"""

from __future__ import annotations

from lazyshift.core.document import Document
from lazyshift.core.mongo_store import MongoStore

MODES = ("mongo", "dual", "mysql-primary", "mysql")


class MongoSink:
    """Stage 1: everything goes to MongoDB."""

    mode = "mongo"

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def write(self, doc: Document) -> bool:
        return self.store.apply_snapshot(doc).applied

    def dead_letter(self, *, reason: str, category: str, raw: bytes, seq: int | None,
                    key: str | None) -> bool:
        return self.store.dead_letter(origin="stream", reason=reason, category=category,
                                      raw=raw, seq=seq, key=key)

    def load_offset(self, partition: str) -> int:
        return self.store.load_offset(partition)

    def save_offset(self, partition: str, seq: int) -> None:
        self.store.save_offset(partition, seq)
