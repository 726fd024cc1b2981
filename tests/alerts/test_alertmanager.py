"""The delivery code against Debian's real Alertmanager (API v2) on loopback."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest

from auditstream.alerts.delivery import Deliverer, DeliveryConfig, Receiver
from auditstream.alerts.engine import Engine, EnginePolicy
from auditstream.alerts.model import Finding

pytestmark = pytest.mark.integration


def _wait(pred, what: str, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def test_spike_alert_reaches_alertmanager_and_resolves(alertmanager) -> None:  # type: ignore[no-untyped-def]
    """Findings of a spike → engine → delivery → visible in /api/v2/alerts → resolved."""
    now = datetime.now(UTC).timestamp()
    t0 = now - 600  # event time of the spike: ten minutes ago, so its end is in the past too
    engine = Engine(EnginePolicy(resolve_after_s=60))
    receiver = Receiver("am", "alertmanager", alertmanager.url, resend_s=30)
    labels = {"team": "payments", "owner": "ana"}

    def finding(t: float, firing: bool, agent: str = "agent-spiky") -> Finding:
        return Finding(
            alertname="ErrorSpike",
            agent_id=agent,
            severity="critical",
            labels=labels,
            value=0.55,
            threshold=0.02,
            summary=f"{agent}: 11 errors in 20 operations over 60 s",
            annotations={"events_query": "SELECT 1"},
            event_time=datetime.fromtimestamp(t, UTC),
            firing=firing,
        )

    async def go() -> tuple[list, list]:
        d = Deliverer(DeliveryConfig((receiver,)))
        try:
            fired = []
            for t in range(0, 120, 10):  # the spike: the same alert repeatedly (dedup)
                alerts, _ = engine.process(finding(t0 + t, True))
                for a in alerts:
                    fired += await d.deliver(a)
            assert len(fired) == 1 and fired[0].outcome == "ok", fired
            refresh = await d.resend_active()  # the periodic re-send while active
            assert [r.outcome for r in refresh] == ["ok"]
            return fired, list(d.active.values())
        finally:
            await d.aclose()

    _fired, active = asyncio.run(go())
    fp = active[0].fingerprint
    am_alerts = _wait(
        lambda: [a for a in alertmanager.alerts() if a["labels"].get("agent_id") == "agent-spiky"],
        "alert",
    )
    assert len(am_alerts) == 1
    got = am_alerts[0]
    assert got["labels"] == {
        "alertname": "ErrorSpike",
        "agent_id": "agent-spiky",
        "severity": "critical",
        "team": "payments",
        "owner": "ana",
    }
    assert got["status"]["state"] == "active"
    assert got["annotations"]["summary"].startswith("agent-spiky: 11 errors")
    assert got["annotations"]["incident_id"] == active[0].incident_id
    starts = datetime.fromisoformat(got["startsAt"].replace("Z", "+00:00"))
    assert abs(starts.timestamp() - t0) < 1.0  # startsAt is the event time the spike began
    assert datetime.fromisoformat(got["endsAt"].replace("Z", "+00:00")) > datetime.now(UTC)

    async def resolve() -> list:
        d = Deliverer(DeliveryConfig((receiver,)))
        try:
            engine.process(finding(t0 + 130, False))
            alerts, incidents = engine.tick(t0 + 200)
            assert [a.status for a in alerts] == ["resolved"] and alerts[0].fingerprint == fp
            assert [i.action for i in incidents] == ["resolved"]
            return await d.deliver(alerts[0])
        finally:
            await d.aclose()

    records = asyncio.run(resolve())
    assert [r.outcome for r in records] == ["ok"]
    _wait(
        lambda: (
            not [a for a in alertmanager.alerts() if a["labels"].get("agent_id") == "agent-spiky"]
        ),
        "the alert to resolve",
    )
    # Alertmanager 0.25 drops an alert from /api/v2/alerts once its endsAt has passed; it stayed
    # there while we kept it active (endsAt in the future), so the resolve above is what ended it.
