"""The worker's Prometheus endpoint reads the live counters at each scrape."""

from __future__ import annotations

import doctest

import httpx

import auditstream.stream.metrics as metrics_module
from auditstream.deploy.procs import free_port
from auditstream.settings import Settings
from auditstream.stream.metrics import serve_metrics


def test_doctest() -> None:
    assert doctest.testmod(metrics_module).failed == 0


def test_scrape_sees_counters_change_and_process_metrics() -> None:
    stats = {"events": 5, "alerts_delivery_failures": 0}
    port = free_port()
    server = serve_metrics(stats, port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert "auditstream_events_total 5.0" in httpx.get(url, timeout=5).text
        stats["events"] += 7
        stats["alerts_delivery_failures"] += 1
        text = httpx.get(url, timeout=5).text
        assert "auditstream_events_total 12.0" in text
        assert "auditstream_alerts_delivery_failures_total 1.0" in text
        assert "# HELP auditstream_alerts_delivery_failures_total Alert deliveries" in text
        assert "process_cpu_seconds_total" in text
    finally:
        server.shutdown()


def test_metrics_settings_from_env() -> None:
    assert Settings.from_env({}).metrics_port is None
    s = Settings.from_env({"AUDITSTREAM_METRICS_PORT": "9464", "AUDITSTREAM_METRICS_ADDR": "::"})
    assert (s.metrics_port, s.metrics_addr) == (9464, "::")
