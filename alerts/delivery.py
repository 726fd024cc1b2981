"""Delivery of alerts to on-call: Alertmanager, PagerDuty, Slack and a signed webhook.

The alerts topic (``<prefix>.alerts``) is the outbox: the engine only *appends* alert versions
to it, and a separate delivery agent (:mod:`auditstream.alerts.stream`) consumes it, so a slow or
broken receiver delays deliveries, never event processing.

- Payload builders are pure functions (tested against exact payloads).
- :class:`Deliverer` sends with httpx: retries with exponential backoff and full jitter on 429,
  5xx and connection errors (honouring ``Retry-After``), never on other 4xx; every attempt's
  outcome becomes a :class:`DeliveryRecord` (→ ClickHouse ``alert_deliveries``) and a counter.
- Receivers come from a YAML file (``AUDITSTREAM_ALERT_RECEIVERS``). Secrets (PagerDuty routing
  keys, Slack webhook URLs, HMAC secrets) are only read from environment variables named in the
  file (``*_env`` keys), so the file can be committed; they never appear in logs, records or
  ``repr``.

Webhook signature (for receivers to verify)::

    X-Auditstream-Timestamp: <unix seconds>
    X-Auditstream-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

Recompute over the raw body bytes, compare in constant time, and reject timestamps older than
5 minutes (replay protection): :func:`verify_signature` does exactly that.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import msgspec

from auditstream.alerts.model import Alert

log = logging.getLogger(__name__)

ReceiverType = Literal["alertmanager", "pagerduty", "slack", "webhook"]
Action = Literal["trigger", "refresh", "acknowledge", "resolve"]
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
SIGNATURE_HEADER = "X-Auditstream-Signature"
TIMESTAMP_HEADER = "X-Auditstream-Timestamp"
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class ReceiverConfigError(ValueError):
    """The receivers file is invalid (unknown type, missing URL or secret variable, ...)."""


@dataclass(frozen=True)
class Receiver:
    name: str
    type: ReceiverType
    url: str = field(repr=False)
    secret: str = field(default="", repr=False)  # routing key (PagerDuty) or HMAC secret
    min_severity: str = "info"
    alertnames: tuple[str, ...] = ()  # empty: all
    resend_s: float = 60.0  # Alertmanager: re-send active alerts this often
    timeout_s: float = 10.0

    def wants(self, alert: Alert) -> bool:
        if self.alertnames and alert.alertname not in self.alertnames:
            return False
        return SEVERITY_RANK.get(alert.severity, 0) >= SEVERITY_RANK.get(self.min_severity, 0)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 0.5
    max_s: float = 30.0
    # Total time one delivery may spend retrying; the next alert version supersedes it anyway.
    deadline_s: float = 120.0


@dataclass(frozen=True)
class DeliveryConfig:
    receivers: tuple[Receiver, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    generator_url: str = ""


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> DeliveryConfig:
    """Read the receivers YAML (``path`` or ``$AUDITSTREAM_ALERT_RECEIVERS``); none → empty.

    ```yaml
    generator_url: http://grafana.example/d/agents
    retry: {max_attempts: 5, base_s: 0.5, max_s: 30}
    receivers:
      - {name: am, type: alertmanager, url: "http://127.0.0.1:9093", resend_s: 60}
      - {name: pd, type: pagerduty, routing_key_env: PD_ROUTING_KEY, min_severity: critical}
      - {name: slack, type: slack, url_env: SLACK_WEBHOOK_URL}
      - {name: hook, type: webhook, url: "https://hooks.example/x", secret_env: HOOK_SECRET}
    ```
    """
    import yaml

    env = os.environ if env is None else env
    path = path or env.get("AUDITSTREAM_ALERT_RECEIVERS")
    if not path:
        return DeliveryConfig()
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ReceiverConfigError(f"cannot read receivers file {path}: {exc}") from None
    return parse_config(doc, env)


def parse_config(doc: Mapping[str, Any], env: Mapping[str, str]) -> DeliveryConfig:
    if not isinstance(doc, Mapping):
        raise ReceiverConfigError("receivers file must be a mapping")
    receivers = []
    seen: set[str] = set()
    for i, item in enumerate(doc.get("receivers") or []):
        where = f"receivers[{i}]"
        if not isinstance(item, Mapping):
            raise ReceiverConfigError(f"{where}: must be a mapping")
        name = str(item.get("name") or "")
        rtype = item.get("type")
        if not name or name in seen:
            raise ReceiverConfigError(f"{where}: a unique 'name' is required")
        seen.add(name)
        if rtype not in ("alertmanager", "pagerduty", "slack", "webhook"):
            raise ReceiverConfigError(f"{where}: unknown type {rtype!r}")
        url = _value(item, "url", env, where, required=rtype != "pagerduty")
        if rtype == "pagerduty":
            url = url or PAGERDUTY_URL
            secret = _value(item, "routing_key", env, where, required=True)
        elif rtype == "webhook":
            secret = _value(item, "secret", env, where, required=True)
        else:
            secret = ""
        if not url.startswith(("http://", "https://")):
            raise ReceiverConfigError(f"{where}: url must be http(s)")
        min_sev = str(item.get("min_severity", "info"))
        if min_sev not in SEVERITY_RANK:
            raise ReceiverConfigError(f"{where}: min_severity must be one of {list(SEVERITY_RANK)}")
        receivers.append(
            Receiver(
                name=name,
                type=rtype,
                url=url.rstrip("/") if rtype == "alertmanager" else url,
                secret=secret,
                min_severity=min_sev,
                alertnames=tuple(item.get("alertnames") or ()),
                resend_s=float(item.get("resend_s", 60.0)),
                timeout_s=float(item.get("timeout_s", 10.0)),
            )
        )
    r = doc.get("retry") or {}
    retry = RetryPolicy(
        max_attempts=int(r.get("max_attempts", 5)),
        base_s=float(r.get("base_s", 0.5)),
        max_s=float(r.get("max_s", 30.0)),
        deadline_s=float(r.get("deadline_s", 120.0)),
    )
    if retry.max_attempts < 1:
        raise ReceiverConfigError("retry.max_attempts must be >= 1")
    return DeliveryConfig(tuple(receivers), retry, str(doc.get("generator_url", "")))


def _value(
    item: Mapping[str, Any], key: str, env: Mapping[str, str], where: str, required: bool
) -> str:
    """A setting given inline (``key``) or through an env variable (``key_env``)."""
    if f"{key}_env" in item:
        var = str(item[f"{key}_env"])
        if var not in env or not env[var]:
            raise ReceiverConfigError(f"{where}: environment variable {var} is not set")
        return env[var]
    if item.get(key):
        return str(item[key])
    if required:
        raise ReceiverConfigError(f"{where}: '{key}' or '{key}_env' is required")
    return ""


# -- payloads (pure) ----------------------------------------------------------------------------
def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertmanager_payload(
    alerts: list[Alert], *, now: datetime, resend_s: float = 60.0, generator_url: str = ""
) -> list[dict[str, Any]]:
    """Body of ``POST /api/v2/alerts``.

    A firing alert gets ``endsAt = now + 4 × resend_s`` (as Prometheus does): while we re-send,
    it stays active; if the sender dies, Alertmanager resolves it by itself instead of paging
    forever. A resolved alert carries its real end.
    """
    out = []
    for a in alerts:
        item: dict[str, Any] = {
            "labels": {k: v for k, v in a.labels.items() if v},
            "annotations": {
                **{k: v for k, v in a.annotations.items() if v},
                "incident_id": a.incident_id,
                "group_key": a.group_key,
            },
            "startsAt": _iso(a.starts_at),
        }
        if a.status == "resolved":
            item["endsAt"] = _iso(a.ends_at or now)
        else:
            item["endsAt"] = _iso(now + timedelta(seconds=4 * resend_s))
        if generator_url:
            item["generatorURL"] = generator_url
        out.append(item)
    return out


_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def pagerduty_payload(alert: Alert, routing_key: str, action: Action) -> dict[str, Any]:
    """PagerDuty Events API v2 event; ``dedup_key`` is the incident (one page per episode)."""
    event_action = {"trigger": "trigger", "refresh": "trigger"}.get(action, action)
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": event_action,
        "dedup_key": alert.incident_id,
    }
    if event_action == "trigger":
        body["payload"] = {
            "summary": (alert.annotations.get("summary") or alert.alertname)[:1024],
            "source": alert.agent_id or "auditstream",
            "severity": _PD_SEVERITY.get(alert.severity, "warning"),
            "timestamp": _iso(alert.starts_at),
            "component": alert.agent_id or "",
            "group": alert.group_key,
            "class": alert.alertname,
            "custom_details": {
                "fingerprint": alert.fingerprint,
                "labels": alert.labels,
                "annotations": alert.annotations,
            },
        }
        body["client"] = "auditstream"
    return body


def slack_payload(alert: Alert, action: Action) -> dict[str, Any]:
    """Slack incoming-webhook message: a one-line ``text`` (notifications) plus blocks."""
    icon = {"resolve": "✅ RESOLVED", "acknowledge": "👀 ACKNOWLEDGED"}.get(
        action, "🔥 CRITICAL" if alert.severity == "critical" else "⚠️ " + alert.severity.upper()
    )
    who = f" on `{alert.agent_id}`" if alert.agent_id else ""
    summary = alert.annotations.get("summary", "")
    text = f"{icon} {alert.alertname}{who}: {summary}".strip()
    fields = [
        {"type": "mrkdwn", "text": f"*Severity:* {alert.severity}"},
        {"type": "mrkdwn", "text": f"*Started:* {_iso(alert.starts_at)}"},
        {"type": "mrkdwn", "text": f"*Incident:* `{alert.incident_id}`"},
        {"type": "mrkdwn", "text": f"*Group:* {alert.group_key}"},
    ]
    if alert.ends_at is not None:
        fields.append({"type": "mrkdwn", "text": f"*Ended:* {_iso(alert.ends_at)}"})
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "section", "fields": fields},
    ]
    query = alert.annotations.get("events_query")
    if query:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"```{query}```"}]}
        )
    return {"text": text, "blocks": blocks}


def webhook_body(alert: Alert, action: Action) -> bytes:
    return msgspec.json.encode({"version": 1, "action": action, "alert": alert})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float | None = None,
    tolerance_s: float = 300.0,
) -> bool:
    """What a webhook receiver runs: constant-time HMAC check plus a freshness window."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


