"""`lazyshift dev demo --faults SEED`: the ladder walked up and down under a seeded nemesis,
judged by the history checker (DESIGN.md §3, issue 9's proof).

Two clients on different partitions and three readers run throughout, while the mode goes
mongo -> dual -> mongo -> dual -> mysql-primary -> dual (rollback after the flip) ->
mysql-primary, the backfill runs, verify and archive, and mysql. Meanwhile the nemesis kills
and pauses clients, kills and restarts MariaDB and FerretDB and pauses the source; `mode
set` and the backfill are killed with SIGKILL at the steps the schedule names, and the run
recovers the way an operator would (`mode abort`, run it again). Every read, every stored
offset, every fault and mode change goes into the history; the checker then proves (or
refutes) no acknowledged write lost, no stale read, no read error outside a fault, every
malformed message dead-lettered once, MySQL equal to the source's log, verify clean.
Writes `demo.json`, `history.jsonl` and `timeline.png` into the report folder.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lazyshift import schema_migrate
from lazyshift.config import Settings
from lazyshift.core import mysql as my
from lazyshift.core import mysql_store as store
from lazyshift.core.document import InvalidDocument
from lazyshift.core.mapping import stored_form
from lazyshift.core.mongo_store import MongoStore
from lazyshift.core.normalise import normalise_message, parse_message
from lazyshift.dev import checker, faults, timeline
from lazyshift.dev import expected as source_log
from lazyshift.dev.history import History
from lazyshift.dev.stack import DevStack
from lazyshift.dev.workload import (
    LAZYSHIFT,
    AckPoller,
    ClientProcess,
    Cluster,
    Readers,
    SourceProcess,
    cli_env,
    mock_supports,
)

PARTITIONS = 2
# (command, target) of each `mode set` of the walk; `rollback` is the one after the flip.
WALK = [
    ("mode", "dual"),
    ("mode", "mongo"),
    ("mode", "dual"),
    ("mode", "mysql-primary"),
    ("rollback", "dual"),
    ("mode", "mysql-primary"),
]
FINAL = ("mode", "mysql")
STEP_DEADLINE_S = 240.0
# A refusal (exit 1) can be the moment (a client that has not acknowledged yet); three in a
# row are the ladder saying no, which is a finding, not something to wait out.
MAX_REFUSALS = 3
CATCH_UP_S = 300.0
COMMAND_TIMEOUT_S = 600.0


@dataclass
class FaultRunOptions:
    seed: int
    count: int = 3000
    rate: float = 50.0
    malformed_fraction: float = 0.02
    replay_fraction: float = 0.03
    hostile_fraction: float = 0.01  # used when the mock source has --hostile-fraction
    window_s: float = 150.0  # the nemesis' schedule spans this much of the run
    kinds: tuple[str, ...] = faults.FAULT_KINDS
    report_dir: Path = Path("reports")
    wipe: bool = True  # start from empty databases (the dev stack); tests pass fresh ones


@dataclass
class StepRecord:
    step: str
    ok: bool
    seconds: float
    attempts: int
    detail: str = ""


@dataclass
class _Run:
    settings: Settings
    stack: DevStack
    opts: FaultRunOptions
    note: Callable[[str], None]
    history: History
    schedule: faults.Schedule
    steps: list[StepRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what went wrong on the way
    pauses: list[float] = field(default_factory=list)
    cluster: Cluster | None = None
    poller: AckPoller | None = None
    verify_clean: bool = False
    verify_detail: str = "not run"


class StepFailed(RuntimeError):
    pass


# -- the source's log -----------------------------------------------------------------------------
def source_args(opts: FaultRunOptions, hostile: bool) -> list[str]:
    args = [
        "--seed",
        str(opts.seed),
        "--count",
        str(opts.count),
        "--malformed-fraction",
        str(opts.malformed_fraction),
        "--replay-fraction",
        str(opts.replay_fraction),
    ]
    if hostile:
        args += ["--hostile-fraction", str(opts.hostile_fraction)]
    return args


def build_log(messages: list[dict[str, Any]], partitions: int) -> checker.SourceLog:
    """The checker's view of the log: every well-formed message's key and revision, the
    malformed ones, and the end state (expected.py is the oracle for both)."""
    exp = source_log.expected_state(messages)
    writes = []
    for m in messages:
        if m["seq"] in exp.dead_seqs:
            continue
        doc = normalise_message(parse_message(m["payload"].encode()))
        writes.append(
            checker.Write(m["seq"], m["partition_hash"] % partitions, doc["key"], doc["source_rev"])
        )
    docs = {}
    for key, doc in exp.docs.items():
        with contextlib.suppress(InvalidDocument):  # then MySQL cannot hold it: a finding
            docs[key] = stored_form(doc)
    payloads = {m["payload"]: m["seq"] for m in messages if m["seq"] in exp.dead_seqs}
    return checker.SourceLog(writes, set(exp.dead_seqs), partitions, docs, payloads)


# -- commands, run as an operator (or Jenkins) would ------------------------------------------
def _cli(
    run: _Run,
    args: list[str],
    kill_after_s: float | None = None,
    fault: str = "",
    kill_when: Callable[[], bool] | None = None,
) -> tuple[int, str]:
    """Run `lazyshift ARGS`. With `kill_after_s`: once `kill_when()` holds (the command is
    where the fault hurts: draining, mid-copy), SIGKILL its process group that much later."""
    proc = subprocess.Popen(
        [str(LAZYSHIFT), "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(run.settings),
        start_new_session=True,  # the backfill's workers die with it
    )
    if kill_after_s is not None and _wait_for(proc, kill_when or (lambda: True)):
        try:
            proc.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            run.history.add("fault", fault=fault, target=args[0], phase="start")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
            run.history.add("fault", fault=fault, target=args[0], phase="end")
    try:
        out, err = proc.communicate(timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        err += f"\n(killed after {COMMAND_TIMEOUT_S:.0f}s)"
    if proc.returncode == -signal.SIGKILL and kill_after_s is not None:
        return proc.returncode, "killed by the nemesis"
    return proc.returncode, (out.strip() + "\n" + err.strip()).strip()


def _wait_for(proc: subprocess.Popen[str], condition: Callable[[], bool]) -> bool:
    """Poll `condition` while `proc` runs; False if it ended first."""
    while proc.poll() is None:
        with contextlib.suppress(Exception):  # MySQL may be down: try again
            if condition():
                return True
        time.sleep(0.02)
    return False


def _sql(settings: Settings, fn: Callable[[Any], Any]) -> Any:
    conn = my.connect(settings.mysql, autocommit=True, connect_timeout=2)
    try:
        return fn(conn.cursor())
    finally:
        conn.close()


def _draining_now(settings: Settings) -> Callable[[], bool]:
    return lambda: not _sql(settings, store.read_control).stable


def _backfill_copying(settings: Settings) -> Callable[[], bool]:
    def copying(cur: Any) -> bool:
        # Mid-copy: documents copied, and not every partition done yet.
        progress = store.backfill_progress(cur)
        return int(progress["done"] or 0) > 0 and int(progress["d"]) < int(progress["n"])

    return lambda: bool(_sql(settings, copying))


def _short(text: str, n: int = 300) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-4:])[-n:]


def _draining(run: _Run) -> bool:
    with contextlib.suppress(Exception):
        return not _sql(run.settings, store.read_control).stable
    return False


def _paused_s(out: str) -> float:
    with contextlib.suppress(ValueError, AttributeError):
        return float(json.JSONDecoder().raw_decode(out)[0].get("paused_s", 0.0))
    return 0.0


def _reason(out: str) -> str:
    """The `error` of a command's JSON output, else the tail of what it printed."""
    with contextlib.suppress(ValueError, AttributeError):
        error = json.JSONDecoder().raw_decode(out)[0].get("error")
        if error:
            return str(error)[:300]
    return _short(out)


