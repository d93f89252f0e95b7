"""The testbed options the benchmarks share: which testbed (--state), bring it up first (--up, --profile)."""

from __future__ import annotations

import argparse
from pathlib import Path

from testbed.stack import DEFAULT_STATE, Testbed


def add_testbed_args(ap: argparse.ArgumentParser) -> None:
    """--state, --up and --profile."""
    ap.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state directory of the testbed")
    ap.add_argument("--up", action="store_true", help="bring the testbed up first (idempotent)")
    ap.add_argument("--profile", default=None, help="profile of a testbed brought up by --up [its saved one]")


def open_testbed(args: argparse.Namespace) -> Testbed:
    """The testbed the options name, brought up if asked."""
    tb = Testbed(args.state, profile=args.profile)
    if args.up:
        tb.up()
    return tb
