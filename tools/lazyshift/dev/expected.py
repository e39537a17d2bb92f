"""What the mock source emitted, read from its own `dump`, and the store state it implies.

Used by `lazyshift dev demo` to reconcile counts and by the tests as the expected end state:
the comparison is always with what the source actually sent, never with a hand-made list.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from typing import Any

from lazyshift.client.consumer import MAX_MESSAGE_BYTES
from lazyshift.core.normalise import Malformed, normalise_message, parse_message
from lazyshift.dev.stack import MOCK_SOURCE

GENERATION_FLAGS = (
    "--seed",
    "--count",
    "--sources",
    "--update-fraction",
    "--replay-fraction",
    "--malformed-fraction",
    "--hostile-fraction",
)


def generation_args(args: list[str]) -> list[str]:
    """Keep only the flags that shape the log (drop --rate, --port, ...).

    Only the generation flags are known to take a value, so the list is walked one item at a
    time: a boolean flag (`--clock-from-subscribe`) anywhere in `args` shifts nothing."""
    out: list[str] = []
    at = 0
    while at < len(args):
        flag, _, inline = args[at].partition("=")
        if flag in GENERATION_FLAGS:
            if inline:
                out += [flag, inline]
            elif at + 1 < len(args):
                out += [flag, args[at + 1]]
                at += 1
        at += 1
    return out


def dump(args: list[str], partition: str | None = None) -> list[dict[str, Any]]:
    cmd = ["node", str(MOCK_SOURCE), "dump", *generation_args(args)]
    if partition:
        cmd += ["--partition", partition]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line]


@dataclass
class Expected:
    """What the store must hold after the whole log was consumed."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> doc with version
    dead_seqs: set[int] = field(default_factory=set)
    emitted: int = 0
    stale: int = 0


def expected_state(messages: list[dict[str, Any]]) -> Expected:
    exp = Expected(emitted=len(messages))
    for m in messages:
        raw = m["payload"].encode()
        if len(raw) > MAX_MESSAGE_BYTES:
            exp.dead_seqs.add(m["seq"])
            continue
        try:
            doc = normalise_message(parse_message(raw))
        except Malformed:
            exp.dead_seqs.add(m["seq"])
            continue
        current = exp.docs.get(doc["key"])
        if current is None or doc["source_rev"] > current["source_rev"]:
            version = 1 if current is None else current["version"] + 1
            exp.docs[doc["key"]] = {**doc, "version": version}
        else:
            exp.stale += 1
    return exp