def transition(run: _Run, index: int, command: str, target: str) -> None:
    started, attempt, refusals = time.monotonic(), 0, 0
    while True:
        attempt += 1
        # A retry never repeats `rollback`: if the killed one had committed, it would go
        # one more rung down. `mode set` is idempotent.
        args = ["rollback"] if command == "rollback" and attempt == 1 else ["mode", "set", target]
        kill = run.schedule.mode_set_kills.get(index) if attempt == 1 else None
        run.history.add("mode", phase="start", target=target, command=" ".join(args))
        rc, out = _cli(run, args, kill, "mode-set-kill", _draining_now(run.settings))
        if rc == 0:
            run.pauses.append(_paused_s(out))
            run.history.add("mode", phase="ok", target=target, command=" ".join(args))
            run.steps.append(
                StepRecord(f"{' '.join(args)}", True, time.monotonic() - started, attempt)
            )
            run.note(f"{target}: ok after {attempt} attempt(s)")
            return
        run.history.add("mode", phase="failed", target=target, detail=_reason(out), rc=rc)
        if rc != -signal.SIGKILL:
            run.problems.append(f"`{' '.join(args)}` attempt {attempt} exit {rc}: {_reason(out)}")
        if _draining(run):
            _cli(run, ["mode", "abort"])
        refusals += rc == 1
        if refusals >= MAX_REFUSALS or time.monotonic() - started > STEP_DEADLINE_S:
            run.steps.append(StepRecord(f"mode set {target}", False, STEP_DEADLINE_S, attempt))
            raise StepFailed(f"mode set {target} did not succeed: {_reason(out)}")
        time.sleep(1.0)


