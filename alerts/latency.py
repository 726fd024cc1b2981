"""`auditstream bench alert-latency`: wall time from a spike's events to the alert in Alertmanager.

``bench alerts`` measures the *statistical* delay (event time from an incident's start until the
evidence suffices). This measures the rest, on the real path: a temporary local stack (dev
broker, ClickHouse, the worker with its plugins, a real Alertmanager), one fresh agent per trial
warmed up with 40 minutes of backdated traffic, then a burst of errors stamped *now* that is
evidence enough at once. Latency = from just before the burst is produced until Alertmanager's
``/api/v2/alerts`` lists the agent's ``ErrorSpike`` (polled every 20 ms): produce → broker →
signals (batch of at most ``AUDITSTREAM_ALERTS_BATCH_SECONDS`` or the sink's 0.5 s) → findings →
engine → alerts → delivery → Alertmanager.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from auditstream.alerts.inject import IncidentScenario, produce_events
from auditstream.producers.contract import Error, make_event

WARMUP_S = 40 * 60.0
BURST = 12  # errors at once: ~12 of ~70 operations in the last minute against a 1 % baseline


@dataclass(frozen=True)
class LatencyFigures:
    latencies_s: list[float]  # one per trial that raised its alert; None-free
    missed: int

    def summary(self) -> dict[str, float | int | None]:
        xs = sorted(self.latencies_s)
        return {
            "trials": len(xs) + self.missed,
            "missed": self.missed,
            "median_s": round(statistics.median(xs), 3) if xs else None,
            "max_s": round(xs[-1], 3) if xs else None,
            "min_s": round(xs[0], 3) if xs else None,
        }


def _producer(settings: Any) -> Any:
    from confluent_kafka import Producer

    return Producer(
        settings.kafka_config(**{"enable.idempotence": True, "acks": "all", "linger.ms": 0})
    )


def _produce(producer: Any, topic: str, events: list[Any]) -> None:
    produce_events(producer, topic, events)
    if producer.flush(30):
        raise RuntimeError("the broker did not acknowledge every event")


def _rows_for(settings: Any, agents: list[str]) -> int:
    from auditstream.stream.clickhouse import get_client

    ch = get_client(settings)
    try:
        return int(
            ch.query(
                "SELECT count() FROM events WHERE agent_id IN {a:Array(String)}",
                parameters={"a": agents},
            ).result_rows[0][0]
        )
    finally:
        ch.close()


def _alert_listed(client: httpx.Client, am_url: str, agent: str) -> bool:
    resp = client.get(
        f"{am_url}/api/v2/alerts",
        params={"filter": [f'agent_id="{agent}"', 'alertname="ErrorSpike"']},
    )
    resp.raise_for_status()
    return bool(resp.json())


def measure(settings: Any, am_url: str, trials: int, say: Any, timeout_s: float = 30.0) -> Any:
    """Warm ``trials`` fresh agents up, then burst each and time its alert into Alertmanager."""
    run = datetime.now(UTC).strftime("%H%M%S")
    agents = [f"latency-{run}-{i}" for i in range(trials)]
    now = time.time()
    scenario = IncidentScenario(agents=tuple(agents), injected=(), seed=trials)
    history = scenario.events(now - WARMUP_S, now)
    producer = _producer(settings)
    topic = settings.topics.events
    say(f"warm-up: {len(history):,} backdated events for {trials} agent(s) ...")
    _produce(producer, topic, history)
    deadline = time.monotonic() + 120.0
    while _rows_for(settings, agents) < len(history):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not store the warm-up traffic within 120 s")
        time.sleep(0.5)
    time.sleep(2.0)  # the alert plugin consumes beside the sink; let it catch up too

    latencies: list[float] = []
    missed = 0
    with httpx.Client(timeout=5.0) as client:
        for i, agent in enumerate(agents):
            burst_t = datetime.now(UTC)
            burst = [
                make_event(
                    "error",
                    agent,
                    Error(error_type="tool_timeout", message="tool call timed out"),
                    time=burst_t,
                    event_id=f"{agent}-burst-{k}",
                )
                for k in range(BURST)
            ]
            t0 = time.perf_counter()
            _produce(producer, topic, burst)
            while not _alert_listed(client, am_url, agent):
                if time.perf_counter() - t0 > timeout_s:
                    break
                time.sleep(0.02)
            else:
                latencies.append(time.perf_counter() - t0)
                say(f"  trial {i + 1}: {latencies[-1] * 1000:.0f} ms")
                continue
            missed += 1
            say(f"  trial {i + 1}: no alert within {timeout_s:.0f} s")
    return LatencyFigures(latencies, missed)


def run_latency_bench(*, trials: int, as_json: bool, keep: bool = False) -> LatencyFigures:
    from auditstream.deploy.alertmanager import alertmanager_binary
    from auditstream.deploy.local import LocalStack
    from auditstream.deploy.procs import free_port
    from auditstream.settings import Settings

    def say(msg: str) -> None:
        print(msg, file=sys.stderr if as_json else sys.stdout, flush=True)

    if alertmanager_binary() is None:
        raise RuntimeError("prometheus-alertmanager is not installed (make setup installs it)")
    tmp = Path(tempfile.mkdtemp(prefix="auditstream-latency-"))
    stack = LocalStack(
        tmp / "stack",
        kafka_port=free_port(),
        http_port=free_port(),
        tcp_port=free_port(),
        alertmanager_port=free_port(),
        settings=Settings.from_env(),
    )
    try:
        say(f"starting a local stack with the worker and Alertmanager in {tmp} ...")
        stack.up(start_worker=True)
        am = stack.alertmanager
        assert am is not None
        figures = measure(stack.settings, am.url, trials, say)
    finally:
        stack.down()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    s = figures.summary()
    say(
        f"alert latency (burst produced → listed by Alertmanager), {s['trials']} trials: "
        f"median {s['median_s']} s, min {s['min_s']} s, max {s['max_s']} s, missed {s['missed']}"
    )
    if as_json:
        print(json.dumps(s), flush=True)
    return figures
