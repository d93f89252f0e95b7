"""Where the uploader's time goes: one big and one small run file through every state, each call timed.

Runs the real pipeline in-process against a running testbed and prints, per file and per state, the wall time of
the step and of what it spent it on: the checksum pass, each storage call (HEAD, PUT/multipart, read-back) and
each Rucio client call. The verification of the SAFE step (the disk copy's bytes) is timed on its own, because
the tape archive is not waited for here.

    python benchmarks/ingest_profile.py --state <testbed state> [--big-mb 200] [--small-mb 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ingest_bench import DAQ, make_files  # noqa: E402
from testbed.stack import DEFAULT_STATE, Testbed  # noqa: E402


class Timings:
    """Seconds and call counts per label, for the step now running."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def add(self, label: str, seconds: float) -> None:
        with self.lock:
            self.spent[label] += seconds
            self.calls[label] += 1

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, time.perf_counter() - t0)
        return timed


T = Timings()


@contextmanager
def instrumented(pipeline: Any) -> Iterator[None]:
    """Time every Rucio client call, storage call and the checksum pass of this pipeline."""
    from cygno_dm.ingest import pipeline as pipeline_module
    from cygno_dm.ingest.catalog import Catalog

    original_call = Catalog._call

    def call(self: Catalog, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return T.wrap(f"rucio {getattr(fn, '__name__', fn)}", lambda: original_call(self, what, fn, *args, **kwargs))()

    Catalog._call = call  # type: ignore[method-assign]
    original_scan = pipeline_module.scan
    pipeline_module.scan = T.wrap("checksum pass (adler32+md5+crc32c+gzip check)", original_scan)
    original_for_pfn = pipeline.stores.for_pfn
    wrapped: set[int] = set()

    def for_pfn(rse: str, pfn: str) -> Any:
        store = original_for_pfn(rse, pfn)
        if id(store) not in wrapped:
            wrapped.add(id(store))
            for name in ("stat", "put", "adler32", "verify"):  # put and verify include the stat they call
                if hasattr(store, name):
                    setattr(store, name, T.wrap(f"storage {name}", getattr(store, name)))
        return store

    pipeline.stores.for_pfn = for_pfn
    try:
        yield
    finally:
        Catalog._call = original_call  # type: ignore[method-assign]
        pipeline_module.scan = original_scan


def profile_file(pipeline: Any, ingestor: Any, path: Path) -> list[tuple[str, float, dict[str, float], dict[str, int]]]:
    """Drive one file from SEEN to ATTACHED step by step, then time the disk verification of the SAFE step."""
    from cygno_dm.ingest.pipeline import sums_of
    from cygno_dm.ingest.states import State

    ingestor.discover()
    entry = pipeline.journal.get(str(path))
    rows = []
    while entry is not None and entry.state not in (State.ATTACHED, State.QUARANTINED):
        T.reset()
        t0 = time.perf_counter()
        moved = pipeline.step(entry)
        rows.append((f"{entry.state} -> {moved.state if moved else 'waits'}", time.perf_counter() - t0,
                     dict(T.spent), dict(T.calls)))
        if moved is None:
            raise SystemExit(f"{entry.did} stopped in {entry.state}: {pipeline.journal.get(str(path))}")
        entry = moved
    T.reset()
    t0 = time.perf_counter()
    replicas = pipeline.catalog.replicas(entry.scope, entry.name)
    disk, why = pipeline.safety.disk_verified(entry.scope, entry.name, sums_of(entry), replicas)
    rows.append((f"SAFE check: disk copy on {disk}: {why}" if disk else f"SAFE check failed: {why}", time.perf_counter() - t0, dict(T.spent),
                 dict(T.calls)))
    return rows


def profile_batch(pipeline: Any, ingestor: Any) -> list[tuple[str, float, dict[str, float], dict[str, int]]]:
    """One pass of the daemon over many files: the upload phase, the batched Rucio phase, the safety phase."""
    rows = []
    ingestor.discover()
    phases = (("upload phase: uploads in parallel, a batch registered every 50", ingestor.upload_phase),
              ("batched phase: the last uploaded files, bulk Rucio calls", ingestor._batches),
              ("safety phase: ATTACHED -> (waits for tape)", ingestor.safety_phase))
    for label, phase in phases:
        T.reset()
        t0 = time.perf_counter()
        phase()
        rows.append((label, time.perf_counter() - t0, dict(T.spent), dict(T.calls)))
    return rows


def report(label: str, size: int, rows: list[tuple[str, float, dict[str, float], dict[str, int]]]) -> None:
    total = sum(r[1] for r in rows)
    print(f"\n{label}: {size / 1e6:.1f} MB, {total:.3f} s through every state ({size / 1e6 / total:.1f} MB/s)")
    for step, seconds, spent, calls in rows:
        print(f"  {step:<60} {seconds * 1000:9.1f} ms")
        for what, s in sorted(spent.items(), key=lambda kv: -kv[1]):
            print(f"      {what:<56} {s * 1000:9.1f} ms  ({calls[what]} call{'s' if calls[what] > 1 else ''})")
        other = seconds - sum(v for k, v in spent.items() if k != "storage stat" or "storage verify" not in spent)
        print(f"      {'journal + own code':<56} {other * 1000:9.1f} ms")


def main() -> int:
    """Parse flags, build the uploader as `cygno-dm ingest run` does, profile one big and one small file."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state directory of a running testbed")
    ap.add_argument("--rse", default="CNAF_USERDISK")
    ap.add_argument("--big-mb", type=float, default=200)
    ap.add_argument("--small-mb", type=float, default=1)
    ap.add_argument("--batch", type=int, default=200, help="small files for the one-pass profile")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--first-run", type=int, default=int(time.time()) % 10**7 * 10 + 7)
    args = ap.parse_args()
    tb = Testbed(args.state)
    os.environ.update(tb.env(DAQ))
    from cygno_dm.cli import main as _  # noqa: F401  (logging set-up as the CLI does)
    from cygno_dm.ingest.catalog import Catalog
    from cygno_dm.ingest.cli import rucio_client_factory
    from cygno_dm.ingest.config import IngestConfig
    from cygno_dm.ingest.discovery import WatchDir
    from cygno_dm.ingest.journal import Journal
    from cygno_dm.ingest.pipeline import Pipeline
    from cygno_dm.ingest.runner import Ingestor
    from cygno_dm.profile import load_profile

    profile = load_profile(None)
    with tempfile.TemporaryDirectory(prefix="ingest-profile-") as tmp:
        work = Path(tmp)
        for label, mb, run in (("big", args.big_mb, args.first_run), ("small", args.small_mb, args.first_run + 1)):
            files = make_files(work / label, "LNF", run, 1, mb)
            cfg = IngestConfig(watch=[WatchDir.parse(str(work / label))], rse=args.rse, scope=profile.scopes.raw[0],
                               account=DAQ, journal=work / f"{label}.sqlite", settle=0, safety_poll=3600,
                               delete_local=False)
            pipeline = Pipeline(profile, cfg, Journal(cfg.journal), Catalog(rucio_client_factory(DAQ), DAQ))
            with instrumented(pipeline):
                pipeline.catalog.rse_info(args.rse)  # RSE settings are cached once per process: not per file
                rows = profile_file(pipeline, Ingestor(pipeline), files[0])
            report(label, files[0].stat().st_size, rows)
        if args.batch:
            files = make_files(work / "batch", "LNF", args.first_run + 2, args.batch, args.small_mb)
            cfg = IngestConfig(watch=[WatchDir.parse(str(work / "batch"))], rse=args.rse,
                               scope=profile.scopes.raw[0], account=DAQ, journal=work / "batch.sqlite", settle=0,
                               safety_poll=3600, delete_local=False, workers=args.workers)
            pipeline = Pipeline(profile, cfg, Journal(cfg.journal), Catalog(rucio_client_factory(DAQ), DAQ))
            with instrumented(pipeline):
                rows = profile_batch(pipeline, Ingestor(pipeline))
            report(f"one pass over {args.batch} small files, {args.workers} workers (call times summed over threads)",
                   sum(f.stat().st_size for f in files), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
