"""Does the testbed's S3 stand-in cap the uploader? Bare boto3 against plain moto, the testbed site, and a sink.

Starts, on free loopback ports: moto's own server (the old stand-in's engine: no signature gate, no persistence,
plain http; the baseline, 1.00x), one testbed S3 site (`python -m testbed.storage.s3`: SigV4 checks, per-site keys,
bodies streamed to disk with MD5/CRC32C) on http and on https, and a sink on https: the site's own HTTP server
with an app that reads every body and throws it away (no signature check, no hashing, no disk) — the ceiling of
Python + TLS on this loopback. The same bytes go to each with the same client settings: many small PUTs in
parallel (files/s) and big multipart uploads (MB/s).

    python benchmarks/s3_site_bench.py [--small-count 200] [--big-mb 200] [--threads 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ingest.helpers import free_port  # noqa: E402

HOST = "127.0.0.1"
BUCKET = "bench"
KEY, SECRET = "BENCHKEY", "bench-secret"


def start(argv: list[str], url: str, log: Path) -> subprocess.Popen:
    """Start a server and wait until `url` answers."""
    proc = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2, verify=False)
            return proc
        except requests.RequestException:
            if proc.poll() is not None:
                raise SystemExit(f"{argv[2]} exited; see {log}") from None
            time.sleep(0.3)
    raise SystemExit(f"{argv} did not start")


def sink(environ: dict, start_response) -> list[bytes]:
    """Just enough S3 for boto3's PUTs and multipart uploads; every body read (1 MiB at a time) and dropped."""
    while environ["wsgi.input"].read(1 << 20):
        pass
    query = environ.get("QUERY_STRING", "")
    body = b""
    if environ["REQUEST_METHOD"] == "POST" and query.startswith("uploads"):
        body = b"<InitiateMultipartUploadResult><UploadId>sink</UploadId></InitiateMultipartUploadResult>"
    elif environ["REQUEST_METHOD"] == "POST":
        body = b"<CompleteMultipartUploadResult><ETag>&quot;0-1&quot;</ETag></CompleteMultipartUploadResult>"
    start_response("200 OK", [("ETag", '"0"'), ("Content-Length", str(len(body)))])
    return [body]


def serve_sink(host: str, port: int, cert: str, key: str) -> None:
    from testbed.storage.s3_http import Server, tls_context

    Server(host, port, sink, tls_context(cert, key)).serve_forever()


def client(endpoint: str, threads: int, verify: str | bool) -> object:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                        region_name="us-east-1", verify=verify,
                        config=Config(s3={"addressing_style": "path"}, max_pool_connections=threads * 4 + 4,
                                      request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))


def measure(s3, small: list[bytes], big: Path, threads: int, part_mb: int) -> tuple[float, float]:
    """(files/s of the small PUTs, MB/s of the big multipart uploads)."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda ib: s3.put_object(Bucket=BUCKET, Key=f"small/{ib[0]}", Body=ib[1]), enumerate(small)))
    fps = len(small) / (time.perf_counter() - t0)
    part = part_mb << 20
    transfer = TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4)
    t0 = time.perf_counter()
    s3.upload_file(str(big), BUCKET, "big", Config=transfer)
    mbs = big.stat().st_size / 1e6 / (time.perf_counter() - t0)
    return fps, mbs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small-count", type=int, default=200)
    ap.add_argument("--small-mb", type=float, default=1)
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument("--part-size-mb", type=int, default=64)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--serve-sink", nargs=4, metavar=("HOST", "PORT", "CERT", "KEY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_sink:
        host, port, cert, key = args.serve_sink
        serve_sink(host, int(port), cert, key)
        return 0
    from cygno_dm.ingest.stores import ca_bundle
    from testbed.storage.tls import ensure_host_cert

    with tempfile.TemporaryDirectory(prefix="s3-site-bench-") as tmp:
        work = Path(tmp)
        small = [os.urandom(int(args.small_mb * 1e6)) for _ in range(args.small_count)]
        big = work / "big"
        with open(big, "wb") as f:
            for _ in range(args.big_mb):
                f.write(os.urandom(1 << 20))
        cert, key, ca_dir = ensure_host_cert(work / "tls", HOST)
        ports = [free_port(HOST) for _ in range(4)]
        secret = work / "secret"
        secret.touch(mode=0o600)
        secret.write_text(SECRET)
        site = [sys.executable, "-m", "testbed.storage.s3", "--host", HOST, "--access-key", KEY,
                "--secret-key-file", str(secret), "--bucket", BUCKET, "--log-level", "WARNING"]
        servers = {
            "moto alone (http)": ([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(ports[0])],
                                  f"http://{HOST}:{ports[0]}", False),
            "testbed site (http)": (site + ["--port", str(ports[1]), "--state-dir", str(work / "s1")],
                                    f"http://{HOST}:{ports[1]}", False),
            "testbed site (https)": (site + ["--port", str(ports[2]), "--state-dir", str(work / "s2"),
                                             "--tls-dir", str(work / "tls")], f"https://{HOST}:{ports[2]}", None),
            "sink (https)": ([sys.executable, __file__, "--serve-sink", HOST, str(ports[3]), str(cert), str(key)],
                             f"https://{HOST}:{ports[3]}", None),
        }
        results = {}
        for name, (argv, url, verify) in servers.items():
            proc = start(argv, url + "/", work / "server.log")
            try:
                s3 = client(url, args.threads, ca_bundle(str(ca_dir)) if verify is None else verify)
                if name.startswith("moto"):
                    s3.create_bucket(Bucket=BUCKET)
                results[name] = measure(s3, small, big, args.threads, args.part_size_mb)
            finally:
                proc.terminate()
                proc.wait(30)
        base = results["moto alone (http)"]
        print(f"{args.small_count} x {args.small_mb:g} MB PUTs and {args.big_mb} MB multipart "
              f"({args.part_size_mb} MiB parts), {args.threads} threads; load average {os.getloadavg()[0]:.1f}")
        for name, (fps, mbs) in results.items():
            print(f"  {name:<22} {fps:8.1f} files/s ({fps / base[0]:.2f}x)   {mbs:8.1f} MB/s ({mbs / base[1]:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
