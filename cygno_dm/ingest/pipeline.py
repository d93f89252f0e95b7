"""The state machine: one idempotent step per state, each checked against Rucio and the storage."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rucio.common.exception import DuplicateRule, RucioException, UnsupportedOperation

from cygno_dm.ingest import metrics
from cygno_dm.ingest.catalog import Catalog, CatalogUnavailable, Conflict
from cygno_dm.ingest.checksums import Checksums, GzipError, scan
from cygno_dm.ingest.config import IngestConfig
from cygno_dm.ingest.discovery import settled
from cygno_dm.ingest.hdf5 import Hdf5Error, closed_file_attributes
from cygno_dm.ingest.journal import Entry, Journal, JournalError
from cygno_dm.ingest.naming import parse_did_name
from cygno_dm.ingest.runlog import RunLog, RunLogUnavailable, did_metadata, read_sidecar, sidecar_path
from cygno_dm.ingest.safety import SafetyCheck
from cygno_dm.ingest.states import State
from cygno_dm.ingest.storage import ObjectExists, StorageError, StorageUnavailable
from cygno_dm.ingest.stores import Stores, differs
from cygno_dm.ingest.tape import TapeUnavailable
from cygno_dm.profile import Profile

log = logging.getLogger(__name__)

TRANSIENT = (CatalogUnavailable, StorageUnavailable, RunLogUnavailable, TapeUnavailable)
ProgressFactory = Callable[[Entry], Callable[[int], None] | None]


class Wait(Exception):
    """The step cannot run yet: `reason` is what it waits for, `delay` when to look again."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class _Gone(Exception):
    """The local file is not there any more."""


class Quarantine(Exception):
    """The file must never be uploaded or registered; the message is the report."""


def sums_of(entry: Entry) -> Checksums:
    """The checksums recorded for an entry."""
    assert entry.size is not None and entry.adler32 and entry.md5 and entry.crc32c
    return Checksums(entry.size, entry.adler32, entry.md5, entry.crc32c)


