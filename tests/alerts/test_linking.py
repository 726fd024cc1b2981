"""Complaints that name no agent are attributed through their conversation, even when they
reach the worker before any event of that conversation (real broker + worker + ClickHouse)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

import pytest

from auditstream.producers.contract import Action, Complaint, encode_event, make_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DEADLINE_S = 180.0


def _produce(settings, events) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka import Producer

    producer = Producer(settings.kafka_config(**{"enable.idempotence": True, "acks": "all"}))
    for ev in events:
        producer.produce(settings.topics.events, encode_event(ev), ev.kafka_key())
    assert producer.flush(60) == 0


def test_complaints_before_their_conversation_are_attributed(make_env) -> None:  # type: ignore[no-untyped-def]
    env = make_env(partitions=3)
    worker = env.spawn(
        [sys.executable, "-m", "auditstream.cli", "worker", "-l", "warning"],
        env=env.env_vars(
            AUDITSTREAM_STREAM_PLUGINS="auditstream.alerts.stream",
            AUDITSTREAM_FAUST_SESSION_TIMEOUT="6",
        ),
        log_name="worker",
    )
    t = time.time() - 300
    complaints = [
        make_event(
            "complaint",
            None,  # the customer does not know which agent it was
            Complaint(complaint_id=f"c{i}", conversation_id="conv-42", severity="high"),
            time=datetime.fromtimestamp(t + 10 * i, UTC),
        )
        for i in range(6)
    ]
    _produce(env.settings, complaints)
    time.sleep(3)  # let them reach the link table first
    action = make_event(
        "action",
        "late-agent",
        Action(action_id="a1", decision_type="refund", conversation_id="conv-42"),
        time=datetime.fromtimestamp(t - 60, UTC),
    )
    _produce(env.settings, [action])
    ch = env.ch()
    deadline = time.monotonic() + DEADLINE_S
    rows: list = []  # type: ignore[type-arg]
    while time.monotonic() < deadline and not rows:
        assert worker.poll() is None, (env.state_dir / "worker.log").read_text()[-3000:]
        rows = ch.query("SELECT alertname, agent_id, status FROM alerts").result_rows
        time.sleep(1.0)
    assert rows == [("ComplaintBurst", "late-agent", "firing")]
