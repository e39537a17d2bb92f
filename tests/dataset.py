"""A fast deterministic generator of realistic canonical shipment documents (native form),
for the backfill / verify / archive tests and the data benchmark.

Keys mix sources, case and non-ASCII characters so binary key order (MongoDB) and utf8mb4_bin
order (MySQL) are exercised; documents carry 0-5 items, 0-6 events, optional parties and
an `extra` object, like the normalised stream does.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

SOURCES = ("legacy", "acme", "zebra-post", "dhl_sim")
SUFFIXES = ("", "Z", "é", "Ω", "😀", "-x")
STATUSES = ("created", "picked_up", "in_transit", "out_for_delivery", "delivered")
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def key_for(i: int) -> str:
    source = SOURCES[i % len(SOURCES)]
    return f"{source}:{i:07d}{SUFFIXES[(i // 7) % len(SUFFIXES)]}"


def _money(rng: random.Random) -> dict[str, str]:
    cents = rng.randint(0, 10**7)
    amount = f"{cents // 100}.{cents % 100:02d}".rstrip("0").rstrip(".")
    return {"amount": amount or "0", "currency": rng.choice(("EUR", "USD", "GBP"))}


def _party(rng: random.Random, i: int) -> dict[str, Any] | None:
    if rng.random() < 0.1:
        return None
    return {
        "name": None if rng.random() < 0.5 else f"Party {i}",
        "first_name": rng.choice(("Ada", "Grace", "Émile", "李")),
        "last_name": rng.choice(("Lovelace", "Hopper", "Noether")),
        "email": f"p{i}@example.com",
        "phone": None,
        "address": None
        if rng.random() < 0.2
        else {
            "street": f"{i} Main St",
            "city": rng.choice(("London", "Paris", "Köln")),
            "postal_code": f"{rng.randint(1000, 99999)}",
            "country": "GB",
            "lat": round(rng.uniform(-90, 90), 6),
            "lon": round(rng.uniform(-180, 180), 6),
        },
    }


def make_doc(i: int, version: int = 1, seed: int = 0) -> dict[str, Any]:
    """Document number `i` at `version` (content depends on both, deterministically)."""
    rng = random.Random(seed * 1_000_003 + i * 7919 + version)
    key = key_for(i)
    created = BASE_TIME + timedelta(seconds=i * 37, milliseconds=rng.randint(0, 999))
    events = [
        {
            "time": created + timedelta(hours=h, milliseconds=rng.randint(0, 999)),
            "status": STATUSES[min(h, len(STATUSES) - 1)],
            "location": rng.choice(("Paris", "Lyon", None)),
            "note": None,
        }
        for h in range(rng.randint(0, 6))
    ]
    return {
        "_id": key,
        "key": key,
        "source": key.split(":")[0],
        "tracking_number": f"TN{i:09d}",
        "status": events[-1]["status"] if events else "created",
        "service_level": rng.choice(("express", "standard", None)),
        "sender": _party(rng, i),
        "recipient": _party(rng, i + 1),
        "items": [
            {
                "sku": f"SKU-{rng.randint(1, 9999)}",
                "description": None if j % 2 else "box",
                "quantity": rng.randint(1, 20),
                "weight_kg": round(rng.uniform(0.1, 30), 3),
                "value": _money(rng) if rng.random() < 0.8 else None,
            }
            for j in range(rng.randint(0, 5))
        ],
        "events": events,
        "price": _money(rng),
        "cost": None if rng.random() < 0.5 else _money(rng),
        "created_at": created,
        "updated_at": events[-1]["time"] if events else created,
        "source_seq": i * 10 + version,
        "source_rev": version,
        "version": version,
        "extra": {"legacyPrice": rng.random() * 100, "tags": ["a", version]},
    }


def generate(n: int, seed: int = 0, start: int = 0) -> Iterator[dict[str, Any]]:
    for i in range(start, start + n):
        yield make_doc(i, seed=seed)


def load_mongo(collection: Any, n: int, seed: int = 0, batch: int = 1000, start: int = 0) -> int:
    """Insert `n` generated documents (insert_many in batches); the count inserted."""
    buf: list[dict[str, Any]] = []
    done = 0
    for doc in generate(n, seed, start):
        buf.append(doc)
        if len(buf) >= batch:
            collection.insert_many(buf, ordered=False)
            done += len(buf)
            buf = []
    if buf:
        collection.insert_many(buf, ordered=False)
        done += len(buf)
    return done


def write_mysql(conn: Any, docs: list[dict[str, Any]]) -> None:
    """`docs` into MySQL through the version-guarded batch write, in one transaction."""
    from lazyshift.core.guarded_write import apply_batch

    conn.start_transaction()
    cur = conn.cursor()
    apply_batch(cur, docs)
    cur.close()
    conn.commit()
