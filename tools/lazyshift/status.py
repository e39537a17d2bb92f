"""`lazyshift status`: the migration at a glance, and the stage gate a pipeline reads.

The gate answers two questions for the current stage, each with the reasons when the
answer is no: can the pipeline advance to the next stage, and can it roll back one
(control.gate, over the same ladder `mode set` obeys).
"""

from __future__ import annotations

from typing import Any

from lazyshift.config import Settings
from lazyshift.control import facts, gate

CLIENT_FIELDS = ("client_id", "mode", "acked_epoch", "age_s", "live", "partition_spec")


def collect(settings: Settings) -> dict[str, Any]:
    seen = facts.observe(settings)
    st, mongo, mysql = seen.control, seen.mongo, seen.mysql
    left = None
    if mongo.get("reachable") and mongo.get("shipments") is not None:
        left = max(int(mongo["shipments"]) - int(mysql["shipments"]), 0)
    return {
        "mode": st.mode,
        "stage": seen.facts.stage,
        "epoch": st.epoch,
        "state": st.state,
        "target_mode": st.target_mode,
        "flip_epoch": st.flip_epoch,
        # MySQL missed writes made in mongo mode since this epoch (the flip waits for them)
        "reconcile_needed_since_epoch": seen.facts.reconcile_epoch,
        "backfill": seen.backfill,
        "clients": [{k: c[k] for k in CLIENT_FIELDS} for c in seen.clients],
        "mongo": mongo,
        "mysql": mysql,
        "documents_left_to_migrate": left,
        "gate": gate.evaluate(seen.facts),
    }
