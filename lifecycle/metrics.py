"""Prometheus metrics of the lifecycle daemon."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

RUNS = Gauge("cygno_lifecycle_runs", "Runs of the campaign per state", ["campaign", "state"], registry=REGISTRY)
QUEUE = Gauge("cygno_lifecycle_queue_depth", "Runs seen or waiting, not yet submitted", ["campaign"],
              registry=REGISTRY)
IN_FLIGHT = Gauge("cygno_lifecycle_jobs_in_flight", "Jobs this daemon has on its executor", registry=REGISTRY)
LATENCY = Histogram("cygno_lifecycle_seen_to_done_seconds", "From a run being seen to its output registered",
                    registry=REGISTRY, buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400))
JOBS = Counter("cygno_lifecycle_jobs", "Jobs that ended, by outcome", ["outcome"], registry=REGISTRY)
HINTS = Counter("cygno_lifecycle_hints", "Hermes messages received, by event type", ["event_type"],
                registry=REGISTRY)
PASSES = Counter("cygno_lifecycle_reconciliations", "Reconciliation passes against Rucio, by outcome", ["outcome"],
                 registry=REGISTRY)
RUCIO_UP = Gauge("cygno_lifecycle_rucio_up", "1 if the last call to Rucio succeeded", registry=REGISTRY)
STAGING_RUNS = Gauge("cygno_lifecycle_staging_runs", "Runs holding a slot of the campaign's staging window",
                     ["campaign"], registry=REGISTRY)
STAGING_BYTES = Gauge("cygno_lifecycle_staging_bytes", "Bytes of the runs holding a staging slot", ["campaign"],
                      registry=REGISTRY)
STAGING_WINDOW = Gauge("cygno_lifecycle_staging_window_runs", "The campaign's staging window (runs)", ["campaign"],
                       registry=REGISTRY)


def serve(port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics on addr:port."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr, registry=REGISTRY)
