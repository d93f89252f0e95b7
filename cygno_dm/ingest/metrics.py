"""Prometheus metrics of the uploader."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

REGISTRY = CollectorRegistry(auto_describe=True)

BYTES = Counter("cygno_ingest_uploaded_bytes", "Bytes uploaded to the landing RSE", registry=REGISTRY)
FILES = Counter("cygno_ingest_files", "Files that completed a step", ["step"], registry=REGISTRY)
FAILURES = Counter("cygno_ingest_failures", "Failed attempts, by step and kind", ["step", "kind"], registry=REGISTRY)
QUARANTINED = Counter("cygno_ingest_quarantined", "Files quarantined", ["why"], registry=REGISTRY)
BACKLOG = Gauge("cygno_ingest_backlog_files", "Files not yet safe to delete", registry=REGISTRY)
BACKLOG_BYTES = Gauge("cygno_ingest_backlog_bytes", "Bytes of files not yet uploaded", registry=REGISTRY)
OLDEST_UNSAFE = Gauge("cygno_ingest_oldest_unsafe_age_seconds", "Age of the oldest run not yet safe",
                      registry=REGISTRY)
BY_STATE = Gauge("cygno_ingest_files_by_state", "Journal entries per state", ["state"], registry=REGISTRY)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics on addr:port."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr, registry=REGISTRY)
