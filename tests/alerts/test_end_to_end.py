"""End to end through the real stack: noida broker → `auditstream worker` (faust, subprocess)
→ ClickHouse, with deliveries to a real Alertmanager on loopback.

An error spike on one agent and a complaint burst on another each raise exactly one alert
that reaches Alertmanager within 60 s of event time; both resolve after the injection ends;
the quiet agents raise none. Event time runs 5× faster than wall time during the "live"
phase (and stays behind the wall clock), so the test takes minutes, not a quarter of an hour.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from auditstream.alerts.inject import IncidentScenario, Injected, produce_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEED = 5.0  # event seconds per wall second in the live phase
DEADLINE_S = 420.0  # generous bound for waiting (never a speed assertion)


def _producer(settings: Any) -> Any:
    from confluent_kafka import Producer

    return Producer(
        settings.kafka_config(**{"enable.idempotence": True, "acks": "all", "linger.ms": 10})
    )


@pytest.mark.parametrize("broker", ["noida", "tansu"])
def test_spike_and_complaints_alert_once_and_resolve(  # type: ignore[no-untyped-def]
    make_env, alertmanager, tmp_path, broker: str
) -> None:
    env = make_env(broker, partitions=3)
    receivers = tmp_path / "receivers.yaml"
    am = f"{{name: am, type: alertmanager, url: '{alertmanager.url}', resend_s: 10}}"
    receivers.write_text(f"receivers:\n  - {am}\n")
    # Agent ids per broker: the Alertmanager fixture is shared by the module's runs.
    quiet1, quiet2, spiky, complained = (
        f"e2e-{name}-{broker}" for name in ("quiet-1", "quiet-2", "spiky", "complained")
    )
    wall0 = time.time()
    live0 = wall0 - 15 * 60  # event time when the live phase starts
    inject = live0 + 30
    scenario = IncidentScenario(
        agents=(quiet1, quiet2, spiky, complained),
        injected=(
            Injected("ErrorSpike", spiky, inject, inject + 90, 0.6),
            Injected("ComplaintBurst", complained, inject, inject + 40, 8),
        ),
        seed=4,
        name_every=0,  # no complaint names its agent: only conversation linking attributes them
    )
    expected = {("ErrorSpike", spiky), ("ComplaintBurst", complained)}
    worker = env.spawn(
        [sys.executable, "-m", "auditstream.cli", "worker", "-l", "warning"],
        env=env.env_vars(
            AUDITSTREAM_STREAM_PLUGINS="auditstream.alerts.stream",
            AUDITSTREAM_ALERT_RECEIVERS=str(receivers),
            AUDITSTREAM_FAUST_SESSION_TIMEOUT="6",
            AUDITSTREAM_ALERTS_TICK_S="2",
        ),
        log_name="worker",
    )
    producer = _producer(env.settings)
    topic = env.settings.topics.events
    # 32 minutes of backdated baseline: long enough for every signal to be warm.
    produce_events(producer, topic, scenario.events(live0 - 32 * 60, live0))
    assert producer.flush(60) == 0

    seen: dict[tuple[str, str], dict[str, Any]] = {}
    gone: set[tuple[str, str]] = set()
    live_start, produced_to = time.time(), live0
    deadline = live_start + DEADLINE_S
    while time.time() < deadline:
        log = (env.state_dir / "worker.log").read_text(errors="replace")
        assert worker.poll() is None and "Crashed reason" not in log, log[-4000:]
        # Live phase: event time advances SPEED× wall time, never past the wall clock.
        target = min(live0 + SPEED * (time.time() - live_start), time.time() - 1)
        if target > produced_to:
            produce_events(producer, topic, scenario.events(produced_to, target))
            producer.poll(0)
            produced_to = target
        active = {
            (a["labels"]["alertname"], a["labels"].get("agent_id", "")): a
            for a in alertmanager.alerts()
            if a["labels"].get("agent_id", "").endswith(f"-{broker}")  # this run's agents
        }
        for key, a in active.items():
            seen.setdefault(key, a)
        gone |= {k for k in seen if k not in active}
        if expected <= gone and produced_to > inject + 600:
            break
        time.sleep(1.0)
    producer.flush(30)

    assert set(seen) == expected, f"alerts seen in Alertmanager: {sorted(seen)}"
    assert gone == expected, f"resolved: {sorted(gone)}"
    for (name, agent), a in seen.items():
        starts = _ts(a["startsAt"])
        # Detected within 60 s of the injection, in event time.
        assert inject <= starts <= inject + 60, (name, starts - inject)
        assert a["labels"]["severity"] in ("critical", "warning")
        assert a["annotations"]["summary"].startswith(agent)

    ch = env.ch()
    rows = ch.query(
        "SELECT alertname, agent_id, incident_id, groupArray(action) FROM "
        "(SELECT * FROM incidents FINAL ORDER BY at) GROUP BY alertname, agent_id, incident_id"
    ).result_rows
    assert sorted((r[0], r[1]) for r in rows) == sorted(expected)  # exactly one incident each
    for r in rows:
        assert sorted(r[3]) == ["opened", "resolved"], r
    statuses = ch.query(
        "SELECT agent_id, groupArray(status) FROM (SELECT * FROM alerts FINAL ORDER BY version) "
        "GROUP BY agent_id ORDER BY agent_id"
    ).result_rows
    assert statuses == [
        (complained, ["firing", "resolved"]),
        (spiky, ["firing", "resolved"]),
    ]
    failures = ch.command("SELECT count() FROM alert_deliveries WHERE outcome != 'ok'")
    assert int(failures) == 0
    assert int(ch.command("SELECT count() FROM alert_deliveries WHERE receiver = 'am'")) >= 4


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
