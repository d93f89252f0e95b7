"""Benchmark the FTS-compatible service against plain gfal2 copies of the same S3 objects (same run).

Two moto S3 servers, the service as a real process. Measures:
  1. throughput of S3→S3 copies of --big-count × --big-size through the service (with and without ADLER32
     verification) vs plain gfal2 streamed copies with the same concurrency → ratio;
  2. the per-file overhead on --small-count × --small-size files (service wall time per file minus gfal2's).

Usage: python benchmarks/fts_bench.py [--big-count 20 --big-size 200MB --small-count 500 --small-size 100kB]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed.fts import credentials  # noqa: E402
from testbed.storage.tls import ensure_client_cert  # noqa: E402

log = logging.getLogger("fts_bench")
TERMINAL = {"FINISHED", "FAILED", "FINISHEDDIRTY", "CANCELED"}
UNITS = {"kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3, "b": 1}


def size_arg(text: str) -> int:
    """Parse sizes like 200MB, 100kB, 1GiB, 12345."""
    t = text.strip().lower()
    for unit in sorted(UNITS, key=len, reverse=True):
        if t.endswith(unit):
            return int(float(t[: -len(unit)]) * UNITS[unit])
    return int(t)


def free_port(host: str) -> int:
    """A free TCP port on host."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 60, verify: bool | str = True) -> None:
    """Wait until url answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1, verify=verify)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Stack:
    """Two moto servers and the service, started in a temporary directory."""

    def __init__(self, args: argparse.Namespace, workdir: Path):
        self.args, self.workdir = args, workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.s3 = []
        for host, key in ((args.s3_host_a, "bench-a"), (args.s3_host_b, "bench-b")):
            port = free_port(host)
            self._spawn([sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)], f"moto-{host}")
            self.s3.append({"host": host, "port": port, "key": key, "secret": key + "-secret"})
        for s in self.s3:
            wait_up(f"http://{s['host']}:{s['port']}/")
        self.creds = workdir / "creds.json"
        self.creds.write_text(json.dumps({s["host"]: {"access_key": s["key"], "secret_key": s["secret"],
                                                      "region": "us-east-1"} for s in self.s3}))
        self.fts_port = free_port(args.fts_host)
        self.fts = f"https://{args.fts_host}:{self.fts_port}"
        tls = workdir / "tls"
        self.cert = str(ensure_client_cert(tls, "bench-user"))  # the service authenticates every request
        self.ca = str(tls / "ca" / "ca.pem")
        self._spawn([sys.executable, "-m", "testbed.fts", "--host", args.fts_host, "--port", str(self.fts_port),
                     "--db", str(workdir / "fts.db"), "--s3-credentials", str(self.creds), "--tls-dir", str(tls),
                     *(x for s in self.s3 for x in ("--storage-endpoint", f"http://{s['host']}:{s['port']}")),
                     "--max-active", str(args.concurrency), "--max-per-link", str(args.concurrency),
                     "--log-level", "WARNING"], "fts")
        wait_up(self.fts + "/health", verify=self.ca)

    def _spawn(self, argv: list[str], name: str) -> None:
        log_file = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115
        self.procs.append(subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO,
                                           env={**os.environ, "PYTHONPATH": str(REPO)}))

    def client(self, i: int) -> Any:
        """boto3 client of S3 server i."""
        s = self.s3[i]
        return boto3.client("s3", endpoint_url=f"http://{s['host']}:{s['port']}", aws_access_key_id=s["key"],
                            aws_secret_access_key=s["secret"], region_name="us-east-1")

    def url(self, i: int, bucket: str, key: str) -> str:
        """s3:// URL on server i."""
        s = self.s3[i]
        return f"s3://{s['host']}:{s['port']}/{bucket}/{key}"

    def close(self) -> None:
        """Stop every process."""
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def upload(stack: Stack, bucket: str, count: int, size: int) -> dict[str, str]:
    """Create `count` distinct objects of `size` bytes; returns key → adler32."""
    block = os.urandom(min(size, 8 * 1024 * 1024))
    out: dict[str, str] = {}
    c = stack.client(0)

    def one(i: int) -> tuple[str, str]:
        head = f"{i:08d}".encode()
        reps = (size + len(block) - 1) // len(block)
        body = (head + (block * reps))[:size]
        c.put_object(Bucket=bucket, Key=f"f{i:05d}", Body=body)
        return f"f{i:05d}", f"{zlib.adler32(body) & 0xFFFFFFFF:08x}"

    with ThreadPoolExecutor(4) as pool:
        out.update(pool.map(one, range(count)))
    return out


def gfal_copies(stack: Stack, src_bucket: str, dst_bucket: str, keys: list[str], concurrency: int) -> float:
    """Plain gfal2 streamed copies of keys (same credentials, same concurrency); returns seconds."""
    creds = credentials.load(stack.creds)

    def one(key: str) -> None:
        src, dst = stack.url(0, src_bucket, key), stack.url(1, dst_bucket, key)
        ctx = credentials.new_context(creds, [src, dst], streamed=True, timeout=3600)
        params = ctx.transfer_parameters()
        params.overwrite = True
        params.timeout = 3600
        ctx.filecopy(params, src, dst)

    start = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, keys))
    return time.monotonic() - start


