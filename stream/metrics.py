"""The worker's Prometheus endpoint: its counters, read at scrape time.

Every stage counts into ``StreamContext.stats`` (a plain dict of ints, cheap on the hot path);
this exposes each as a Prometheus counter ``auditstream_<name>_total`` next to the usual process
metrics, on ``AUDITSTREAM_METRICS_PORT`` (off by default). Delivery failures to on-call
(``auditstream_alerts_delivery_failures_total``) are the one to alert on.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> reg = CollectorRegistry()
>>> reg.register(StatsCollector({"events": 3, "dead_letters": 1}))
>>> print(generate_latest(reg).decode().splitlines()[2])
auditstream_dead_letters_total 1.0
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["StatsCollector", "serve_metrics"]

HELP = {
    "events": "Valid events stored in ClickHouse.",
    "dead_letters": "Records stored as dead letters (with their reason).",
    "batches": "Micro-batches stored (offsets committed after each).",
    "replay_skipped": "Records skipped as replays of offsets already stored.",
    "alerts_findings": "Findings (signal or rule conditions) sent to the alert engine.",
    "alerts_alerts": "Alert versions (firing, refreshed, resolved) sent to the alerts topic.",
    "alerts_delivered": "Alert deliveries a receiver accepted.",
    "alerts_delivery_failures": "Alert deliveries that failed after their retries.",
    "alerts_unlinked_complaints": "Complaints no agent could be found for (yet).",
    "alerts_bad_findings": "Finding records the engine could not decode.",
}


class StatsCollector:
    """Reads the live counters dict at every scrape (no copy is kept between scrapes)."""

    def __init__(self, stats: Mapping[str, int]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, value in sorted(self._stats.items()):
            help_text = HELP.get(name, f"auditstream worker counter {name}.")
            yield CounterMetricFamily(f"auditstream_{name}", help_text, value=float(value))


def serve_metrics(stats: Mapping[str, int], port: int, addr: str = "127.0.0.1") -> Any:
    """Start the HTTP endpoint in a daemon thread; returns the server (``.shutdown()``)."""
    registry = CollectorRegistry()
    registry.register(StatsCollector(stats))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server
