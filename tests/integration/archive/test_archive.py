"""`lazyshift archive` to a folder and to S3 (moto's real server), the manifest's checksums,
`verify --against-archive` clean and then detecting a tampered row or archive."""

from __future__ import annotations

import gzip
import hashlib
import json

import boto3
import pytest

from dataset import load_mongo, make_doc
from helpers import run_cli
from lazyshift import archive
from lazyshift.core.guarded_write import apply_batch

N = 250


@pytest.fixture
def synced(migrated, collection, app_conn):
    load_mongo(collection, N)
    app_conn.start_transaction()
    cur = app_conn.cursor()
    apply_batch(cur, [make_doc(i) for i in range(N)])
    cur.close()
    app_conn.commit()
    return migrated


def tamper(conn) -> str:
    cur = conn.cursor()
    cur.execute("SELECT shipment_key FROM shipment ORDER BY shipment_key LIMIT 1 OFFSET 17")
    key = cur.fetchall()[0][0]
    cur.execute("UPDATE shipment SET tracking_number = 'TAMPERED' WHERE shipment_key = %s", (key,))
    cur.close()
    return key


def test_local_archive_manifest_and_verify(synced, collection, app_conn, tmp_path):
    target = tmp_path / "arch"
    out = run_cli("archive", "--to", str(target), "--json", settings=synced)
    manifest = json.loads(out.stdout)
    on_disk = json.loads((target / "manifest.json").read_text())
    assert {k: on_disk[k] for k in ("count", "sha256", "gz_sha256")} == {
        k: manifest[k] for k in ("count", "sha256", "gz_sha256")
    }
    data = (target / "shipments.jsonl.gz").read_bytes()
    content = gzip.decompress(data)
    assert manifest["count"] == N == content.count(b"\n")
    assert hashlib.sha256(content).hexdigest() == manifest["sha256"]
    assert hashlib.sha256(data).hexdigest() == manifest["gz_sha256"]
    keys = [json.loads(line)["_id"] for line in content.splitlines()]
    assert keys == sorted(keys, key=lambda k: k.encode())  # MongoDB's binary order
    assert "@" not in manifest["source"]
    cur = app_conn.cursor()
    cur.execute("SELECT doc_count, sha256, location FROM archive_record")
    assert cur.fetchall() == [(N, manifest["sha256"], str(target))]
    cur.close()
    again = run_cli("archive", "--to", str(target), settings=synced, check=False)
    assert again.returncode == 3 and "exists" in again.stderr

    clean = run_cli("verify", "--against-archive", str(target), "--json", settings=synced)
    assert json.loads(clean.stdout)["ok"] is True
    key = tamper(app_conn)
    bad = run_cli(
        "verify", "--against-archive", str(target), "--json", settings=synced, check=False
    )
    assert bad.returncode == 1
    findings = json.loads(bad.stdout)["findings"]
    assert [(f["kind"], f["key"], f["fields"]) for f in findings] == [
        ("different", key, ["tracking_number"])
    ]


def test_tampered_archive_fails_its_checksums(synced, tmp_path):
    target = tmp_path / "arch"
    archive.archive(synced, str(target))
    data = target / "shipments.jsonl.gz"
    lines = gzip.decompress(data.read_bytes()).splitlines(keepends=True)
    lines[3] = lines[3].replace(b'"TN', b'"XX')
    data.write_bytes(gzip.compress(b"".join(lines)))
    result = archive.check(str(target))
    assert not result["ok"] and len(result["errors"]) == 2
    proc = run_cli(
        "verify", "--against-archive", str(target), "--json", settings=synced, check=False
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 1 and len(report["errors"]) == 2
    assert [f["kind"] for f in report["findings"]] == ["different"]


def test_s3_archive_on_moto(synced, app_conn, moto_server, aws_env):
    s3 = boto3.client("s3", endpoint_url=moto_server)
    s3.create_bucket(Bucket="lazyshift-archive")
    target = "s3://lazyshift-archive/prod/2024"
    env = {**aws_env, "LAZYSHIFT_ARCHIVE__S3_ENDPOINT": moto_server}
    manifest = json.loads(
        run_cli("archive", "--to", target, "--json", settings=synced, env=env).stdout
    )
    stored = json.loads(
        s3.get_object(Bucket="lazyshift-archive", Key="prod/2024/manifest.json")["Body"].read()
    )
    assert stored["sha256"] == manifest["sha256"] and stored["count"] == N
    body = s3.get_object(Bucket="lazyshift-archive", Key="prod/2024/shipments.jsonl.gz")
    data = body["Body"].read()
    assert hashlib.sha256(data).hexdigest() == manifest["gz_sha256"]
    assert hashlib.sha256(gzip.decompress(data)).hexdigest() == manifest["sha256"]
    assert archive.check(target, s3_endpoint=moto_server)["ok"]

    assert (
        run_cli(
            "verify", "--against-archive", target, settings=synced, env=env, check=False
        ).returncode
        == 0
    )
    key = tamper(app_conn)
    proc = run_cli(
        "verify", "--against-archive", target, "--json", settings=synced, env=env, check=False
    )
    assert proc.returncode == 1
    assert [f["key"] for f in json.loads(proc.stdout)["findings"]] == [key]
