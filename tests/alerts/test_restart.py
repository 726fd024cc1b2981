"""A worker restart keeps the signal baselines (faust table changelog), end to end."""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

import pytest

from auditstream.alerts.inject import IncidentScenario, Injected
from auditstream.producers.contract import encode_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DEADLINE_S = 240.0


def _produce(settings: Any, events: list) -> None:  # type: ignore[type-arg]
    from confluent_kafka import Producer

    producer = Producer(
        settings.kafka_config(**{"enable.idempotence": True, "acks": "all", "linger.ms": 10})
    )
    for ev in events:
        while True:
            try:
                producer.produce(settings.topics.events, encode_event(ev), ev.kafka_key())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def _wait(pred: Any, what: str, worker: Any, log: Any) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
        value = pred()
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}: {log.read_text(errors='replace')[-3000:]}")


def test_restart_keeps_baselines(make_env) -> None:  # type: ignore[no-untyped-def]
    env = make_env(partitions=2)
    now = time.time()
    spike_at = now - 60
    # A 30 % error spike: a warm agent (learnt ~1 % errors) alerts; a cold-started one would
    # not, because without history only an error fraction >= 50 % pages (cold_error_fraction).
    scenario = IncidentScenario(
        agents=("r-steady", "r-spiky"),
        injected=(Injected("ErrorSpike", "r-spiky", spike_at, now, 0.3),),
        seed=11,
    )
    baseline = scenario.events(now - 36 * 60, spike_at - 30)
    worker_env = env.env_vars(
        AUDITSTREAM_STREAM_PLUGINS="auditstream.alerts.stream",
        AUDITSTREAM_FAUST_SESSION_TIMEOUT="6",
        AUDITSTREAM_ALERTS_TICK_S="2",
    )
    cmd = [sys.executable, "-m", "auditstream.cli", "worker", "-l", "warning"]
    log = env.state_dir / "worker1.log"
    first = env.spawn(cmd, env=worker_env, log_name="worker1")
    _produce(env.settings, baseline)
    ch = env.ch()
    _wait(
        lambda: int(ch.command("SELECT count() FROM events")) >= len(baseline), "sink", first, log
    )
    time.sleep(5)  # let the changelog writes of the last events land
    first.send_signal(signal.SIGTERM)
    first.wait(60)
    assert int(ch.command("SELECT count() FROM alerts")) == 0

    log2 = env.state_dir / "worker2.log"
    second = env.spawn(cmd, env=worker_env, log_name="worker2")
    _produce(env.settings, scenario.events(spike_at - 30, now))
    rows = _wait(
        lambda: ch.query("SELECT alertname, agent_id, status FROM alerts").result_rows,
        "the ErrorSpike alert after the restart",
        second,
        log2,
    )
    assert rows == [("ErrorSpike", "r-spiky", "firing")]
    summary = ch.command("SELECT annotations['summary'] FROM alerts LIMIT 1")
    # The baseline in the message is the learnt one (~1 %), not the 2 % prior of a cold start.
    assert "baseline 1." in str(summary) or "baseline 0." in str(summary), summary