def service_copies(stack: Stack, src_bucket: str, dst_bucket: str, sums: dict[str, str], verify: bool) -> float:
    """One job with all keys through the service; returns seconds from submission to the terminal state."""
    files = [{"sources": [stack.url(0, src_bucket, k)], "destinations": [stack.url(1, dst_bucket, k)],
              "checksum": f"ADLER32:{v}" if verify else None} for k, v in sums.items()]
    start = time.monotonic()
    r = requests.post(stack.fts + "/jobs", json={"files": files, "params": {
        "verify_checksum": "both" if verify else "none", "overwrite": True}}, timeout=60,
        cert=stack.cert, verify=stack.ca)
    r.raise_for_status()
    job_id = r.json()["job_id"]
    while True:
        job = requests.get(f"{stack.fts}/jobs/{job_id}", timeout=30, cert=stack.cert, verify=stack.ca).json()
        if job["job_state"] in TERMINAL:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - start
    if job["job_state"] != "FINISHED":
        raise RuntimeError(f"job {job_id} ended {job['job_state']}: {job['reason']}")
    return elapsed


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run both measurements and return the numbers."""
    results: dict[str, Any] = {"concurrency": args.concurrency}
    with tempfile.TemporaryDirectory(prefix="fts-bench-") as tmp:
        stack = Stack(args, Path(tmp))
        try:
            for c in (0, 1):
                for b in ("big-src", "big-dst", "small-src", "small-dst"):
                    stack.client(c).create_bucket(Bucket=b)
            big = upload(stack, "big-src", args.big_count, args.big_size)
            total = args.big_count * args.big_size
            runs: dict[str, list[float]] = {"gfal2": [], "none": [], "adler32": []}
            if args.warmup:  # the first writes into fresh buckets are slower on moto: keep them out of the timing
                gfal_copies(stack, "big-src", "big-dst", list(big), args.concurrency)
            for _ in range(args.repeats):  # interleaved, so that drifts of the machine hit all three alike
                runs["gfal2"].append(gfal_copies(stack, "big-src", "big-dst", list(big), args.concurrency))
                runs["none"].append(service_copies(stack, "big-src", "big-dst", big, verify=False))
                runs["adler32"].append(service_copies(stack, "big-src", "big-dst", big, verify=True))
            t_gfal, t_none, t_both = (statistics.median(runs[k]) for k in ("gfal2", "none", "adler32"))
            results["big"] = {"files": args.big_count, "bytes_each": args.big_size, "repeats": args.repeats,
                              "gfal2_MBps": total / t_gfal / 1e6, "service_MBps": total / t_none / 1e6,
                              "service_adler32_MBps": total / t_both / 1e6,
                              "ratio_service_vs_gfal2": t_gfal / t_none,
                              "ratio_service_adler32_vs_gfal2": t_gfal / t_both,
                              "seconds": runs}
            small = upload(stack, "small-src", args.small_count, args.small_size)
            small_runs: dict[str, list[float]] = {"gfal2": [], "service": []}
            if args.warmup:
                gfal_copies(stack, "small-src", "small-dst", list(small), args.concurrency)
            for _ in range(args.repeats):
                small_runs["gfal2"].append(gfal_copies(stack, "small-src", "small-dst", list(small), args.concurrency))
                small_runs["service"].append(service_copies(stack, "small-src", "small-dst", small, verify=True))
            s_gfal, s_svc = (statistics.median(small_runs[k]) for k in ("gfal2", "service"))
            results["small"] = {"files": args.small_count, "bytes_each": args.small_size,
                                "gfal2_ms_per_file": 1000 * s_gfal / args.small_count,
                                "service_ms_per_file": 1000 * s_svc / args.small_count,
                                "overhead_ms_per_file": 1000 * (s_svc - s_gfal) / args.small_count,
                                "ratio_service_vs_gfal2": s_gfal / s_svc, "seconds": small_runs}
        finally:
            stack.close()
    return results


def main() -> None:
    """Parse flags, run, print a summary and the JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--big-count", type=int, default=4)
    p.add_argument("--big-size", type=size_arg, default=size_arg("50MB"))
    p.add_argument("--small-count", type=int, default=100)
    p.add_argument("--small-size", type=size_arg, default=size_arg("100kB"))
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="skip the untimed first pass that fills the destination buckets")
    p.add_argument("--repeats", type=int, default=1, help="interleaved repetitions (medians are reported)")
    p.add_argument("--concurrency", type=int, default=2, help="service --max-active and gfal2 threads")
    p.add_argument("--s3-host-a", default="127.0.0.51")
    p.add_argument("--s3-host-b", default="127.0.0.52")
    p.add_argument("--fts-host", default="127.0.0.55")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("gfal2").setLevel(logging.WARNING)
    r = run(args)
    big, small = r["big"], r["small"]
    print(f"S3->S3 {big['files']} x {big['bytes_each'] / 1e6:.1f} MB, concurrency {r['concurrency']}, "
          f"median of {big['repeats']}:")
    print(f"  plain gfal2 (streamed)        {big['gfal2_MBps']:8.1f} MB/s")
    print(f"  service, no checksum          {big['service_MBps']:8.1f} MB/s   ratio {big['ratio_service_vs_gfal2']:.2f}")
    print(f"  service, ADLER32 verified     {big['service_adler32_MBps']:8.1f} MB/s   "
          f"ratio {big['ratio_service_adler32_vs_gfal2']:.2f}")
    print(f"S3->S3 {small['files']} x {small['bytes_each'] / 1e3:.0f} kB:")
    print(f"  plain gfal2 {small['gfal2_ms_per_file']:.1f} ms/file, service {small['service_ms_per_file']:.1f} ms/file, "
          f"overhead {small['overhead_ms_per_file']:.1f} ms/file (ratio {small['ratio_service_vs_gfal2']:.2f})")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
