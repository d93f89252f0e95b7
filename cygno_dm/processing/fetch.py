"""Read one replica to a local file the way `rucio download` does (Rucio's protocol for the RSE, signed URLs from
the server), and verify its size and adler32 against the catalogue before anything uses it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cygno_dm.ingest.checksums import adler32_of
from cygno_dm.processing.catalog import ProcessingCatalog, last_line
from cygno_dm.processing.errors import ProcessingError, Unavailable

log = logging.getLogger(__name__)


class CorruptReplica(ProcessingError):
    """The bytes read from a replica do not have the size or adler32 Rucio records."""


def mismatch(path: Path, size: int, adler32: str) -> str | None:
    """None when `path` has this size and adler32, else what differs."""
    got = path.stat().st_size
    if got != size:
        return f"{got} bytes, Rucio records {size}"
    local = adler32_of(path)
    return None if local == adler32.lower().zfill(8) else f"adler32 {local}, Rucio records {adler32}"


def cached(path: Path, size: int, adler32: str) -> bool:
    """Whether a local copy exists and matches the catalogue (a stale or corrupt one is removed)."""
    if not path.is_file():
        return False
    if mismatch(path, size, adler32) is None:
        return True
    log.info("%s: cached copy does not match the catalogue; reading it again", path)
    path.unlink()
    return False


def fetch(catalog: ProcessingCatalog, scope: str, name: str, rse: str, size: int, adler32: str, dest: Path,
          timeout: int = 3600) -> Path:
    """Copy the replica of scope:name on `rse` to `dest` (complete or absent) and verify size and adler32."""
    from rucio.rse import rsemanager

    did = f"{scope}:{name}"
    pfns = catalog.read_pfns(scope, name, rse)
    if not pfns:
        raise Unavailable(f"{did}: Rucio gives no PFN to read it on {rse}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    info = catalog.rse_info(rse)
    failures = []
    for pfn in pfns:
        tmp.unlink(missing_ok=True)
        scheme = pfn.split(":", 1)[0]
        try:
            proto = rsemanager.create_protocol(info, "read", scheme=scheme)
            proto.connect()
            try:
                proto.get(pfn, str(tmp), transfer_timeout=timeout)
            finally:
                proto.close()
        except Exception as err:  # Rucio's protocols raise many kinds; the message is what matters
            failures.append(f"{scheme}: {last_line(err)}")
            log.warning("%s: reading from %s over %s failed: %s", did, rse, scheme, last_line(err))
            continue
        try:
            wrong = mismatch(tmp, size, adler32)
            if wrong:
                raise CorruptReplica(f"{did}: the replica on {rse} is corrupt: read {wrong}")
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("%s: read %d bytes from %s, size and adler32 verified", did, size, rse)
        return dest
    raise Unavailable(f"{did}: cannot read the replica on {rse}: {'; '.join(failures)}")
