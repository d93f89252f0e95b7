"""The background worker: migration to tape, eviction from the buffer, recalls for stage requests."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from testbed.tape import fsio
from testbed.tape.config import TapeConfig
from testbed.tape.locking import Election
from testbed.tape.namespace import Namespace
from testbed.tape.staging import Staging
from testbed.tape.store import FileRecord

log = logging.getLogger(__name__)


class Lifecycle:
    """Runs the tape system's work in one thread of one process (elected by a lock file)."""

    def __init__(self, config: TapeConfig, ns: Namespace, staging: Staging) -> None:
        self.config = config
        self.ns = ns
        self.staging = staging
        self.store = ns.store
        self.election = Election(config.root / "worker.lock")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.leader = False

    def start(self) -> None:
        """Start the worker thread (it works only while this process holds the election lock)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tape-lifecycle", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the worker thread and give up the leadership."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.election.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.leader and self.election.try_acquire():
                    self.leader = True
                    log.info("this process runs the tape lifecycle worker")
                    self.ns.reconcile()
                if self.leader:
                    self.step()
            except Exception:
                log.exception("tape lifecycle round failed")
            self._stop.wait(self.config.interval)

    def step(self) -> None:
        """Do one round of work: due migrations, recalls and evictions."""
        now = time.time()
        for rec in self.store.due_migrations(now - self.config.migrate_after):
            if self._stop.is_set():
                return
            self.migrate(rec)
        self.recall_due()
        now = time.time()
        for rec in self.store.due_evictions(now - self.config.evict_after, now):
            self.evict(rec)

    def migrate(self, rec: FileRecord) -> None:
        """Copy a file from the buffer to tape; it counts as on tape only once the copy is complete."""
        tmp = fsio.temp_path(self.config.tmp_dir, "migrate")
        try:
            digest = fsio.copy(self.ns.buffer_path(rec.path), tmp, self.config.tape_rate, self._stop)
        except FileNotFoundError:
            digest = None
        if digest is None or digest.adler32 != rec.adler32:
            if digest is not None:
                log.error("migration of %s read adler32 %s, expected %s", rec.path, digest.adler32, rec.adler32)
            tmp.unlink(missing_ok=True)
            return
        with self.ns.lock.held():
            cur = self.store.get_file(rec.path)
            if cur is None or cur.file_id != rec.file_id or cur.on_tape:
                tmp.unlink(missing_ok=True)
                return
            fsio.install(tmp, self.ns.tape_path(rec.path))
            with self.store.tx() as c:
                c.execute("UPDATE files SET on_tape = 1, archived_at = ? WHERE path = ? AND file_id = ?",
                          (time.time(), rec.path, rec.file_id))
        log.info("migrated %s to tape (%d bytes)", rec.path, rec.size)

    def evict(self, rec: FileRecord) -> None:
        """Remove the buffer copy of a file that is safely on tape and not pinned."""
        with self.ns.lock.held():
            cur = self.store.get_file(rec.path)
            if cur is None or cur.file_id != rec.file_id or not cur.on_tape or not cur.on_disk:
                return
            if not self.ns.tape_path(rec.path).is_file():
                log.error("not evicting %s: its tape copy is missing", rec.path)
                return
            with self.store.tx() as c:
                c.execute("UPDATE files SET on_disk = 0, disk_since = NULL WHERE path = ?", (rec.path,))
            fsio.remove(self.ns.buffer_path(rec.path))
        log.info("evicted %s from the disk buffer", rec.path)

    def recall_due(self) -> None:
        """Advance the pending stage entries: start recalls, finish those past the stage latency."""
        started: dict[str, float] = {}
        for entry in self.store.pending_stage_files():
            if entry.norm is None or entry.norm in started:
                continue
            started[entry.norm] = entry.started_at or 0.0
        for norm, started_at in started.items():
            if self._stop.is_set():
                return
            now = time.time()
            rec = self.store.get_file(norm)
            if rec is None:
                self.staging.finish(norm, now, "No such file or directory")
            elif rec.on_disk and self.ns.buffer_path(norm).is_file():
                self.staging.finish(norm, now)
            elif not (rec.on_tape and self.ns.tape_path(norm).is_file()):
                self.staging.finish(norm, now, "File is LOST: no copy on disk or tape")
            elif not started_at:
                self.staging.mark_started(norm, now)
            elif now >= started_at + self.config.stage_latency:
                self.recall(rec)

    def recall(self, rec: FileRecord) -> None:
        """Copy a file back from tape into the buffer and complete its stage entries."""
        tmp: Path = fsio.temp_path(self.config.tmp_dir, "recall")
        try:
            digest = fsio.copy(self.ns.tape_path(rec.path), tmp, self.config.tape_rate, self._stop)
        except FileNotFoundError:
            digest = None
        if digest is None or digest.adler32 != rec.adler32:
            tmp.unlink(missing_ok=True)
            if digest is not None:
                log.error("recall of %s read adler32 %s, expected %s", rec.path, digest.adler32, rec.adler32)
                self.staging.finish(rec.path, time.time(), "Tape copy is corrupted (checksum mismatch)")
            return
        with self.ns.lock.held():
            cur = self.store.get_file(rec.path)
            if cur is None or cur.file_id != rec.file_id:
                tmp.unlink(missing_ok=True)
                return
            if not cur.on_disk:
                fsio.install(tmp, self.ns.buffer_path(rec.path))
                now = time.time()
                with self.store.tx() as c:
                    c.execute("UPDATE files SET on_disk = 1, disk_since = ? WHERE path = ?", (now, rec.path))
            else:
                tmp.unlink(missing_ok=True)
        self.staging.finish(rec.path, time.time())
        log.info("recalled %s from tape into the disk buffer", rec.path)
