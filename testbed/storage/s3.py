"""One S3 site of the testbed: a small S3 server that streams objects to disk, with per-site credentials.

The gate (s3_gate.py) authenticates every request; the operations (s3_api.py) stream bodies to files in 1 MiB
chunks, hashed on the way (s3_body.py), and keep objects and multipart uploads on disk (s3_state.py). Served by
a threaded HTTP/1.1 server with keep-alive (s3_http.py), over TLS when given a certificate. Why not moto:
docs/ingest.md, "Does the S3 stand-in cap the measurement?".
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from testbed.auth import TokenVerifier
from testbed.storage.health import s3_ready
from testbed.storage.s3_api import S3Api
from testbed.storage.s3_gate import S3Gate
from testbed.storage.s3_http import Server, tls_context
from testbed.storage.s3_state import Store
from testbed.storage.signals import unblock_all_signals
from testbed.storage.tls import ensure_host_cert
from testbed.tokens import WlcgTokenVerifier

log = logging.getLogger(__name__)

__all__ = ["build_app", "main", "s3_ready", "serve"]

def build_app(access_key: str, secret_key: str, buckets: list[str], state_dir: Path,
              token_verifier: TokenVerifier | None = None) -> S3Gate:
    """The WSGI application of one site: its objects in `state_dir` (reloaded), `buckets` created if missing;
    with a token verifier the gate also offers STS AssumeRoleWithWebIdentity."""
    store = Store(state_dir)
    for bucket in buckets:
        store.create_bucket(bucket)
    return S3Gate(S3Api(store), access_key, secret_key, token_verifier)


def serve(
    host: str, port: int, access_key: str, secret_key: str, buckets: list[str],
    state_dir: Path | None = None, tls: tuple[str, str] | None = None, token_verifier: TokenVerifier | None = None,
) -> None:
    """Serve one S3 site in the foreground until SIGTERM/SIGINT (without `state_dir`, in a temporary one)."""
    unblock_all_signals()
    scratch = None if state_dir else Path(tempfile.mkdtemp(prefix="s3-site-"))
    try:
        app = build_app(access_key, secret_key, buckets, state_dir or scratch, token_verifier)
        server = Server(host, port, app, tls_context(*tls) if tls else None)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        scheme = "https" if tls else "http"
        log.info("S3 site ready at %s://%s:%d buckets=%s state=%s sts=%s", scheme, host, port, ",".join(buckets),
                 state_dir, "yes" if token_verifier else "no")
        print(f"READY {scheme}://{host}:{port}", flush=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def read_secret(path: Path) -> str:
    """The secret in `path`; refused when others may read the file."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SystemExit(f"--secret-key-file: {path} has mode {mode:04o}; it must be readable by its owner only "
                         "(chmod 600)")
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    """Command line: run one S3 site in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m testbed.storage.s3", description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key-file", type=Path, required=True,
                        help="file holding the secret key (mode 0600: never on a command line)")
    parser.add_argument("--bucket", action="append", required=True, help="bucket to create (repeatable)")
    parser.add_argument("--state-dir", type=Path, help="persist objects here and reload them at start")
    parser.add_argument("--tls-dir", type=Path,
                        help="serve https with a certificate for --host from the testbed CA in this directory")
    parser.add_argument("--tls-cert", help="serve https with this PEM certificate (needs --tls-key)")
    parser.add_argument("--tls-key")
    parser.add_argument("--token-issuer", help="offer STS AssumeRoleWithWebIdentity for WLCG tokens of this issuer "
                        "(https URL; needs TLS)")
    parser.add_argument("--token-ca", help="CA bundle to reach the token issuer (default: the system's)")
    parser.add_argument("--token-audience", help="audience the tokens must name (default: --host)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    tls: Any = (args.tls_cert, args.tls_key) if args.tls_cert else None
    if args.tls_dir:
        cert, key, _ = ensure_host_cert(args.tls_dir, args.host)
        tls = (str(cert), str(key))
    verifier = None
    if args.token_issuer:
        if not args.token_issuer.startswith("https://"):
            parser.error("--token-issuer: must be an https URL")
        if not tls:
            parser.error("--token-issuer: bearer tokens need TLS (--tls-dir or --tls-cert)")
        verifier = WlcgTokenVerifier(args.token_issuer, args.token_audience or args.host, ca=args.token_ca or True)
    serve(args.host, args.port, args.access_key, read_secret(args.secret_key_file), args.bucket, args.state_dir, tls,
          verifier)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
