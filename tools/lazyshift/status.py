"""`lazyshift status`: the migration at a glance, and the stage gate a pipeline reads.

The gate answers two questions for the current stage, each with the reasons when the
answer is no: can the pipeline advance to the next rung, and can it roll back one.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from lazyshift.config import Settings
from lazyshift.control import LADDER, STAGE_OF_MODE, clients
from lazyshift.core import mysql as my
from lazyshift.core.control_row import read_state
from lazyshift.core.mongo_store import BACKLOG, DEAD_LETTERS, connect


def _mongo_counts(settings: Settings) -> dict[str, Any]:
    try:
        client = connect(settings.mongo.uri, timeout_ms=2000)
        db = client[settings.mongo.database]
        out = {
            "reachable": True,
            "shipments": db[settings.mongo.collection].estimated_document_count(),
            "dual_backlog": db[BACKLOG].count_documents({}),
            "dead_letters": db[DEAD_LETTERS].count_documents({}),
        }
        client.close()
        return out
    except Exception as exc:  # noqa: BLE001 - gone after stage 5, or down: say so
        return {"reachable": False, "error": str(exc)[:200]}


def _scalar(cur: Any, sql: str) -> Any:
    cur.execute(sql)
    row = cur.fetchone()
    return row[0] if row else None


def collect(settings: Settings) -> dict[str, Any]:
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        st = read_state(cur)
        hb = clients(cur, settings.client.heartbeat_timeout_s)
        mysql = {
            "shipments": _scalar(cur, "SELECT COUNT(*) FROM shipment"),
            "dead_letters": _scalar(cur, "SELECT COUNT(*) FROM dead_letter"),
            "archives": _scalar(cur, "SELECT COUNT(*) FROM archive_record"),
        }
        backfill = _backfill_and_verify(cur)
    finally:
        conn.close()
    mongo = _mongo_counts(settings)
    live = [c for c in hb if c["live"]]
    shadow_bad = sum(
        sum(v for k, v in ((c.get("stats") or {}).get("shadow") or {}).items() if k != "match")
        for c in live if isinstance(c.get("stats"), dict)
    )
    left = None
    if mongo.get("reachable"):
        left = max(int(mongo["shipments"]) - int(mysql["shipments"]), 0)
    stage = STAGE_OF_MODE[st.mode]
    if st.mode == "mysql-primary" and backfill["partitions"]:
        stage = 4  # stages 3 and 4 share the mode; the backfill is what stage 4 adds
    data: dict[str, Any] = {
        "mode": st.mode, "stage": stage, "epoch": st.epoch, "backfill": backfill,
        "state": st.state, "target_mode": st.target_mode, "flip_epoch": st.flip_epoch,
        "clients": [{k: c[k] for k in ("client_id", "mode", "acked_epoch", "age_s", "live",
                                       "partition_spec")} for c in hb],
        "mongo": mongo, "mysql": mysql, "documents_left_to_migrate": left,
    }
    data["gate"] = gate(st.mode, st.state, st.epoch, live, mongo, mysql, shadow_bad,
                        stage=stage, backfill=backfill)
    return data


def _backfill_and_verify(cur: Any) -> dict[str, Any]:
    cur.execute("SELECT COUNT(*), COALESCE(SUM(status = 'done'), 0), MAX(finished_at) "
                "FROM backfill_partition")
    parts, done, finished = cur.fetchone()
    cur.execute("SELECT differences, finished_at FROM verify_run WHERE scope = 'full' "
                "AND source LIKE 'mongo:%' ORDER BY id DESC LIMIT 1")
    last = cur.fetchone()
    return {
        "partitions": int(parts), "partitions_done": int(done),
        "finished_at": finished if parts and int(done) == int(parts) else None,
        "last_full_verify": None if last is None else {
            "differences": int(last[0]), "finished_at": last[1]},
    }


def gate(mode: str, state: str, epoch: int, live: list[dict[str, Any]],
         mongo: dict[str, Any], mysql: dict[str, Any], shadow_bad: int, *,
         stage: int | None = None, backfill: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stage 1 -> 2: schema in place. 2 -> 3: backlog empty, shadow reads clean. 3 -> 4:
    every client at the flip's epoch. 4 -> 5: the backfill finished and a full verify
    after it found nothing (DESIGN.md §1); `mode set mysql` also wants an archive."""
    advance: list[str] = []  # reasons it cannot advance
    back: list[str] = []
    if state != "stable":
        advance.append("a transition is draining")
        back.append("a transition is draining")
    behind = [c["client_id"] for c in live if (c["acked_epoch"] or 0) < epoch]
    if behind:
        advance.append(f"client(s) not yet at epoch {epoch}: {', '.join(behind[:5])}")
    if mode == "mongo":
        back.append("stage 1 is the start of the ladder")
    elif mode == "dual":
        if mongo.get("dual_backlog"):
            advance.append(f"{mongo['dual_backlog']} shipment(s) wait in the dual-write backlog")
        if shadow_bad:
            advance.append(f"{shadow_bad} shadow read(s) found MySQL differing from MongoDB")
        if not mongo.get("reachable"):
            advance.append("MongoDB is unreachable")
    elif mode == "mysql-primary":
        if stage == 4:
            advance += _stage4_reasons(backfill or {})
        if not mongo.get("reachable"):
            back.append("MongoDB is unreachable: nothing to roll back to")
    elif mode == "mysql":
        advance.append("stage 5 is the end of the ladder")
        back.append("MongoDB was archived and removed (restore it from the archive)")
    nxt = LADDER[LADDER.index(mode) + 1] if mode != "mysql" else None
    if mode == "mysql-primary" and stage == 3:
        nxt = "mysql-primary (stage 4: lazyshift backfill)"
    prev = LADDER[LADDER.index(mode) - 1] if mode != "mongo" else None
    return {"next": nxt, "previous": prev,
            "can_advance": not advance, "cannot_advance_because": advance,
            "can_roll_back": not back, "cannot_roll_back_because": back}


