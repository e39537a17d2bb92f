"""The history of a fault run: every read, every acknowledged write, every fault and mode change.

One JSON object per line, appended as things happen (so a run that dies still leaves what it
saw), each stamped with `t`, seconds since the run began (monotonic clock). The checker reads
it back; nothing else is needed to judge the run.

Event types:
- `read`: `key`, `client`, `invoke_t`, `t` (completion), `status` (HTTP status, 0 when no
  answer), `source_rev`, `version`, `store`, `error`.
- `ack`: `partition` ("k/n"), `seq`: the offset that partition's client stored, observed at
  `t`. The client stores its offset only after the writes up to it were applied, so every
  message of that partition with a sequence up to `seq` is acknowledged from `t` on.
- `fault`: `fault` (kind), `target`, `phase` ("start" or "end"), `detail`.
- `mode`: `phase` ("start", "ok", "failed"), `target`, `command`, `paused_s`, `detail`.
- `sample`: `acked` (messages acknowledged so far), `available` (messages the source had
  made available), for the timeline.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any


class History:
    """Thread-safe, append-only; kept in memory and written through to `path`."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("w", encoding="utf-8")

    def now(self) -> float:
        return round(time.monotonic() - self._t0, 4)

    def add(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            event = {"type": kind, "t": fields.pop("t", None) or self.now(), **fields}
            self.events.append(event)
            if self._file is not None:
                self._file.write(json.dumps(event, default=str) + "\n")
                self._file.flush()
            return event

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["type"] == kind]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
