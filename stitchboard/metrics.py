"""Self-monitoring in Prometheus format, served at ``GET /metrics``.

One registry per server (tests run several in one process), passed to every
stage that counts something.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "stitchboard_received_records", "Records received, per signal", ["signal"], registry=r
        )
        self.accepted = Counter(
            "stitchboard_accepted_records", "Records stored, per signal", ["signal"], registry=r
        )
        self.rejected = Counter(
            "stitchboard_rejected_records",
            "Records dead-lettered, per signal",
            ["signal"],
            registry=r,
        )
        self.requests = Counter(
            "stitchboard_requests",
            "Ingest requests by signal and outcome",
            ["signal", "outcome"],
            registry=r,
        )
        self.batch_latency = Histogram(
            "stitchboard_batch_latency_seconds",
            "Time from receipt to durable, per request",
            ["signal"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.insert_latency = Histogram(
            "stitchboard_insert_latency_seconds",
            "ClickHouse insert time per table",
            ["table"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inserted_rows = Counter(
            "stitchboard_inserted_rows",
            "Rows inserted into ClickHouse per table",
            ["table"],
            registry=r,
        )
        self.queue_rows = Gauge(
            "stitchboard_ingest_queue_rows", "Rows accepted but not yet durable", registry=r
        )
        self.store_errors = Counter(
            "stitchboard_store_errors", "Failed ClickHouse writes", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
