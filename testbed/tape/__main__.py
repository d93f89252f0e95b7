"""Foreground entry point: ``python -m testbed.tape --host H --port P --root DIR ...``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from testbed.storage.tls import ensure_host_cert
from testbed.tape.config import TapeConfig
from testbed.tape.server import serve_gunicorn, serve_werkzeug

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="python -m testbed.tape", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="0 picks a free port (see --port-file)")
    p.add_argument("--root", type=Path, required=True, help="state directory (buffer, tape, SQLite)")
    p.add_argument("--migrate-after", type=float, default=60.0, help="seconds from write to tape copy")
    p.add_argument("--evict-after", type=float, default=3600.0,
                   help="seconds a file stays in the buffer (once on tape, unless pinned)")
    p.add_argument("--stage-latency", type=float, default=30.0, help="seconds a recall from tape takes")
    p.add_argument("--pin-lifetime", type=float, default=86400.0,
                   help="seconds a staged file is pinned when the request gives no diskLifetime")
    p.add_argument("--tape-rate", type=float, default=0.0, help="tape drive speed in bytes/s (0: unlimited)")
    p.add_argument("--tick", type=float, default=0.0, help="seconds between worker rounds (0: automatic)")
    p.add_argument("--sitename", default="CYGNO-TESTBED-TAPE")
    p.add_argument("--server", choices=("gunicorn", "werkzeug"), default="gunicorn")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker")
    p.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    p.add_argument("--tls-dir", type=Path,
                   help="serve https (davs) with a certificate for --host from the testbed CA in this directory; "
                        "clients authenticate with certificates of that CA")
    p.add_argument("--token-issuer", help="accept WLCG bearer tokens of this issuer (OpenID discovery)")
    p.add_argument("--token-audience", help="audience the tokens must carry (default: --host)")
    p.add_argument("--token-ca", help="CA file to reach the issuer with (default: the system's)")
    p.add_argument("--token-base-path", default="/",
                   help="token scope paths are relative to this path (the VO's base path, e.g. /cygno)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the tape endpoint in the foreground."""
    args = parse_args(argv)
    # A parent that loaded gfal2 may hand down a signal mask blocking SIGTERM: start from a clean one.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    config = TapeConfig(root=args.root.resolve(), migrate_after=args.migrate_after, evict_after=args.evict_after,
                        stage_latency=args.stage_latency, pin_lifetime=args.pin_lifetime, tape_rate=args.tape_rate,
                        tick=args.tick, sitename=args.sitename)
    config.prepare()
    tls = None
    if args.tls_dir:
        cert, key, ca_dir = ensure_host_cert(args.tls_dir, args.host)
        tls = (str(cert), str(key), str(ca_dir / "ca.pem"))
    verify_token = None
    if args.token_issuer:
        from testbed.tokens import WlcgTokenVerifier

        verify_token = WlcgTokenVerifier(args.token_issuer, args.token_audience or args.host, ca=args.token_ca or True)
    if args.server == "werkzeug":
        serve_werkzeug(config, args.host, args.port, args.port_file, tls, verify_token, args.token_base_path)
    else:
        serve_gunicorn(config, args.host, args.port, args.workers, args.threads, args.port_file, tls, verify_token,
                       args.token_base_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
