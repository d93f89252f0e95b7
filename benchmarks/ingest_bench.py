"""Benchmark: `cygno-dm ingest` against a loop of `rucio upload` over the same kind of files, same testbed.

Two file sets are generated per case (the DIDs must differ): one ingested by the uploader, one uploaded file
by file with the plain `rucio upload` CLI, as the DAQ scripts do today. Prints MB/s and files/s of both and
the ratios ingest/rucio. Real sizes: --big-count 20 --big-mb 500 --small-count 1000 --small-mb 1.

    python benchmarks/ingest_bench.py [--state .state/testbed] [--up]
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testbed.stack import DEFAULT_STATE, Testbed  # noqa: E402

SCOPE = "cygno-data"
DAQ = "rucio-daq"


def make_files(directory: Path, tag: str, first_run: int, count: int, mb: float) -> list[Path]:
    """`count` gzip run files of about `mb` MB each (incompressible payload, gzip level 1)."""
    out = directory / tag
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for run in range(first_run, first_run + count):
        path = out / f"run{run}.mid.gz"
        with gzip.open(path, "wb", compresslevel=1) as f:
            left = int(mb * 1e6)
            while left > 0:
                n = min(left, 8 << 20)
                f.write(os.urandom(n))
                left -= n
        files.append(path)
    return files


def run_ingest(tb: Testbed, directory: Path, rse: str, workers: int) -> float:
    """Seconds `cygno-dm ingest run --once` takes to upload and register every file."""
    env = {**os.environ, **tb.env(DAQ), "CYGNO_DM_LOGLEVEL": "WARNING"}
    argv = [sys.executable, "-m", "cygno_dm.ingest", "run", "--watch", str(directory), "--rse", rse,
            "--journal", str(directory / "journal.sqlite"), "--settle", "0", "--keep-local", "--once",
            "--workers", str(workers), "--safety-poll", "3600"]
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, cwd=ROOT)
    return time.perf_counter() - t0


def run_rucio_upload(tb: Testbed, files: list[Path], tag: str, rse: str) -> float:
    """Seconds a loop of `rucio upload`, one call per file, takes."""
    env = {**os.environ, **tb.env(DAQ)}
    rucio = str(Path(sys.executable).parent / "rucio")
    t0 = time.perf_counter()
    for f in files:
        # --register-after-upload: the DAQ account may not flip replica states (the policy keeps that to admins)
        subprocess.run([rucio, "upload", "--rse", rse, "--scope", SCOPE, "--lfn", f"{tag}/{f.name}",
                        "--register-after-upload", str(f)], env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def case(tb: Testbed, work: Path, label: str, count: int, mb: float, first_run: int, rse: str, workers: int) -> None:
    """One size class: generate, time both, print rates and ratios."""
    a = make_files(work / f"{label}-ingest", "LNF", first_run, count, mb)
    b = make_files(work / f"{label}-rucio", "LNF", first_run + count, count, mb)
    total_mb = sum(f.stat().st_size for f in a) / 1e6
    t_ingest = run_ingest(tb, work / f"{label}-ingest", rse, workers)
    t_rucio = run_rucio_upload(tb, b, "LNF", rse)
    mbs_i, mbs_r = total_mb / t_ingest, total_mb / t_rucio
    fps_i, fps_r = count / t_ingest, count / t_rucio
    print(f"{label}: {count} x {mb:g} MB ({total_mb:.0f} MB) on {rse}")
    print(f"  cygno-dm ingest : {t_ingest:8.1f} s  {mbs_i:8.1f} MB/s  {fps_i:8.2f} files/s")
    print(f"  rucio upload    : {t_rucio:8.1f} s  {mbs_r:8.1f} MB/s  {fps_r:8.2f} files/s")
    print(f"  ratio ingest/rucio: {mbs_i / mbs_r:.2f}x MB/s, {fps_i / fps_r:.2f}x files/s")


def main() -> int:
    """Parse flags, find (or start) the testbed, run both cases."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state directory of a running testbed")
    ap.add_argument("--up", action="store_true", help="bring the testbed up first (idempotent)")
    ap.add_argument("--rse", default="CNAF_USERDISK")
    ap.add_argument("--big-count", type=int, default=2)
    ap.add_argument("--big-mb", type=float, default=20)
    ap.add_argument("--small-count", type=int, default=20)
    ap.add_argument("--small-mb", type=float, default=1)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--first-run", type=int, default=int(time.time()) % 10**7 * 10)
    args = ap.parse_args()
    tb = Testbed(args.state)
    if args.up:
        tb.up()
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        run = args.first_run
        case(tb, work, "big", args.big_count, args.big_mb, run, args.rse, args.workers)
        case(tb, work, "small", args.small_count, args.small_mb, run + 2 * args.big_count, args.rse, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
