"""Delivery against real local HTTP receivers: exact payloads, HMAC, retry behaviour."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from datetime import UTC, datetime, timedelta

import pytest

from auditstream.alerts.delivery import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Deliverer,
    DeliveryConfig,
    Receiver,
    ReceiverConfigError,
    RetryPolicy,
    alertmanager_payload,
    backoff_s,
    parse_config,
    retry_after_s,
    sign,
    verify_signature,
)
from auditstream.alerts.model import Alert

from .receivers import local_receiver

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
NOW = START + timedelta(minutes=2)


def alert(status: str = "firing") -> Alert:
    return Alert(
        fingerprint="0123456789abcdef",
        alertname="ErrorSpike",
        agent_id="agent-7",
        severity="critical",
        labels={
            "alertname": "ErrorSpike",
            "agent_id": "agent-7",
            "severity": "critical",
            "team": "pay",
        },
        annotations={"summary": "agent-7: 12 errors in 30 operations", "value": "0.4"},
        status=status,  # type: ignore[arg-type]
        starts_at=START,
        ends_at=NOW if status == "resolved" else None,
        updated_at=NOW,
        incident_id="0123456789abcdef-1",
        group_key="alertname=ErrorSpike,team=pay",
        value=0.4,
        version=1 if status == "firing" else 2,
    )


class Sleeps:
    """Records requested sleeps instead of waiting (tests assert the backoff, not the clock)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, s: float) -> None:
        self.calls.append(s)


def deliver(receivers: list[Receiver], a: Alert, action: str | None = None, **kw: object):
    sleeps = Sleeps()
    config = DeliveryConfig(tuple(receivers), kw.pop("retry", RetryPolicy()))  # type: ignore[arg-type]

    async def go():
        d = Deliverer(config, sleep=sleeps, rng=random.Random(1), clock=lambda: NOW.timestamp())
        try:
            return await d.deliver(a, action)  # type: ignore[arg-type]
        finally:
            await d.aclose()

    return asyncio.run(go()), sleeps


def test_pagerduty_trigger_and_resolve_payloads_are_exact() -> None:
    with local_receiver() as rx:
        pd = Receiver("pd", "pagerduty", rx.url + "/v2/enqueue", secret="R0UTINGKEY")
        records, _ = deliver([pd], alert())
        deliver([pd], alert("resolved"))
        deliver([pd], alert(), "acknowledge")
    assert records[0].outcome == "ok" and records[0].http_status == 200
    assert [r.path for r in rx.requests] == ["/v2/enqueue"] * 3
    assert rx.requests[0].json() == {
        "routing_key": "R0UTINGKEY",
        "event_action": "trigger",
        "dedup_key": "0123456789abcdef-1",
        "payload": {
            "summary": "agent-7: 12 errors in 30 operations",
            "source": "agent-7",
            "severity": "critical",
            "timestamp": "2026-01-01T12:00:00.000Z",
            "component": "agent-7",
            "group": "alertname=ErrorSpike,team=pay",
            "class": "ErrorSpike",
            "custom_details": {
                "fingerprint": "0123456789abcdef",
                "labels": {
                    "alertname": "ErrorSpike",
                    "agent_id": "agent-7",
                    "severity": "critical",
                    "team": "pay",
                },
                "annotations": {"summary": "agent-7: 12 errors in 30 operations", "value": "0.4"},
            },
        },
        "client": "auditstream",
    }
    assert rx.requests[1].json() == {
        "routing_key": "R0UTINGKEY",
        "event_action": "resolve",
        "dedup_key": "0123456789abcdef-1",
    }
    assert rx.requests[2].json()["event_action"] == "acknowledge"
    assert rx.requests[0].headers["Content-Type"] == "application/json"