# Documents per second of the backfill attempt the schedule kills.
BACKFILL_KILL_RATE = 100


def command_step(run: _Run, name: str, args: list[str], ok_codes: tuple[int, ...]) -> str:
    """A command run until it exits with one of `ok_codes` (killed once if scheduled)."""
    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        kill = run.schedule.backfill_kill_after_s if name == "backfill" and attempt == 1 else None
        # The attempt to be killed is slowed down, so that a fast machine still kills it
        # mid-copy (its rerun goes at full speed).
        slowed = [*args, "--max-rate", str(BACKFILL_KILL_RATE)] if kill is not None else args
        run.history.add("step", phase="start", step=name)
        rc, out = _cli(run, slowed, kill, "backfill-kill", _backfill_copying(run.settings))
        run.history.add("step", phase="end", step=name, rc=rc)
        if rc in ok_codes:
            run.steps.append(StepRecord(name, rc == 0, time.monotonic() - started, attempt))
            return out
        if rc != -signal.SIGKILL:
            run.problems.append(f"`{name}` attempt {attempt} exit {rc}: {_reason(out)}")
        if time.monotonic() - started > STEP_DEADLINE_S:
            run.steps.append(StepRecord(name, False, time.monotonic() - started, attempt))
            raise StepFailed(f"{name} did not succeed in {STEP_DEADLINE_S:.0f}s: {_short(out)}")
        time.sleep(1.0)


def _wait_caught_up(run: _Run) -> None:
    assert run.poller is not None
    deadline = time.monotonic() + CATCH_UP_S
    while not run.poller.caught_up():
        if time.monotonic() > deadline:
            raise StepFailed(
                f"the clients did not store the last offsets in {CATCH_UP_S:.0f}s: "
                f"{run.poller.offsets}"
            )
        time.sleep(0.2)


# -- the walk --------------------------------------------------------------------------------------
def _walk(run: _Run, nemesis: faults.Nemesis) -> None:
    """The ladder under faults (verify's verdict kept in `run`)."""
    dwell = run.schedule.dwell_s
    for i, (command, target) in enumerate(WALK):
        time.sleep(dwell[i])
        transition(run, i, command, target)
    time.sleep(dwell[len(WALK)])
    backfill = ["backfill", "run", "--workers", "1", "--partitions", "2"]
    command_step(
        run, "backfill", [*backfill, "--batch-size", "50", "--lease-seconds", "10"], (0, 1)
    )
    nemesis.finish()  # the whole schedule, whatever the ladder's pace: same seed, same faults
    assert run.cluster is not None
    run.cluster.heal()
    _wait_caught_up(run)
    rc, out = 3, ""
    with contextlib.suppress(StepFailed):
        verify = [
            "verify",
            "--full",
            "--truth",
            "mysql",
            "--report",
            str(run.opts.report_dir / "verify.json"),
        ]
        out = command_step(run, "verify", verify, (0, 1))
        rc = 0 if run.steps[-1].ok else 1
    run.verify_clean, run.verify_detail = rc == 0, _verify_detail(out) if rc else "clean"
    archive_dir = Path(run.settings.state_dir) / "faults-archive" / f"seed-{run.opts.seed}"
    command_step(run, "archive", ["archive", "--to", str(archive_dir), "--force"], (0,))
    transition(run, len(WALK), *FINAL)


