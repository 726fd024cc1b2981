"""The alert engine: a pure state machine from findings to alerts and incident rows.

No faust, no clock: every input carries its event time (epoch seconds), and :func:`tick`
is told "now" (event time advanced by the worker's timer). State is one small
:class:`AlertState` per fingerprint, so the faust agent keeps it in a table keyed by fingerprint
(changelogged: a restart keeps open alerts) and the benchmark runs the very same functions.

Life of an alert (per fingerprint)::

    inactive ─firing finding─▶ pending ─held for_s─▶ firing ─clear for resolve_after_s─▶ inactive
                                  ╰─clear─▶ inactive
    (oneshot: resolves after oneshot_quiet_s without a repeat;
     condition: resolves after stale_after_s without any finding)

- Dedup: while firing, further firing findings only refresh the numbers; nothing is re-emitted
  (delivery re-sends active alerts to Alertmanager on its own schedule).
- Flap suppression: an alert that fired/resolved ``flap_max_transitions`` times within
  ``flap_window_s`` is marked flapping and must stay clear for ``flap_hold_s`` (instead of
  ``resolve_after_s``) before it resolves, so an oscillating signal pages once, not every minute.
- Incidents: each firing episode opens one incident (``incident_id`` = fingerprint + start) and
  auto-resolves with it; on-call acks/resolves are extra rows written by the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec
from msgspec import Struct, field

from auditstream.alerts.model import (
    Alert,
    Finding,
    FindingKind,
    IncidentEvent,
    Severity,
    incident_id_for,
    utc,
)

Phase = Literal["inactive", "pending", "firing"]


@dataclass(frozen=True)
class EnginePolicy:
    for_s: float = 0.0
    resolve_after_s: float = 60.0
    stale_after_s: float = 600.0
    oneshot_quiet_s: float = 900.0
    flap_window_s: float = 3600.0
    flap_max_transitions: int = 4
    flap_hold_s: float = 900.0
    group_by: tuple[str, ...] = ("alertname", "team")


class AlertState(Struct, kw_only=True):
    fingerprint: str
    alertname: str
    agent_id: str | None
    severity: Severity
    labels: dict[str, str]
    kind: FindingKind = "condition"
    phase: Phase = "inactive"
    pending_since: float | None = None
    starts_at: float | None = None
    last_firing_at: float | None = None
    clear_since: float | None = None
    last_seen: float = 0.0
    annotations: dict[str, str] = field(default_factory=dict)
    value: float = 0.0
    threshold: float | None = None
    transitions: list[float] = field(default_factory=list)
    flapping: bool = False
    incident_id: str = ""
    version: int = 0

    def to_bytes(self) -> bytes:
        return msgspec.msgpack.encode(self)

    @classmethod
    def from_bytes(cls, raw: bytes) -> AlertState:
        return msgspec.msgpack.decode(raw, type=cls)


Output = tuple[AlertState, list[Alert], list[IncidentEvent]]


def group_key(labels: dict[str, str], group_by: tuple[str, ...]) -> str:
    """Alerts sharing these label values are grouped (one Slack thread / Alertmanager group).

    A missing ``team`` falls back to the owner, then the agent, so ungrouped agents stay apart.
    """
    parts = []
    for name in group_by:
        value = labels.get(name)
        if value is None and name == "team":
            value = labels.get("owner") or labels.get("agent_id") or "-"
        parts.append(f"{name}={value if value is not None else '-'}")
    return ",".join(parts)


def new_state(finding: Finding) -> AlertState:
    return AlertState(
        fingerprint=finding.fingerprint(),
        alertname=finding.alertname,
        agent_id=finding.agent_id,
        severity=finding.severity,
        labels=finding.identity(),
        kind=finding.kind,
    )


def step(state: AlertState | None, finding: Finding, policy: EnginePolicy) -> Output:
    """Apply one finding; returns the new state, alert versions and incident rows it caused."""
    st = new_state(finding) if state is None else msgspec.structs.replace(state)
    t = finding.event_time.timestamp()
    # Out-of-order findings never move time backwards (a late "clear" must not undo a newer fire).
    now = max(t, st.last_seen)
    st.last_seen = now
    st.kind = finding.kind
    alerts: list[Alert] = []
    incidents: list[IncidentEvent] = []
    if finding.firing:
        st.annotations = _annotations(finding)
        st.value, st.threshold = finding.value, finding.threshold
        st.last_firing_at = max(t, st.last_firing_at or t)
        st.clear_since = None
        if st.phase == "inactive":
            st.phase, st.pending_since = "pending", t
        if st.phase == "pending" and now - (st.pending_since or now) >= policy.for_s:
            _fire(st, st.pending_since or now, policy, alerts, incidents)
    elif st.phase == "pending":
        st.phase, st.pending_since = "inactive", None
    elif st.phase == "firing" and t >= (st.last_firing_at or 0.0):
        if st.clear_since is None:
            st.clear_since = t
        _maybe_resolve(st, now, policy, alerts, incidents)
    return st, alerts, incidents


def tick(state: AlertState, now: float, policy: EnginePolicy) -> Output:
    """Advance event time with no new finding: fires held pendings, resolves quiet alerts."""
    st = msgspec.structs.replace(state)
    alerts: list[Alert] = []
    incidents: list[IncidentEvent] = []
    if now <= st.last_seen:
        return st, alerts, incidents
    if st.phase == "pending" and now - (st.pending_since or now) >= policy.for_s:
        _fire(st, st.pending_since or now, policy, alerts, incidents)
    elif st.phase == "firing":
        last = st.last_firing_at or st.last_seen
        quiet = policy.oneshot_quiet_s if st.kind == "oneshot" else policy.stale_after_s
        if st.clear_since is not None:
            _maybe_resolve(st, now, policy, alerts, incidents)
        elif now - last >= quiet:
            # Oneshot: no repeat for the quiet period. Condition: the signal went quiet
            # (e.g. the agent stopped sending); do not page forever on a stale condition.
            st.clear_since = last
            _resolve(st, now, policy, alerts, incidents)
    return st, alerts, incidents


def is_idle(state: AlertState, now: float, policy: EnginePolicy) -> bool:
    """True when the state can be dropped from the table (inactive, flap memory expired)."""
    return state.phase == "inactive" and all(
        now - t > policy.flap_window_s for t in state.transitions
    )


def _fire(
    st: AlertState,
    starts_at: float,
    policy: EnginePolicy,
    alerts: list[Alert],
    incidents: list[IncidentEvent],
) -> None:
    st.phase, st.pending_since, st.starts_at, st.clear_since = "firing", None, starts_at, None
    _note_transition(st, starts_at, policy)
    st.incident_id = incident_id_for(st.fingerprint, utc(starts_at))
    alert = _alert(st, policy, utc(st.last_seen))
    alerts.append(alert)
    incidents.append(incident_for_alert(alert))


def _maybe_resolve(
    st: AlertState, now: float, policy: EnginePolicy, alerts: list[Alert], incidents: list
) -> None:
    hold = policy.flap_hold_s if st.flapping else policy.resolve_after_s
    if st.clear_since is not None and now - st.clear_since >= hold:
        _resolve(st, now, policy, alerts, incidents)


def _resolve(
    st: AlertState, now: float, policy: EnginePolicy, alerts: list[Alert], incidents: list
) -> None:
    # The alert ended when the condition cleared, not when we became sure of it.
    ends = st.clear_since if st.clear_since is not None else now
    _note_transition(st, ends, policy)
    st.phase = "inactive"
    alert = _alert(st, policy, utc(now))
    alert.status, alert.ends_at = "resolved", utc(max(ends, st.starts_at or ends))
    alerts.append(alert)
    incidents.append(incident_for_alert(alert))
    st.clear_since = None


def _note_transition(st: AlertState, t: float, policy: EnginePolicy) -> None:
    st.transitions = [x for x in st.transitions if t - x <= policy.flap_window_s] + [t]
    st.flapping = len(st.transitions) >= policy.flap_max_transitions


def _alert(st: AlertState, policy: EnginePolicy, updated: object) -> Alert:
    st.version += 1
    annotations = dict(st.annotations)
    if st.flapping:
        annotations["flapping"] = "true"
    return Alert(
        fingerprint=st.fingerprint,
        alertname=st.alertname,
        agent_id=st.agent_id,
        severity=st.severity,
        labels=dict(st.labels),
        annotations=annotations,
        status="firing",
        starts_at=utc(st.starts_at or st.last_seen),
        ends_at=None,
        updated_at=updated,  # type: ignore[arg-type]
        incident_id=st.incident_id,
        group_key=group_key(st.labels, policy.group_by),
        value=st.value,
        threshold=st.threshold,
        kind=st.kind,
        flapping=st.flapping,
        version=st.version,
    )


def incident_for_alert(alert: Alert) -> IncidentEvent:
    """The lifecycle row an alert version implies (opened at its start, resolved by "auto").

    A pure function of the alert, so whoever consumes ``<prefix>.alerts`` derives the same
    incident rows (a replay writes identical rows, which the table collapses).
    """
    firing = alert.status == "firing"
    return IncidentEvent(
        incident_id=alert.incident_id,
        fingerprint=alert.fingerprint,
        action="opened" if firing else "resolved",
        at=alert.starts_at if firing else alert.updated_at,
        by="auditstream" if firing else "auto",
        alertname=alert.alertname,
        agent_id=alert.agent_id,
        severity=alert.severity,
        group_key=alert.group_key,
        note=alert.annotations.get("summary", "")[:512],
    )


def _annotations(finding: Finding) -> dict[str, str]:
    out = dict(finding.annotations)
    if finding.summary:
        out["summary"] = finding.summary
    out["value"] = f"{finding.value:.6g}"
    if finding.threshold is not None:
        out["threshold"] = f"{finding.threshold:.6g}"
    if finding.score is not None:
        out["score"] = f"{finding.score:.4f}"
    out.setdefault("source", finding.source)
    return out


class Engine:
    """In-memory driver over :func:`step`/:func:`tick` (benchmark and tests; faust uses a table)."""

    def __init__(self, policy: EnginePolicy | None = None) -> None:
        self.policy = policy or EnginePolicy()
        self.states: dict[str, AlertState] = {}

    def process(self, finding: Finding) -> tuple[list[Alert], list[IncidentEvent]]:
        fp = finding.fingerprint()
        st, alerts, incidents = step(self.states.get(fp), finding, self.policy)
        self.states[fp] = st
        return alerts, incidents

    def tick(self, now: float) -> tuple[list[Alert], list[IncidentEvent]]:
        alerts: list[Alert] = []
        incidents: list[IncidentEvent] = []
        for fp in list(self.states):
            st, a, i = tick(self.states[fp], now, self.policy)
            alerts += a
            incidents += i
            if is_idle(st, now, self.policy):
                del self.states[fp]
            else:
                self.states[fp] = st
        return alerts, incidents

    def active(self) -> list[AlertState]:
        return [s for s in self.states.values() if s.phase == "firing"]
