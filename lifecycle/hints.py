"""Hints from Rucio's Hermes daemon: its messages on the broker (STOMP) name DIDs that just changed (a transfer of a
run file, a new dataset, a rule that became OK). Each one that concerns a raw scope is queued for the daemon to check
at once. Hints only speed things up; the reconciliation pass is the truth, so a broker that is down costs latency,
never a run."""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

import stomp

from cygno_dm.profile import Messaging
from lifecycle import metrics

log = logging.getLogger(__name__)


def did_of(body: str, raw_scopes: list[str]) -> tuple[str, str] | None:
    """(scope, name) that a Hermes message body names in one of the raw scopes, else None."""
    try:
        msg = json.loads(body)
        payload = msg.get("payload") or {}
        if isinstance(payload, str):
            payload = json.loads(payload)
        scope, name = payload.get("scope"), payload.get("name")
    except (ValueError, AttributeError):
        return None
    if isinstance(scope, str) and isinstance(name, str) and scope in raw_scopes:
        return scope, name
    return None


class HintListener(stomp.ConnectionListener):
    """Subscribes to the Hermes destination and puts (scope, name) of raw DIDs on a queue; reconnects by itself."""

    def __init__(self, broker: Messaging, raw_scopes: list[str], hints: queue.Queue[tuple[str, str]],
                 retry: float = 5.0) -> None:
        self.broker, self.raw_scopes, self.hints, self.retry = broker, raw_scopes, hints, retry
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._conn: stomp.Connection12 | None = None
        self._thread = threading.Thread(target=self._keep_connected, name="hermes-hints", daemon=True)

    def on_message(self, frame: Any) -> None:
        event = str(frame.headers.get("event_type", "?"))
        metrics.HINTS.labels(event).inc()
        did = did_of(frame.body, self.raw_scopes)
        if did:
            log.info("hint: %s on %s:%s", event, *did)
            self.hints.put(did)

    def on_disconnected(self) -> None:
        if self.connected.is_set():
            log.warning("broker %s:%d: disconnected; periodic reconciliation goes on", self.broker.host,
                        self.broker.port)
        self.connected.clear()

    def start(self) -> None:
        """Connect in the background (now and after every loss)."""
        self._thread.start()

    def close(self) -> None:
        """Disconnect and stop reconnecting."""
        self._stop.set()
        if self._conn is not None and self._conn.is_connected():
            self._conn.disconnect()

    def _keep_connected(self) -> None:
        warned = False
        while not self._stop.is_set():
            if not self.connected.is_set():
                try:
                    self._connect()
                    log.info("listening for Hermes hints on %s:%d %s", self.broker.host, self.broker.port,
                             self.broker.destination)
                    warned = False
                except Exception as err:  # stomp raises ConnectFailedException and socket errors
                    if not warned:
                        log.warning("broker %s:%d unreachable (%s); relying on periodic reconciliation",
                                    self.broker.host, self.broker.port, type(err).__name__)
                        warned = True
            self._stop.wait(self.retry)

    def _connect(self) -> None:
        conn = stomp.Connection12([(self.broker.host, self.broker.port)], reconnect_attempts_max=1,
                                  heartbeats=(10000, 10000), vhost=self.broker.virtual_host)
        conn.set_listener("hints", self)
        conn.connect(self.broker.username, self.broker.password, wait=True)
        conn.subscribe(self.broker.destination, id="cygno-lifecycle", ack="auto")
        self._conn = conn
        self.connected.set()
