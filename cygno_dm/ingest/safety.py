"""The cleanup rule: a local run file may go only when its tape copy is archived and a disk copy is verified."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cygno_dm.ingest.catalog import Catalog, Replica
from cygno_dm.ingest.checksums import Checksums
from cygno_dm.ingest.stores import Stores, tls_verify
from cygno_dm.ingest.tape import TapeRest, TapeUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """Whether the local copy may be deleted, and what is missing if not."""

    safe: bool
    reason: str
    tape_rse: str | None = None
    disk_rse: str | None = None


class SafetyCheck:
    """Evaluates the cleanup rule against Rucio (replicas, locks) and the storage itself (archive, bytes)."""

    def __init__(self, catalog: Catalog, stores: Stores, tape: TapeRest | None = None) -> None:
        self.catalog = catalog
        self.stores = stores
        self.tape = tape or TapeRest(verify=tls_verify())

    def tape_archived(self, scope: str, name: str, size: int, adler32: str,
                      replicas: list[Replica]) -> tuple[str | None, str]:
        """(tape RSE whose endpoint holds this file on tape, with this size and adler32; or None, why not).

        The catalogue only says where to ask: a tape replica or an OK lock in Rucio can be registered without
        bytes, so the tape endpoint itself must confirm the archive (Tape REST archiveinfo) and the copy.
        """
        tapes = [r for r in replicas if self.catalog.is_tape(r.rse)]
        if not tapes:
            return None, "no replica on a tape RSE yet"
        why = []
        for rep in tapes:
            if rep.state != "AVAILABLE":
                why.append(f"tape replica on {rep.rse} is {rep.state}")
                continue
            pfn = self.catalog.pfn(rep.rse, scope, name, operation="read")  # the policy's path, not the replica's
            try:
                problem = self.tape.copy(pfn).problem(size, adler32)
            except TapeUnavailable as err:
                why.append(f"archive on {rep.rse} cannot be confirmed: {err}")
                continue
            if problem is None:
                return rep.rse, ""
            log.warning("%s:%s tape replica on %s not confirmed at %s: %s", scope, name, rep.rse, pfn, problem)
            why.append(f"tape replica on {rep.rse}: {problem}")
        return None, "; ".join(why)

    def disk_verified(self, scope: str, name: str, sums: Checksums,
                      replicas: list[Replica]) -> tuple[str | None, str]:
        """(disk RSE whose stored bytes are these, or None; how it was checked, or why not)."""
        why = []
        for rep in replicas:
            if self.catalog.is_tape(rep.rse):
                continue
            if rep.state != "AVAILABLE" or not rep.pfn:
                why.append(f"disk replica on {rep.rse} is {rep.state}")
                continue
            try:
                problem, how = self.stores.for_pfn(rep.rse, rep.pfn).verify(rep.pfn, sums)
            except Exception as err:
                why.append(f"cannot verify {rep.rse}: {err}")
                continue
            if problem is None:
                return rep.rse, how
            log.error("%s:%s replica on %s: %s (%s)", scope, name, rep.rse, problem, how)
            why.append(f"disk replica on {rep.rse}: {problem}")
        return None, "; ".join(why) or "no disk replica"

    def check(self, scope: str, name: str, sums: Checksums) -> Verdict:
        """Apply the rule to one file."""
        replicas = self.catalog.replicas(scope, name)
        tape, why_tape = self.tape_archived(scope, name, sums.size, sums.adler32, replicas)
        if tape is None:
            return Verdict(False, f"waiting for tape archive: {why_tape}")
        disk, why_disk = self.disk_verified(scope, name, sums, replicas)
        if disk is None:
            return Verdict(False, f"tape archived on {tape}, waiting for a verified disk replica: {why_disk}",
                           tape_rse=tape)
        return Verdict(True, f"archived on {tape}, verified on {disk} ({why_disk})", tape, disk)