def test_slack_payload_is_exact() -> None:
    with local_receiver() as rx:
        deliver([Receiver("slack", "slack", rx.url + "/services/T/B/X")], alert("resolved"))
    text = "✅ RESOLVED ErrorSpike on `agent-7`: agent-7: 12 errors in 30 operations"
    assert rx.requests[0].json() == {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Severity:* critical"},
                    {"type": "mrkdwn", "text": "*Started:* 2026-01-01T12:00:00.000Z"},
                    {"type": "mrkdwn", "text": "*Incident:* `0123456789abcdef-1`"},
                    {"type": "mrkdwn", "text": "*Group:* alertname=ErrorSpike,team=pay"},
                    {"type": "mrkdwn", "text": "*Ended:* 2026-01-01T12:02:00.000Z"},
                ],
            },
        ],
    }


def test_webhook_hmac_signature_verifies_and_detects_tampering() -> None:
    with local_receiver() as rx:
        deliver([Receiver("hook", "webhook", rx.url + "/hook", secret="s3cret")], alert())
    req = rx.requests[0]
    ts, sig = req.headers[TIMESTAMP_HEADER], req.headers[SIGNATURE_HEADER]
    assert sig.startswith("v1=") and int(ts) == int(NOW.timestamp())
    now = NOW.timestamp()
    assert verify_signature("s3cret", req.body, ts, sig, now=now)
    assert req.json()["alert"]["fingerprint"] == "0123456789abcdef"
    assert not verify_signature("other", req.body, ts, sig, now=now)
    assert not verify_signature("s3cret", req.body + b" ", ts, sig, now=now)
    assert not verify_signature("s3cret", req.body, str(int(ts) + 1), sig, now=now)
    assert not verify_signature("s3cret", req.body, ts, sig, now=now + 301)  # replayed later
    assert not verify_signature("s3cret", req.body, "garbage", sig, now=now)
    assert sign("s3cret", int(ts), req.body) == sig


def test_retry_on_429_honours_retry_after_then_succeeds() -> None:
    with local_receiver([(429, {"Retry-After": "7"}), (200, {})]) as rx:
        records, sleeps = deliver([Receiver("slack", "slack", rx.url)], alert())
    assert len(rx.requests) == 2
    assert sleeps.calls == [7.0]
    assert records[0].outcome == "ok" and records[0].attempts == 2


def test_retry_on_5xx_with_exponential_backoff_then_gives_up() -> None:
    policy = RetryPolicy(max_attempts=4, base_s=1.0, max_s=30.0)
    script = [(503, {}), (502, {}), (500, {}), (503, {})]
    with local_receiver(script) as rx:
        records, sleeps = deliver(
            [Receiver("pd", "pagerduty", rx.url, secret="k")], alert(), retry=policy
        )
    assert len(rx.requests) == 4
    assert len(sleeps.calls) == 3
    # Full jitter: each wait within [0, base·2^attempt].
    assert all(0 <= s <= 1.0 * 2**i for i, s in enumerate(sleeps.calls))
    assert records[0].outcome == "failed" and records[0].http_status == 503
    assert records[0].attempts == 4 and "HTTP 503" in records[0].error


def test_no_retry_on_400() -> None:
    with local_receiver([(400, {}), (200, {})]) as rx:
        records, sleeps = deliver([Receiver("pd", "pagerduty", rx.url, secret="k")], alert())
    assert len(rx.requests) == 1 and sleeps.calls == []
    assert (
        records[0].outcome == "failed"
        and records[0].http_status == 400
        and records[0].attempts == 1
    )


def test_connection_refused_is_retried_and_recorded_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/services/T000/B000/XXXXSECRETPATH"
    caplog.set_level(logging.WARNING)
    records, sleeps = deliver(
        [Receiver("slack", "slack", url), Receiver("hook", "webhook", url, secret="TOPSECRET")],
        alert(),
        retry=RetryPolicy(max_attempts=3, base_s=0.1),
    )
    assert [r.outcome for r in records] == ["failed", "failed"]
    assert [r.attempts for r in records] == [3, 3] and len(sleeps.calls) == 4
    assert records[0].http_status == 0 and "Connect" in records[0].error
    text = caplog.text + " ".join(r.error for r in records)
    assert "XXXXSECRETPATH" not in text and "TOPSECRET" not in text
    assert "slack" in caplog.text


