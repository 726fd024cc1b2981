"""Policy rules over the event stream: pure, with explicit state and explicit clocks.

:class:`PolicyEngine` receives decoded events with the agent's registry entry (or ``None``),
kill-switch commands from the control topic, and clock ticks, and returns :class:`Violation`
records. It never touches Kafka or ClickHouse; ``auditstream.governance.stream`` turns
violations into alert-engine findings. Two clocks, on purpose:

- *event time* (the agent's timestamps) decides *matching*: does an approval fall within the
  window around its action, did an action happen after the kill-switch acknowledgement;
- *processing time* (``received_at`` / ``tick(now)``) decides *deadlines*: an approval may still
  arrive for ``approval_window`` after we saw the action, an acknowledgement for
  ``ack_timeout`` after we saw the command. A replay of old events therefore never fires
  deadlines before their approvals had a chance to be read.

Rules (alert names as emitted):

- ``ShadowAgent`` – an event from an agent that is not in the registry, or is retired;
- ``SuggestOnlyAction`` – any executed action by a ``suggest_only`` agent;
- ``MissingApproval`` – an executed action whose decision type needs review (tier policy, or
  every type for ``human_review`` agents) without an ``approved``/``modified`` approval for the
  same ``action_id`` within the window; a ``rejected`` review fires at once;
- ``RateLimitExceeded`` – more executed actions in a rolling minute than the policy allows
  (a condition: fires on the way up, resolves on the way down);
- ``KillSwitchNotHonoured`` (critical) – an action after the SDK acknowledged a suspension, or no
  acknowledgement within ``ack_timeout`` of the command.

An action with outcome ``blocked`` was refused by a guardrail and one with outcome ``pending``
is a proposal awaiting a human; neither happened in the world, so neither counts for any rule.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from auditstream.governance.registry import AgentEntry
from auditstream.governance.rubric import TierPolicy
from auditstream.producers.contract import Action, Approval, AuditEvent, SuspensionAck

# The alert engine's severities (auditstream.alerts.model.Severity).
Severity = Literal["info", "warning", "critical"]
ControlState = Literal["suspended", "resumed"]
KillSwitchStatus = Literal["pending_ack", "acknowledged", "not_honoured", "resumed"]

SHADOW_AGENT = "ShadowAgent"
SUGGEST_ONLY_ACTION = "SuggestOnlyAction"
MISSING_APPROVAL = "MissingApproval"
RATE_LIMIT_EXCEEDED = "RateLimitExceeded"
KILL_SWITCH_NOT_HONOURED = "KillSwitchNotHonoured"
RULES: tuple[str, ...] = (
    SHADOW_AGENT,
    SUGGEST_ONLY_ACTION,
    MISSING_APPROVAL,
    RATE_LIMIT_EXCEEDED,
    KILL_SWITCH_NOT_HONOURED,
)

# Outcomes that mean the action really happened in the world.
EXECUTED_OUTCOMES = frozenset({"succeeded", "failed", "reverted"})
APPROVING_DECISIONS = frozenset({"approved", "modified"})


@dataclass(frozen=True)
class Violation:
    """One rule firing (or, for conditions, resolving) for one agent."""

    rule: str
    agent_id: str
    severity: Severity
    summary: str
    event_time: datetime
    kind: Literal["condition", "oneshot"] = "oneshot"
    firing: bool = True
    labels: dict[str, str] = field(default_factory=dict)
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ControlCommand:
    """A suspend/resume command as published on the compacted control topic."""

    command_id: str
    agent_id: str
    state: ControlState
    by: str
    reason: str
    issued_at: datetime


@dataclass(frozen=True)
class KillSwitchRecord:
    """A verification step for the kill-switch log (only these may say an agent stopped)."""

    command_id: str
    agent_id: str
    status: KillSwitchStatus
    at: datetime
    detail: str = ""


@dataclass
class _Pending:
    action_id: str
    decision_type: str
    event_time: datetime
    deadline: datetime
    tier: str = ""


@dataclass
class _KillSwitch:
    command: ControlCommand
    deadline: datetime
    acked_at: datetime | None = None
    status: KillSwitchStatus = "pending_ack"


@dataclass
class _AgentState:
    # action_id -> (decision, event time, processing time seen); bounded by max_tracked.
    approvals: dict[str, tuple[str, datetime, datetime]] = field(default_factory=dict)
    pending: dict[str, _Pending] = field(default_factory=dict)
    action_times: list[datetime] = field(default_factory=list)  # sorted
    rate_firing: bool = False
    shadow_notified_at: datetime | None = None
    # First unregistered event still inside the grace period: (seen at, the event).
    shadow_pending: tuple[datetime, AuditEvent] | None = None
    killswitch: _KillSwitch | None = None
    # Acks seen before their command (control topic read after the events): command_id -> time.
    early_acks: dict[str, datetime] = field(default_factory=dict)


@dataclass
class PolicyEngine:
    """Per-worker rule state for the agents whose events this worker sees."""

    approval_window: timedelta = timedelta(minutes=15)
    ack_timeout: timedelta = timedelta(seconds=60)
    rate_window: timedelta = timedelta(minutes=1)
    rate_lateness: timedelta = timedelta(minutes=5)
    shadow_renotify: timedelta = timedelta(hours=1)
    # An agent is often registered and started by the same deployment: the registry record may
    # reach the worker a moment after the agent's first event. Wait this long (processing time)
    # before calling it a shadow agent; 0 fires at once.
    shadow_grace: timedelta = timedelta(seconds=30)
    # Hard bound on remembered approvals / pending actions per agent (memory safety).
    max_tracked: int = 100_000
    agents: dict[str, _AgentState] = field(default_factory=dict)
    log: list[KillSwitchRecord] = field(default_factory=list)
    _policies: dict[str, tuple[AgentEntry, TierPolicy]] = field(default_factory=dict, repr=False)

    def _policy(self, entry: AgentEntry) -> TierPolicy:
        """The entry's policy, derived once per registry record (the hot path asks per action)."""
        cached = self._policies.get(entry.id)
        if cached is None or cached[0] is not entry:
            cached = self._policies[entry.id] = (entry, entry.policy)
        return cached[1]

    def _state(self, agent_id: str) -> _AgentState:
        state = self.agents.get(agent_id)
        if state is None:
            state = self.agents[agent_id] = _AgentState()
        return state

    # -- events ------------------------------------------------------------------------------
    def on_event(
        self, event: AuditEvent, entry: AgentEntry | None, received_at: datetime
    ) -> list[Violation]:
        agent_id = event.subject
        if agent_id is None:
            return []  # complaints without a known agent are linked elsewhere
        state = self._state(agent_id)
        out: list[Violation] = []
        if entry is None or not entry.active:
            if not self.shadow_grace:
                v = self._shadow(agent_id, event, entry, state, received_at)
                if v is not None:
                    out.append(v)
            elif state.shadow_pending is None:
                state.shadow_pending = (received_at, event)
        else:
            state.shadow_pending = None  # registered meanwhile
        data = event.data
        if isinstance(data, SuspensionAck):
            self._on_ack(agent_id, data, event.time, state)
        elif isinstance(data, Approval):
            out.extend(self._on_approval(agent_id, data, event.time, received_at, state))
        elif isinstance(data, Action) and data.outcome in EXECUTED_OUTCOMES:
            out.extend(self._on_action(agent_id, event, data, entry, received_at, state))
        return out

    def _shadow(
        self,
        agent_id: str,
        event: AuditEvent,
        entry: AgentEntry | None,
        state: _AgentState,
        received_at: datetime,
    ) -> Violation | None:
        last = state.shadow_notified_at
        if last is not None and received_at - last < self.shadow_renotify:
            return None
        state.shadow_notified_at = received_at
        why = "retired" if entry is not None else "not in the registry"
        return Violation(
            rule=SHADOW_AGENT,
            agent_id=agent_id,
            severity="warning",
            summary=f"events from agent {agent_id!r}, which is {why}",
            event_time=event.time,
            kind="oneshot",
            labels={"reason": "retired" if entry is not None else "unregistered"},
            details={"first_event_type": event.kind, "source": event.source},
        )

    def _on_action(
        self,
        agent_id: str,
        event: AuditEvent,
        action: Action,
        entry: AgentEntry | None,
        received_at: datetime,
        state: _AgentState,
    ) -> list[Violation]:
        out: list[Violation] = []
        # Labels identify the alert (fingerprint): per agent, rule and decision type, so repeats
        # group into one alert; the action id is an annotation (details).
        labels = {"decision_type": action.decision_type}
        ks = state.killswitch
        if (
            ks is not None
            and ks.command.state == "suspended"
            and ks.acked_at is not None
            and event.time > ks.acked_at
        ):
            ks.status = "not_honoured"
            self.log.append(
                KillSwitchRecord(
                    ks.command.command_id,
                    agent_id,
                    "not_honoured",
                    event.time,
                    f"action {action.action_id} after the acknowledgement",
                )
            )
            out.append(
                Violation(
                    rule=KILL_SWITCH_NOT_HONOURED,
                    agent_id=agent_id,
                    severity="critical",
                    summary=(
                        f"agent {agent_id!r} acted ({action.decision_type} {action.action_id}) "
                        f"after acknowledging suspension {ks.command.command_id}"
                    ),
                    event_time=event.time,
                    labels={"reason": "action_after_ack"},
                    details={
                        "command_id": ks.command.command_id,
                        "by": ks.command.by,
                        "action_id": action.action_id,
                    },
                )
            )
        if entry is None or not entry.active:
            return out  # shadow agents have no policy to check against beyond the alert above
        if entry.autonomy == "suggest_only":
            out.append(
                Violation(
                    rule=SUGGEST_ONLY_ACTION,
                    agent_id=agent_id,
                    severity="critical",
                    summary=(
                        f"suggest-only agent {agent_id!r} executed a {action.decision_type} "
                        f"action ({action.action_id})"
                    ),
                    event_time=event.time,
                    labels=labels,
                    details={
                        "action_id": action.action_id,
                        "outcome": action.outcome,
                        "target": action.target or "",
                    },
                )
            )
        else:
            if self.needs_review(entry, action.decision_type):
                v = self._check_approval(agent_id, event, action, entry, received_at, state)
                if v is not None:
                    out.append(v)
        out.extend(self._rate(agent_id, event.time, entry, state))
        return out

    def needs_review(self, entry: AgentEntry, decision_type: str) -> bool:
        """Whether an action of this type by this agent needs a human approval."""
        return (
            entry.autonomy == "human_review" or decision_type in self._policy(entry).review_required
        )

    def seed_pending(
        self,
        agent_id: str,
        action_id: str,
        decision_type: str,
        event_time: datetime,
        received_at: datetime,
        entry: AgentEntry | None,
    ) -> bool:
        """Re-create a pending review after a restart, from a stored action no approval matched.

        Memory is lost with the worker, ClickHouse is not: the stream calls this with actions
        stored within the approval window, so a crash cannot swallow a missing approval. Known
        actions and approvals win (the redelivered batch may have been evaluated already).
        """
        if entry is None or not entry.active or entry.autonomy == "suggest_only":
            return False
        if not self.needs_review(entry, decision_type):
            return False
        state = self._state(agent_id)
        if action_id in state.pending or action_id in state.approvals:
            return False
        if len(state.pending) >= self.max_tracked:
            return False
        state.pending[action_id] = _Pending(
            action_id,
            decision_type,
            event_time,
            received_at + self.approval_window,
            self._policy(entry).tier,
        )
        return True

    def _check_approval(
        self,
        agent_id: str,
        event: AuditEvent,
        action: Action,
        entry: AgentEntry,
        received_at: datetime,
        state: _AgentState,
    ) -> Violation | None:
        seen = state.approvals.get(action.action_id)
        if seen is not None and abs(seen[1] - event.time) <= self.approval_window:
            if seen[0] in APPROVING_DECISIONS:
                return None
            return self._missing(agent_id, action, entry, event.time, f"review was {seen[0]}")
        if len(state.pending) < self.max_tracked:
            state.pending[action.action_id] = _Pending(
                action.action_id,
                action.decision_type,
                event.time,
                received_at + self.approval_window,
                self._policy(entry).tier,
            )
            return None
        return self._missing(agent_id, action, entry, event.time, "too many unreviewed actions")

    def _missing(
        self,
        agent_id: str,
        action: Action | _Pending,
        entry: AgentEntry | None,
        event_time: datetime,
        why: str,
    ) -> Violation:
        if entry is not None:
            tier = self._policy(entry).tier
        else:
            tier = action.tier if isinstance(action, _Pending) and action.tier else "unknown"
        return Violation(
            rule=MISSING_APPROVAL,
            agent_id=agent_id,
            # An unreviewed high-tier decision is critical (and may auto-suspend the agent).
            severity="critical" if tier == "high" else "warning",
            summary=(
                f"{action.decision_type} action {action.action_id} by {agent_id!r} "
                f"(tier {tier}) needs human review: {why}"
            ),
            event_time=event_time,
            labels={"decision_type": action.decision_type},
            details={
                "action_id": action.action_id,
                "window_s": str(int(self.approval_window.total_seconds())),
            },
        )

    def _on_approval(
        self,
        agent_id: str,
        approval: Approval,
        event_time: datetime,
        received_at: datetime,
        state: _AgentState,
    ) -> list[Violation]:
        pending = state.pending.get(approval.action_id)
        if len(state.approvals) < self.max_tracked:
            # Kept even when it settles a pending action: a restart's seeding (or a redelivered
            # action) must find the action reviewed, not start waiting for a review again.
            state.approvals[approval.action_id] = (approval.decision, event_time, received_at)
        if pending is not None and abs(event_time - pending.event_time) <= self.approval_window:
            del state.pending[approval.action_id]
            if approval.decision not in APPROVING_DECISIONS:
                return [
                    self._missing(
                        agent_id,
                        pending,
                        None,
                        pending.event_time,
                        f"executed although the review was {approval.decision}",
                    )
                ]
            return []
        return []

    def _rate(
        self, agent_id: str, event_time: datetime, entry: AgentEntry, state: _AgentState
    ) -> list[Violation]:
        limit = self._policy(entry).actions_per_minute
        # One agent's events share a partition, but not always event-time order: two processes
        # of one agent, SDK retries and backfills interleave. Keep the times sorted and count
        # the actions in the window ending at this one; older than `rate_lateness` behind the
        # newest is too late to count.
        times = state.action_times
        horizon = (times[-1] if times else event_time) - self.rate_window - self.rate_lateness
        if event_time < horizon:
            return []
        insort(times, event_time)
        drop = bisect_left(times, times[-1] - self.rate_window - self.rate_lateness)
        drop = max(drop, len(times) - self.max_tracked)
        if drop >= 256 or drop > len(times) // 2:  # in chunks: a del at the front is a memmove
            del times[:drop]
        in_window = bisect_right(times, event_time) - bisect_right(
            times, event_time - self.rate_window
        )
        over = in_window > limit
        if over == state.rate_firing:
            return []
        state.rate_firing = over
        return [
            Violation(
                rule=RATE_LIMIT_EXCEEDED,
                agent_id=agent_id,
                severity="warning",
                summary=(
                    f"agent {agent_id!r} exceeded {limit} actions per minute"
                    if over
                    else f"agent {agent_id!r} back under {limit} actions per minute"
                ),
                event_time=event_time,
                kind="condition",
                firing=over,
                labels={"limit_per_minute": str(limit)},
            )
        ]

    # -- kill switch -------------------------------------------------------------------------
    def on_command(self, command: ControlCommand, received_at: datetime) -> list[Violation]:
        """Start (suspend) or end (resume) kill-switch verification for an agent."""
        state = self._state(command.agent_id)
        current = state.killswitch
        if current is not None and current.command.command_id == command.command_id:
            return []  # the compacted topic replays the latest command on every restart
        if command.state == "resumed":
            state.killswitch = _KillSwitch(command, received_at, status="resumed")
            self.log.append(
                KillSwitchRecord(command.command_id, command.agent_id, "resumed", command.issued_at)
            )
            return []
        ks = _KillSwitch(command, received_at + self.ack_timeout)
        state.killswitch = ks
        self.log.append(
            KillSwitchRecord(
                command.command_id,
                command.agent_id,
                "pending_ack",
                command.issued_at,
                "suspend command seen; waiting for the SDK acknowledgement",
            )
        )
        early = state.early_acks.pop(command.command_id, None)
        if early is not None:
            self._acknowledge(command.agent_id, ks, early)
        return []

    def _on_ack(
        self, agent_id: str, ack: SuspensionAck, event_time: datetime, state: _AgentState
    ) -> None:
        ks = state.killswitch
        if ack.state != "suspended":
            return
        if ks is None or ks.command.command_id != ack.command_id:
            if len(state.early_acks) < 1000:
                state.early_acks[ack.command_id] = event_time
            return
        if ks.acked_at is None:
            self._acknowledge(agent_id, ks, event_time)

    def _acknowledge(self, agent_id: str, ks: _KillSwitch, at: datetime) -> None:
        ks.acked_at = at
        if ks.status == "pending_ack":
            ks.status = "acknowledged"
            self.log.append(
                KillSwitchRecord(
                    ks.command.command_id,
                    agent_id,
                    "acknowledged",
                    at,
                    "SDK acknowledged; no action after this time so far",
                )
            )

    def tick(
        self,
        now: datetime,
        owns: Callable[[str], bool] | None = None,
        lookup: Callable[[str], AgentEntry | None] | None = None,
    ) -> list[Violation]:
        """Fire expired deadlines. ``owns(agent_id) -> bool`` limits checks to this worker's
        agents (an ack arrives on the agent's partition, so only its owner can see it);
        ``lookup`` is the current registry (a shadow agent may have been registered since)."""
        out: list[Violation] = []
        for agent_id, state in self.agents.items():
            if owns is not None and not owns(agent_id):
                continue
            pending_shadow = state.shadow_pending
            if pending_shadow is not None and now - pending_shadow[0] >= self.shadow_grace:
                state.shadow_pending = None
                entry = lookup(agent_id) if lookup is not None else None
                if entry is None or not entry.active:
                    v = self._shadow(agent_id, pending_shadow[1], entry, state, now)
                    if v is not None:
                        out.append(v)
            expired = [p for p in state.pending.values() if p.deadline <= now]
            for p in expired:
                del state.pending[p.action_id]
                out.append(
                    self._missing(agent_id, p, None, p.event_time, "no approval within the window")
                )
            # Approvals older than twice the window can no longer match anything.
            horizon = now - 2 * self.approval_window
            stale = [k for k, (_, _, seen) in state.approvals.items() if seen < horizon]
            for k in stale:
                del state.approvals[k]
            ks = state.killswitch
            if ks is not None and ks.status == "pending_ack" and ks.deadline <= now:
                ks.status = "not_honoured"
                secs = int(self.ack_timeout.total_seconds())
                self.log.append(
                    KillSwitchRecord(
                        ks.command.command_id,
                        agent_id,
                        "not_honoured",
                        now,
                        f"no acknowledgement within {secs}s",
                    )
                )
                out.append(
                    Violation(
                        rule=KILL_SWITCH_NOT_HONOURED,
                        agent_id=agent_id,
                        severity="critical",
                        summary=(
                            f"agent {agent_id!r} did not acknowledge suspension "
                            f"{ks.command.command_id} within {secs}s"
                        ),
                        event_time=now,
                        labels={"reason": "no_ack"},
                        details={"command_id": ks.command.command_id, "by": ks.command.by},
                    )
                )
        return out

    def restore(self, agent_id: str, command_id: str, status: str, at: datetime) -> None:
        """Re-apply a verdict recorded before a restart (the ack event will not be re-read)."""
        state = self.agents.get(agent_id)
        ks = state.killswitch if state else None
        if ks is None or ks.command.command_id != command_id:
            return
        if status == "acknowledged":
            ks.acked_at = at
            ks.status = "acknowledged"
        elif status in ("not_honoured", "resumed"):
            ks.status = status  # type: ignore[assignment]
        # Drop the duplicate "pending_ack" step on_command just logged for this replay.
        self.log = [r for r in self.log if r.command_id != command_id]

    def killswitch_status(self, agent_id: str) -> KillSwitchStatus | None:
        state = self.agents.get(agent_id)
        return state.killswitch.status if state and state.killswitch else None

    def drain_log(self) -> list[KillSwitchRecord]:
        records, self.log = self.log, []
        return records


def should_auto_suspend(
    entry: AgentEntry | None, severity: str, current: ControlState | None
) -> bool:
    """Auto-suspend policy: a critical alert on an agent whose tier asks for it, once."""
    return (
        entry is not None
        and entry.active
        and severity == "critical"
        and entry.policy.auto_suspend_on_critical
        and current != "suspended"
    )
