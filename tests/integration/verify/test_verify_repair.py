"""`lazyshift verify` finds exactly each injected difference (kind, key, field path) and
`lazyshift repair` fixes it, on the real MariaDB + FerretDB."""

from __future__ import annotations

import json

import pytest

from dataset import key_for, make_doc, write_mysql
from helpers import run_cli
from lazyshift import verify

N = 300


def sql(conn, statement: str, params: tuple = ()) -> list[tuple]:
    cur = conn.cursor()
    cur.execute(statement, params)
    out = cur.fetchall() if cur.with_rows else []
    cur.close()
    return out


def item_key(conn) -> str:
    """A key whose document has at least three items."""
    return sql(
        conn,
        "SELECT shipment_key FROM shipment_item WHERE position = 2 ORDER BY shipment_key LIMIT 1",
    )[0][0]


def test_clean_when_in_sync(synced):
    report = verify.verify(synced, chunk_size=64, parallel=1)
    assert report.ok, report.as_dict()
    assert report.counts == {"source_docs": N, "mysql_rows": N, "chunks": 5, "chunks_mismatched": 0}
    assert verify.verify(synced, sample=40).ok


@pytest.mark.parametrize("parallel", [2, 3, 5])
def test_parallel_range_walks_cover_every_key_once(synced, app_conn, parallel):
    """The key space cut into ranges walked side by side: every document is compared once,
    and differences at the ends of the key space and of each range are found."""
    clean = verify.verify(synced, chunk_size=64, parallel=parallel)
    assert clean.ok, clean.as_dict()
    assert clean.counts["source_docs"] == N and clean.counts["mysql_rows"] == N
    assert clean.counts["chunks_mismatched"] == 0
    keys = [r[0] for r in sql(app_conn, "SELECT shipment_key FROM shipment ORDER BY shipment_key")]
    gone = {keys[0], keys[N // 2], keys[-1]}
    for key in gone:
        sql(app_conn, "DELETE FROM shipment WHERE shipment_key = %s", (key,))
    app_conn.commit()
    write_mysql(app_conn, [make_doc(N + 1000)])  # in MySQL only
    report = verify.verify(synced, chunk_size=64, parallel=parallel)
    found = {(f["kind"], f["key"]) for f in report.findings}
    assert found == {("missing", k) for k in gone} | {("extra", make_doc(N + 1000)["key"])}
    assert report.counts["source_docs"] == N and report.counts["mysql_rows"] == N - 2


def test_each_kind_reported_exactly_then_repaired(synced, collection, app_conn, tmp_path):
    missing, stale = key_for(10), key_for(20)
    changed = item_key(app_conn)
    sql(app_conn, "DELETE FROM shipment WHERE shipment_key = %s", (missing,))
    sql(
        app_conn,
        "UPDATE shipment_item SET sku = 'tampered', value_amount = 1 "
        "WHERE shipment_key = %s AND position = 2",
        (changed,),
    )
    newer = make_doc(20, version=2)
    collection.replace_one({"_id": stale}, newer)
    extra = make_doc(N + 5)
    write_mysql(app_conn, [extra])

    report_file = tmp_path / "report.json"
    proc = run_cli(
        "verify",
        "--chunk-size",
        "50",
        "--report",
        str(report_file),
        "--json",
        settings=synced,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(report_file.read_text())
    assert json.loads(proc.stdout)["findings"] == report["findings"]
    found = {(f["kind"], f["key"]): f for f in report["findings"]}
    assert set(found) == {
        ("missing", missing),
        ("extra", extra["key"]),
        ("different", changed),
        ("stale", stale),
    }
    assert report["differences"] == 4
    assert set(found[("different", changed)]["fields"]) == {"items/2/sku", "items/2/value/amount"}
    assert (
        found[("stale", stale)]["source_version"],
        found[("stale", stale)]["mysql_version"],
    ) == (2, 1)

    partial = run_cli("repair", str(report_file), "--json", settings=synced, check=False)
    assert partial.returncode == 1  # the extra row is kept without --delete-extra
    actions = {a["key"]: a for a in json.loads(partial.stdout)["actions"]}
    assert actions[extra["key"]]["action"] == "kept"
    assert actions[changed]["action"] == "replaced"
    assert actions[missing]["action"] == "applied" and actions[stale]["action"] == "applied"
    done = run_cli("repair", str(report_file), "--delete-extra", "--json", settings=synced)
    assert {a["key"]: a["action"] for a in json.loads(done.stdout)["actions"]}[
        extra["key"]
    ] == "deleted"

    after = verify.verify(synced)
    assert after.ok, after.as_dict()
    assert sql(app_conn, "SELECT version FROM shipment WHERE shipment_key = %s", (changed,)) == [
        (1,)
    ]  # replaced, never a bumped version


def test_truth_mysql_expects_newer_and_mysql_only_rows(synced, app_conn):
    write_mysql(app_conn, [make_doc(3, version=5), make_doc(N + 1)])
    assert verify.verify(synced, truth="mysql").ok
    strict = verify.verify(synced, truth="mongo")
    assert {(f["kind"], f["key"]) for f in strict.findings} == {
        ("newer", key_for(3)),
        ("extra", key_for(N + 1)),
    }
    lenient = run_cli("verify", "--truth", "mysql", "--json", settings=synced)
    assert json.loads(lenient.stdout)["by_kind"] == {"newer": 1, "extra": 1}


def test_documents_changed_during_the_run_are_rechecked(synced, collection, app_conn):
    """The walk saw an old version; both stores now agree on a newer one: no finding."""
    key = key_for(7)
    old = collection.find_one({"_id": key})
    collection.replace_one({"_id": key}, make_doc(7, version=2))
    write_mysql(app_conn, [make_doc(7, version=2)])
    source, mysql = verify.MongoSource(synced), verify.MySQLSide(synced)
    try:
        report = verify.Report(source="mongo", truth="mongo", mode="full")
        checker = verify._Verifier(source, mysql, "mongo", report, live=True)
        row = mysql.load([key])[key]
        matched = checker.compare_chunk([(key, verify._canon_fast(old), old)], [(key, "x", row)])
        assert matched is False and report.rechecked == 1 and report.findings == []
    finally:
        source.close()
        mysql.close()


def test_dead_letters_are_counted_not_differences(synced, collection, app_conn):
    bad = make_doc(N + 9)
    bad["price"] = {"amount": "1.50", "currency": "EUR"}
    collection.insert_one(bad)
    assert not verify.verify(synced).ok  # not migrated and not dead-lettered: missing
    sql(
        app_conn,
        "INSERT INTO dead_letter (origin, dedup_key, shipment_key, reason) "
        "VALUES ('backfill', %s, %s, 'price/amount: not canonical')",
        (f"_id:{bad['key']}", bad["key"]),
    )
    report = verify.verify(synced)
    assert report.ok and report.dead_letters == 1


def test_sample_mode_finds_a_missing_row(synced, app_conn):
    sql(app_conn, "DELETE FROM shipment WHERE shipment_key = %s", (key_for(1),))
    report = verify.verify(synced, sample=N * 2)
    assert [(f["kind"], f["key"]) for f in report.findings] == [("missing", key_for(1))]


def test_field_diff_paths():
    assert verify.field_diff({"a": [1, {"b": "x"}]}, {"a": [1, {"b": "y"}, 3]}) == ["a/1/b", "a/2"]
    assert verify.field_diff({"w": 1}, {"w": 1.0}) == ["w"]


# -- issue 9 hole 6: verify never reports zero when the data differs ------------------------


def _dead_letter(conn, key: str) -> None:
    from lazyshift.core.mysql_store import DeadLetter, insert_dead_letters

    conn.start_transaction()
    cur = conn.cursor()
    insert_dead_letters(cur, [DeadLetter("stream", f"seq:{key}", "bad JSON", "{}", 7, key)])
    cur.close()
    conn.commit()


def test_a_dead_letter_does_not_excuse_a_missing_mappable_document(synced, app_conn):
    key = key_for(42)
    _dead_letter(app_conn, key)  # an old malformed message of the same shipment
    sql(app_conn, "DELETE FROM shipment WHERE shipment_key = %s", (key,))
    report = verify.verify(synced, chunk_size=64)
    assert not report.ok
    assert [(f["kind"], f["key"]) for f in report.findings] == [("missing", key)]


def test_unknown_fields_and_converted_types_are_differences(synced, collection):
    unknown, converted = key_for(5), key_for(6)
    collection.update_one({"_id": unknown}, {"$set": {"sneaky": "not in MySQL"}})
    doc = collection.find_one({"_id": converted})
    doc["source_seq"] = str(doc["source_seq"])  # "123" in MongoDB, 123 in MySQL
    collection.replace_one({"_id": converted}, doc)
    report = verify.verify(synced, chunk_size=64)
    assert not report.ok
    assert sorted(f["key"] for f in report.findings if f["difference"]) == sorted(
        [unknown, converted]
    )


def test_documents_with_a_non_string_id_are_compared(synced, collection, app_conn):
    from bson import ObjectId

    odd = make_doc(N + 1)
    odd["_id"] = ObjectId()
    collection.insert_one(odd)
    report = verify.verify(synced, chunk_size=64)
    assert not report.ok
    assert report.counts["source_docs"] == N + 1
    assert [f["kind"] for f in report.findings] == ["missing"]
    assert str(odd["_id"]) in report.findings[0]["key"]
