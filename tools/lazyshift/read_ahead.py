"""Read an iterator one batch ahead in a thread (the backfill's and verify's reads).

The server's side of a scan (FerretDB decodes every document it scans; MySQL sends the next
rows) then overlaps with the consumer's work on the batch before. At most `depth` batches
wait in memory, so memory stays flat whatever the collection's size. Batches read but not
consumed when the reader is closed or its source fails are dropped: the caller's checkpoint
or key says where the next read starts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

_END = object()


class ReadAhead:
    """Batches of `batch_size` items of `docs`, read by a daemon thread `depth` batches ahead;
    an error of the source is raised to the consumer at the point it happened."""

    def __init__(
        self,
        docs: Iterator[Any],
        batch_size: int,
        depth: int = 2,
        name: str = "read-ahead",
    ) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(docs, batch_size), name=name, daemon=True
        )
        self._thread.start()

    def _read(self, docs: Iterator[Any], batch_size: int) -> None:
        try:
            batch: list[Any] = []
            for doc in docs:
                batch.append(doc)
                if len(batch) >= batch_size:
                    self._put(batch)
                    batch = []
                if self._stop.is_set():
                    return
            if batch:
                self._put(batch)
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[list[Any]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
