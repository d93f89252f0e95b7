"""Prometheus metrics of the transfer service (one registry per service instance)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class Metrics:
    """Counters and gauges exposed at GET /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("fts_jobs_submitted", "Jobs submitted", registry=self.registry)
        self.files = Counter("fts_files_terminal", "Files that reached a terminal state", ["state"],
                             registry=self.registry)
        self.bytes = Counter("fts_bytes_transferred", "Bytes copied to destinations", registry=self.registry)
        self.active = Gauge("fts_active_transfers", "Transfers running now", registry=self.registry)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
