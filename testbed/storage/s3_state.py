"""The objects and multipart uploads of one S3 site, on disk, with an in-memory index rebuilt at start.

Layout under the state directory:

- ``objects/<bucket>/`` — one directory per bucket; ``<sha256(key)>.json`` describes an object (key, size, ETag,
  metadata, checksum) and names its data files ``<sha256(key)>.<random>.<i>``, read in turn: one for a PUT, the
  part files themselves for a multipart upload (completing one moves files, it copies no bytes); keys never
  become paths.
- ``uploads/<id>/`` — a multipart upload in progress: ``upload.json`` and ``<n>`` / ``<n>.json`` per part.
- ``incoming/`` — bodies being received; emptied at start, so a request cut off leaves nothing behind.

An object appears by renaming its description into place (the commit point) after its data files are in place;
the files of the object it replaced are removed afterwards, and files no description names are removed at start.
Data survive the site's process being killed at any point; there is no fsync (a testbed, not a power-safe store).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from testbed.storage.s3_body import CRC_POLY, S3Error, b64, crc_combine, new_hash

log = logging.getLogger(__name__)

MIN_PART = 5 << 20  # S3's smallest part but the last
MAX_PARTS = 10000


@dataclass
class Obj:
    """One stored object."""

    key: str
    size: int
    etag: str  # hex, "-N" for multipart
    modified: float
    data: list[list]  # [file name in the bucket directory, size] of each segment, in order
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str = "binary/octet-stream"
    checksum: dict[str, str] = field(default_factory=dict)  # algorithm, value, type


@dataclass
class Part:
    number: int
    size: int
    etag: str
    crc32c: int
    checksum: str | None  # the upload's algorithm, base64


@dataclass
class Upload:
    """A multipart upload in progress."""

    id: str
    bucket: str
    key: str
    initiated: float
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str = "binary/octet-stream"
    algorithm: str | None = None
    checksum_type: str | None = None
    parts: dict[int, Part] = field(default_factory=dict)


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("404 Not Found", "NoSuchBucket", f"The specified bucket does not exist: {bucket}")


def no_such_upload() -> S3Error:
    return S3Error("404 Not Found", "NoSuchUpload", "The specified multipart upload does not exist.")


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def _name(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Store:
    """Buckets, objects and multipart uploads of one site under `root` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        shutil.rmtree(self.incoming, ignore_errors=True)
        for sub in ("objects", "uploads", "incoming"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.buckets: dict[str, dict[str, Obj]] = {}
        self.uploads: dict[str, Upload] = {}
        self._load()

    # ---- start-up -------------------------------------------------------------------------------------------
    def _load(self) -> None:
        for bdir in sorted(p for p in (self.root / "objects").iterdir() if p.is_dir()):
            objects = self.buckets.setdefault(bdir.name, {})
            for meta in bdir.glob("*.json"):
                obj = self._load_object(bdir, json.loads(meta.read_text()))
                if obj is not None:
                    objects[obj.key] = obj
            named = {f for o in objects.values() for f, _ in o.data} | {p.name for p in bdir.glob("*.json")}
            for stray in bdir.iterdir():
                if stray.name not in named:  # data of an object replaced or cut off while being committed
                    stray.unlink()
        for udir in (self.root / "uploads").iterdir():
            try:
                up = Upload(**json.loads((udir / "upload.json").read_text()))
            except (OSError, ValueError, TypeError):
                shutil.rmtree(udir, ignore_errors=True)
                continue
            for meta in udir.glob("[0-9]*.json"):
                part = Part(**json.loads(meta.read_text()))
                if (udir / str(part.number)).exists():
                    up.parts[part.number] = part
            self.uploads[up.id] = up
        log.info("state %s: %d objects in %d buckets, %d multipart uploads in progress", self.root,
                 sum(len(o) for o in self.buckets.values()), len(self.buckets), len(self.uploads))

    @staticmethod
    def _load_object(bdir: Path, meta: dict) -> Obj | None:
        """An object from its description; descriptions written by the moto-based site are converted."""
        if "data" in meta:
            return Obj(**meta)
        data = bdir / _name(meta["key"])  # moto-era layout: data file = description name without .json
        if not data.exists():
            return None
        md5 = hashlib.md5(usedforsecurity=False)
        with open(data, "rb") as f:
            while chunk := f.read(1 << 20):
                md5.update(chunk)
        old = meta.get("checksum") or {}
        checksum = ({"algorithm": old["checksum_algorithm"], "value": old["checksum_value"],
                     "type": old.get("checksum_type") or "FULL_OBJECT"} if old.get("checksum_value") else {})
        obj = Obj(meta["key"], data.stat().st_size, md5.hexdigest(), data.stat().st_mtime,
                  [[data.name, data.stat().st_size]],
                  dict(meta.get("metadata") or {}), checksum=checksum)
        _write_json(bdir / f"{data.name}.json", asdict(obj))
        return obj

    # ---- buckets ----------------------------------------------------------------------------------------------
    def create_bucket(self, bucket: str) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket) or ".." in bucket:
            raise S3Error("400 Bad Request", "InvalidBucketName",
                          f"bucket {bucket!r}: 3-63 lowercase letters, digits, dots and hyphens")
        with self.lock:
            (self.root / "objects" / bucket).mkdir(exist_ok=True)
            self.buckets.setdefault(bucket, {})

    def delete_bucket(self, bucket: str) -> None:
        with self.lock:
            objects = self.objects(bucket)
            if objects or any(u.bucket == bucket for u in self.uploads.values()):
                raise S3Error("409 Conflict", "BucketNotEmpty", "The bucket you tried to delete is not empty")
            shutil.rmtree(self.root / "objects" / bucket)
            del self.buckets[bucket]

    def objects(self, bucket: str) -> dict[str, Obj]:
        try:
            return self.buckets[bucket]
        except KeyError:
            raise no_such_bucket(bucket) from None

    # ---- objects ----------------------------------------------------------------------------------------------
    def new_incoming(self) -> tuple[int, Path]:
        """An open file for a body being received (removed by `discard` or moved by `commit`/`put_part`)."""
        path = self.incoming / secrets.token_hex(12)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path

    def get(self, bucket: str, key: str) -> tuple[Obj, list[tuple[Path, int]]]:
        """The object and its (data file, size) segments."""
        obj = self.objects(bucket).get(key)
        if obj is None:
            raise S3Error("404 Not Found", "NoSuchKey", "The specified key does not exist.")
        return obj, [(self.root / "objects" / bucket / name, size) for name, size in obj.data]

    def exists(self, bucket: str, key: str) -> bool:
        return key in self.buckets.get(bucket, {})

    def commit(self, bucket: str, obj: Obj, files: list[tuple[Path, int]], if_none_match: bool = False) -> None:
        """Make `files` (renamed, in order) the data of `obj`; its description is renamed into place last."""
        bdir = self.root / "objects" / bucket
        name = _name(obj.key)
        tag = secrets.token_hex(6)
        obj.data = [[f"{name}.{tag}.{i}", size] for i, (_, size) in enumerate(files)]
        with self.lock:
            objects = self.objects(bucket)
            if if_none_match and obj.key in objects:
                raise S3Error("412 Precondition Failed", "PreconditionFailed",
                              "At least one of the pre-conditions you specified did not hold (If-None-Match)")
            for (src, _), (dst, _) in zip(files, obj.data, strict=True):
                os.replace(src, bdir / dst)
            _write_json(bdir / f"{name}.json", asdict(obj))
            old = objects.get(obj.key)
            objects[obj.key] = obj
        for stale, _ in old.data if old is not None else []:
            (bdir / stale).unlink(missing_ok=True)

    def delete(self, bucket: str, key: str) -> None:
        bdir = self.root / "objects" / bucket
        with self.lock:
            old = self.objects(bucket).pop(key, None)
            if old is None:
                return
            (bdir / f"{_name(key)}.json").unlink(missing_ok=True)
        for stale, _ in old.data:
            (bdir / stale).unlink(missing_ok=True)

    # ---- multipart uploads ------------------------------------------------------------------------------------
    def create_upload(self, up: Upload) -> None:
        self.objects(up.bucket)
        udir = self.root / "uploads" / up.id
        udir.mkdir()
        _write_json(udir / "upload.json", {k: v for k, v in asdict(up).items() if k != "parts"})
        with self.lock:
            self.uploads[up.id] = up

    def upload(self, bucket: str, key: str, upload_id: str) -> Upload:
        up = self.uploads.get(upload_id)
        if up is None or (up.bucket, up.key) != (bucket, key):
            raise no_such_upload()
        return up

    def put_part(self, up: Upload, part: Part, data: Path) -> None:
        udir = self.root / "uploads" / up.id
        with self.lock:
            if up.id not in self.uploads:
                raise no_such_upload()
            os.replace(data, udir / str(part.number))
            _write_json(udir / f"{part.number}.json", asdict(part))
            up.parts[part.number] = part

    def abort(self, up: Upload) -> None:
        with self.lock:
            self.uploads.pop(up.id, None)
        shutil.rmtree(self.root / "uploads" / up.id, ignore_errors=True)

    def complete(self, up: Upload, listed: list[tuple[int, str]], declared: dict[str, str],
                 if_none_match: bool) -> Obj:
        """Make the listed parts the object: their files become its segments (no byte is copied or re-read); the
        full-object CRC is combined from the parts' CRCs, a composite checksum from the parts' checksums."""
        if not listed:
            raise S3Error("400 Bad Request", "MalformedXML", "CompleteMultipartUpload lists no parts")
        numbers = [n for n, _ in listed]
        if numbers != sorted(set(numbers)):
            raise S3Error("400 Bad Request", "InvalidPartOrder", "The list of parts was not in ascending order.")
        parts = []
        for number, etag in listed:
            part = up.parts.get(number)
            if part is None or etag.strip('"') != part.etag:
                raise S3Error("400 Bad Request", "InvalidPart", f"Part {number} was not uploaded or its ETag differs")
            parts.append(part)
        if any(p.size < MIN_PART for p in parts[:-1]):
            raise S3Error("400 Bad Request", "EntityTooSmall", "A part but the last is smaller than 5 MiB")
        checksum = _object_checksum(up, parts)
        for algorithm, value in declared.items():
            if checksum.get("algorithm") == algorithm and checksum.get("type") == "FULL_OBJECT" \
                    and checksum["value"] != value:
                log.warning("refused completion of %s/%s: %s %s declared, %s from the parts", up.bucket, up.key,
                            algorithm, value, checksum["value"])
                raise S3Error("400 Bad Request", "BadDigest",
                              f"The {algorithm} you specified did not match the calculated checksum.")
        if if_none_match and self.exists(up.bucket, up.key):
            raise S3Error("412 Precondition Failed", "PreconditionFailed",
                          "At least one of the pre-conditions you specified did not hold (If-None-Match)")
        udir = self.root / "uploads" / up.id
        etag = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in parts), usedforsecurity=False).hexdigest()
        obj = Obj(up.key, sum(p.size for p in parts), f"{etag}-{len(parts)}", time.time(), [], dict(up.metadata),
                  up.content_type, checksum)
        self.commit(up.bucket, obj, [(udir / str(p.number), p.size) for p in parts], if_none_match)
        self.abort(up)
        return obj


