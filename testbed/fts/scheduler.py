"""The transfer scheduler: limits, priorities, worker pool, retries, staging, archiving and restart recovery."""

from __future__ import annotations

import errno
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import checksums, clock, states, urls
from .copier import Copier, CopyRequest
from .errors import TransferError
from .metrics import Metrics
from .store import Store
from .tape import ON_TAPE, TapeClient, TapeError, stage_token

log = logging.getLogger(__name__)

ON_TAPE_MESSAGE = "Destination file exists and is on tape"


@dataclass
class Limits:
    """Scheduling knobs."""

    max_active: int = 4
    max_per_link: int = 2
    retry_delay: float = 5.0
    max_retry_delay: float = 300.0
    restart_retries: int = 1
    transfer_timeout: int = 3600
    poll_interval: float = 0.2
    tape_poll_interval: float = 1.0


class Scheduler:
    """Moves files through SUBMITTED → (STAGING) → ACTIVE → (ARCHIVING) → terminal states."""

    def __init__(self, store: Store, copier: Copier, limits: Limits, tape: TapeClient | None = None,
                 metrics: Metrics | None = None):
        self.store = store
        self.copier = copier
        self.limits = limits
        self.tape = tape or TapeClient()
        self.metrics = metrics or Metrics()
        self._pool = ThreadPoolExecutor(max_workers=max(limits.max_active, 1), thread_name_prefix="fts-worker")
        self._running: dict[int, tuple[tuple[str, str], threading.Event]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_tape_poll = 0.0
        self.peak_active = 0
        self.peak_per_link: Counter[tuple[str, str]] = Counter()

    # ---- life cycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Recover interrupted work and start the scheduling thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="fts-scheduler", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop scheduling and interrupt running copies (they stay ACTIVE and are recovered at the next start)."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            for _, event in self._running.values():
                event.set()
        if self._thread is not None:
            self._thread.join(timeout=grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
        deadline = clock.epoch() + grace
        while self.running_count() and clock.epoch() < deadline:
            self._wake.wait(0.05)

    def running_count(self) -> int:
        """Number of copies in progress."""
        with self._lock:
            return len(self._running)

    def wake(self) -> None:
        """Look for work now (after a submission, cancel or priority change)."""
        self._wake.set()

    def recover(self) -> None:
        """Retry or fail transfers that were running when the service stopped; never leave them hanging."""
        for row in self.store.files_in_states([states.ACTIVE, states.STARTED, states.READY]):
            job = self.store.get_job(row["job_id"]) or {}
            removed = False
            if row["dest_written"]:
                removed = self.copier.remove_destination(row["dest_surl"], timeout=30)
            allowed = max(int(job.get("retry") or 0), self.limits.restart_retries)
            base = "TRANSFER [4] Transfer interrupted: the transfer service restarted while it was ACTIVE"
            if removed:
                base += " (partial destination removed)"
            if row["retry"] < allowed:
                self.store.record_retry(row["file_id"], row["retry"] + 1, base)
                self.store.update_file(row["file_id"], expect=[row["file_state"]], file_state=states.SUBMITTED,
                                       retry=row["retry"] + 1, next_try=0, reason=base + "; retrying",
                                       start_time=None, dest_written=0)
                log.info("recovered file %s of job %s: resubmitted", row["file_id"], row["job_id"])
            else:
                self.store.update_file(row["file_id"], expect=[row["file_state"]], file_state=states.FAILED,
                                       reason=base + "; no retries left", finish_time=clock.now_str(),
                                       dest_written=0)
                log.info("recovered file %s of job %s: failed (no retries left)", row["file_id"], row["job_id"])

    # ---- main loop -----------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._expire_queued()
                self._dispatch()
                now = clock.epoch()
                if now - self._last_tape_poll >= self.limits.tape_poll_interval:
                    self._last_tape_poll = now
                    self._stage_step()
                    self._archive_step()
            except Exception:
                log.exception("scheduler pass failed")
            self._wake.wait(self.limits.poll_interval)
            self._wake.clear()

    def _expire_queued(self) -> None:
        for row in self.store.expired_in_queue(clock.epoch()):
            self.store.update_file(row["file_id"], expect=[states.SUBMITTED], file_state=states.FAILED,
                                   finish_time=clock.now_str(),
                                   reason=f"Job expired: it stayed queued longer than max_time_in_queue "
                                          f"({row['max_time_in_queue']} s)")

    def _dispatch(self) -> None:
        now = clock.epoch()
        with self._lock:
            active = len(self._running)
            per_link = Counter(link for link, _ in self._running.values())
        if active >= self.limits.max_active:
            return
        for row in self.store.dispatch_candidates():
            if active >= self.limits.max_active:
                break
            if row["next_try"] > now:
                continue
            link = (urls.host_of(row["source_surl"]), urls.host_of(row["dest_surl"]))
            if per_link[link] >= self.limits.max_per_link:
                continue
            claimed = self.store.update_file(row["file_id"], expect=[states.SUBMITTED], file_state=states.ACTIVE,
                                             start_time=clock.now_str(), finish_time=None, phase_epoch=now)
            if not claimed:
                continue
            cancel = threading.Event()
            with self._lock:
                self._running[row["file_id"]] = (link, cancel)
                self.peak_active = max(self.peak_active, len(self._running))
                per_link[link] += 1
                self.peak_per_link[link] = max(self.peak_per_link[link], per_link[link])
            active += 1
            self.metrics.active.set(active)
            self._pool.submit(self._run, row["file_id"], cancel)

    # ---- one transfer --------------------------------------------------------------------------------

    def _run(self, file_id: int, cancel: threading.Event) -> None:
        try:
            row = self.store.get_file(file_id)
            job = self.store.get_job(row["job_id"]) if row else None
            if row is None or job is None:
                return
            self._transfer(row, job, cancel)
        except Exception as exc:
            log.exception("transfer of file %s crashed", file_id)
            self.store.update_file(file_id, expect=[states.ACTIVE], file_state=states.FAILED,
                                   finish_time=clock.now_str(), reason=f"TRANSFER [5] internal error: {exc}")
        finally:
            with self._lock:
                self._running.pop(file_id, None)
                self.metrics.active.set(len(self._running))
            self.wake()

    def _transfer(self, row: dict[str, Any], job: dict[str, Any], cancel: threading.Event) -> None:
        file_id = row["file_id"]
        params = job.get("params") or {}
        overwrite = bool(job["overwrite"])
        if not overwrite and params.get("overwrite_hop") and not self._last_hop(row, job):
            overwrite = True  # intermediate hops of a multihop job may be overwritten
        if not overwrite and params.get("overwrite_when_only_on_disk"):
            overwrite = self._only_on_disk(row["dest_surl"], row.get("dest_token"))
        req = CopyRequest(source=row["source_surl"], dest=row["dest_surl"], filesize=row["filesize"],
                          checksum=row["checksum"], verify=job["verify_checksum"] or "none", overwrite=overwrite,
                          timeout=self.limits.transfer_timeout, cancel=cancel,
                          source_token=row.get("source_token"), dest_token=row.get("dest_token"))
        tokens = [side for side, t in (("source", req.source_token), ("destination", req.dest_token)) if t]
        log.info("file %s of job %s: %s -> %s started (%s)", file_id, job["job_id"], req.source, req.dest,
                 f"bearer tokens for: {', '.join(tokens)}" if tokens else "service certificate")
        try:
            result = self.copier.copy(req, on_started=lambda: self.store.update_file(file_id, dest_written=1))
        except TransferError as err:
            self._failed(row, job, err)
            return
        now = clock.now_str()
        common = {"transferred": result.size, "tx_duration": round(result.duration, 3),
                  "throughput": round(result.size / max(result.duration, 1e-6) / 1048576, 3), "dest_written": 0}
        self.metrics.bytes.inc(result.size)
        if (job["archive_timeout"] or 0) > 0 and self._last_hop(row, job):
            ok = self.store.update_file(file_id, expect=[states.ACTIVE], file_state=states.ARCHIVING,
                                        archive_start_time=now, phase_epoch=clock.epoch(), **common)
            log.info("file %s of job %s: copied %d bytes, archiving", file_id, job["job_id"], result.size)
        else:
            ok = self.store.update_file(file_id, expect=[states.ACTIVE], file_state=states.FINISHED,
                                        finish_time=now, reason="", **common)
            log.info("file %s of job %s: FINISHED (%d bytes, %s)", file_id, job["job_id"], result.size,
                     result.checksums)
            self.metrics.files.labels(state=states.FINISHED).inc()
        if not ok:
            log.info("file %s of job %s was canceled while copying", file_id, job["job_id"])

    def _only_on_disk(self, dest: str, token: str | None) -> bool:
        """Whether an existing tape destination is still only in the disk buffer (may be overwritten)."""
        try:
            info = self.tape.archive_info([dest], token).get(urls.path_of(dest), {})
        except TapeError:
            return False
        return info.get("locality") == "DISK"

    def _last_hop(self, row: dict[str, Any], job: dict[str, Any]) -> bool:
        if job["job_type"] != states.JOB_TYPE_MULTI_HOP:
            return True
        return row["file_index"] == self.store.last_file_index(row["job_id"])

    def _failed(self, row: dict[str, Any], job: dict[str, Any], err: TransferError) -> None:
        file_id = row["file_id"]
        current = self.store.get_file(file_id)
        if current is None or current["file_state"] != states.ACTIVE:
            log.info("file %s of job %s stopped: %s", file_id, job["job_id"], err.reason)
            return
        if self._stop.is_set():
            log.info("file %s of job %s interrupted by shutdown; left ACTIVE for recovery", file_id, job["job_id"])
            return
        reason = err.reason
        extra: dict[str, Any] = {}
        if err.code == errno.EEXIST:
            report = self._dst_file_report(row, job)
            if report is not None:
                if report.get("file_on_tape"):
                    reason = f"DESTINATION [{errno.EEXIST}] {ON_TAPE_MESSAGE}"
                if (job.get("params") or {}).get("dst_file_report"):
                    extra["file_metadata"] = {**(row["file_metadata"] or {}), "dst_file": report}
                    extra["dst_file"] = report
        if err.retryable and row["retry"] < int(job["retry"] or 0):
            attempt = row["retry"] + 1
            base = float(job["retry_delay"] or 0) or self.limits.retry_delay
            delay = min(base * 2 ** (attempt - 1), self.limits.max_retry_delay)
            self.store.record_retry(file_id, attempt, reason)
            self.store.update_file(file_id, expect=[states.ACTIVE], file_state=states.SUBMITTED, retry=attempt,
                                   next_try=clock.epoch() + delay, reason=reason, dest_written=0)
            log.info("file %s of job %s: attempt %d failed (%s); retry in %.1f s", file_id, job["job_id"],
                     attempt, reason, delay)
            return
        self.store.update_file(file_id, expect=[states.ACTIVE], file_state=states.FAILED,
                               finish_time=clock.now_str(), reason=reason, dest_written=0, **extra)
        self.metrics.files.labels(state=states.FAILED).inc()
        log.info("file %s of job %s: FAILED: %s", file_id, job["job_id"], reason)

    def _dst_file_report(self, row: dict[str, Any], job: dict[str, Any]) -> dict[str, Any] | None:
        alg, _ = checksums.split(row["checksum"])
        report = self.copier.stat_destination(row["dest_surl"], alg or "ADLER32")
        if report is None:
            return None
        if (job["archive_timeout"] or 0) > 0:
            try:
                info = self.tape.archive_info([row["dest_surl"]], row.get("dest_token")).get(
                    urls.path_of(row["dest_surl"]), {})
                report["file_on_tape"] = info.get("locality") in ON_TAPE
            except TapeError:
                pass
        return report

    # ---- cancel / priority ---------------------------------------------------------------------------

    def cancel(self, job_id: str, file_ids: list[int] | None = None) -> list[int]:
        """Cancel a job's live files (all, or `file_ids`); running copies are interrupted."""
        staging = [f for f in self.store.get_files(job_id)
                   if f["file_state"] == states.STAGING and f["staging_request"]
                   and (file_ids is None or f["file_id"] in file_ids)]
        canceled = self.store.cancel(job_id, file_ids)
        with self._lock:
            for fid in canceled:
                if fid in self._running:
                    self._running[fid][1].set()
        for f in staging:
            req = f["staging_request"]
            try:
                self.tape.cancel_stage(f["source_surl"], req["id"], [req["path"]], stage_token(f["source_token"]))
            except TapeError:
                pass
        self.wake()
        return canceled

    # ---- tape: staging -------------------------------------------------------------------------------

    def _stage_step(self) -> None:
        rows = self.store.files_in_states([states.STAGING])
        if not rows:
            return
        jobs = {r["job_id"]: self.store.get_job(r["job_id"]) for r in rows}
        new: dict[tuple[str, str], list[dict[str, Any]]] = {}
        polled: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            job = jobs[r["job_id"]]
            limit = int(job["bring_online"] or 0)
            started = r["phase_epoch"] or job["submit_epoch"]
            if limit > 0 and clock.epoch() - started > limit:
                self._stage_failed(r, f"STAGING [{errno.ETIMEDOUT}] bring-online timeout of {limit} s exceeded")
                if r["staging_request"]:
                    try:
                        self.tape.cancel_stage(r["source_surl"], r["staging_request"]["id"],
                                               [r["staging_request"]["path"]], stage_token(r["source_token"]))
                    except TapeError:
                        pass
                continue
            if r["staging_request"]:
                polled.setdefault(r["staging_request"]["id"], []).append(r)
            else:  # one stage request per job, endpoint and credential
                new.setdefault((r["job_id"], urls.http_base(r["source_surl"]), stage_token(r["source_token"])),
                               []).append(r)
        for group in new.values():
            self._stage_submit(group, jobs[group[0]["job_id"]])
        for request_id, group in polled.items():
            self._stage_poll(request_id, group)

    def _stage_submit(self, group: list[dict[str, Any]], job: dict[str, Any]) -> None:
        surls = [r["source_surl"] for r in group]
        meta = (group[0].get("staging_metadata") or {}).get("default") if group[0].get("staging_metadata") else None
        try:
            request_id = self.tape.stage(surls, job.get("copy_pin_lifetime"), meta, stage_token(group[0]["source_token"]))
        except TapeError as exc:
            if exc.refused:  # the same credential would be refused again: fail now, saying why
                for r in group:
                    self._stage_failed(r, f"STAGING [{errno.EACCES}] {exc}")
                return
            log.warning("stage request for job %s failed (will retry until bring-online timeout): %s",
                        job["job_id"], exc)
            for r in group:
                self.store.update_file(r["file_id"], expect=[states.STAGING], reason=f"STAGING {exc}")
            return
        now = clock.now_str()
        for r in group:
            self.store.update_file(r["file_id"], expect=[states.STAGING], staging_start=now, reason="",
                                   staging_request={"id": request_id, "path": urls.path_of(r["source_surl"])})

    def _stage_poll(self, request_id: str, group: list[dict[str, Any]]) -> None:
        try:
            status = self.tape.stage_status(group[0]["source_surl"], request_id, stage_token(group[0]["source_token"]))
        except TapeError as exc:
            log.warning("polling stage request %s failed: %s", request_id, exc)
            return
        for r in group:
            st = status.get(r["staging_request"]["path"])
            if st is None:
                continue
            if st.state == "COMPLETED":
                now = clock.now_str()
                if r["source_surl"] == r["dest_surl"]:
                    self.store.update_file(r["file_id"], expect=[states.STAGING], file_state=states.FINISHED,
                                           staging_finished=now, finish_time=now, reason="")
                else:
                    self.store.update_file(r["file_id"], expect=[states.STAGING], file_state=states.SUBMITTED,
                                           staging_finished=now, next_try=0)
                    self.wake()
                log.info("file %s of job %s staged (request %s)", r["file_id"], r["job_id"], request_id)
            elif st.state in ("FAILED", "CANCELLED"):
                self._stage_failed(r, f"STAGING [{errno.EIO}] {st.error or 'stage request ' + st.state.lower()}")

    def _stage_failed(self, row: dict[str, Any], reason: str) -> None:
        now = clock.now_str()
        self.store.update_file(row["file_id"], expect=[states.STAGING], file_state=states.FAILED,
                               staging_finished=now, finish_time=now, reason=reason)
        log.info("file %s of job %s: FAILED: %s", row["file_id"], row["job_id"], reason)

    # ---- tape: archiving -----------------------------------------------------------------------------

    def _archive_step(self) -> None:
        rows = self.store.files_in_states([states.ARCHIVING])
        groups: dict[tuple[str, str | None], list[dict[str, Any]]] = {}
        for r in rows:  # per endpoint and credential: each file's destination token, else the certificate
            groups.setdefault((urls.http_base(r["dest_surl"]), r["dest_token"]), []).append(r)
        for (_, token), group in groups.items():
            info: dict[str, dict[str, Any]] = {}
            error = None
            try:
                info = self.tape.archive_info([r["dest_surl"] for r in group], token)
            except TapeError as exc:
                error = str(exc)
            for r in group:
                job = self.store.get_job(r["job_id"]) or {}
                entry = info.get(urls.path_of(r["dest_surl"]), {})
                now = clock.now_str()
                if entry.get("locality") in ON_TAPE:
                    self.store.update_file(r["file_id"], expect=[states.ARCHIVING], file_state=states.FINISHED,
                                           archive_finish_time=now, finish_time=now, reason="")
                    self.metrics.files.labels(state=states.FINISHED).inc()
                    log.info("file %s of job %s archived: FINISHED", r["file_id"], r["job_id"])
                    continue
                limit = int(job.get("archive_timeout") or 0)
                if clock.epoch() - (r["phase_epoch"] or 0) > limit:
                    last = entry.get("error") or error or f"locality {entry.get('locality')}"
                    self.store.update_file(r["file_id"], expect=[states.ARCHIVING], file_state=states.FAILED,
                                           archive_finish_time=now, finish_time=now,
                                           reason=f"ARCHIVING [{errno.ETIMEDOUT}] archive timeout of {limit} s "
                                                  f"exceeded ({last})")
                    self.metrics.files.labels(state=states.FAILED).inc()
                    log.info("file %s of job %s: archiving timed out", r["file_id"], r["job_id"])