class Pipeline:
    """Runs the steps of journal entries."""

    def __init__(self, profile: Profile, config: IngestConfig, journal: Journal, catalog: Catalog,
                 stores: Stores | None = None, safety: SafetyCheck | None = None, runlog: RunLog | None = None,
                 progress: ProgressFactory | None = None) -> None:
        self.profile = profile
        self.cfg = config
        self.journal = journal
        self.catalog = catalog
        self.stores = stores or Stores(profile, config.part_size, config.parallel_parts)
        self.safety = safety or SafetyCheck(catalog, self.stores)
        self.runlog = runlog
        self.progress = progress
        self._verified: set[str] = set()  # paths whose bytes this process uploaded and verified, not yet registered
        self._absent: set[tuple[str, str]] = set()  # DIDs that Rucio said (in bulk) it does not have, not yet uploaded
        self._file_rules: bool | None = None  # whether files need a landing rule of their own (asked once)
        self.steps: dict[State, Callable[[Entry], Entry]] = {
            State.SEEN: self.check_ready, State.SCANNED: self.upload, State.UPLOADED: self.register,
            State.REGISTERED: self.describe, State.DESCRIBED: self.attach, State.ATTACHED: self.check_safe,
            State.SAFE: self.delete_local,
        }

    # -- driving -------------------------------------------------------------------------------
    def step(self, entry: Entry) -> Entry | None:
        """Run the step of the entry's state once; return the moved entry, or None if it waits or ended."""
        fn = self.steps.get(entry.state)
        if fn is None:
            return None
        try:
            moved = fn(entry)
            metrics.FILES.labels(moved.state.value).inc()
            return moved
        except Wait as w:
            self.journal.postpone(entry, w.reason, w.delay)
            log.info("%s waits in %s: %s", entry.did, entry.state, w.reason)
        except Quarantine as q:
            self.quarantine(entry, str(q))
        except _Gone:
            try:
                return self._gone(entry)
            except Quarantine as q:
                self.quarantine(entry, str(q))
            except TRANSIENT as err:
                self.journal.postpone(entry, f"local file gone; cannot ask Rucio: {err}", self.cfg.backoff(0), True)
        except Conflict as c:
            self.quarantine(entry, f"same name, different content: {c}")
        except TRANSIENT as err:
            delay = self.cfg.backoff(entry.attempts)
            self.journal.postpone(entry, f"retrying in {delay:.0f}s: {type(err).__name__}: {err}", delay, failure=True)
            metrics.FAILURES.labels(entry.state.value, type(err).__name__).inc()
            log.warning("%s %s failed (transient), retry in %.0fs: %s", entry.did, entry.state, delay, err)
        except JournalError as err:
            log.warning("%s: %s", entry.did, err)
        except Exception as err:
            delay = self.cfg.backoff(entry.attempts)
            text = str(err).strip().replace("\n", " ")
            self.journal.postpone(entry, f"error, retrying in {delay:.0f}s: {type(err).__name__}: {text}", delay,
                                  failure=True)
            metrics.FAILURES.labels(entry.state.value, type(err).__name__).inc()
            if entry.attempts == 0:
                log.exception("%s %s failed, retry in %.0fs", entry.did, entry.state, delay)
            else:
                log.error("%s %s failed again (%d), retry in %.0fs: %s: %s", entry.did, entry.state,
                          entry.attempts + 1, delay, type(err).__name__, text)
        return None

    def run_entry(self, entry: Entry, until: State = State.DELETED) -> Entry:
        """Run steps while they succeed and the entry has not reached `until`; return the latest entry."""
        current = entry
        while current.state != until:
            moved = self.step(current)
            if moved is None:
                break
            current = moved
        return self.journal.get(entry.path) or current

    def quarantine(self, entry: Entry, reason: str) -> None:
        """Move the file aside (never deleted), write a report beside it, and mark it in the journal."""
        src = Path(entry.path)
        if src.exists() and not reason.startswith("quarantined by another uploader"):
            qdir = src.parent / self.cfg.quarantine_subdir
            qdir.mkdir(exist_ok=True)
            dest = qdir / src.name
            if dest.exists():
                dest = qdir / f"{src.name}.{int(time.time())}"
            shutil.move(src, dest)
            side = sidecar_path(src)
            if side.exists():
                shutil.move(side, dest.with_name(dest.name + ".json"))
            report = {"did": entry.did, "file": str(src), "moved_to": str(dest), "reason": reason,
                      "state": entry.state.value, "adler32": entry.adler32, "md5": entry.md5, "time": time.time()}
            dest.with_name(dest.name + ".quarantine.json").write_text(json.dumps(report, indent=1))
            reason = f"{reason} (file moved to {dest})"
        self.journal.quarantine(entry, reason)
        metrics.QUARANTINED.labels("conflict" if "same name" in reason else "corrupt").inc()

    # -- steps ---------------------------------------------------------------------------------
    def check_ready(self, e: Entry) -> Entry:
        """SEEN → SCANNED: the DAQ finished the file (settled; complete gzip or closed HDF5); checksums in one pass."""
        path = Path(e.path)
        try:
            st = path.stat()
        except FileNotFoundError:
            return self._gone(e)
        try:
            row = read_sidecar(path)
        except ValueError as err:
            raise Quarantine(str(err)) from None
        declared = row is not None
        if row is None and self.runlog is not None:
            row = self.runlog.row(e.run)
            if self.cfg.require_end_of_run and (row is None or not row.get("stop_time")):
                self.journal.update(e, size=st.st_size, mtime=st.st_mtime)
                raise Wait("run still open in the run log (no stop_time)", self.cfg.poll)
        if not declared and not settled(e.size, st.st_size, st.st_mtime, self.cfg.settle):
            self.journal.update(e, size=st.st_size, mtime=st.st_mtime)
            raise Wait(f"size not yet stable for {self.cfg.settle:.0f}s", max(1.0, self.cfg.settle))
        ready = self.profile.ingest.ready
        try:
            sums = scan(path, gzip=ready == "gzip")
            from_file = closed_file_attributes(path, self.profile.ingest.metadata_from_hdf5) if ready == "hdf5" else {}
        except (GzipError, Hdf5Error) as err:
            kind = "gzip" if ready == "gzip" else "HDF5 file"
            if not err.truncated or declared or time.time() - st.st_mtime > self.cfg.stale:
                raise Quarantine(f"corrupt {kind}: {err}") from None
            self.journal.update(e, size=st.st_size, mtime=st.st_mtime)
            raise Wait(f"{kind} not complete yet ({err})", max(1.0, self.cfg.settle)) from None
        after = path.stat()
        if (after.st_size, after.st_mtime) != (st.st_size, st.st_mtime) or sums.size != st.st_size:
            self.journal.update(e, size=after.st_size, mtime=after.st_mtime)
            raise Wait("file changed while it was read", max(1.0, self.cfg.settle))
        row = row or {}
        if row.get("file_size") not in (None, "", sums.size):
            raise Quarantine(f"run log says file_size {row['file_size']}, the file has {sums.size} bytes")
        if row.get("file_checksum") and str(row["file_checksum"]).lower() != sums.md5:
            raise Quarantine(f"run log says md5 {row['file_checksum']}, the file has {sums.md5}")
        meta = {**self.name_metadata(e.name), **from_file,
                **did_metadata(row, e.run, run_number=not self.profile.metadata or "run_number" in self.profile.metadata)}
        return self.journal.advance(e, State.SCANNED, f"adler32 {sums.adler32}", mtime=st.st_mtime, meta=meta,
                                    **sums.as_dict())

    def name_metadata(self, name: str) -> dict[str, Any]:
        """Metadata the profile takes from the groups of the file's name (ints for int keys)."""
        groups = parse_did_name(self.profile, name).groups
        out: dict[str, Any] = {}
        for key, group in self.profile.ingest.metadata_from_name.items():
            if group in groups:
                spec = self.profile.metadata.get(key)
                out[key] = int(groups[group]) if spec is not None and spec.type == "int" else groups[group]
        return out

    def _gone(self, e: Entry) -> Entry:
        """The local file vanished: fine if Rucio has the run (another uploader did it), else report it."""
        path = Path(e.path)
        moved = path.parent / self.cfg.quarantine_subdir / path.name
        if moved.exists():
            raise Quarantine(f"quarantined by another uploader (see {moved}.quarantine.json)")
        did = self.catalog.get_file(e.scope, e.name)
        if did is not None and (e.adler32 is None or did.get("adler32") == e.adler32):
            return self.journal.advance(e, State.DELETED, "local file gone; the DID is registered (another uploader)")
        raise Quarantine("the local file disappeared before it was uploaded")

    def _local_unchanged(self, e: Entry) -> None:
        try:
            st = Path(e.path).stat()
        except FileNotFoundError:
            raise _Gone() from None
        if st.st_size != e.size or st.st_mtime != e.mtime:
            raise Quarantine(f"the local file changed after it was checksummed (size {st.st_size} != {e.size} "
                             "or mtime differs): the DAQ rewrote a finished run")

    def upload(self, e: Entry) -> Entry:
        """SCANNED → UPLOADED: bytes at the policy PFN on the landing RSE, verified; never overwrite."""
        sums = sums_of(e)
        self._local_unchanged(e)
        if (e.scope, e.name) in self._absent:
            self._absent.discard((e.scope, e.name))
            registered = False
        else:
            registered = self.catalog.check_same(e.scope, e.name, sums)  # raises Conflict
        pfn = self.catalog.pfn(self.cfg.rse, e.scope, e.name)
        store = self.stores.for_pfn(self.cfg.rse, pfn)
        # put() never overwrites; the HEAD first only spares a big upload that would be refused at its end
        stored = None if sums.size <= getattr(store, "cheap_put_max", -1) else store.stat(pfn)
        if stored is None:
            progress = self.progress(e) if self.progress else None
            try:
                store.put(Path(e.path), pfn, sums, progress)
                metrics.BYTES.inc(sums.size)
                self._verified.add(e.path)
                return self.journal.advance(e, State.UPLOADED, f"uploaded to {self.cfg.rse}", rse=self.cfg.rse,
                                            pfn=pfn, uploaded_bytes=sums.size)
            except ObjectExists:
                stored = store.stat(pfn)
                if stored is None:
                    raise StorageUnavailable(f"{pfn}: said to exist, then not found") from None
            except StorageError as err:
                if "changed" in str(err):
                    raise Quarantine(str(err)) from None
                raise
        why = differs(store, pfn, stored, Path(e.path), sums)
        if why:
            raise Quarantine(f"same name, different content on {self.cfg.rse}: {why}; registered={registered}")
        return self.journal.advance(e, State.UPLOADED, f"already on {self.cfg.rse}, verified", rse=self.cfg.rse,
                                    pfn=pfn)

    def register(self, e: Entry) -> Entry:
        """UPLOADED → REGISTERED: the replica (and so the file DID) in Rucio, kept by a landing rule."""
        sums = sums_of(e)
        assert e.rse and e.pfn
        self.catalog.check_same(e.scope, e.name, sums)
        store = self.stores.for_pfn(e.rse, e.pfn)
        stored = store.stat(e.pfn)
        if stored is None or stored.size != sums.size:
            return self.journal.rewind(e, State.SCANNED, f"no bytes at {e.pfn}: upload again")
        self._verified.discard(e.path)
        added = self.catalog.add_replica(e.rse, e.scope, e.name, sums, e.pfn)
        if self.file_rules_needed(e.rse):
            self.catalog.ensure_file_rule(e.scope, e.name, e.rse, self.cfg.landing_lifetime)
        return self.journal.advance(e, State.REGISTERED, f"replica on {e.rse}" + ("" if added else " (existed)"))

    def file_rules_needed(self, rse: str) -> bool:
        """Whether each file needs a landing rule of its own on `rse` (asked once per process).

        Not when the profile's raw replication has a rule on exactly this RSE without a lifetime, and the RSE has no
        `tombstone_delay`: then the replica Rucio registers has no tombstone (the reaper never takes it) until the
        judge locks it for that dataset rule after the attachment, and the rule keeps it for as long as the policy
        says. Otherwise (another landing RSE, a rule with a lifetime, an RSE that tombstones new replicas) one
        landing rule per file keeps it from the moment it is registered, as before.
        """
        if rse != self.cfg.rse:
            return True
        if self._file_rules is None:
            kept = any(r.rse_expression == rse and not r.lifetime_days for r in self.profile.replication.get("raw", []))
            delay = str(self.catalog.rse_attributes(rse).get("tombstone_delay") or "0").strip()
            self._file_rules = not (kept and delay in ("0", "", "None"))
        return self._file_rules

    def describe(self, e: Entry) -> Entry:
        """REGISTERED → DESCRIBED: run metadata on the DID."""
        missing = self.catalog.set_meta(e.scope, e.name, e.meta)
        detail = f"{len(e.meta)} keys" + (f"; not stored by this Rucio: {','.join(missing)}" if missing else "")
        return self.journal.advance(e, State.DESCRIBED, detail)

    def ensure_dataset(self, scope: str, dataset: str) -> None:
        """The dataset exists with the profile's replication rules (created once)."""
        if self.journal.dataset(scope, dataset)["rules_done"]:
            return
        self.catalog.ensure_dataset(scope, dataset, {})
        self.catalog.ensure_rules(scope, dataset, self.profile.replication.get("raw", []))
        self.journal.mark_dataset(scope, dataset, rules_done=1)

    def attach(self, e: Entry) -> Entry:
        """DESCRIBED → ATTACHED: in its run-period dataset, which is closed once it holds every run."""
        self.ensure_dataset(e.scope, e.dataset)
        try:
            self.catalog.attach(e.scope, e.dataset, e.name)
        except UnsupportedOperation as err:
            if not self.catalog.in_dataset(e.scope, e.dataset, e.name):
                raise Wait(f"dataset {e.scope}:{e.dataset} is closed, cannot attach: {err}", self.cfg.retry_max) \
                    from None
        self._close_if_full(e.scope, e.dataset, [e])
        return self.journal.advance(e, State.ATTACHED, f"in {e.scope}:{e.dataset}")

    def check_safe(self, e: Entry) -> Entry:
        """ATTACHED → SAFE: tape copy archived and one disk replica's bytes verified."""
        verdict = self.safety.check(e.scope, e.name, sums_of(e))
        if not verdict.safe:
            raise Wait(verdict.reason, self.cfg.safety_poll)
        return self.journal.advance(e, State.SAFE, verdict.reason)

    def delete_local(self, e: Entry) -> Entry:
        """SAFE → DELETED: remove the local file (and its sidecar) unless told to keep it."""
        if not self.cfg.delete_local:
            raise Wait("safe; local deletion is disabled (--keep-local)", 10 * self.cfg.safety_poll)
        path = Path(e.path)
        if path.exists():
            self._local_unchanged(e)
            path.unlink()
            sidecar_path(path).unlink(missing_ok=True)
            log.info("%s local file %s deleted (safe)", e.did, path)
        return self.journal.advance(e, State.DELETED, "local copy deleted")

    # -- batches: the same steps for many files, one Rucio call per kind instead of one per file ---------------
    def run_batch(self, entries: list[Entry]) -> list[Entry]:
        """UPLOADED → REGISTERED → DESCRIBED → ATTACHED for many files with Rucio's bulk calls; return them moved.

        Each file takes the steps in the order of the one-file steps, and its journal state moves only after the
        call that did its step returned: after a crash the call is repeated and finds its work done. A batch that
        Rucio refuses (a conflict, a closed dataset, a refused metadata key) is done again file by file, so each
        file gets its own verdict; a batch that cannot reach Rucio waits like a single step.
        """
        current = {e.path: e for e in entries}
        for state, bulk in ((State.UPLOADED, self.register_many), (State.REGISTERED, self.describe_many),
                            (State.DESCRIBED, self.attach_many)):
            group = [e for e in current.values() if e.state == state]
            if not group:
                continue
            try:
                moved = bulk(group)
            except TRANSIENT as err:
                for e in group:
                    self.journal.postpone(e, f"retrying: {type(err).__name__}: {err}", self.cfg.backoff(e.attempts),
                                          failure=True)
                    current.pop(e.path)
                log.warning("%d files in %s wait for Rucio: %s", len(group), state, err)
                continue
            except Exception as err:
                log.info("bulk %s of %d files refused (%s: %s); one by one", state, len(group), type(err).__name__,
                         str(err).strip().splitlines()[-1] if str(err).strip() else "")
                moved = [m for e in group if (m := self.step(e)) is not None]
            for e in group:
                current.pop(e.path)
            for m in moved:
                current[m.path] = m
        return list(current.values())

    def precheck(self, entries: list[Entry]) -> None:
        """Ask Rucio in bulk which of these files' DIDs it does not have yet: their upload skips the one-file check.

        The ones it has are checked file by file before their upload (same content, or quarantine).
        """
        absent = set()
        for scope in {e.scope for e in entries}:
            names = [e.name for e in entries if e.scope == scope]
            for first in range(0, len(names), 500):
                chunk = names[first:first + 500]
                have = self.catalog.dids_registered(scope, chunk)
                absent.update((scope, n) for n in chunk if n not in have)
        self._absent = absent  # only as fresh as this pass

    def without_tape_copy(self, entries: list[Entry]) -> list[Entry]:
        """Postpone (in bulk: one replica listing) the ATTACHED files with no AVAILABLE tape replica; return the rest.

        Without a tape replica the cleanup rule cannot be met, so the one-file safety check is not worth asking.
        """
        rest = []
        tapes = "|".join(sorted(n for n, r in self.profile.rses.items() if r.kind == "tape")) or None
        for scope in {e.scope for e in entries}:
            files = [e for e in entries if e.scope == scope]
            known = self.catalog.files_known(scope, [e.name for e in files], tapes)  # no PFNs of disk copies
            for e in files:
                states = (known.get(e.name) or {}).get("states", {})
                if any(str(st) == "AVAILABLE" and self.catalog.is_tape(rse) for rse, st in states.items()):
                    rest.append(e)
                else:
                    self.journal.postpone(e, "waiting for tape archive: no AVAILABLE replica on a tape RSE yet",
                                          self.cfg.safety_poll)
        return rest

    def register_many(self, group: list[Entry]) -> list[Entry]:
        """register() for many files: replicas in one call, landing rules in one call."""
        unchecked = [e for e in group if e.path not in self._verified]
        with ThreadPoolExecutor(max(1, self.cfg.workers), thread_name_prefix="stat") as pool:
            stats = dict(zip([e.path for e in unchecked], pool.map(
                lambda e: self.stores.for_pfn(e.rse, e.pfn).stat(e.pfn), unchecked), strict=True))
        moved, ready = [], []
        for e in group:
            stored = stats.get(e.path, True)
            if stored is None or (stored is not True and stored.size != e.size):
                moved.append(self.journal.rewind(e, State.SCANNED, f"no bytes at {e.pfn}: upload again"))
            else:
                ready.append(e)
        by_target: dict[tuple[str, str], list[Entry]] = {}
        for e in ready:
            by_target.setdefault((e.scope, e.rse or ""), []).append(e)
        for (scope, rse), files in by_target.items():
            known = self.catalog.files_known(scope, [e.name for e in files])
            single = [e for e in files if e.name in known]  # a replica exists somewhere: checked file by file
            new = [e for e in files if e.name not in known]
            if new:
                try:
                    self.catalog.add_replicas_bulk(rse, [(e.scope, e.name, sums_of(e), e.pfn) for e in new])
                except RucioException as err:  # e.g. a DID of that name without replicas: each file says
                    log.info("bulk registration of %d files refused (%s); one by one", len(new), type(err).__name__)
                    single, new = single + new, []
            if new and self.file_rules_needed(rse):
                try:
                    self.catalog.add_file_rules(scope, [e.name for e in new], rse, self.cfg.landing_lifetime)
                except DuplicateRule:  # another uploader was quicker for some: each file checks its own
                    for e in new:
                        self.catalog.ensure_file_rule(e.scope, e.name, rse, self.cfg.landing_lifetime)
            for e in new:
                self._verified.discard(e.path)
                moved.append(self.journal.advance(e, State.REGISTERED, f"replica on {rse} (bulk)"))
            moved += [m for e in single if (m := self.step(e)) is not None]
        return moved

    def describe_many(self, group: list[Entry]) -> list[Entry]:
        """describe() for many files: one metadata call per scope."""
        moved = []
        for scope in {e.scope for e in group}:
            files = [e for e in group if e.scope == scope]
            self.catalog.set_meta_many(scope, {e.name: e.meta for e in files})
            moved += [self.journal.advance(e, State.DESCRIBED, f"{len(e.meta)} keys (bulk)") for e in files]
        return moved

    def attach_many(self, group: list[Entry]) -> list[Entry]:
        """attach() for many files: one attachment call per dataset, then the dataset closed once full."""
        moved = []
        for scope, dataset in {(e.scope, e.dataset) for e in group}:
            files = [e for e in group if (e.scope, e.dataset) == (scope, dataset)]
            self.ensure_dataset(scope, dataset)
            self.catalog.attach_many(scope, dataset, [e.name for e in files])
            self._close_if_full(scope, dataset, files)
            moved += [self.journal.advance(e, State.ATTACHED, f"in {scope}:{dataset} (bulk)") for e in files]
        return moved

    def _close_if_full(self, scope: str, dataset: str, attached: list[Entry]) -> None:
        """Close the run-period dataset once it holds every run (checked when its last run or count arrives)."""
        if self.profile.naming.dataset is not None:  # datasets by name fields (e.g. a day) stay open
            return
        per = self.profile.naming.runs_per_dataset
        last = any(e.run == e.run - e.run % per + per - 1 for e in attached)
        if (last or self.journal.attached_in(scope, dataset) + len(attached) >= per) \
                and self.catalog.dataset_files(scope, dataset) >= per:
            try:
                if self.catalog.dataset_open(scope, dataset):
                    self.catalog.close(scope, dataset)
                self.journal.mark_dataset(scope, dataset, closed=1)
            except RucioException as err:
                log.warning("%s:%s could not close the full dataset: %s", scope, dataset, err)

    # -- reconciliation ------------------------------------------------------------------------
    def reconcile(self, entry: Entry) -> Entry:
        """Check what the journal claims against Rucio and the storage; rewind to the first undone step."""
        e = entry
        if e.state in (State.SEEN, State.SCANNED, State.DELETED, State.QUARANTINED):
            return e
        if e.rse and e.pfn:
            stored = self.stores.for_pfn(e.rse, e.pfn).stat(e.pfn)
            if stored is None:
                log.error("%s: journal says %s but %s has no bytes", e.did, e.state, e.pfn)
                return self.journal.rewind(e, State.SCANNED, f"no bytes at {e.pfn}")
        if e.state in (State.REGISTERED, State.DESCRIBED, State.ATTACHED, State.SAFE):
            reps = {r.rse: r.state for r in self.catalog.replicas(e.scope, e.name)}
            if reps.get(e.rse or "") is None:
                return self.journal.rewind(e, State.UPLOADED, f"no replica of {e.did} on {e.rse} in Rucio")
        if e.state in (State.ATTACHED, State.SAFE) and not self.catalog.in_dataset(e.scope, e.dataset, e.name):
            return self.journal.rewind(e, State.DESCRIBED, f"{e.did} not in {e.dataset}")
        return e
