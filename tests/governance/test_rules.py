"""Policy rules as pure functions: each rule fires on its violation and stays quiet otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auditstream.governance.registry import Registry, parse_registry
from auditstream.governance.rules import (
    KILL_SWITCH_NOT_HONOURED,
    MISSING_APPROVAL,
    RATE_LIMIT_EXCEEDED,
    SHADOW_AGENT,
    SUGGEST_ONLY_ACTION,
    ControlCommand,
    PolicyEngine,
    should_auto_suspend,
)
from auditstream.producers.contract import (
    Action,
    Approval,
    AuditEvent,
    Prompt,
    SuspensionAck,
    make_event,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REG = parse_registry(
    """
agents:
  - id: auto
    name: Autonomous, medium tier
    autonomy: autonomous
    impact: {financial: moderate}
    rate_limits: {actions_per_minute: 3}
  - id: reviewed
    name: Needs review for everything
    autonomy: human_review
  - id: suggest
    name: Suggest only
    autonomy: suggest_only
  - id: old
    name: Retired
    status: retired
    retired: {by: cto, reason: replaced by auto}
"""
)


def ev(agent: str, data: object, at: datetime = T0) -> AuditEvent:
    kind = {
        Action: "action",
        Approval: "approval",
        Prompt: "prompt",
        SuspensionAck: "suspension_ack",
    }
    return make_event(kind[type(data)], agent, data, time=at)  # type: ignore[arg-type]


def run(engine: PolicyEngine, reg: Registry, events: list[AuditEvent], now: datetime = T0) -> list:
    out = []
    for e in events:
        out.extend(engine.on_event(e, reg.get(e.subject or ""), now))
    return out


def act(i: str, decision: str = "drafting", outcome: str = "succeeded") -> Action:
    return Action(action_id=i, decision_type=decision, outcome=outcome)  # type: ignore[arg-type]


def test_compliant_traffic_fires_nothing() -> None:
    engine = PolicyEngine()
    events = [
        ev("auto", Prompt(content="hi")),
        ev("auto", act("a1", "drafting")),
        ev("auto", act("a2", "pricing")),  # needs review at medium tier ...
        ev(
            "auto",
            Approval(action_id="a2", decision="approved", reviewer="bob"),
            T0 + timedelta(seconds=30),
        ),
        ev("reviewed", Approval(action_id="r1", decision="modified", reviewer="bob")),  # before
        ev("reviewed", act("r1", "drafting"), T0 + timedelta(minutes=1)),
        ev("suggest", act("s1", "pricing", outcome="pending")),  # a proposal, not an execution
        ev("auto", act("a3", "refund", outcome="blocked")),
    ]
    assert run(engine, REG, events) == []
    assert engine.tick(T0 + timedelta(hours=1)) == []


def test_shadow_agent_once_per_renotify_period_and_retired() -> None:
    engine = PolicyEngine(shadow_renotify=timedelta(minutes=10), shadow_grace=timedelta(0))
    out = run(engine, REG, [ev("ghost", Prompt()), ev("ghost", Prompt())])
    assert [v.rule for v in out] == [SHADOW_AGENT]
    assert out[0].labels["reason"] == "unregistered"
    later = engine.on_event(ev("ghost", Prompt()), None, T0 + timedelta(minutes=11))
    assert [v.rule for v in later] == [SHADOW_AGENT]
    retired = run(engine, REG, [ev("old", act("o1"))])
    assert [(v.rule, v.labels["reason"]) for v in retired] == [(SHADOW_AGENT, "retired")]


def test_shadow_agent_after_grace_unless_registered_meanwhile() -> None:
    engine = PolicyEngine(shadow_grace=timedelta(seconds=30))
    assert run(engine, REG, [ev("ghost", Prompt()), ev("late", Prompt())]) == []
    assert engine.tick(T0 + timedelta(seconds=29)) == []
    registered = parse_registry("agents:\n  - {id: late, name: Registered a moment later}\n")
    out = engine.tick(T0 + timedelta(seconds=30), lookup=registered.get)
    assert [(v.rule, v.agent_id) for v in out] == [(SHADOW_AGENT, "ghost")]
    assert engine.tick(T0 + timedelta(minutes=5), lookup=registered.get) == []


def test_suggest_only_action() -> None:
    out = run(PolicyEngine(), REG, [ev("suggest", act("s1", "drafting"))])
    assert [v.rule for v in out] == [SUGGEST_ONLY_ACTION]
    assert out[0].severity == "critical" and out[0].details["action_id"] == "s1"


def test_missing_approval_after_window() -> None:
    engine = PolicyEngine(approval_window=timedelta(minutes=5))
    assert run(engine, REG, [ev("auto", act("a1", "refund"))]) == []
    assert engine.tick(T0 + timedelta(minutes=4)) == []
    out = engine.tick(T0 + timedelta(minutes=5))
    assert [v.rule for v in out] == [MISSING_APPROVAL]
    assert out[0].labels == {"decision_type": "refund"}
    assert out[0].details["action_id"] == "a1"
    assert engine.tick(T0 + timedelta(minutes=10)) == []  # fired once


def test_seeded_pending_review_fires_after_a_restart_unless_approved() -> None:
    # A new engine (the worker restarted) seeded from stored actions that no approval matched.
    engine = PolicyEngine(approval_window=timedelta(minutes=5))
    stored = T0 - timedelta(minutes=2)
    assert engine.seed_pending("auto", "a1", "refund", stored, stored, REG.get("auto"))
    assert engine.seed_pending("auto", "a2", "refund", stored, stored, REG.get("auto"))
    # Not everything is seeded: no review needed, unknown or suggest-only agents.
    assert not engine.seed_pending("auto", "a3", "drafting", stored, stored, REG.get("auto"))
    assert not engine.seed_pending("ghost", "g1", "refund", stored, stored, REG.get("ghost"))
    assert not engine.seed_pending("suggest", "s1", "refund", stored, stored, REG.get("suggest"))
    # The redelivered batch brings a2's approval: only a1 is missing when the window closes,
    # measured from when the action was stored, not from the restart.
    approval = Approval(action_id="a2", decision="approved", reviewer="b")
    assert run(engine, REG, [ev("auto", approval, T0)], now=T0) == []
    assert engine.tick(T0 + timedelta(minutes=2)) == []
    out = engine.tick(T0 + timedelta(minutes=3))
    assert [(v.rule, v.details["action_id"]) for v in out] == [(MISSING_APPROVAL, "a1")]
    # Seeding an action the engine already knows does nothing (no second alert).
    assert not engine.seed_pending("auto", "a2", "refund", stored, stored, REG.get("auto"))


def test_approval_outside_window_or_for_other_action_does_not_count() -> None:
    engine = PolicyEngine(approval_window=timedelta(minutes=5))
    events = [
        ev(
            "auto",
            Approval(action_id="a1", decision="approved", reviewer="b"),
            T0 - timedelta(hours=1),
        ),
        ev("auto", Approval(action_id="zzz", decision="approved", reviewer="b")),
        ev("auto", act("a1", "pricing")),
    ]
    assert run(engine, REG, events) == []
    assert [v.rule for v in engine.tick(T0 + timedelta(minutes=6))] == [MISSING_APPROVAL]


def test_rejected_review_fires_immediately() -> None:
    engine = PolicyEngine()
    out = run(
        engine,
        REG,
        [
            ev("reviewed", act("r1", "drafting")),
            ev("reviewed", Approval(action_id="r1", decision="rejected", reviewer="b")),
        ],
    )
    assert [v.rule for v in out] == [MISSING_APPROVAL]
    assert "rejected" in out[0].summary


def test_rate_limit_condition_fires_and_resolves() -> None:
    engine = PolicyEngine()
    events = [ev("auto", act(f"a{i}"), T0 + timedelta(seconds=i)) for i in range(5)]
    out = run(engine, REG, events)
    assert [(v.rule, v.firing) for v in out] == [(RATE_LIMIT_EXCEEDED, True)]
    out = run(engine, REG, [ev("auto", act("late"), T0 + timedelta(minutes=3))])
    assert [(v.rule, v.firing, v.kind) for v in out] == [(RATE_LIMIT_EXCEEDED, False, "condition")]


def test_rate_limit_counts_by_event_time_when_events_arrive_out_of_order() -> None:
    # Two streams of one agent interleave: a recent burst arrives first, then older actions
    # spread a minute apart. Neither stream exceeds 3 per minute, so nothing fires...
    engine = PolicyEngine()
    recent = [ev("auto", act(f"r{i}"), T0 + timedelta(minutes=10, seconds=i)) for i in range(3)]
    older = [ev("auto", act(f"o{i}"), T0 + timedelta(minutes=i)) for i in range(10)]
    assert run(engine, REG, recent + older) == []
    # ...but a late action that lands inside the recent minute makes four there, and fires.
    out = run(engine, REG, [ev("auto", act("late"), T0 + timedelta(minutes=10, seconds=30))])
    assert [(v.rule, v.firing) for v in out] == [(RATE_LIMIT_EXCEEDED, True)]
    # Far too late to count (beyond rate_lateness behind the newest): ignored, no state change.
    assert run(engine, REG, [ev("auto", act("ancient"), T0 - timedelta(hours=1))]) == []


def _suspend(cid: str = "c1", state: str = "suspended") -> ControlCommand:
    return ControlCommand(cid, "auto", state, "alice", "incident 42", T0)  # type: ignore[arg-type]


def test_kill_switch_honoured() -> None:
    engine = PolicyEngine(ack_timeout=timedelta(seconds=30))
    engine.on_command(_suspend(), T0)
    assert engine.killswitch_status("auto") == "pending_ack"
    ack = SuspensionAck(command_id="c1", state="suspended", sdk_instance="i1")
    run(engine, REG, [ev("auto", ack, T0 + timedelta(seconds=2))])
    assert engine.killswitch_status("auto") == "acknowledged"
    assert engine.tick(T0 + timedelta(minutes=5)) == []
    # Actions stamped before the acknowledgement were in flight; they are not a breach.
    assert run(engine, REG, [ev("auto", act("x"), T0 + timedelta(seconds=1))]) == []
    assert [r.status for r in engine.drain_log()] == ["pending_ack", "acknowledged"]


def test_kill_switch_action_after_ack() -> None:
    engine = PolicyEngine()
    engine.on_command(_suspend(), T0)
    ack = SuspensionAck(command_id="c1", state="suspended")
    out = run(
        engine,
        REG,
        [
            ev("auto", ack, T0 + timedelta(seconds=2)),
            ev("auto", act("x"), T0 + timedelta(seconds=3)),
        ],
    )
    assert [(v.rule, v.severity, v.labels["reason"]) for v in out] == [
        (KILL_SWITCH_NOT_HONOURED, "critical", "action_after_ack")
    ]
    assert engine.killswitch_status("auto") == "not_honoured"


def test_kill_switch_no_ack_and_replayed_command_and_early_ack() -> None:
    engine = PolicyEngine(ack_timeout=timedelta(seconds=30))
    engine.on_command(_suspend(), T0)
    assert engine.tick(T0 + timedelta(seconds=29)) == []
    out = engine.tick(T0 + timedelta(seconds=30))
    assert [(v.rule, v.labels["reason"]) for v in out] == [(KILL_SWITCH_NOT_HONOURED, "no_ack")]
    assert engine.tick(T0 + timedelta(minutes=5)) == []
    engine.on_command(_suspend(), T0 + timedelta(minutes=6))  # compacted replay: same id
    assert engine.killswitch_status("auto") == "not_honoured"
    # An ack read before its command (topics read independently) still counts.
    run(engine, REG, [ev("auto", SuspensionAck(command_id="c2", state="suspended"))])
    engine.on_command(_suspend("c2"), T0 + timedelta(minutes=7))
    assert engine.killswitch_status("auto") == "acknowledged"
    engine.on_command(_suspend("c3", "resumed"), T0 + timedelta(minutes=8))
    assert engine.killswitch_status("auto") == "resumed"
    assert run(engine, REG, [ev("auto", act("y"), T0 + timedelta(minutes=9))]) == []


def test_tick_only_for_owned_agents() -> None:
    engine = PolicyEngine(ack_timeout=timedelta(seconds=1))
    engine.on_command(_suspend(), T0)
    assert engine.tick(T0 + timedelta(minutes=1), owns=lambda agent: False) == []
    assert len(engine.tick(T0 + timedelta(minutes=1), owns=lambda agent: True)) == 1


@pytest.mark.parametrize(
    ("agent", "severity", "state", "expected"),
    [("auto", "critical", None, False), ("suggest", "critical", None, False)],
)
def test_auto_suspend_only_for_tiers_that_ask(agent, severity, state, expected) -> None:
    assert should_auto_suspend(REG.get(agent), severity, state) is expected


def test_auto_suspend_high_tier() -> None:
    reg = parse_registry("agents:\n  - {id: h, name: H, impact: {privacy: severe}}\n")
    assert should_auto_suspend(reg.get("h"), "critical", None)
    assert not should_auto_suspend(reg.get("h"), "warning", None)
    assert not should_auto_suspend(reg.get("h"), "critical", "suspended")
