"""Governance against the real local stack: dev broker + ClickHouse server + a real worker.

One worker run covers every rule (to keep the suite's runtime modest): the demo registry is
synced, the governance scenario (compliant traffic + one violation per rule) and the kill-switch
demo are produced through the SDK, and the test waits for the findings the pipeline publishes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import auditstream.governance as gov
from auditstream.governance.demo import (
    COMPLIANT_AGENTS,
    EXPECTED,
    KILL_SWITCH_EXPECTED,
    KS_HONOURING,
    KS_ROGUE,
    KS_SILENT,
    run_kill_switch_demo,
    scenario,
)
from auditstream.governance.registry import load_registry
from auditstream.governance.report import compute_kpis, kpis_from_clickhouse
from auditstream.governance.store import (
    current_from_clickhouse,
    insert_records,
    plan_sync,
)

pytestmark = pytest.mark.integration
DEADLINE_S = 180.0  # upper bound for waiting, never a speed assertion
DEMO_REGISTRY = Path(gov.__file__).parent / "demo_registry.yaml"


def governance_findings(settings: Any, seen: set[tuple[str, str]], consumer: Any) -> None:
    from auditstream.alerts.model import decode_finding

    while True:
        msg = consumer.poll(0.5)
        if msg is None:
            return
        if msg.error() is not None:
            continue
        f = decode_finding(msg.value())
        if f.source == "governance" and f.firing:
            seen.add((f.alertname, f.agent_id or ""))


def test_every_rule_fires_and_compliant_traffic_does_not(make_env: Any) -> None:
    from confluent_kafka import Consumer, TopicPartition

    from auditstream.producers.client import AuditClient

    env = make_env("noida", partitions=2)
    settings = env.settings
    ch = env.ch()
    registry = load_registry(DEMO_REGISTRY)

    # Inventory: sync the registry (topic + history), then a second sync changes nothing.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "auditstream.cli",
            "agents",
            "sync",
            str(DEMO_REGISTRY),
            "--by",
            "ci-bot",
        ],
        env=env.env_vars(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "synced 13 change(s), 0 unchanged" in out
    hist = ch.query("SELECT DISTINCT changed_by, change FROM agent_registry").result_rows
    assert hist == [("ci-bot", "registered")]
    again = plan_sync(registry, current_from_clickhouse(ch), by="test", source="demo")
    assert again.records == [] and len(again.unchanged) == 13

    worker = env.spawn(
        [
            sys.executable,
            "-m",
            "auditstream.cli",
            "worker",
            "--plugins",
            "auditstream.governance.stream",
        ],
        env=env.env_vars(
            AUDITSTREAM_GOVERNANCE_APPROVAL_WINDOW_S="5",
            AUDITSTREAM_GOVERNANCE_ACK_TIMEOUT_S="5",
            AUDITSTREAM_GOVERNANCE_SHADOW_GRACE_S="3",
            AUDITSTREAM_FAUST_SESSION_TIMEOUT="6",
        ),
        log_name="worker",
    )
    client = AuditClient(settings)
    try:
        events = scenario()
        for ev in events:
            client.emit(ev)
        client.flush(30.0)
        commands = run_kill_switch_demo(settings, client)
    finally:
        client.close()

    consumer = Consumer(
        settings.kafka_config(**{"group.id": "gov-test", "enable.auto.commit": False})
    )
    meta = consumer.list_topics(settings.topics.findings, timeout=10)
    parts = meta.topics[settings.topics.findings].partitions
    consumer.assign([TopicPartition(settings.topics.findings, p, -2) for p in parts])
    want = EXPECTED | KILL_SWITCH_EXPECTED
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + DEADLINE_S
    while not want <= seen and time.monotonic() < deadline:
        assert worker.poll() is None, (env.state_dir / "worker.log").read_text()[-3000:]
        governance_findings(settings, seen, consumer)
    # A few more seconds of deadlines (approval window, ack timeout) to catch false positives.
    time.sleep(7)
    governance_findings(settings, seen, consumer)
    consumer.close()
    assert want <= seen, f"missing: {want - seen}"
    assert seen == want, f"unexpected findings: {seen - want}"
    assert not {a for _, a in seen} & set(COMPLIANT_AGENTS)

    # Kill-switch verification log: only the honouring agent is verified as acknowledged.
    rows = ch.query(
        "SELECT agent_id, command_id, groupUniqArray(status) FROM kill_switch_log "
        "GROUP BY agent_id, command_id"
    ).result_rows
    status = {a: (c, set(s)) for a, c, s in rows}
    assert status[KS_HONOURING] == (commands[KS_HONOURING], {"pending_ack", "acknowledged"})
    assert status[KS_SILENT][1] == {"pending_ack", "not_honoured"}
    assert status[KS_ROGUE][1] == {"pending_ack", "acknowledged", "not_honoured"}
    assert {r[0] for r in rows} == set(commands) | {"records-agent"}
    assert status["records-agent"][1] == {"pending_ack", "not_honoured"}
    by = ch.query("SELECT DISTINCT by FROM kill_switch_log WHERE agent_id = 'records-agent'")
    assert by.result_rows == [("auditstream-policy",)]  # the auto-suspend policy, recorded

    # KPIs: the SQL views and the pure computation agree on the known registry (+ 1 shadow).
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        n = ch.query("SELECT count() FROM events WHERE agent_id = 'shadow-scraper'").result_rows
        if n[0][0] >= 2:
            break
        time.sleep(0.5)
    expected = compute_kpis(registry, ["shadow-scraper"])
    from_sql = kpis_from_clickhouse(ch)
    assert from_sql.values() | {"mtta_mttr_by_owner": None} == expected.values() | {
        "mtta_mttr_by_owner": None
    }
    assert from_sql.gaps == expected.gaps
    assert expected.values()["owner_coverage"] == round(12 / 13, 4)
    assert expected.values()["policy_aligned_use_cases"] == 11
    assert expected.values()["dpia_coverage"] == 0.4

    # The named queries (`auditstream query governance_*`) read the same views and log.
    from auditstream.stream.clickhouse import run_query

    assert run_query(ch, "governance_kpis").result_rows[0][0] == 13
    shadows = run_query(ch, "governance_shadow_agents").result_rows
    assert [r[0] for r in shadows] == ["shadow-scraper"]
    gaps = {r[0] for r in run_query(ch, "governance_gaps").result_rows}
    assert gaps == {"outreach-agent", "scheduler-agent"}
    hist_rows = run_query(ch, "governance_agent_history", {"agent": "support-bot"}).result_rows
    assert [(r[1], r[2]) for r in hist_rows] == [("ci-bot", "registered")]
    ks_rows = run_query(ch, "governance_kill_switch", {"agent": KS_ROGUE}).result_rows
    assert [r[2] for r in ks_rows] == ["pending_ack", "acknowledged", "not_honoured"]
    assert {r[4] for r in ks_rows} == {"demo-operator"}

    # The CLI prints the same numbers; --json ends with one JSON line of them.
    out = subprocess.run(
        [sys.executable, "-m", "auditstream.cli", "report", "governance", "--json"],
        env=env.env_vars(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    last = json.loads(out.strip().splitlines()[-1])
    assert last["shadow_agents"] == 1 and last["agents"] == 13
    assert last["owner_coverage"] == expected.owner_coverage


def test_mtta_mttr_by_owner_view(make_env: Any) -> None:
    """MTTA/MTTR by accountable owner from incident lifecycle rows (IncidentEvent shape)."""
    from datetime import UTC, datetime, timedelta

    env = make_env("noida", partitions=1)
    ch = env.ch()
    registry = load_registry(DEMO_REGISTRY)
    insert_records(ch, plan_sync(registry, {}, by="test", source="demo").records)
    exists = ch.query("EXISTS TABLE incidents").result_rows[0][0]
    if not exists:  # the alerting migrations are not there yet: the same columns, minimal
        ch.command(
            "CREATE TABLE incidents (incident_id String, fingerprint String, action String, "
            "at DateTime64(3, 'UTC'), by String, alertname String, agent_id Nullable(String), "
            "severity String, group_key String, note String) ENGINE = MergeTree ORDER BY at"
        )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for inc, agent, ack_s, res_s in [
        ("i1", "support-bot", 60, 600),
        ("i2", "routing-agent", 120, None),
        ("i3", "records-agent", 30, 90),
    ]:
        rows.append([inc, "fp", "opened", t0, "auditstream", "X", agent, "warning", "", ""])
        rows.append(
            [
                inc,
                "fp",
                "acknowledged",
                t0 + timedelta(seconds=ack_s),
                "a",
                "X",
                agent,
                "warning",
                "",
                "",
            ]
        )
        if res_s is not None:
            rows.append(
                [
                    inc,
                    "fp",
                    "resolved",
                    t0 + timedelta(seconds=res_s),
                    "a",
                    "X",
                    agent,
                    "warning",
                    "",
                    "",
                ]
            )
    cols = [
        "incident_id",
        "fingerprint",
        "action",
        "at",
        "by",
        "alertname",
        "agent_id",
        "severity",
        "group_key",
        "note",
    ]
    ch.insert("incidents", rows, column_names=cols)
    kpis = kpis_from_clickhouse(ch)
    assert kpis.mtta_mttr_by_owner is not None
    by_owner = {o.owner: o for o in kpis.mtta_mttr_by_owner}
    jane = by_owner["jane.doe@example.com"]  # support-bot and routing-agent
    assert (jane.incidents, jane.mtta_s, jane.mttr_s) == (2, 90.0, 600.0)
    li = by_owner["li.wei@example.com"]
    assert (li.incidents, li.mtta_s, li.mttr_s) == (1, 30.0, 90.0)
