"""Prometheus metrics of the endpoint, read from the shared state at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from testbed.tape.store import Store

LOCALITIES = ("DISK", "DISK_AND_TAPE", "TAPE", "LOST")
STATES = ("SUBMITTED", "STARTED", "COMPLETED", "FAILED", "CANCELLED")


class _StateCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        counts = self.store.counts()
        files = GaugeMetricFamily("cygno_tape_files", "Files per locality", labels=["locality"])
        size = GaugeMetricFamily("cygno_tape_bytes", "Bytes per locality", labels=["locality"])
        for loc in LOCALITIES:
            files.add_metric([loc], counts.get(f"files:{loc}", 0))
            size.add_metric([loc], counts.get(f"bytes:{loc}", 0))
        stage = GaugeMetricFamily("cygno_tape_stage_files", "Stage request entries per state", labels=["state"])
        for st in STATES:
            stage.add_metric([st], counts.get(f"stage:{st}", 0))
        yield files
        yield size
        yield stage


class Metrics:
    """A registry with the state gauges and the request counter of this process."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(store))
        self.requests = Counter("cygno_tape_http_requests", "HTTP requests served by this process",
                                ["method", "status"], registry=self.registry)

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        return generate_latest(self.registry)
