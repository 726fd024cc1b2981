"""The alert path's data model: findings in, alerts and incident lifecycle rows out.

A :class:`Finding` is what a signal (error rate, complaints, silence, ...) or a policy rule says
about one agent at one event time. The alert engine (:mod:`auditstream.alerts.engine`) turns
findings into :class:`Alert` s: deduplicated by :func:`fingerprint`, grouped, resolved when the
condition clears. Every firing episode of an alert is an incident; its lifecycle (opened,
acknowledged, resolved, by whom) is a list of append-only :class:`IncidentEvent` rows.

Findings travel on ``<prefix>.findings`` keyed by their fingerprint:

>>> f = Finding(alertname="ErrorSpike", agent_id="agent-7", severity="critical", value=0.4,
...             threshold=0.05, summary="error rate 40%",
...             event_time=datetime(2026, 1, 1, tzinfo=UTC))
>>> key, raw = f.fingerprint(), encode_finding(f)
>>> decode_finding(raw).fingerprint() == key
True

Any plugin (governance, detectors) publishes with
``await ctx.findings_topic.send(key=f.fingerprint().encode(), value=encode_finding(f))`` or the
helper :func:`auditstream.alerts.stream.publish_finding`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct, field

Severity = Literal["info", "warning", "critical"]
FindingKind = Literal["condition", "oneshot"]
AlertStatus = Literal["firing", "resolved"]
IncidentAction = Literal["opened", "acknowledged", "resolved", "reopened", "note"]

SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
# Labels that identify an alert (and so go into its fingerprint). Everything else a finding
# carries is an annotation: numbers change every evaluation and must not split an alert.
RESERVED_LABELS = ("alertname", "agent_id", "severity")
MAX_LABELS = 32
MAX_LABEL_CHARS = 256
MAX_ANNOTATION_CHARS = 8192

Label = Annotated[str, Meta(max_length=MAX_LABEL_CHARS)]
AlertName = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
AwareTime = Annotated[datetime, Meta(tz=True)]


class FindingError(ValueError):
    """A finding that cannot be used (bad bytes, bad labels); carries a short reason."""


class Finding(Struct, kw_only=True, omit_defaults=True):
    """One observation from a signal or a policy rule, at one event time.

    - ``kind="condition"``: the signal re-evaluates and says ``firing=True`` while the condition
      holds and ``firing=False`` once it clears; the engine resolves on clear (with hysteresis).
    - ``kind="oneshot"``: a single occurrence (a policy violation); the engine resolves it after
      a quiet period with no repeat, so nobody has to send ``firing=False``.
    """

    alertname: AlertName
    agent_id: Annotated[str, Meta(max_length=MAX_LABEL_CHARS)] | None = None
    severity: Severity = "warning"
    labels: Annotated[dict[str, Label], Meta(max_length=MAX_LABELS)] = field(default_factory=dict)
    value: float = 0.0
    threshold: float | None = None
    score: float | None = None
    summary: Annotated[str, Meta(max_length=1024)] = ""
    annotations: dict[str, Annotated[str, Meta(max_length=MAX_ANNOTATION_CHARS)]] = field(
        default_factory=dict
    )
    event_time: AwareTime
    kind: FindingKind = "condition"
    firing: bool = True
    source: Annotated[str, Meta(max_length=128)] = "alerts"

    def identity(self) -> dict[str, str]:
        """The identifying labels: alertname, agent_id, severity + the finding's own labels."""
        return identity_labels(self.alertname, self.agent_id, self.severity, self.labels)

    def fingerprint(self) -> str:
        return fingerprint(self.identity())


class Alert(Struct, kw_only=True, omit_defaults=False):
    """The engine's view of one alert at one moment; each change is a new version row."""

    fingerprint: str
    alertname: str
    agent_id: str | None
    severity: Severity
    labels: dict[str, str]
    annotations: dict[str, str]
    status: AlertStatus
    starts_at: AwareTime
    ends_at: AwareTime | None = None
    updated_at: AwareTime
    incident_id: str
    group_key: str
    value: float = 0.0
    threshold: float | None = None
    kind: FindingKind = "condition"
    flapping: bool = False
    version: int = 1


class IncidentEvent(Struct, kw_only=True):
    """One append-only lifecycle row of an incident (an alert's firing episode)."""

    incident_id: str
    fingerprint: str
    action: IncidentAction
    at: AwareTime
    by: str = "auditstream"
    alertname: str = ""
    agent_id: str | None = None
    severity: Severity = "warning"
    group_key: str = ""
    note: str = ""


def identity_labels(
    alertname: str, agent_id: str | None, severity: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    labels = {k: str(v) for k, v in (extra or {}).items() if k not in RESERVED_LABELS}
    labels["alertname"] = alertname
    labels["severity"] = severity
    if agent_id:
        labels["agent_id"] = agent_id
    return dict(sorted(labels.items()))


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit hash of the identifying labels (order does not matter).

    Length-prefixed encoding so that ``{"a": "b=c"}`` and ``{"a=b": "c"}`` differ.

    >>> a = fingerprint({"alertname": "X", "agent_id": "a"})
    >>> a == fingerprint({"agent_id": "a", "alertname": "X"})
    True
    """
    h = hashlib.sha256()
    for key in sorted(labels):
        for part in (key, str(labels[key])):
            data = part.encode()
            h.update(len(data).to_bytes(4, "big"))
            h.update(data)
    return h.hexdigest()[:16]


def incident_id_for(fp: str, starts_at: datetime) -> str:
    """One incident per firing episode: the fingerprint plus the episode's start (ms)."""
    return f"{fp}-{int(starts_at.timestamp() * 1000):x}"


_finding_encoder = msgspec.json.Encoder()
_finding_decoder = msgspec.json.Decoder(Finding)
_alert_decoder = msgspec.json.Decoder(Alert)
_incident_decoder = msgspec.json.Decoder(IncidentEvent)


def encode_finding(finding: Finding) -> bytes:
    return _finding_encoder.encode(finding)


def decode_finding(raw: bytes | bytearray | memoryview | str) -> Finding:
    """Parse and validate a finding; raises :class:`FindingError` (dead-letter it, never crash)."""
    try:
        return _finding_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise FindingError(f"invalid finding: {exc}") from None


def encode_alert(alert: Alert) -> bytes:
    return _finding_encoder.encode(alert)


def decode_alert(raw: bytes | bytearray | memoryview | str) -> Alert:
    try:
        return _alert_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise FindingError(f"invalid alert: {exc}") from None


def encode_incident_event(ev: IncidentEvent) -> bytes:
    return _finding_encoder.encode(ev)


def decode_incident_event(raw: bytes | bytearray | memoryview | str) -> IncidentEvent:
    try:
        return _incident_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise FindingError(f"invalid incident event: {exc}") from None


def utc(ts: float) -> datetime:
    """Epoch seconds → aware UTC datetime (the engine and signals work in epoch seconds)."""
    return datetime.fromtimestamp(ts, UTC)
