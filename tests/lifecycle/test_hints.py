"""Hermes hints over the real RabbitMQ STOMP broker (127.0.0.1:61613): a message naming a raw DID reaches the
daemon's queue within seconds; other scopes and malformed bodies are ignored; an unreachable broker is survived."""

from __future__ import annotations

import json
import queue
import uuid

import stomp

from cygno_dm.profile import Messaging
from lifecycle.hints import HintListener, did_of
from tests.conftest import free_port


def hermes_body(event: str, scope: str, name: str) -> str:
    """A message as Rucio's Hermes sends it (daemons/hermes/hermes.py deliver_to_activemq)."""
    return json.dumps({"event_type": event, "payload": {"scope": scope, "name": name, "dst-rse": "BARI_USERDISK"},
                       "created_at": "2026-11-30 10:00:00"})


def test_the_did_of_a_message() -> None:
    assert did_of(hermes_body("transfer-done", "cygno-data", "LNF/run01001.mid.gz"), ["cygno-data"]) == (
        "cygno-data", "LNF/run01001.mid.gz")
    assert did_of(hermes_body("transfer-done", "cygno-analysis", "RECO/x.h5"), ["cygno-data"]) is None
    assert did_of("not json", ["cygno-data"]) is None
    assert did_of(json.dumps({"event_type": "x", "payload": ["a"]}), ["cygno-data"]) is None


def test_a_hint_on_the_broker_reaches_the_daemon_within_seconds() -> None:
    broker = Messaging(destination=f"/topic/rucio.events.test{uuid.uuid4().hex[:8]}")
    hints: queue.Queue[tuple[str, str]] = queue.Queue()
    listener = HintListener(broker, ["cygno-data"], hints, retry=0.5)
    listener.start()
    try:
        assert listener.connected.wait(30), "the listener connects to RabbitMQ's STOMP port"
        conn = stomp.Connection12([(broker.host, broker.port)], vhost=broker.virtual_host)
        conn.connect(broker.username, broker.password, wait=True)
        conn.send(broker.destination, hermes_body("transfer-submitted", "cygno-analysis", "RECO/a.h5"),
                  headers={"event_type": "transfer-submitted"})
        conn.send(broker.destination, hermes_body("transfer-submitted", "cygno-data", "LNF/run01001.mid.gz"),
                  headers={"event_type": "transfer-submitted"})
        assert hints.get(timeout=10) == ("cygno-data", "LNF/run01001.mid.gz")
        assert hints.empty(), "the hint about another scope was dropped"
        conn.disconnect()
    finally:
        listener.close()


def test_an_unreachable_broker_is_survived() -> None:
    listener = HintListener(Messaging(port=free_port()), ["cygno-data"], queue.Queue(), retry=0.2)
    listener.start()
    try:
        assert not listener.connected.wait(1.5)
        assert listener._thread.is_alive(), "it keeps trying, the daemon keeps reconciling"
    finally:
        listener.close()
