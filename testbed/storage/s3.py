"""One S3 site of the testbed: moto in server mode with enforced per-site credentials and buckets."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from testbed.auth import TokenVerifier
from testbed.storage.health import s3_ready
from testbed.storage.s3_gate import S3Gate
from testbed.storage.signals import unblock_all_signals
from testbed.storage.tls import ensure_host_cert
from testbed.tokens import WlcgTokenVerifier

log = logging.getLogger(__name__)

__all__ = ["build_app", "main", "s3_ready", "serve"]

ACCOUNT_ID = "123456789012"
IAM_USER = "site-admin"
DEFAULT_REGION = "us-east-1"
ALLOW_ALL_S3 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def _install_credentials(access_key: str, secret_key: str) -> None:
    """Create the site's IAM user with exactly this key pair and full S3 rights, then enforce IAM auth."""
    from moto import settings
    from moto.iam.models import iam_backends

    iam = iam_backends[ACCOUNT_ID]["aws"]
    iam.create_user(DEFAULT_REGION, IAM_USER)
    key = iam.create_access_key(IAM_USER)
    iam.access_keys.pop(key.physical_resource_id, None)
    key.access_key_id = access_key
    key.secret_access_key = secret_key
    iam.access_keys[key.physical_resource_id] = key
    iam.put_user_policy(IAM_USER, "s3-all", json.dumps(ALLOW_ALL_S3))
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # every request from now on is authenticated


def build_app(
    access_key: str, secret_key: str, buckets: list[str], state_dir: Path | None,
    token_verifier: TokenVerifier | None = None,
) -> S3Gate:
    """The WSGI application of one site: moto behind the S3Gate, buckets created, state reloaded; with a token
    verifier the gate also offers STS AssumeRoleWithWebIdentity."""
    os.environ["MOTO_ACCOUNT_ID"] = ACCOUNT_ID
    import crc32c  # noqa: F401  (without it moto silently computes CRC32 for CRC32C: the site would vouch falsely)
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from moto.s3.models import s3_backends

    from testbed.storage.s3_state import ObjectStore

    backend = s3_backends[ACCOUNT_ID]["aws"]
    store = ObjectStore(state_dir, backend) if state_dir else None
    if store:
        store.load()
    for bucket in buckets:
        try:
            backend.get_bucket(bucket)
        except Exception:
            backend.create_bucket(bucket, DEFAULT_REGION)
    _install_credentials(access_key, secret_key)
    app = DomainDispatcherApplication(create_backend_app)
    all_buckets = sorted(set(backend.buckets) | set(buckets))
    return S3Gate(app, access_key, secret_key, all_buckets, store.sync if store else None,
                  parts_checksum=lambda bucket, upload, parts: _parts_checksum(backend, bucket, upload, parts),
                  token_verifier=token_verifier, exists=lambda bucket, key: _exists(backend, bucket, key))


def _exists(backend: Any, bucket: str, key: str) -> bool:
    """Whether an object exists (a write to it would overwrite)."""
    try:
        return backend.get_object(bucket, key) is not None
    except Exception:
        return False


def _parts_checksum(backend: Any, bucket: str, upload_id: str, parts: list[int]) -> dict[str, str]:
    """The full-object CRC32C of these parts of a FULL_OBJECT CRC32C multipart upload, from their stored bytes."""
    import base64

    import google_crc32c

    try:
        upload = backend.get_bucket(bucket).multiparts[upload_id]
    except Exception:
        return {}
    if (upload.metadata.get("x-amz-checksum-algorithm") or "").upper() != "CRC32C" \
            or (upload.metadata.get("x-amz-checksum-type") or "").upper() != "FULL_OBJECT":
        return {}
    crc = 0
    for number in parts:
        part = upload.parts.get(number)
        if part is None:
            return {}  # moto answers InvalidPart
        crc = google_crc32c.extend(crc, part.value)
    return {"CRC32C": base64.b64encode(crc.to_bytes(4, "big")).decode()}


def serve(
    host: str, port: int, access_key: str, secret_key: str, buckets: list[str],
    state_dir: Path | None = None, tls: tuple[str, str] | None = None, token_verifier: TokenVerifier | None = None,
) -> None:
    """Serve one S3 site in the foreground until SIGTERM/SIGINT."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    unblock_all_signals()
    app = build_app(access_key, secret_key, buckets, state_dir, token_verifier)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler, ssl_context=tls)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    scheme = "https" if tls else "http"
    log.info("S3 site ready at %s://%s:%d buckets=%s state=%s sts=%s", scheme, host, port, ",".join(buckets),
             state_dir, "yes" if token_verifier else "no")
    print(f"READY {scheme}://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


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
