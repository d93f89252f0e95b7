"""The lifecycle daemon: reconcile with Rucio at start and every `interval` seconds, react to Hermes hints within
seconds, recall runs only on tape through the campaign's staging window, submit ready runs (pedestal runs first) to
an executor, record every outcome in the store, and release the staging of finished runs."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from cygno_dm.ingest.catalog import CatalogUnavailable
from cygno_dm.processing.errors import ProcessingError, Unavailable
from cygno_dm.processing.pipeline import Processor
from lifecycle import metrics
from lifecycle.executors import WorkerDied
from lifecycle.jobs import JobSpec
from lifecycle.reconcile import Reconciler
from lifecycle.store import FAILED, PENDING, STATES, Store

log = logging.getLogger(__name__)


@dataclass
class Options:
    """How the daemon behaves."""

    campaign: str
    job: JobSpec  # template: did and kind are filled per run
    interval: float = 60.0  # seconds between full reconciliations
    max_attempts: int = 3
    max_in_flight: int = 2
    filter_: str | None = None  # only raw runs whose metadata match (as `rucio did list --filter`)
    staging_window: int = 5  # runs only on tape staged at once (0: they wait for a disk replica)
    staging_bytes: int | None = None  # and bytes staged at once
    lease: float = 60.0  # seconds a row stays ours without renewal (a dead daemon's rows come back after it)
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")


class Daemon:
    """One daemon process working on one campaign."""

    def __init__(self, proc: Processor, store: Store, executor: Any, options: Options) -> None:
        self.store, self.executor, self.opt = store, executor, options
        self.rec = Reconciler(proc, store, options.campaign, options.filter_)
        self.hints: queue.Queue[tuple[str, str]] = queue.Queue()
        self.in_flight: dict[str, Any] = {}
        self.stop = threading.Event()
        self.rucio_error: str | None = None
        self._last_full = 0.0
        store.set_window(options.campaign, options.staging_window, options.staging_bytes)

    # -- one round --------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """Full pass: take back rows of dead daemons, discover new runs, check and submit pending ones."""
        for did in self.store.reclaim_expired(self.opt.campaign):
            log.warning("%s: its daemon died while it was in flight; it will be checked again", did)
        self._guarded(self.rec.release_finished)
        self._guarded(self.rec.discover_all)
        self._guarded(self.submit_ready)
        self._last_full = time.monotonic()

    def react(self, scope: str, name: str) -> None:
        """A hint about scope:name: record and check only the runs it concerns."""
        dids = self._guarded(lambda: self.rec.hinted(scope, name))
        if dids:
            log.info("hint %s:%s: checking %s", scope, name, ", ".join(dids))
            self._guarded(lambda: self.submit_ready(set(dids)))

    def submit_ready(self, only: set[str] | None = None) -> int:
        """Check pending runs (pedestal runs first) and submit the ready ones while job slots are free; with the
        executor full, go on only while the staging window has room (recalls run ahead of the jobs); how many."""
        submitted = 0
        for run in self.store.runs(self.opt.campaign, PENDING):
            full = len(self.in_flight) >= self.opt.max_in_flight
            if full and not self._staging_room():
                break
            if (only is not None and run.did not in only) or run.did in self.in_flight:
                continue
            try:
                ready = self.rec.check(run)
            except ProcessingError as err:
                if isinstance(err, Unavailable):
                    raise
                self.store.wait(run.did, self.opt.campaign, f"a valid run: {err}")
                continue
            if ready is None or full or not self.store.claim(run.did, self.opt.campaign, self.opt.owner, self.opt.lease):
                continue  # not ready, or another daemon took it
            spec = {**self.opt.job.to_dict(), "did": run.did, "kind": ready.kind}
            self.in_flight[run.did] = self.executor.submit(f"{run.did}-{self.opt.campaign}", spec)
            self.store.running(run.did, self.opt.campaign, self.opt.owner)
            log.info("%s: submitted (%s, attempt %d) -> %s", run.did, ready.kind, run.attempts + 1, ready.output_did)
            submitted += 1
        return submitted

    def _staging_room(self) -> bool:
        window = self.store.window(self.opt.campaign)
        return window is not None and window.used_runs < window.runs

    def collect(self) -> int:
        """Record the jobs that ended; how many."""
        ended = [did for did, fut in self.in_flight.items() if fut.done()]
        campaign, owner = self.opt.campaign, self.opt.owner
        for did in ended:
            fut = self.in_flight.pop(did)
            try:
                res = fut.result()
            except Unavailable as err:
                metrics.JOBS.labels("unavailable").inc()
                self.store.release(did, campaign, owner, f"Rucio or storage: {err}")
                log.warning("%s: waits, an outage stopped its job: %s", did, err)
                continue
            except Exception as err:  # the job's error (bad run, corrupt file), WorkerDied, KilledWorker
                outcome = "worker_died" if isinstance(err, WorkerDied) else "error"
                metrics.JOBS.labels(outcome).inc()
                state = self.store.attempt_failed(did, campaign, owner, str(err), self.opt.max_attempts)
                log.error("%s: attempt failed (%s): %s", did, "no retries left" if state == FAILED else "retried",
                          err)
                if state == FAILED:
                    self._guarded(partial(self.rec.release, did))
                continue
            metrics.JOBS.labels("done").inc()
            if self.store.done(did, campaign, res["output_did"], owner):
                row = self.store.get(did, campaign)
                metrics.LATENCY.observe(row.finished_at - row.seen_at)
            log.info("%s: done -> %s%s", did, res["output_did"], "" if res.get("registered") else
                     " (was already registered)")
            self._guarded(partial(self.rec.release, did))
        return len(ended)

    def _guarded(self, fn: Any) -> Any:
        try:
            out = fn()
        except (CatalogUnavailable, Unavailable) as err:
            if self.rucio_error is None:
                log.error("Rucio unavailable, waiting for it: %s", err)
            self.rucio_error = str(err)
            metrics.RUCIO_UP.set(0)
            metrics.PASSES.labels("rucio_unavailable").inc()
            return None
        if self.rucio_error is not None:
            log.info("Rucio answers again")
        self.rucio_error = None
        metrics.RUCIO_UP.set(1)
        return out

    def update_metrics(self) -> None:
        """Runs per state, queue depth, jobs in flight."""
        counts = self.store.counts(self.opt.campaign)
        for state in STATES:
            metrics.RUNS.labels(self.opt.campaign, state).set(counts[state])
        metrics.QUEUE.labels(self.opt.campaign).set(sum(counts[s] for s in PENDING))
        metrics.IN_FLIGHT.set(len(self.in_flight))
        window = self.store.window(self.opt.campaign)
        if window is not None:
            metrics.STAGING_RUNS.labels(self.opt.campaign).set(window.used_runs)
            metrics.STAGING_BYTES.labels(self.opt.campaign).set(window.used_bytes)
            metrics.STAGING_WINDOW.labels(self.opt.campaign).set(window.runs)

    # -- loops ------------------------------------------------------------------------------------
    def run(self, tick: float = 0.5) -> None:
        """Until stop is set: hints as they come, results as they end, a full reconciliation every interval."""
        self.reconcile()
        while not self.stop.is_set():
            self.store.renew(self.opt.owner, self.opt.lease)
            if self.collect():
                self._guarded(self.submit_ready)
            if time.monotonic() - self._last_full >= self.opt.interval:
                if self._cancelled():
                    break
                self.reconcile()
            self.update_metrics()
            try:
                scope, name = self.hints.get(timeout=tick)
            except queue.Empty:
                continue
            self.react(scope, name)

    def _cancelled(self) -> bool:
        camp = self.store.campaign(self.opt.campaign)
        if camp is not None and camp.state != "active":
            log.info("campaign %s is %s: stopping", self.opt.campaign, camp.state)
            self._guarded(partial(self.rec.release_finished, cancelled=True))
            return True
        return False

    def shutdown(self) -> None:
        """Hand back the runs still in flight (their jobs die with this process), uncounted, for the next start."""
        for did in list(self.in_flight):
            self.store.release(did, self.opt.campaign, self.opt.owner, "the daemon stopped during its job")
            self.in_flight.pop(did)

    def run_once(self, tick: float = 0.2) -> bool:
        """One reconciliation, then every ready run to its end (pedestal runs before the runs that wait for
        them); True if Rucio answered throughout."""
        self.reconcile()
        while self.in_flight and not self.stop.is_set():
            self.store.renew(self.opt.owner, self.opt.lease)
            if self.collect():
                self._guarded(self.submit_ready)
            time.sleep(tick)
        self.update_metrics()
        return self.rucio_error is None