def _object_checksum(up: Upload, parts: list[Part]) -> dict[str, str]:
    """The object's checksum: FULL_OBJECT CRCs combined from the parts' CRCs; COMPOSITE = hash of the parts'
    checksums, suffixed -N (as S3)."""
    if not up.algorithm:
        return {}
    if (up.checksum_type or "").upper() == "FULL_OBJECT":
        if up.algorithm == "CRC32C":
            crc = 0
            for part in parts:
                crc = crc_combine(crc, part.crc32c, part.size, CRC_POLY["CRC32C"])
            return {"algorithm": "CRC32C", "value": b64(crc.to_bytes(4, "big")), "type": "FULL_OBJECT"}
        if up.algorithm == "CRC32":
            crc = 0
            for part in parts:
                crc = crc_combine(crc, int.from_bytes(_unb64(part.checksum), "big"), part.size, CRC_POLY["CRC32"])
            return {"algorithm": "CRC32", "value": b64(crc.to_bytes(4, "big")), "type": "FULL_OBJECT"}
    h = new_hash(up.algorithm)
    for part in parts:
        h.update(_unb64(part.checksum))
    return {"algorithm": up.algorithm, "value": f"{b64(h.digest())}-{len(parts)}", "type": "COMPOSITE"}


def _unb64(value: str | None) -> bytes:
    import base64

    return base64.b64decode(value or "")