def _verify_detail(out: str) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        report = json.JSONDecoder().raw_decode(out)[0]
        if "differences" in report:
            return f"{report['differences']} difference(s): {report.get('counts')}"[:400]
    return _reason(out)


def _wipe(settings: Settings, stack: DevStack) -> None:
    db = settings.mysql.database
    stack.root_sql(f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
    client = MongoStore.open(settings)
    client.db.client.drop_database(settings.mongo.database)
    client.close()


def _letter_text(entry: dict[str, Any]) -> str:
    """A MongoDB dead letter's payload as text (kept as base64 when it was not UTF-8)."""
    if "payload" in entry:
        return str(entry["payload"])
    return base64.b64decode(entry.get("payload_b64") or b"").decode("utf-8", errors="replace")


def _final_state(settings: Settings, verify_clean: bool, detail: str) -> tuple[Any, dict]:
    """MySQL's documents, and the primary store's dead letters (they follow the primary:
    MySQL's at the end of the ladder, MongoDB's if a run is cut short in mongo or dual)."""
    conn = my.connect(settings.mysql, autocommit=True)
    try:
        cur = conn.cursor()
        docs = {d["key"]: d for d in store.iter_documents(cur)}
        counts = store.dead_letter_seq_counts(cur, "stream")
        unsequenced = store.dead_letter_payloads_without_seq(cur, "stream")
        mode = store.read_control(cur).mode
    finally:
        conn.close()
    mongo_seqs: list[int] = []
    mongo_unsequenced: list[str] = []
    with contextlib.suppress(Exception):  # MongoDB may be gone at the end of stage 5
        mongo = MongoStore.open(settings)
        found = list(mongo.dead_letters.find({"origin": "stream"}))
        mongo_seqs = [d["source_seq"] for d in found if d.get("source_seq") is not None]
        mongo_unsequenced = [_letter_text(d) for d in found if d.get("source_seq") is None]
        mongo.close()
    dead = {int(s): n for s, n in counts.items() if s is not None}
    extra = {
        "final_mode": mode,
        "dead_letters_without_seq": counts.get(None, 0),
        "mongo_only_dead_letters": len(set(mongo_seqs) - set(dead)),
    }
    if mode in ("mongo", "dual"):
        dead = {}
        for seq in mongo_seqs:
            dead[seq] = dead.get(seq, 0) + 1
        unsequenced = mongo_unsequenced
    return checker.FinalState(docs, dead, verify_clean, detail, unsequenced), extra


def run_with_faults(
    settings: Settings,
    stack: DevStack,
    opts: FaultRunOptions,
    note: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The whole run; returns the report (also written to opts.report_dir/demo.json)."""
    opts.report_dir.mkdir(parents=True, exist_ok=True)
    log_dir = opts.report_dir / "logs"
    log_dir.mkdir(exist_ok=True)
    hostile = mock_supports("--hostile-fraction")
    args = source_args(opts, hostile)
    messages = source_log.dump(args)
    log = build_log(messages, PARTITIONS)
    names = [f"faults-client-{k}" for k in range(PARTITIONS)]
    schedule = faults.plan(
        opts.seed,
        window_s=opts.window_s,
        clients=names,
        ladder_steps=len(WALK) + 1,
        kinds=opts.kinds,
    )
    history = History(opts.report_dir / "history.jsonl")
    run = _Run(settings, stack, opts, note, history, schedule)
    if opts.wipe:
        _wipe(settings, stack)
    schema_migrate.migrate(settings)
    source = SourceProcess([*args, "--rate", str(opts.rate)], log_dir / "source.log")
    clients = {
        name: ClientProcess(name, f"{k}/{PARTITIONS}", settings, 0, log_dir)
        for k, name in enumerate(names)
    }
    readers = None
    nemesis = None
    aborted = None
    started = time.monotonic()
    try:
        source.start()
        history.add("step", phase="start", step="source", port=source.port)
        for c in clients.values():
            c.source_port = source.port
            c.start()
        run.cluster = Cluster(stack, source, clients)
        parts: dict[str, list[int]] = {f"{k}/{PARTITIONS}": [] for k in range(PARTITIONS)}
        for m in messages:
            parts[f"{m['partition_hash'] % PARTITIONS}/{PARTITIONS}"].append(m["seq"])
        run.poller = AckPoller(history, settings, parts, opts.rate).start(history.now())
        readers = Readers(history, clients, sorted(log.expected_docs), opts.seed).start()
        nemesis = faults.Nemesis(schedule, run.cluster, history).start()
        note(f"seed {opts.seed}: {len(schedule.faults)} faults planned over {opts.window_s:.0f}s")
        _walk(run, nemesis)
        time.sleep(2.0)  # reads in the final mode, too
    except (StepFailed, TimeoutError, RuntimeError, OSError) as exc:
        aborted = f"{type(exc).__name__}: {exc}"
        run.problems.append(f"run aborted: {aborted}")
    finally:
        if nemesis is not None:
            nemesis.stop()
        if run.cluster is not None:
            with contextlib.suppress(Exception):
                run.cluster.heal()
        if readers is not None:
            readers.stop()
        if run.poller is not None:
            run.poller.stop()
        exits = {name: c.stop() for name, c in clients.items()}
        source.stop()
        history.close()
    final, extra = _final_state(settings, run.verify_clean, run.verify_detail)
    verdict = checker.check(log, history.events, final)
    report = _report(run, log, verdict, final, extra, nemesis, hostile, aborted, exits)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["timeline"] = str(
        timeline.draw(
            history.events,
            opts.report_dir / "timeline.png",
            f"lazyshift fault run, seed {opts.seed}: "
            + ("clean" if report["ok"] else "VIOLATIONS FOUND"),
        )
    )
    (opts.report_dir / "demo.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def _report(
    run: _Run,
    log: checker.SourceLog,
    verdict: checker.Verdict,
    final: checker.FinalState,
    extra: dict[str, Any],
    nemesis: faults.Nemesis | None,
    hostile: bool,
    aborted: str | None,
    exits: dict[str, int | None],
) -> dict[str, Any]:
    faults_seen = [e for e in run.history.events if e["type"] == "fault" and e["phase"] == "start"]
    by_kind: dict[str, int] = {}
    for e in faults_seen:
        by_kind[e["fault"]] = by_kind.get(e["fault"], 0) + 1
    return {
        "seed": run.opts.seed,
        "ok": verdict.ok and aborted is None,
        "emitted": log.emitted,
        "malformed": len(log.malformed),
        "hostile_messages": "on" if hostile else "off: the mock source has no --hostile-fraction",
        "applied": verdict.acknowledged,
        "stored_shipments": len(final.docs),
        "expected_shipments": len(log.expected_docs),
        "dead_lettered": sum(final.dead_letters.values()),
        **extra,
        "lost": len(verdict.lost),
        "stale_reads": len(verdict.stale_reads),
        "reads": verdict.reads,
        "read_errors": len(verdict.read_errors),
        "excused_read_failures": verdict.excused_read_failures,
        "max_write_pause_s": round(max(run.pauses, default=0.0), 3),
        "faults_injected": len(faults_seen),
        "faults_by_kind": by_kind,
        "nemesis_errors": nemesis.errors if nemesis else [],
        "aborted": aborted,
        "client_exit_codes": exits,
        "verdict": verdict.summary(),
        "steps": [s.__dict__ for s in run.steps],
        "problems": run.problems,
        "schedule": run.schedule.as_dict(),
        "history": str(run.history.path),
    }
