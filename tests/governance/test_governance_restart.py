"""A worker killed between an action and its approval deadline: the restarted one still reports
the missing approval (pending reviews are rebuilt from ClickHouse), and not the approved one."""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from auditstream.governance.registry import parse_registry
from auditstream.governance.store import insert_records, plan_sync, publish_records
from auditstream.producers.contract import Action, Approval, make_event

pytestmark = pytest.mark.integration

REGISTRY = """
agents:
  - id: rev-agent
    name: Needs a human review for every action
    owners: {accountable: owner@example.com}
    autonomy: human_review
    approval_status: approved
    approved_by: risk-board
"""
WINDOW_S = 30  # long enough to kill the first worker well before the deadline
DEADLINE_S = 180.0  # upper bound for waiting, never a speed assertion


def _findings(settings: Any, consumer: Any, seen: list[tuple[str, str]]) -> None:
    from auditstream.alerts.model import decode_finding

    while (msg := consumer.poll(0.5)) is not None:
        if msg.error() is None:
            f = decode_finding(msg.value())
            if f.source == "governance" and f.firing:
                seen.append((f.alertname, f.summary))


def test_missing_approval_survives_a_worker_kill(make_env: Any) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from auditstream.producers.client import AuditClient

    env = make_env("noida", partitions=2)
    settings = env.settings
    ch = env.ch()
    plan = plan_sync(parse_registry(REGISTRY), {}, by="test", source="test")
    publish_records(settings, plan.records)
    insert_records(ch, plan.records)

    worker_env = env.env_vars(
        AUDITSTREAM_GOVERNANCE_APPROVAL_WINDOW_S=str(WINDOW_S),
        AUDITSTREAM_FAUST_SESSION_TIMEOUT="6",
        AUDITSTREAM_FAUST_COMMIT_INTERVAL="0.5",
        # The restarted worker takes the killed one's place (noida never expires a member).
        AUDITSTREAM_WORKER_INSTANCE_ID="gov-0",
    )
    cmd = [sys.executable, "-m", "auditstream.cli", "worker", "--plugins",
           "auditstream.governance.stream"]  # fmt: skip
    worker = env.spawn(cmd, env=worker_env, log_name="worker-1")

    run = f"r{time.time_ns()}"
    now = datetime.now(UTC)
    unreviewed, reviewed = f"{run}-unreviewed", f"{run}-reviewed"
    with AuditClient(settings) as client:
        for action_id in (unreviewed, reviewed):
            data = Action(action_id=action_id, decision_type="record_update")
            client.emit(make_event("action", "rev-agent", data, time=now))
        approval = Approval(action_id=reviewed, decision="approved", reviewer="rev-1")
        client.emit(make_event("approval", "rev-agent", approval, time=now))
        client.flush(30.0)

    # Stored, and (commit interval 0.5 s) committed: the new worker will not see them again.
    deadline = time.monotonic() + DEADLINE_S
    query = f"SELECT count() FROM events WHERE action_id LIKE '{run}-%'"
    while int(ch.command(query)) < 3:
        assert time.monotonic() < deadline, "the first worker did not store the events"
        assert worker.poll() is None, (env.state_dir / "worker-1.log").read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(3.0)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    worker2 = env.spawn(cmd, env=worker_env, log_name="worker-2")

    consumer = Consumer(settings.kafka_config(**{"group.id": f"check-{run}"}))
    meta = consumer.list_topics(settings.topics.findings, timeout=10)
    parts = meta.topics[settings.topics.findings].partitions
    consumer.assign([TopicPartition(settings.topics.findings, p, -2) for p in parts])
    seen: list[tuple[str, str]] = []
    try:
        while not any(unreviewed in s for _, s in seen) and time.monotonic() < deadline:
            assert worker2.poll() is None, (env.state_dir / "worker-2.log").read_text()[-3000:]
            _findings(settings, consumer, seen)
        time.sleep(3.0)  # a little longer: nothing may fire for the approved action
        _findings(settings, consumer, seen)
    finally:
        consumer.close()
    assert [a for a, s in seen if unreviewed in s] == ["MissingApproval"], seen
    assert not any(reviewed in s for _, s in seen), seen
    log2 = (env.state_dir / "worker-2.log").read_text()
    assert "unreviewed action(s) restored from ClickHouse" in log2, log2[-3000:]
    worker2.send_signal(signal.SIGTERM)
    assert worker2.wait(timeout=60) == 0
