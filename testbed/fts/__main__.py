"""Foreground entry point: `python -m testbed.fts --host H --port P --db FILE --s3-credentials FILE`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .scheduler import Limits
from .service import FtsService, ServiceConfig

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m testbed.fts", description="FTS3-REST-compatible transfer service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8446)
    p.add_argument("--db", required=True, type=Path, help="SQLite database file (created if missing)")
    p.add_argument("--s3-credentials", type=Path, default=None,
                   help='JSON {"host[:port]": {"access_key", "secret_key", "region"}}')
    p.add_argument("--max-active", type=int, default=4, help="global limit of concurrent transfers")
    p.add_argument("--max-per-link", type=int, default=2, help="limit per source host -> destination host")
    p.add_argument("--vo", default="cygno", help="VO name reported by /whoami (used for deterministic ids)")
    p.add_argument("--retries", type=int, default=0, help="server default retries when a job asks for 0")
    p.add_argument("--retry-delay", type=float, default=5.0, help="base back-off in seconds (doubles per attempt)")
    p.add_argument("--restart-retries", type=int, default=1,
                   help="retries granted to a transfer interrupted by a restart")
    p.add_argument("--transfer-timeout", type=int, default=3600)
    p.add_argument("--tape-poll", type=float, default=1.0, help="seconds between Tape REST polls")
    p.add_argument("--copy-mode", choices=("streamed", "gfal2"), default="streamed",
                   help="streamed: copy through this service hashing on the fly; gfal2: let gfal2 pick (TPC)")
    p.add_argument("--tls-dir", type=Path, required=True,
                   help="testbed CA directory (tls.py layout): https with a host certificate, client certificates "
                        "verified against <tls-dir>/ca")
    p.add_argument("--admin-dn", action="append", default=[], help="DN that may see and change every job")
    p.add_argument("--s3-user-dn", action="append", default=[],
                   help="DN (or token subject) that may submit unsigned S3 URLs, which the service signs with its "
                        "own keys (Rucio's conveyor); everyone else sends presigned URLs")
    p.add_argument("--storage-endpoint", action="append", default=[],
                   help="scheme://host:port or file:///dir the service may copy between (repeat); "
                        "every other URL is refused")
    p.add_argument("--client-cert", type=Path,
                   help="certificate + key (one 0600 PEM) presented to storage: gfal2 copies (X509_USER_PROXY) "
                        "and Tape REST calls")
    p.add_argument("--token-issuer", help="accept WLCG bearer tokens of this issuer (scope 'fts', what Rucio asks)")
    p.add_argument("--token-audience", help="audience the tokens must carry (default: --host, as Rucio asks)")
    p.add_argument("--token-ca", help="CA file to reach the issuer with (default: the system's)")
    p.add_argument("--token-subject", action="append", default=[], metavar="SUBJECT=DN",
                   help="a token subject that is the same client as a certificate DN: its jobs have one owner "
                        "whichever it authenticates with (Rucio's `rucio` IdP client and its certificate)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--access-log", action="store_true", help="log every HTTP request")
    p.add_argument("--gfal2-log-level", default="WARNING", help="level of gfal2/Davix messages")
    return p.parse_args(argv)


def _token_subjects(values: list[str]) -> dict[str, str]:
    """SUBJECT=DN pairs (the DN may itself contain '=')."""
    pairs = {}
    for value in values:
        subject, sep, dn = value.partition("=")
        if not (sep and subject and dn.startswith("/")):
            raise SystemExit(f"--token-subject: {value!r} must be SUBJECT=/DN")
        pairs[subject] = dn
    return pairs


def _token_verifier(args: argparse.Namespace) -> Any:
    if not args.token_issuer:
        return None
    from testbed.tokens import WlcgTokenVerifier

    return WlcgTokenVerifier(args.token_issuer, args.token_audience or args.host, required_scope="fts",
                             ca=args.token_ca or True)


def main(argv: list[str] | None = None) -> int:
    """Run the service in the foreground until SIGTERM/SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("gfal2").setLevel(args.gfal2_log_level.upper())
    if not args.access_log:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    limits = Limits(max_active=args.max_active, max_per_link=args.max_per_link, retry_delay=args.retry_delay,
                    restart_retries=args.restart_retries, transfer_timeout=args.transfer_timeout,
                    tape_poll_interval=args.tape_poll)
    config = ServiceConfig(db=args.db, host=args.host, port=args.port, s3_credentials=args.s3_credentials,
                           limits=limits, vo=args.vo, default_retries=args.retries,
                           streamed=args.copy_mode == "streamed", tls_dir=args.tls_dir,
                           admins=frozenset(args.admin_dn), s3_users=frozenset(args.s3_user_dn),
                           storage_endpoints=tuple(args.storage_endpoint),
                           client_cert=args.client_cert, verify_token=_token_verifier(args),
                           token_subjects=_token_subjects(args.token_subject))
    if args.client_cert:
        os.environ["X509_USER_PROXY"] = str(args.client_cert)  # gfal2/Davix present it to every storage
    service = FtsService(config)
    service.start()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: shutting down", signum)
        service.shutdown()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    service.serve_forever()
    log.info("stopped")
    logging.shutdown()
    os._exit(0)  # workers blocked in gfal2 calls must not keep the process alive; SQLite WAL is consistent


if __name__ == "__main__":
    sys.exit(main())
