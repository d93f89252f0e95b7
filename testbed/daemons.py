"""Run the real Rucio daemons one after another (`once=True`) in a loop, recording each one's health.

SQLite allows one writer at a time, so the testbed runs the daemons sequentially in one process, as
`rucio-<daemon> --run-once` would, but without paying Rucio's import time on every pass.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import testbed.sqlite_tuning  # noqa: F401  (serialise SQLite writers with the server)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Daemon:
    """One Rucio daemon: the module function a single pass calls, and its arguments."""

    name: str
    module: str
    function: str = "run"
    kwargs: dict[str, Any] = field(default_factory=dict)


# The conveyor's run() wrappers wait 10 s for heartbeat partitioning before working; a single sequential
# runner has nothing to partition, so it calls the loop functions themselves with no wait.
_NO_WAIT = {"partition_wait_time": 0}


DAEMONS: tuple[Daemon, ...] = (
    Daemon("judge-evaluator", "rucio.daemons.judge.evaluator"),
    Daemon("transmogrifier", "rucio.daemons.transmogrifier.transmogrifier"),
    Daemon("conveyor-submitter", "rucio.daemons.conveyor.submitter", "submitter", _NO_WAIT),
    Daemon("conveyor-poller", "rucio.daemons.conveyor.poller", "poller", {**_NO_WAIT, "older_than": 0}),
    Daemon("conveyor-finisher", "rucio.daemons.conveyor.finisher", "finisher", _NO_WAIT),
    Daemon("judge-repairer", "rucio.daemons.judge.repairer"),
    Daemon("judge-cleaner", "rucio.daemons.judge.cleaner"),  # removes expired rules (lifetimes, deleted rules)
    Daemon("undertaker", "rucio.daemons.undertaker.undertaker"),
    Daemon("reaper", "rucio.daemons.reaper.reaper", kwargs={"greedy": True}),
    Daemon("abacus-account", "rucio.daemons.abacus.account"),
    Daemon("abacus-rse", "rucio.daemons.abacus.rse"),
    Daemon("abacus-collection-replica", "rucio.daemons.abacus.collection_replica"),
    Daemon("hermes", "testbed.daemons", "hermes_pass"),  # the server's messages to the broker (if configured)
)
NAMES = tuple(d.name for d in DAEMONS)

_stop = False
_broker: dict[str, Any] = {}  # Hermes' STOMP connections, kept open between passes


def hermes_pass(once: bool = True) -> None:
    """One pass of Rucio's Hermes to its broker (`[messaging-hermes]`, services_list activemq): deliver the queued
    messages and delete those delivered. Its own run_once opens new connections on every pass and never closes
    them, so this pass keeps one set open. Without a [hermes] section it does nothing."""
    from rucio.common.config import config_has_section

    if not config_has_section("hermes"):
        return
    from rucio.core.message import delete_messages
    from rucio.daemons.hermes import hermes

    def logger(level: int, msg: str, *args: Any) -> None:
        log.log(level, "hermes: " + msg, *args)

    if not _broker:
        conns, destination, username, password, use_ssl = hermes.setup_activemq(logger)
        if not conns:
            raise RuntimeError("hermes: no broker could be set up from [messaging-hermes]")
        _broker.update(conns=conns, destination=destination, username=username, password=password,
                       use_ssl=use_ssl)
    found: dict[str, list[dict[str, Any]]] = {}
    hermes.build_message_dict(bulk=1000, thread=0, total_threads=1, message_dict=found, logger=logger,
                              service="activemq")
    messages = found.get("activemq", [])
    if not messages:
        return
    sent = set(hermes.deliver_to_activemq(messages=messages, logger=logger, **_broker))
    delete_messages(messages=[{"id": m["id"], "created_at": m["created_at"], "updated_at": m["created_at"],
                               "payload": str(m["payload"]), "event_type": m["event_type"],
                               "services": m["services"]} for m in messages if m["id"] in sent])


def _handle_stop(signum: int, _frame: object) -> None:
    global _stop
    _stop = True


def run_pass(daemons: tuple[Daemon, ...], status: dict[str, dict[str, Any]]) -> None:
    """Run every daemon once and record the outcome per daemon."""
    for d in daemons:
        if _stop:
            return
        entry = status.setdefault(d.name, {"passes": 0, "errors": 0})
        started = time.time()
        try:
            getattr(importlib.import_module(d.module), d.function)(once=True, **d.kwargs)
            entry.update(last_ok=time.time(), last_error=None)
        except Exception as err:  # a failing daemon is reported, the others keep running
            entry["errors"] += 1
            entry["last_error"] = f"{type(err).__name__}: {err}"
            log.error("daemon %s failed: %s\n%s", d.name, err, traceback.format_exc())
        entry["passes"] += 1
        entry["last_pass"] = started
        entry["duration"] = round(time.time() - started, 3)


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Atomically replace the status file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "updated": time.time(), "daemons": status}))
    tmp.replace(path)


def read_status(path: Path) -> dict[str, Any]:
    """The last status the runner wrote, or an empty one."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {"daemons": {}}


def main(argv: list[str] | None = None) -> None:
    """Entry point: `python -m testbed.daemons --status-file F [--interval S] [--only a,b]`."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--status-file", type=Path, required=True)
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between passes")
    ap.add_argument("--only", default="", help="comma-separated daemon names (default: all)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    wanted = set(filter(None, args.only.split(","))) or set(NAMES)
    daemons = tuple(d for d in DAEMONS if d.name in wanted)
    signal.signal(signal.SIGTERM, _handle_stop)
    signal.signal(signal.SIGINT, _handle_stop)
    status: dict[str, dict[str, Any]] = {}
    write_status(args.status_file, status)
    while not _stop:
        run_pass(daemons, status)
        write_status(args.status_file, status)
        deadline = time.monotonic() + args.interval
        while not _stop and time.monotonic() < deadline:
            time.sleep(0.1)


if __name__ == "__main__":
    main()
