"""Benchmark: `cygno-dm ingest` against a loop of `rucio upload` over the same kind of files, same testbed.

Two file sets are generated per case (the DIDs must differ): one ingested by the uploader, one uploaded file
by file with the plain `rucio upload` CLI, as the DAQ scripts do today. A third column is the raw ceiling of the
landing endpoint: the uploader's bytes sent again by bare boto3 multipart uploads (same part size, same parts and
files in parallel, no checksums, no Rucio) to a scratch prefix that is removed afterwards. Prints MB/s and
files/s of all three, the ratios ingest/rucio and ingest/ceiling.
Real sizes: --big-count 20 --big-mb 500 --small-count 1000 --small-mb 1.

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
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.testbed_args import add_testbed_args, open_testbed  # noqa: E402
from testbed.stack import Testbed  # noqa: E402

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


def run_ceiling(tb: Testbed, files: list[Path], rse: str, workers: int, part_mb: int, parallel_parts: int) -> float:
    """Seconds bare boto3 multipart uploads of `files` to the landing S3 endpoint take (scratch keys, removed)."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    from cygno_dm.ingest.stores import ca_bundle

    conf = tb.profile.rses[rse]
    if conf.kind != "s3":
        raise SystemExit(f"--rse {rse}: the ceiling column needs an S3 landing RSE")
    creds = conf.credentials
    s3 = boto3.client("s3", endpoint_url=conf.endpoint, aws_access_key_id=creds["access_key"],
                      aws_secret_access_key=creds["secret_key"], region_name=creds.get("region", "us-east-1"),
                      verify=ca_bundle(str(tb.ca_dir)),
                      config=Config(s3={"addressing_style": "path"}, max_pool_connections=workers * parallel_parts + 4,
                                    request_checksum_calculation="when_required",
                                    response_checksum_validation="when_required"))
    part = part_mb << 20
    transfer = TransferConfig(multipart_threshold=part + 1, multipart_chunksize=part, max_concurrency=parallel_parts)
    prefix = f"bench-ceiling-{uuid.uuid4().hex[:8]}"
    keys = [f"{prefix}/{i}/{f.name}" for i, f in enumerate(files)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda fk: s3.upload_file(str(fk[0]), SCOPE, fk[1], Config=transfer), zip(files, keys, strict=True)))
    seconds = time.perf_counter() - t0
    for key in keys:
        s3.delete_object(Bucket=SCOPE, Key=key)
    return seconds


def run_ingest(tb: Testbed, directory: Path, rse: str, args: argparse.Namespace) -> float:
    """Seconds `cygno-dm ingest run --once` takes to upload and register every file."""
    env = {**os.environ, **tb.env(DAQ), "CYGNO_DM_LOGLEVEL": "WARNING"}
    argv = [sys.executable, "-m", "cygno_dm.ingest", "run", "--watch", str(directory), "--rse", rse,
            "--journal", str(directory / "journal.sqlite"), "--settle", "0", "--keep-local", "--once",
            "--workers", str(args.workers), "--safety-poll", "3600", "--part-size-mb", str(args.part_size_mb),
            "--parallel-parts", str(args.parallel_parts)]
    t0 = time.perf_counter()
    rc = subprocess.run(argv, env=env, cwd=ROOT).returncode
    seconds = time.perf_counter() - t0
    from cygno_dm.ingest.journal import Journal

    counts = Journal(directory / "journal.sqlite").counts()
    if rc not in (0, 3) or set(counts) - {"ATTACHED"}:  # 3: the files wait for the tape archive, as expected
        raise SystemExit(f"ingest exited {rc}; files per state: {counts}")
    return seconds


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


def case(tb: Testbed, work: Path, label: str, count: int, mb: float, first_run: int, args: argparse.Namespace) -> None:
    """One size class: generate, time the three, print rates and ratios."""
    a = make_files(work / f"{label}-ingest", "LNF", first_run, count, mb)
    n_rucio = min(count, args.rucio_count or count)
    b = make_files(work / f"{label}-rucio", "LNF", first_run + count, n_rucio, mb)
    total_mb = sum(f.stat().st_size for f in a) / 1e6
    rucio_mb = sum(f.stat().st_size for f in b) / 1e6
    t_ingest = run_ingest(tb, work / f"{label}-ingest", args.rse, args)
    t_ceiling = run_ceiling(tb, a, args.rse, args.workers, args.part_size_mb, args.parallel_parts)
    t_rucio = run_rucio_upload(tb, b, "LNF", args.rse) if not args.no_rucio else float("nan")
    print(f"{label}: {count} x {mb:g} MB ({total_mb:.0f} MB) on {args.rse}, database "
          f"{tb.settings.database.split(':')[0]}")
    rates = {}
    for what, t, n, mbytes in (("cygno-dm ingest", t_ingest, count, total_mb),
                               ("rucio upload loop", t_rucio, n_rucio, rucio_mb),
                               ("boto3 ceiling", t_ceiling, count, total_mb)):
        rates[what] = (mbytes / t, n / t)
        print(f"  {what:<18}: {n:5d} files {t:8.1f} s  {mbytes / t:8.1f} MB/s  {n / t:8.2f} files/s")
    ing, rucio, ceiling = rates["cygno-dm ingest"], rates["rucio upload loop"], rates["boto3 ceiling"]
    print(f"  ratio ingest/rucio: {ing[0] / rucio[0]:.2f}x   ratio ingest/ceiling: {ing[0] / ceiling[0]:.2f}x")


def main() -> int:
    """Parse flags, find (or start) the testbed, run both cases."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_testbed_args(ap)
    ap.add_argument("--rse", default="CNAF_USERDISK")
    ap.add_argument("--big-count", type=int, default=2)
    ap.add_argument("--big-mb", type=float, default=20)
    ap.add_argument("--small-count", type=int, default=20)
    ap.add_argument("--small-mb", type=float, default=1)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--part-size-mb", type=int, default=64, help="S3 part size (the uploader's default)")
    ap.add_argument("--parallel-parts", type=int, default=4, help="S3 parts in parallel (the uploader's default)")
    ap.add_argument("--no-rucio", action="store_true", help="skip the (slow) rucio upload loop")
    ap.add_argument("--rucio-count", type=int, help="files for the rucio upload loop (default: as many as ingested;"
                    " rates are per file, so fewer files keep the ratio)")
    ap.add_argument("--only", choices=["big", "small"], help="run one case only")
    ap.add_argument("--first-run", type=int, default=int(time.time()) % 10**7 * 10)
    args = ap.parse_args()
    tb = open_testbed(args)
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        run = args.first_run
        if args.only != "small":
            case(tb, work, "big", args.big_count, args.big_mb, run, args)
        if args.only != "big":
            case(tb, work, "small", args.small_count, args.small_mb, run + 2 * args.big_count, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