def test_routing_by_severity_and_alertname() -> None:
    with local_receiver() as rx:
        receivers = [
            Receiver("pd", "pagerduty", rx.url + "/pd", secret="k", min_severity="critical"),
            Receiver("s", "slack", rx.url + "/slack", alertnames=("ComplaintBurst",)),
        ]
        warning = alert()
        warning.severity = "warning"
        records, _ = deliver(receivers, warning)
    assert records == [] and rx.requests == []


def test_alertmanager_payload_active_and_resolved() -> None:
    firing = alertmanager_payload([alert()], now=NOW, resend_s=60, generator_url="http://x")
    assert firing == [
        {
            "labels": {
                "alertname": "ErrorSpike",
                "agent_id": "agent-7",
                "severity": "critical",
                "team": "pay",
            },
            "annotations": {
                "summary": "agent-7: 12 errors in 30 operations",
                "value": "0.4",
                "incident_id": "0123456789abcdef-1",
                "group_key": "alertname=ErrorSpike,team=pay",
            },
            "startsAt": "2026-01-01T12:00:00.000Z",
            "endsAt": "2026-01-01T12:06:00.000Z",  # now + 4 × resend: expires if we die
            "generatorURL": "http://x",
        }
    ]
    resolved = alertmanager_payload([alert("resolved")], now=NOW + timedelta(hours=1))
    assert resolved[0]["endsAt"] == "2026-01-01T12:02:00.000Z"


def test_retry_after_forms_and_backoff_bounds() -> None:
    assert retry_after_s("12") == 12.0
    assert retry_after_s("Thu, 01 Jan 2026 12:00:30 GMT", now=START.timestamp()) == 30.0
    assert retry_after_s("soon") is None and retry_after_s(None) is None
    rng = random.Random(0)
    policy = RetryPolicy(base_s=0.5, max_s=4.0)
    assert all(0 <= backoff_s(10, policy, rng) <= 4.0 for _ in range(100))


def test_config_reads_secrets_from_env_only_and_hides_them() -> None:
    doc = {
        "receivers": [
            {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9093/"},
            {
                "name": "pd",
                "type": "pagerduty",
                "routing_key_env": "PD_KEY",
                "min_severity": "critical",
            },
            {"name": "slack", "type": "slack", "url_env": "SLACK_URL"},
            {"name": "hook", "type": "webhook", "url": "https://h.example/x", "secret_env": "HOOK"},
        ],
        "retry": {"max_attempts": 3},
    }
    env = {
        "PD_KEY": "pdkey123",
        "SLACK_URL": "https://hooks.slack.com/services/SECRET",
        "HOOK": "hk",
    }
    cfg = parse_config(doc, env)
    am, pd, slack, hook = cfg.receivers
    assert am.url == "http://127.0.0.1:9093" and pd.secret == "pdkey123"
    assert pd.url == "https://events.pagerduty.com/v2/enqueue"
    assert slack.url.endswith("/SECRET") and hook.secret == "hk" and cfg.retry.max_attempts == 3
    assert "pdkey123" not in repr(cfg) and "SECRET" not in repr(cfg) and "hk'" not in repr(cfg)
    with pytest.raises(ReceiverConfigError, match="PD_KEY is not set"):
        parse_config(doc, {**env, "PD_KEY": ""})
    with pytest.raises(ReceiverConfigError, match="unknown type"):
        parse_config({"receivers": [{"name": "x", "type": "email", "url": "http://x"}]}, {})
    with pytest.raises(ReceiverConfigError, match="unique"):
        parse_config({"receivers": [doc["receivers"][0], doc["receivers"][0]]}, {})
