"""Persistence of one moto S3 site's objects in a state directory (write-through, reloaded at start)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: what moto keeps of an object's additional checksum (kept across restarts: the uploader verifies with it)
CHECKSUM_FIELDS = ("checksum_algorithm", "checksum_value", "checksum_type", "checksum_parts")


def _key_file(root: Path, bucket: str, key: str) -> Path:
    """Where one object lives on disk (hashed name: keys never become paths)."""
    return root / "objects" / bucket / hashlib.sha256(key.encode()).hexdigest()


class ObjectStore:
    """Mirror of the objects of a moto S3 backend under `root`/objects/<bucket>/<sha256(key)>{,.json}."""

    def __init__(self, root: Path, backend: Any) -> None:
        self.root = Path(root)
        self.backend = backend
        (self.root / "objects").mkdir(parents=True, exist_ok=True)

    def sync(self, method: str, bucket: str, key: str | None) -> None:
        """Bring the disk copy of `bucket`/`key` (or the whole bucket) in line with moto after a change."""
        if key is None:
            self.sync_bucket(bucket)
        else:
            self.sync_key(bucket, key)

    def sync_key(self, bucket: str, key: str) -> None:
        """Write or remove the disk copy of one object."""
        path = _key_file(self.root, bucket, key)
        obj = self._get(bucket, key)
        if obj is None:
            for p in (path, path.with_suffix(".json")):
                p.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as out:
            buffer = getattr(obj, "_value_buffer", None)
            if buffer is not None:
                with obj.lock:
                    buffer.seek(0)
                    shutil.copyfileobj(buffer, out)
            else:
                out.write(obj.value)
        meta = {"bucket": bucket, "key": key, "metadata": dict(getattr(obj, "metadata", {}) or {}),
                "checksum": {f: getattr(obj, f, None) for f in CHECKSUM_FIELDS}}
        path.with_suffix(".json").write_text(json.dumps(meta))
        os.replace(tmp, path)

    def sync_bucket(self, bucket: str) -> None:
        """Re-mirror a whole bucket (after bucket-level changes such as DeleteObjects)."""
        try:
            keys = {k.name for k in self.backend.get_bucket(bucket).keys.values()}
        except Exception:  # bucket deleted
            keys = set()
        bdir = self.root / "objects" / bucket
        if bdir.is_dir():
            for meta in bdir.glob("*.json"):
                if json.loads(meta.read_text())["key"] not in keys:
                    meta.with_suffix("").unlink(missing_ok=True)
                    meta.unlink(missing_ok=True)
        for key in keys:
            if not _key_file(self.root, bucket, key).exists():
                self.sync_key(bucket, key)

    def load(self) -> int:
        """Put every stored object back into moto (creating missing buckets); return how many."""
        count = 0
        for meta_path in sorted((self.root / "objects").glob("*/*.json")):
            meta = json.loads(meta_path.read_text())
            data_path = meta_path.with_suffix("")
            if not data_path.exists():
                continue
            self.ensure_bucket(meta["bucket"])
            obj = self.backend.put_object(meta["bucket"], meta["key"], data_path.read_bytes())
            if meta.get("metadata"):
                obj.set_metadata(dict(meta["metadata"]))
            for name, value in (meta.get("checksum") or {}).items():
                if name in CHECKSUM_FIELDS and value is not None:
                    setattr(obj, name, value)
            count += 1
        log.info("reloaded %d objects from %s", count, self.root)
        return count

    def ensure_bucket(self, bucket: str, region: str = "us-east-1") -> None:
        """Create a bucket unless it exists."""
        try:
            self.backend.get_bucket(bucket)
        except Exception:
            self.backend.create_bucket(bucket, region)

    def _get(self, bucket: str, key: str) -> Any:
        try:
            return self.backend.get_object(bucket, key)
        except Exception:
            return None
