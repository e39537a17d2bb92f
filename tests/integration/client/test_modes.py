"""Stages 2 and 3 under load: real clients, real transitions, real faults.

Two client processes consume a live stream while the mode is walked
mongo -> dual -> mysql-primary -> dual; readers hit both clients' read APIs throughout.
Afterwards the primary store holds every shipment's latest version, and no read failed or
went back in time.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from typing import Any

from helpers import (
    MockSource,
    expected_state,
    free_port,
    http_get,
    kill,
    poll,
    run_cli,
    start_cli,
)
from lazyshift.core import mysql as my
from lazyshift.core.mapping import stored_form
from lazyshift.core.mysql_store import load_documents

COUNT = 4000
GEN = [
    "--seed",
    "23",
    "--count",
    str(COUNT),
    "--malformed-fraction",
    "0.02",
    "--replay-fraction",
    "0.03",
]


def _clients(
    settings, source_port: int, n: int = 2, env: dict[str, str] | None = None
) -> list[tuple[Any, int]]:
    out = []
    for k in range(n):
        port = free_port()
        proc = start_cli(
            "client",
            "run",
            "--mode",
            "control",
            "--partition",
            f"{k}/{n}",
            "--source-port",
            str(source_port),
            "--http-port",
            str(port),
            "--client-id",
            f"test-client-{k}",
            settings=settings,
            env=env,
        )
        out.append((proc, port))
    for _proc, port in out:
        poll(lambda p=port: _healthy(p), "client read API to answer", timeout=30)
    return out


def _healthy(port: int) -> bool:
    try:
        return http_get(port, "/healthz")[0] == 200
    except OSError:
        return False


class Readers:
    """Read random shipments from every client until stopped; record anything wrong."""

    def __init__(self, ports: list[int], keys: list[str]) -> None:
        self.ports, self.keys = ports, keys
        self.errors: list[str] = []
        self.reads = 0
        self.acknowledged: dict[str, int] = {}  # key -> highest version a finished read saw
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(3)
        ]

    def __enter__(self) -> Readers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stop.is_set():
            key = rng.choice(self.keys)
            port = rng.choice(self.ports)
            with self._lock:
                floor = self.acknowledged.get(key, 0)  # acknowledged before this read began
            status, body, headers = http_get(port, f"/shipments/{key}")
            with self._lock:
                self.reads += 1
                if status == 200:
                    v = body["version"]
                    if v < floor:
                        self.errors.append(
                            f"stale read of {key}: v{v} after v{floor} "
                            f"({headers.get('X-Lazyshift-Store')})"
                        )
                    self.acknowledged[key] = max(self.acknowledged.get(key, 0), v)
                elif status != 404 or floor:
                    self.errors.append(f"read of {key} -> {status} {body} (seen v{floor})")


def _mode_set(settings, mode: str) -> dict[str, Any]:
    out = json.loads(run_cli("--json", "mode", "set", mode, settings=settings).stdout)
    assert out["ok"] and out["to_mode"] == mode
    return out


def _offsets_done(settings, mongo_db, n: int) -> bool:
    done = {o["_id"]: o["seq"] for o in mongo_db.client_offsets.find({})}
    conn = my.connect(settings.mysql, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT partition_spec, seq FROM client_offset")
    for part, seq in cur.fetchall():
        done[part] = max(done.get(part, 0), seq)
    conn.close()
    return all(done.get(f"{k}/{n}", 0) >= _last_seq_of(k, n) for k in range(n))


_LAST: dict[tuple[int, int], int] = {}


def _last_seq_of(k: int, n: int) -> int:
    return _LAST[(k, n)]


def _mysql_docs(settings) -> dict[str, dict]:
    conn = my.connect(settings.mysql)
    cur = conn.cursor()
    cur.execute("SELECT shipment_key FROM shipment")
    keys = [r[0] for r in cur.fetchall()]
    docs = load_documents(cur, keys)
    conn.close()
    return docs


def _dead_seqs(settings, mongo_db) -> set[int]:
    seqs = {d["source_seq"] for d in mongo_db.dead_letters.find({})}
    conn = my.connect(settings.mysql, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT source_seq FROM dead_letter WHERE origin = 'stream'")
    seqs |= {r[0] for r in cur.fetchall()}
    conn.close()
    return seqs


def _prepare_last_seqs(messages: list[dict], n: int) -> None:
    for k in range(n):
        seqs = [m["seq"] for m in messages if m["partition_hash"] % n == k]
        _LAST[(k, n)] = max(seqs)


def test_walk_the_ladder_under_load(migrated, mongo_db) -> None:
    settings = migrated
    # The rate clock starts at the first subscription: started at listen, the whole stream
    # was due while the clients started on a loaded machine, and they could read it all
    # before the switch to dual left any write for MySQL (one make test run did).
    source = MockSource(*GEN, "--rate", "200", "--clock-from-subscribe").start()
    messages = source.dump()
    exp = expected_state(messages)
    _prepare_last_seqs(messages, 2)
    clients = _clients(settings, source.port)
    pauses = {}
    try:
        with Readers([p for _, p in clients], sorted(exp.docs)) as readers:
            poll(lambda: mongo_db.shipments.count_documents({}) > 200, "stage-1 ingest")
            pauses["dual"] = _mode_set(settings, "dual")["paused_s"]
            poll(lambda: len(_mysql_docs(settings)) > 100, "dual writes reaching MySQL")
            pauses["mysql-primary"] = _mode_set(settings, "mysql-primary")["paused_s"]
            poll(lambda: _lazy_count(clients) > 0, "lazy migrations in mysql-primary", timeout=60)
            flip_docs = mongo_db.shipments.count_documents({})
            pauses["rollback"] = _mode_set(settings, "dual")["paused_s"]
            poll(
                lambda: _offsets_done(settings, mongo_db, 2),
                "the stream to be consumed",
                timeout=240,
            )
            # Readers keep going until the end: reads across every transition.
        assert not readers.errors, readers.errors[:10]
        assert readers.reads > 200
    finally:
        for proc, _ in clients:
            kill(proc, signal.SIGTERM)
        source.stop()
    for proc, _ in clients:
        assert proc.returncode == 0, proc.stderr.read()[-2000:]
    # MongoDB is the truth again (dual): every shipment at its latest version, nothing lost.
    stored = {d["_id"]: d for d in mongo_db.shipments.find({})}
    assert set(stored) == set(exp.docs)
    wrong = [k for k, d in exp.docs.items() if stored_form(stored[k]) != stored_form(d)]
    assert not wrong, f"{len(wrong)} differ, e.g. {wrong[:3]}"
    assert _dead_seqs(settings, mongo_db) == exp.dead_seqs
    # MySQL never holds a newer version than the truth.
    for key, doc in _mysql_docs(settings).items():
        assert doc["version"] <= stored[key]["version"], key
    assert flip_docs > 0
    print("write pauses (s):", pauses)


def _lazy_count(clients) -> float:
    total = 0.0
    for _, port in clients:
        status, _, _ = http_get(port, "/healthz")
        if status != 200:
            continue
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        for line in text.splitlines():
            if line.startswith("lazyshift_lazy_migrations_total"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_mysql_outage_during_dual_loses_nothing(migrated, mongo_db, stack) -> None:
    settings = migrated
    _mode_set(settings, "dual")
    # Clock from the subscription, as above: the stream must still flow when MySQL stops.
    source = MockSource(*GEN, "--rate", "300", "--clock-from-subscribe").start()
    messages = source.dump()
    exp = expected_state(messages)
    _prepare_last_seqs(messages, 1)
    clients = _clients(settings, source.port, n=1)
    try:
        poll(lambda: mongo_db.shipments.count_documents({}) > 300, "ingest in dual")
        stack.stop_component("mysql")
        try:
            at_stop = mongo_db.shipments.count_documents({})
            # The client goes on into MongoDB for its lease, queueing MySQL writes ...
            poll(lambda: mongo_db.mysql_backlog.count_documents({}) > 0, "a backlog to form")
        finally:
            stack.start_component("mysql")
        assert mongo_db.shipments.count_documents({}) >= at_stop
        poll(lambda: _offsets_done(settings, mongo_db, 1), "the stream to be consumed", timeout=240)
        poll(lambda: mongo_db.mysql_backlog.count_documents({}) == 0, "the backlog to drain")
    finally:
        for proc, _ in clients:
            kill(proc, signal.SIGTERM)
        source.stop()
    stored = {d["_id"]: d for d in mongo_db.shipments.find({})}
    assert set(stored) == set(exp.docs)
    mysql_docs = _mysql_docs(settings)
    assert set(mysql_docs) == set(exp.docs)  # dual from the start: MySQL has everything
    wrong = [k for k in exp.docs if mysql_docs[k] != stored_form(stored[k])]
    assert not wrong, f"{len(wrong)} differ in MySQL, e.g. {wrong[:3]}"


def test_kill_9_in_dual_leaves_mysql_complete(migrated, mongo_db) -> None:
    """A client killed between its MongoDB write and its MySQL write must not leave MySQL
    behind: the replay after the restart completes the dual write."""
    settings = migrated
    _mode_set(settings, "dual")
    source = MockSource(*GEN, "--rate", "600").start()
    messages = source.dump()
    exp = expected_state(messages)
    _prepare_last_seqs(messages, 1)
    try:
        for _ in range(5):  # each kill lands in the window with a fair chance
            ((proc, _port),) = _clients(settings, source.port, n=1)
            seen = mongo_db.shipments.count_documents({})
            poll(lambda s=seen: mongo_db.shipments.count_documents({}) > s + 150, "progress")
            kill(proc, signal.SIGKILL)
        clients = _clients(settings, source.port, n=1)
        poll(lambda: _offsets_done(settings, mongo_db, 1), "the stream to be consumed", timeout=240)
        poll(lambda: mongo_db.mysql_backlog.count_documents({}) == 0, "the backlog to drain")
        for proc, _ in clients:
            kill(proc, signal.SIGTERM)
    finally:
        source.stop()
    stored = {d["_id"]: d for d in mongo_db.shipments.find({})}
    assert set(stored) == set(exp.docs)
    mysql_docs = _mysql_docs(settings)
    behind = [k for k in exp.docs if k not in mysql_docs or mysql_docs[k] != stored_form(stored[k])]
    assert not behind, f"{len(behind)} shipments behind in MySQL, e.g. {behind[:3]}"


def test_stopped_client_cannot_write_in_the_old_mode(migrated, mongo_db) -> None:
    settings = migrated
    _mode_set(settings, "dual")
    source = MockSource(*GEN, "--rate", "300").start()
    clients = _clients(settings, source.port, n=2, env={"LAZYSHIFT_LOG_LEVEL": "INFO"})
    stopped, _ = clients[1]
    try:
        poll(lambda: mongo_db.shipments.count_documents({}) > 200, "ingest in dual")
        for _attempt in range(5):
            stopped.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            proc = run_cli("--json", "mode", "set", "mysql-primary", settings=settings, check=False)
            if proc.returncode == 0:
                break
            # A refused flip leaves the old mode in force; resume the client and try again.
            assert "The old mode stays" in proc.stderr, proc.stderr
            assert (
                json.loads(run_cli("--json", "mode", "show", settings=settings).stdout)["mode"]
                == "dual"
            )
            stopped.send_signal(signal.SIGCONT)
            poll(lambda: _acked(settings, "test-client-1") >= 0, "resume")
        out = json.loads(proc.stdout)
        assert "test-client-1" in out["fenced_out"]
        assert "test-client-0" in out["acknowledged"]
        snapshot = {d["_id"]: d["version"] for d in mongo_db.shipments.find({}, {"version": 1})}
        stopped.send_signal(signal.SIGCONT)
        # The resumed client catches up with the new epoch and goes on writing, in MySQL.
        poll(
            lambda: _acked(settings, "test-client-1") >= out["epoch"],
            "resumed client ack",
            timeout=30,
        )
        poll(
            lambda: _partition_progress_in_mysql(settings, "1/2"),
            "resumed client writing into MySQL",
            timeout=60,
        )
        after = {d["_id"]: d["version"] for d in mongo_db.shipments.find({}, {"version": 1})}
        if after != snapshot:
            kill(stopped, signal.SIGTERM)
            changed = [k for k in after if after[k] != snapshot.get(k)]
            log = [ln for ln in stopped.stderr.read().splitlines() if "dead_lettered" not in ln]
            docs = [
                (d["_id"], d["version"], d["source_seq"], d["source_rev"])
                for d in mongo_db.shipments.find({})
                if d["_id"] in changed
            ]
            raise AssertionError(
                f"MongoDB changed after the flip: {docs} {out}\n" + "\n".join(log[-30:])
            )
        assert time.monotonic() - started > settings.client.heartbeat_timeout_s
    finally:
        stopped.send_signal(signal.SIGCONT)
        for proc, _ in clients:
            kill(proc, signal.SIGTERM)
        source.stop()


def test_a_client_that_read_everything_takes_its_offset_across_the_flip(migrated, mongo_db) -> None:
    """The stream is all read in dual (offset in MongoDB); after the flip no message comes,
    yet MySQL, which holds the offset from mysql-primary on, gets it, and MongoDB gets it
    back on the rollback (a client that kept up used to leave MySQL's offset empty)."""
    settings = migrated
    _mode_set(settings, "dual")
    source = MockSource("--seed", "29", "--count", "300").start()
    last = max(m["seq"] for m in source.dump())
    clients = _clients(settings, source.port, n=1)
    try:
        poll(
            lambda: (mongo_db.client_offsets.find_one({"_id": "0/1"}) or {}).get("seq") == last,
            "the whole stream consumed in dual",
            timeout=120,
        )
        assert _mysql_offset(settings, "0/1") == 0  # dual keeps the offset in MongoDB
        _mode_set(settings, "mysql-primary")
        poll(lambda: _mysql_offset(settings, "0/1") == last, "the offset saved in MySQL")
        mongo_db.client_offsets.delete_many({})
        _mode_set(settings, "dual")
        poll(
            lambda: (mongo_db.client_offsets.find_one({"_id": "0/1"}) or {}).get("seq") == last,
            "the offset saved in MongoDB after the rollback",
        )
    finally:
        for proc, _ in clients:
            kill(proc, signal.SIGTERM)
        source.stop()


def _mysql_offset(settings, part: str) -> int:
    conn = my.connect(settings.mysql, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT seq FROM client_offset WHERE partition_spec = %s", (part,))
    row = cur.fetchone()
    conn.close()
    return int(row[0]) if row else 0


def _acked(settings, client_id: str) -> int:
    conn = my.connect(settings.mysql, autocommit=True)
    cur = conn.cursor()
    cur.execute("SELECT acked_epoch FROM client_heartbeat WHERE client_id = %s", (client_id,))
    row = cur.fetchone()
    conn.close()
    return row[0] if row and row[0] else 0


def _partition_progress_in_mysql(settings, part: str) -> bool:
    return _mysql_offset(settings, part) > 0


def test_mode_set_refuses_skipping_rungs_and_explains(migrated) -> None:
    proc = run_cli("mode", "set", "mysql-primary", settings=migrated, check=False)
    assert proc.returncode == 1
    assert "only the next or previous rung" in proc.stderr
    show = json.loads(run_cli("--json", "mode", "show", settings=migrated).stdout)
    assert show["mode"] == "mongo" and show["state"] == "stable"


def test_mysql_mode_needs_an_archive(migrated) -> None:
    for m in ("dual", "mysql-primary"):
        _mode_set(migrated, m)
    proc = run_cli("mode", "set", "mysql", settings=migrated, check=False)
    assert proc.returncode == 1 and "no archive of MongoDB is recorded" in proc.stderr
    status = json.loads(run_cli("--json", "status", settings=migrated).stdout)
    assert (status["mode"], status["stage"]) == ("mysql-primary", 3)
    assert status["gate"]["can_advance"] is True  # on to stage 4: the backfill
    assert status["gate"]["can_roll_back"] is True


def test_commands_before_schema_migrate_say_what_to_do(settings) -> None:
    for args in (("mode", "show"), ("status",), ("mode", "set", "dual")):
        proc = run_cli(*args, settings=settings, check=False)
        assert proc.returncode == 3, (args, proc.stderr)
        assert "lazyshift schema migrate" in proc.stderr, (args, proc.stderr)
