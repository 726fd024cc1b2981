"""On-call CLI against a real ClickHouse server: list, ack, resolve, show, MTTA/MTTR, deliveries."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from auditstream.alerts.delivery import DeliveryRecord
from auditstream.alerts.engine import Engine
from auditstream.alerts.model import Finding
from auditstream.alerts.signals import ERROR_SPIKE, events_query
from auditstream.alerts.store import (
    insert_alerts,
    insert_deliveries,
    insert_incidents,
    load_active,
)
from auditstream.cli import app

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC).timestamp() - 3600


def test_incident_lifecycle_from_the_cli(make_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    env = make_env()
    for key, value in env.env_vars().items():
        if key.startswith("AUDITSTREAM_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("AUDITSTREAM_ALERT_RECEIVERS", raising=False)
    ch = env.ch()
    # Two events behind the alert, written as the sink would (only the columns we need).
    ch.insert(
        "events",
        [
            ["e1", "ai.auditstream.error", datetime.fromtimestamp(T0 + 5, UTC), "agent-x", 1],
            ["e2", "ai.auditstream.error", datetime.fromtimestamp(T0 + 9, UTC), "agent-x", 1],
        ],
        column_names=["event_id", "event_type", "event_time", "agent_id", "is_error"],
    )
    eng = Engine()
    f = Finding(
        alertname=ERROR_SPIKE,
        agent_id="agent-x",
        severity="critical",
        summary="agent-x: 2 errors",
        annotations={"events_query": events_query("agent-x", T0, T0 + 60, ERROR_SPIKE)},
        event_time=datetime.fromtimestamp(T0 + 10, UTC),
    )
    alerts, incidents = eng.process(f)
    insert_alerts(ch, alerts)
    insert_incidents(ch, incidents)
    incident_id = alerts[0].incident_id
    # What the delivery agent reloads after a restart (to keep re-sending to Alertmanager).
    assert [(a.incident_id, a.status, a.labels) for a in load_active(ch)] == [
        (incident_id, "firing", alerts[0].labels)
    ]
    runner = CliRunner()

    out = runner.invoke(app, ["alerts", "list", "--json"])
    assert out.exit_code == 0, out.output
    listed = [json.loads(line) for line in out.output.splitlines()]
    assert [(a["alertname"], a["agent_id"], a["incident_id"]) for a in listed] == [
        (ERROR_SPIKE, "agent-x", incident_id)
    ]

    out = runner.invoke(app, ["incidents", "ack", incident_id, "--by", "ana"])
    assert out.exit_code == 0, out.output
    rows = [
        json.loads(x)
        for x in runner.invoke(app, ["incidents", "list", "--json"]).output.splitlines()
    ]
    assert [(r["incident_id"], r["state"], r["acked_by"]) for r in rows] == [
        (incident_id, "acknowledged", "ana")
    ]

    out = runner.invoke(
        app, ["incidents", "resolve", incident_id, "--by", "bo", "--note", "rolled back"]
    )
    assert out.exit_code == 0, out.output
    assert runner.invoke(app, ["incidents", "list", "--json"]).output.strip() == ""  # none active
    rows = [
        json.loads(x)
        for x in runner.invoke(
            app, ["incidents", "list", "--state", "resolved", "--json"]
        ).output.splitlines()
    ]
    assert rows[0]["resolved_by"] == "bo"

    out = runner.invoke(app, ["incidents", "show", incident_id, "--json"])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert [(t["action"], t["by"]) for t in shown["timeline"]] == [
        ("opened", "auditstream"),
        ("acknowledged", "ana"),
        ("resolved", "bo"),
    ]
    assert sorted(e["event_id"] for e in shown["events"]) == ["e1", "e2"]
    human = runner.invoke(app, ["incidents", "show", incident_id])
    assert "acknowledged" in human.output and "by ana" in human.output

    out = runner.invoke(app, ["incidents", "mtta", "--json"])
    mtta = json.loads(out.output.splitlines()[0])
    assert mtta["incidents"] == 1 and mtta["acknowledged"] == 1 and mtta["mtta_s"] > 0

    assert runner.invoke(app, ["incidents", "ack", "nope", "--by", "x"]).exit_code == 2
    assert runner.invoke(app, ["alerts", "deliveries"]).exit_code == 0
    insert_deliveries(
        ch,
        [
            DeliveryRecord(
                attempted_at=datetime.now(UTC),
                receiver="pd",
                receiver_type="pagerduty",
                fingerprint=alerts[0].fingerprint,
                incident_id=incident_id,
                action="trigger",
                outcome="failed",
                http_status=503,
                attempts=5,
                error="HTTP 503",
                duration_ms=1.0,
            )
        ],
    )
    out = runner.invoke(app, ["alerts", "deliveries"])
    assert out.exit_code == 1 and "1 failed delivery" in out.output