# -- sending -------------------------------------------------------------------------------
@dataclass
class DeliveryRecord:
    attempted_at: datetime
    receiver: str
    receiver_type: str
    fingerprint: str
    incident_id: str
    action: str
    outcome: Literal["ok", "failed", "skipped"]
    http_status: int
    attempts: int
    error: str
    duration_ms: float

    def row(self) -> list[Any]:
        return [
            self.attempted_at,
            self.receiver,
            self.receiver_type,
            self.fingerprint,
            self.incident_id,
            self.action,
            self.outcome,
            self.http_status,
            self.attempts,
            self.error,
            self.duration_ms,
        ]


DELIVERY_COLUMNS = [
    "attempted_at",
    "receiver",
    "receiver_type",
    "fingerprint",
    "incident_id",
    "action",
    "outcome",
    "http_status",
    "attempts",
    "error",
    "duration_ms",
]


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(max, base·2^attempt))."""
    return rng.uniform(0.0, min(policy.max_s, policy.base_s * 2**attempt))


def is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


@dataclass
class _Request:
    url: str
    content: bytes
    headers: dict[str, str]


class Deliverer:
    """Sends alert versions to every receiver that wants them; never raises on receiver errors."""

    def __init__(
        self,
        config: DeliveryConfig,
        *,
        client: Any | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import httpx

        self.config = config
        self._client = client or httpx.AsyncClient(follow_redirects=False)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self.counters: dict[str, int] = {"ok": 0, "failed": 0, "retries": 0}
        # Alertmanager needs active alerts re-sent; latest firing version per fingerprint.
        self.active: dict[str, Alert] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    def remember(self, alert: Alert) -> None:
        if alert.status == "firing":
            cur = self.active.get(alert.fingerprint)
            if cur is None or (alert.incident_id, alert.version) >= (cur.incident_id, cur.version):
                self.active[alert.fingerprint] = alert
        else:
            cur = self.active.get(alert.fingerprint)
            if cur is not None and cur.incident_id == alert.incident_id:
                del self.active[alert.fingerprint]

    async def deliver(self, alert: Alert, action: Action | None = None) -> list[DeliveryRecord]:
        """Send one alert version (trigger or resolve) to every interested receiver."""
        action = action or ("trigger" if alert.status == "firing" else "resolve")
        self.remember(alert)
        records = []
        for rec in self.config.receivers:
            if not rec.wants(alert):
                continue
            if action == "acknowledge" and rec.type == "alertmanager":
                continue  # Alertmanager has no ack (a silence is a human decision there)
            records.append(await self._send(rec, alert, action))
        return records

    async def resend_active(self) -> list[DeliveryRecord]:
        """Re-POST every active alert to Alertmanager receivers (keeps them from expiring)."""
        records = []
        alerts = list(self.active.values())
        if not alerts:
            return records
        for rec in self.config.receivers:
            wanted = [a for a in alerts if rec.wants(a)]
            if rec.type == "alertmanager" and wanted:
                records.append(await self._send_am(rec, wanted, "refresh"))
        return records

    def _request(self, rec: Receiver, alert: Alert, action: Action) -> _Request:
        headers = {"Content-Type": "application/json", "User-Agent": "auditstream-alerts/1"}
        if rec.type == "pagerduty":
            body = msgspec.json.encode(pagerduty_payload(alert, rec.secret, action))
        elif rec.type == "slack":
            body = msgspec.json.encode(slack_payload(alert, action))
        elif rec.type == "webhook":
            body = webhook_body(alert, action)
            ts = int(self._clock())
            headers[TIMESTAMP_HEADER] = str(ts)
            headers[SIGNATURE_HEADER] = sign(rec.secret, ts, body)
        else:
            raise ValueError(f"{rec.type} receivers are sent by _send_am")
        return _Request(rec.url, body, headers)

    async def _send(self, rec: Receiver, alert: Alert, action: Action) -> DeliveryRecord:
        if rec.type == "alertmanager":
            return await self._send_am(rec, [alert], action)
        return await self._post(rec, self._request(rec, alert, action), alert, action)

    async def _send_am(self, rec: Receiver, alerts: list[Alert], action: Action) -> DeliveryRecord:
        now = datetime.fromtimestamp(self._clock(), UTC)
        body = msgspec.json.encode(
            alertmanager_payload(
                alerts, now=now, resend_s=rec.resend_s, generator_url=self.config.generator_url
            )
        )
        req = _Request(rec.url + "/api/v2/alerts", body, {"Content-Type": "application/json"})
        return await self._post(rec, req, alerts[0] if len(alerts) == 1 else None, action)

    async def _post(
        self, rec: Receiver, req: _Request, alert: Alert | None, action: Action
    ) -> DeliveryRecord:
        import httpx

        policy = self.config.retry
        started = self._clock()
        status, error, attempts = 0, "", 0
        for attempt in range(policy.max_attempts):
            attempts = attempt + 1
            wait: float | None = None
            try:
                resp = await self._client.post(
                    req.url, content=req.content, headers=req.headers, timeout=rec.timeout_s
                )
                status = resp.status_code
                if status < 300:
                    error = ""
                    break
                error = f"HTTP {status}: {resp.text[:200]}"
                if not is_retryable(status):
                    break
                wait = retry_after_s(resp.headers.get("Retry-After"), self._clock())
            except httpx.TransportError as exc:
                # Connection refused, timeouts, resets: the receiver may come back.
                status, error = 0, f"{type(exc).__name__}: {_safe(str(exc), rec)}"
            if attempts >= policy.max_attempts:
                break
            delay = (
                backoff_s(attempt, policy, self._rng) if wait is None else min(wait, policy.max_s)
            )
            if self._clock() - started + delay > policy.deadline_s:
                break
            self.counters["retries"] += 1
            await self._sleep(delay)
        outcome: Literal["ok", "failed"] = "ok" if not error else "failed"
        self.counters[outcome] += 1
        if outcome == "failed":
            # Receiver name only: URLs can embed tokens (Slack), and the secret never leaves.
            log.warning(
                "alert delivery to %s (%s) failed after %d attempt(s): %s",
                rec.name,
                rec.type,
                attempts,
                error,
            )
        return DeliveryRecord(
            attempted_at=datetime.fromtimestamp(started, UTC),
            receiver=rec.name,
            receiver_type=rec.type,
            fingerprint=alert.fingerprint if alert else "",
            incident_id=alert.incident_id if alert else "",
            action=action,
            outcome=outcome,
            http_status=status,
            attempts=attempts,
            error=error,
            duration_ms=(self._clock() - started) * 1000.0,
        )


def _safe(message: str, rec: Receiver) -> str:
    """Strip the receiver URL (Slack/webhook URLs are credentials) and secrets from a message."""
    for secret in (rec.url, rec.secret):
        if secret:
            message = message.replace(secret, "<redacted>")
    return message[:300]
