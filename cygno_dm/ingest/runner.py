"""The uploader daemon: reconcile on start, then discover and drive files until stopped, without busy looping."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from cygno_dm.ingest import metrics
from cygno_dm.ingest.discovery import Refused, find
from cygno_dm.ingest.journal import Entry, JournalError
from cygno_dm.ingest.locks import FileLock
from cygno_dm.ingest.naming import dataset_name
from cygno_dm.ingest.pipeline import TRANSIENT, Pipeline
from cygno_dm.ingest.states import TERMINAL, State, index

log = logging.getLogger(__name__)

#: states whose steps are done for many files at once with Rucio's bulk calls, and the largest batch
BATCHED = frozenset({State.UPLOADED, State.REGISTERED, State.DESCRIBED})
BATCH = 500
REGISTER_EVERY = 50  # uploads between two registration batches while the uploads go on


class Ingestor:
    """Discovery + journal + pipeline + locks, in passes."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline
        self.cfg = pipeline.cfg
        self.journal = pipeline.journal
        self.stop = threading.Event()

    def discover(self) -> int:
        """Journal every new run file in the watched directories; return how many were new.

        A file whose name breaks the naming rule is reported (log, `ingest status`) and left in place; a new
        file at the path of a run already ingested and deleted (a re-used run number) is taken up again, and
        quarantined if its content differs from the registered run.
        """
        new = 0
        refused: set[str] = set()
        for found in find(self.p.profile, self.cfg.watch):
            path = str(found.path)
            if isinstance(found, Refused):
                refused.add(path)
                if self.journal.refuse(path, found.reason, found.size, found.mtime):
                    log.error("%s refused, left in place: %s", path, found.reason)
                continue
            known = self.journal.get(path)
            if known is not None and known.state == State.DELETED:
                self.journal.reopen(known, "a new file appeared at the path of a deleted run")
                log.warning("%s: a new file at %s, whose run was ingested and deleted: checking it", known.did, path)
                new += 1
            if known is not None:
                continue
            entry = Entry(path=path, scope=self.cfg.scope, name=found.run.name,
                          dataset=dataset_name(self.p.profile, found.run), run=found.run.run, state=State.SEEN)
            try:
                self.journal.add(entry)
                new += 1
                log.info("%s discovered at %s", entry.did, path)
            except JournalError as err:
                entry.state = State.QUARANTINED
                self.journal.add(entry)
                self.p.quarantine(entry, f"same name as another local file: {err}")
        self.journal.forget_refused(refused)
        return new

    def _work(self, entry: Entry, reconcile: bool = False, until: State = State.DELETED) -> int:
        lock = FileLock(Path(entry.path))
        if not lock.acquire():
            log.info("%s is being worked on by %s; skipped", entry.did, lock.holder())
            return 0
        try:
            fresh = self.journal.get(entry.path)
            if fresh is None or fresh.state in TERMINAL:
                return 0
            if reconcile:
                try:
                    self.p.reconcile(fresh)
                except TRANSIENT as err:
                    log.warning("%s: cannot reconcile now: %s", fresh.did, err)
                except Exception:  # one broken entry must not stop the daemon: its steps retry later
                    log.exception("%s: reconciliation failed; its next step will check again", fresh.did)
                return 0
            if fresh.next_try > time.time():
                return 0
            before = index(fresh.state)
            after = self.p.run_entry(fresh, until)
            return index(after.state) - before if after.state != State.QUARANTINED else 1
        finally:
            lock.release()

    def _map(self, entries: list[Entry], reconcile: bool = False, until: State = State.DELETED) -> int:
        if not entries:
            return 0
        with ThreadPoolExecutor(max(1, self.cfg.workers), thread_name_prefix="ingest") as pool:
            return sum(pool.map(lambda e: self._work(e, reconcile, until), entries))

    def _batches(self) -> int:
        """Registration, metadata and attachment of every due file in batches (each file locked meanwhile)."""
        now = time.time()
        due = [e for e in self.journal.due() if e.state in BATCHED]
        moved = 0
        for first in range(0, len(due), BATCH):
            locks, fresh = [], []
            try:
                for e in due[first:first + BATCH]:
                    lock = FileLock(Path(e.path))
                    if not lock.acquire():
                        continue
                    locks.append(lock)
                    current = self.journal.get(e.path)
                    if current is not None and current.state in BATCHED and current.next_try <= now:
                        fresh.append(current)
                before = {e.path: index(e.state) for e in fresh}
                for after in self.p.run_batch(fresh):  # a rewind (bytes gone: upload again) counts as one step
                    moved += max(1, index(after.state) - before[after.path]) if index(after.state) != before[
                        after.path] else 0
            finally:
                for lock in locks:
                    lock.release()
        return moved

    def reconcile(self) -> None:
        """Check every live entry past SCANNED against Rucio and the storage (crash repair)."""
        live = [e for e in self.journal.entries() if e.state not in TERMINAL and index(e.state) > 1]
        self._map(live, reconcile=True)

    def pass_once(self) -> int:
        """Discover, upload every due file, register the uploaded ones in batches, then the safety steps.

        Returns the number of steps taken.
        """
        self.discover()
        moved = self.upload_phase() + self._batches() + self.safety_phase()
        self.update_metrics()
        return moved

    def upload_phase(self) -> int:
        """SEEN → SCANNED → UPLOADED for every due file, in parallel, after one bulk question to Rucio.

        Every REGISTER_EVERY finished uploads, the uploaded files are registered in a batch while the other uploads
        go on (Rucio's time hidden behind the storage's); each file is locked by whichever works on it.
        """
        uploads = [e for e in self.journal.due() if index(e.state) < index(State.UPLOADED)]
        if not uploads:
            return 0
        try:
            self.p.precheck(uploads)
        except Exception as err:  # noqa: BLE001  each upload asks Rucio itself then
            log.warning("cannot ask Rucio in bulk before uploading: %s: %s", type(err).__name__, err)
        moved = 0
        with ThreadPoolExecutor(max(1, self.cfg.workers), thread_name_prefix="ingest") as pool:
            futures = [pool.submit(self._work, e, False, State.UPLOADED) for e in uploads]
            for done, future in enumerate(as_completed(futures), 1):
                moved += future.result()
                if done % REGISTER_EVERY == 0 and done < len(futures):
                    moved += self._batches()
        return moved

    def safety_phase(self) -> int:
        """ATTACHED → SAFE → DELETED for every due file; those without a tape replica are postponed in bulk."""
        safety = [e for e in self.journal.due() if index(e.state) >= index(State.ATTACHED)]
        attached = [e for e in safety if e.state == State.ATTACHED]
        try:
            safety = [e for e in safety if e.state != State.ATTACHED] + self.p.without_tape_copy(attached)
        except Exception as err:  # noqa: BLE001  each file is checked on its own then
            log.warning("cannot list tape replicas in bulk: %s: %s", type(err).__name__, err)
        return self._map(safety)

    def run(self, once: bool = False, max_idle: float | None = None) -> None:
        """Reconcile, then pass until stopped; once=True: until no file can progress without outside change.

        In once mode, files waiting for a retry (Rucio, storage or run log down) are waited for, up to
        `max_idle` seconds without progress; files waiting for the DAQ or the tape archive end the run.
        """
        max_idle = self.cfg.once_max_idle if max_idle is None else max_idle
        self.reconcile()
        idle_since = time.monotonic()
        while not self.stop.is_set():
            moved = self.pass_once()
            if moved:
                idle_since = time.monotonic()
                continue
            retrying = [e for e in self.journal.due(time.time() + 10 * self.cfg.retry_max) if e.attempts > 0]
            if once and (not retrying or time.monotonic() - idle_since > max_idle):
                return
            nxt = self.journal.next_due()
            delay = self.cfg.poll if nxt is None else min(self.cfg.poll, max(0.2, nxt - time.time()))
            if once and retrying:
                delay = max(0.2, min(r.next_try for r in retrying) - time.time())
            self.stop.wait(delay)

    def update_metrics(self) -> None:
        """Backlog, oldest unsafe run and per-state counts."""
        now = time.time()
        entries = self.journal.entries()
        unsafe = [e for e in entries if e.state not in TERMINAL and index(e.state) < index(State.SAFE)]
        metrics.BACKLOG.set(len(unsafe))
        metrics.BACKLOG_BYTES.set(sum(e.size or 0 for e in unsafe if index(e.state) < index(State.UPLOADED)))
        metrics.OLDEST_UNSAFE.set(max((now - e.first_seen for e in unsafe), default=0))
        for state, n in self.journal.counts().items():
            metrics.BY_STATE.labels(state).set(n)
