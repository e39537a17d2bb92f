"""Archive the MongoDB database before it is removed (stage 5): every collection.

An archive is a folder (or an S3 prefix) with:
- `shipments.jsonl.gz`: one canonical JSON document per line (JSON form, sorted keys, UTF-8),
  lines sorted by `_id` (MongoDB's binary order), gzip-compressed;
- `<collection>.jsonl.gz` for every other collection of the database (dead letters, stream
  offsets, the dual-write backlog, ...), the same format in the server's order: nothing
  MongoDB held is lost when it is removed;
- `manifest.json`: count, sha256 of the uncompressed content (the lines in key order),
  sha256 and size of the .gz file, created_at, the source URI without credentials, and the
  same figures per collection under `collections`.
It is written streaming (for S3 a local temporary file uploaded by boto3's multipart
transfer), never holding a collection in memory, then read back whole and checked against
the manifest, and recorded in MySQL's `archive_record` with the time it was read back
(`mode set mysql` requires such an archive). `ArchiveSource` reads it back for
`verify --against-archive`, checking both checksums as it goes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from lazyshift.config import Settings
from lazyshift.core import document
from lazyshift.core import mysql_store as store
from lazyshift.core.document import Document, any_document_json
from lazyshift.core.mongo_store import MongoStore, redact_uri
from lazyshift.core.mysql import connect
from lazyshift.errors import Unavailable

DATA_FILE = "shipments.jsonl.gz"
MANIFEST_FILE = "manifest.json"
FORMAT = "lazyshift-archive/1"
CHUNK = 1 << 20


class ArchiveError(Unavailable):
    """The archive cannot be written or read; the message says why."""


# -- locations -----------------------------------------------------------------------------


class Location:
    """A local folder or an S3 prefix holding the two archive files."""

    def __init__(self, target: str, s3_endpoint: str | None = None) -> None:
        self.target = target
        self.s3_endpoint = s3_endpoint
        if target.startswith("s3://"):
            bucket, _, prefix = target[5:].partition("/")
            if not bucket:
                raise ArchiveError(f"{target}: expected s3://bucket/prefix")
            self.bucket, self.prefix = bucket, prefix.strip("/")
            import boto3

            self.s3 = boto3.client("s3", endpoint_url=s3_endpoint)
        else:
            self.bucket = None
            self.dir = Path(target)

    @property
    def is_s3(self) -> bool:
        return self.bucket is not None

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def exists(self, name: str) -> bool:
        if not self.is_s3:
            return (self.dir / name).exists()
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self._key(name))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise ArchiveError(f"{self.target}: {exc}") from exc

    def put_file(self, name: str, path: Path) -> None:
        if self.is_s3:
            self.s3.upload_file(str(path), self.bucket, self._key(name))
        else:
            os.replace(path, self.dir / name)

    def put_bytes(self, name: str, data: bytes) -> None:
        if self.is_s3:
            self.s3.put_object(Bucket=self.bucket, Key=self._key(name), Body=data)
        else:
            tmp = self.dir / f".{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self.dir / name)

    def open(self, name: str) -> IO[bytes]:
        try:
            if self.is_s3:
                return self.s3.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
            return open(self.dir / name, "rb")  # noqa: SIM115 - the caller closes it
        except Exception as exc:  # noqa: BLE001 - any storage error: the archive is unreadable
            raise ArchiveError(f"{self.target}: cannot read {name}: {exc}") from exc

    def describe(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}" if self.is_s3 else str(self.dir / name)


class _HashingWriter(io.RawIOBase):
    """A file wrapper that hashes and counts what goes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.raw.write(data)


# -- write ---------------------------------------------------------------------------------


def _storage_error(loc: Location, exc: BaseException) -> ArchiveError:
    hint = ""
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        hint = " (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile)"
    return ArchiveError(f"cannot write the archive to {loc.target}: {exc}{hint}")