def render(data: dict[str, Any], console: Console) -> None:
    console.print(f"mode [bold]{data['mode']}[/bold] (stage {data['stage']}), epoch "
                  f"{data['epoch']}, {data['state']}")
    table = Table("client", "partition", "mode", "acked epoch", "heartbeat age", "live")
    for c in data["clients"]:
        table.add_row(c["client_id"], str(c["partition_spec"]), str(c["mode"]),
                      str(c["acked_epoch"]), f"{c['age_s']:.1f}s",
                      "yes" if c["live"] else "[red]no[/red]")
    console.print(table)
    m, y = data["mongo"], data["mysql"]
    console.print(f"MongoDB: {m.get('shipments', '-')} shipments, backlog "
                  f"{m.get('dual_backlog', '-')}, dead letters {m.get('dead_letters', '-')}"
                  + ("" if m.get("reachable") else " [red](unreachable)[/red]"))
    console.print(f"MySQL:   {y['shipments']} shipments, dead letters {y['dead_letters']}, "
                  f"archives {y['archives']}; left to migrate: "
                  f"{data['documents_left_to_migrate']}")
    g = data["gate"]
    for label, ok, why in (("advance to " + str(g["next"]), g["can_advance"],
                            g["cannot_advance_because"]),
                           ("roll back to " + str(g["previous"]), g["can_roll_back"],
                            g["cannot_roll_back_because"])):
        console.print(f"can {label}: " + ("[green]yes[/green]" if ok else
                                          "[red]no[/red] — " + "; ".join(why)))


def _stage4_reasons(backfill: dict[str, Any]) -> list[str]:
    if backfill.get("partitions_done", 0) < backfill.get("partitions", 0):
        return [f"backfill not finished ({backfill['partitions_done']}/"
                f"{backfill['partitions']} partitions done)"]
    last = backfill.get("last_full_verify")
    if last is None or backfill.get("finished_at") is None or (
            last["finished_at"] < backfill["finished_at"]):
        return ["no full `lazyshift verify` since the backfill finished"]
    if last["differences"]:
        return [f"the last full verify found {last['differences']} difference(s): "
                "`lazyshift repair REPORT`, then verify again"]
    return []