def _write_collection(
    loc: Location, cursor: Any, name: str, tmp_dir: Path | None
) -> dict[str, Any]:
    """Stream `cursor` into `name` at `loc`; the file's figures for the manifest."""
    content_sha = hashlib.sha256()
    count = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=tmp_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as raw:
            hashing = _HashingWriter(raw)
            with gzip.GzipFile(fileobj=hashing, mode="wb", mtime=0) as gz:  # type: ignore[arg-type]
                for doc in cursor:
                    line = (any_document_json(doc) + "\n").encode("utf-8", "surrogatepass")
                    content_sha.update(line)
                    gz.write(line)
                    count += 1
        loc.put_file(name, tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return {
        "data_file": name,
        "count": count,
        "sha256": content_sha.hexdigest(),
        "gz_sha256": hashing.sha.hexdigest(),
        "gz_bytes": hashing.size,
    }


def archive(
    settings: Settings, target: str, *, s3_endpoint: str | None = None, force: bool = False
) -> dict[str, Any]:
    """Export every collection to `target`, read it back, record it; the manifest."""
    loc = Location(target, s3_endpoint)
    try:
        if not loc.is_s3:
            loc.dir.mkdir(parents=True, exist_ok=True)
        if loc.exists(MANIFEST_FILE) and not force:
            raise ArchiveError(
                f"{loc.describe(MANIFEST_FILE)} exists: an archive is already there "
                "(use --force to overwrite)"
            )
        manifest = _write_all(settings, loc)
    except ArchiveError:
        raise
    except Exception as exc:  # noqa: BLE001 - storage errors (OS, S3): one clear message
        if _is_mongo_error(exc):
            raise
        raise _storage_error(loc, exc) from exc
    conn = connect(settings.mysql, autocommit=True)
    try:
        manifest["record_id"] = store.record_archive(
            conn.cursor(), loc.target, manifest["count"], manifest["sha256"], manifest
        )
        # Read back whole: what stage 5 relies on is an archive that can be restored.
        readback = check(target, s3_endpoint)
        if not readback["ok"]:
            raise ArchiveError(
                f"{loc.target}: the archive read back does not match its manifest: "
                + "; ".join(readback["errors"])
            )
        store.mark_archive_verified(conn.cursor(), manifest["record_id"], readback["count"])
        manifest["read_back"] = {"ok": True, "count": readback["count"]}
    finally:
        conn.close()
    return manifest


def _is_mongo_error(exc: BaseException) -> bool:
    from pymongo.errors import PyMongoError

    return isinstance(exc, PyMongoError)


def _write_all(settings: Settings, loc: Location) -> dict[str, Any]:
    tmp_dir = None if loc.is_s3 else loc.dir
    mongo = MongoStore.open(settings, scan=True, timeout_ms=10_000)
    try:
        # ONE sorted cursor over the shipments (every _id type, MongoDB's order).
        main = _write_collection(
            loc, mongo.shipments.find({}).sort("_id", 1).batch_size(1000), DATA_FILE, tmp_dir
        )
        others = {}
        for name in sorted(mongo.db.list_collection_names()):
            if name == mongo.shipments.name:
                continue
            others[name] = _write_collection(
                loc, mongo.db[name].find({}).batch_size(1000), f"{name}.jsonl.gz", tmp_dir
            )
    finally:
        mongo.close()
    manifest = {
        "format": FORMAT,
        "location": loc.target,
        **main,
        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "source": f"{redact_uri(settings.mongo.uri)}"
        f"{settings.mongo.database}.{settings.mongo.collection}",
        "collections": {settings.mongo.collection: main, **others},
    }
    loc.put_bytes(MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


# -- read ----------------------------------------------------------------------------------


def read_manifest(loc: Location) -> dict[str, Any]:
    with contextlib.closing(loc.open(MANIFEST_FILE)) as fh:
        try:
            manifest = json.loads(fh.read())
        except ValueError as exc:
            raise ArchiveError(f"{loc.describe(MANIFEST_FILE)}: not JSON: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise ArchiveError(
            f"{loc.describe(MANIFEST_FILE)}: unknown format {manifest.get('format')!r}"
        )
    return manifest


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.sha.update(data)
        self.size += n
        return n


class ArchiveSource:
    """An archive as the source side of `verify` (sorted documents, checksums checked)."""

    def __init__(
        self, target: str, s3_endpoint: str | None = None, figures: dict[str, Any] | None = None
    ) -> None:
        self.loc = Location(target, s3_endpoint)
        # `figures`: one collection's entry of the manifest (default: the shipments)
        self.manifest = figures if figures is not None else read_manifest(self.loc)
        self.name = f"archive:{target}"
        self.errors: list[str] = []
        self.finished = False
        self.non_string: list[Any] = []

    def iter_documents(self) -> Iterator[Any]:
        """Every archived document (JSON form parsed), checking count and both checksums."""
        content = hashlib.sha256()
        count = 0
        with contextlib.closing(self.loc.open(self.manifest.get("data_file", DATA_FILE))) as raw:
            hashing = _HashingReader(raw)
            with gzip.GzipFile(fileobj=io.BufferedReader(hashing, CHUNK), mode="rb") as gz:
                for line in gz:
                    content.update(line)
                    count += 1
                    yield json.loads(line)
            while hashing.read(CHUNK):  # gzip normally reads to the end already
                pass
        if count != self.manifest["count"]:
            self.errors.append(
                f"archive holds {count} documents, manifest says {self.manifest['count']}"
            )
        if content.hexdigest() != self.manifest["sha256"]:
            self.errors.append("archive content sha256 does not match the manifest")
        if hashing.sha.hexdigest() != self.manifest["gz_sha256"]:
            self.errors.append("archive .gz sha256 does not match the manifest")
        self.finished = True

    def iter_sorted(self) -> Iterator[Document]:
        for doc in self.iter_documents():
            if isinstance(doc, dict) and isinstance(doc.get("_id"), str):
                yield self._parsed(doc)
            else:  # rare (MySQL cannot hold them): kept for iter_non_string
                self.non_string.append(doc)

    def iter_non_string(self, strings_seen: int) -> Iterator[Document]:
        """The documents whose `_id` is not a string, met during the sorted walk."""
        for doc in self.non_string:
            yield self._parsed(doc) if isinstance(doc, dict) else {"_id": doc}

    @staticmethod
    def _parsed(doc: dict[str, Any]) -> Document:
        try:
            return document.from_json(doc)
        except (TypeError, ValueError):
            return doc  # malformed: compared (and reported) as it is

    def get(self, key: str) -> Document | None:
        return None  # never used: an archive does not change during the run

    def sample_keys(self, n: int) -> list[str]:
        raise ArchiveError("sampling is not supported for archives")

    def integrity_errors(self) -> list[str]:
        if not self.finished:
            return ["archive was not read to the end"]
        return self.errors

    def close(self) -> None:
        pass


def check(target: str, s3_endpoint: str | None = None) -> dict[str, Any]:
    """Read a whole archive (every collection) and check it against its manifest;
    {"ok", "count" (shipments), "errors", "manifest"}."""
    src = ArchiveSource(target, s3_endpoint)
    count = sum(1 for _ in src.iter_documents())
    errors = list(src.errors)
    main = src.manifest.get("data_file", DATA_FILE)
    for name, figures in (src.manifest.get("collections") or {}).items():
        if figures.get("data_file") == main:
            continue
        other = ArchiveSource(target, s3_endpoint, figures=figures)
        for _ in other.iter_documents():
            pass
        errors += [f"{name}: {e}" for e in other.errors]
    return {"ok": not errors, "count": count, "errors": errors, "manifest": src.manifest}
