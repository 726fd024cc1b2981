"""Governance demo traffic for the demo registry: compliant events plus one violation per rule.

``scenario(start)`` is pure (a list of contract events); the demo workload
(``producers/workload.py``) stays untouched and runs alongside. Agents are those of
``demo_registry.yaml``:

- compliant: ``routing-agent`` routes tickets (low tier, autonomous); ``support-bot`` issues a
  refund *with* a human approval two seconds later; ``pricing-agent`` prices after approval;
- ``ShadowAgent``: ``shadow-scraper`` is in no registry;
- ``MissingApproval``: ``support-bot`` issues a refund nobody approved;
- ``SuggestOnlyAction``: ``outreach-agent`` (suggest only) sends an e-mail itself;
- ``RateLimitExceeded``: ``scheduler-agent`` books more than its tier allows in one minute;
- auto-suspend: ``records-agent`` (high tier) updates a record nobody reviewed: a critical
  ``MissingApproval`` makes the policy suspend it, and as nothing acknowledges, that suspension
  is reported ``KillSwitchNotHonoured`` too.

The kill-switch rules need the control topic and a live SDK, so :func:`run_kill_switch_demo`
drives them on three dedicated agents: one whose SDK follows the switch (refused, acknowledged:
verified), one whose SDK does not (no acknowledgement: "not honoured"), one that acknowledges
and acts anyway.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from auditstream.governance.rubric import TIER_POLICIES
from auditstream.producers.contract import (
    Action,
    Approval,
    AuditEvent,
    Output,
    Prompt,
    SuspensionAck,
    make_event,
)

KS_HONOURING, KS_SILENT, KS_ROGUE = "kiosk-agent", "billing-agent", "legacy-agent"
COMPLIANT_AGENTS = ("routing-agent", KS_HONOURING)
EXPECTED: frozenset[tuple[str, str]] = frozenset(
    {
        ("ShadowAgent", "shadow-scraper"),
        ("MissingApproval", "support-bot"),
        ("SuggestOnlyAction", "outreach-agent"),
        ("RateLimitExceeded", "scheduler-agent"),
    }
)
KILL_SWITCH_EXPECTED: frozenset[tuple[str, str]] = frozenset(
    {
        ("KillSwitchNotHonoured", KS_SILENT),
        ("KillSwitchNotHonoured", KS_ROGUE),
        ("MissingApproval", "records-agent"),
        ("KillSwitchNotHonoured", "records-agent"),  # after the policy's auto-suspend
    }
)


def scenario(start: datetime | None = None, run: str = "demo") -> list[AuditEvent]:
    """The governance demo events, in time order (ids are unique per ``run``)."""
    t = start or datetime.now(UTC)
    out: list[AuditEvent] = []
    n = 0

    def add(kind: str, agent: str, data: Any, at: timedelta) -> None:
        nonlocal n
        n += 1
        out.append(make_event(kind, agent, data, time=t + at, event_id=f"{run}-gov-{n}"))

    def act(i: str, decision: str, **kw: Any) -> Action:
        # Shaped like the workload's actions (a tool call with its latency), so that only the
        # governance rule each one is written for notices it, not the per-event outlier signal.
        kw.setdefault("tool_name", f"{decision}_api")
        kw.setdefault("latency_ms", 90.0 + 7.0 * (n % 9))
        kw.setdefault("target", f"{decision}:cust-{n:04d}")
        return Action(action_id=f"{run}-{i}", decision_type=decision, **kw)  # type: ignore[arg-type]

    s = timedelta(seconds=1)
    # Compliant traffic.
    for i in range(5):
        add(
            "prompt",
            "routing-agent",
            Prompt(content=f"route ticket T-{i}", input_tokens=180 + 9 * i),
            i * s,
        )
        add("action", "routing-agent", act(f"route-{i}", "routing", target=f"queue:{i}"), i * s)
    add(
        "output",
        "support-bot",
        Output(
            content="Refund issued for order 1",
            input_tokens=210,
            output_tokens=64,
            latency_ms=480.0,
        ),
        6 * s,
    )
    add("action", "support-bot", act("refund-ok", "refund", amount=12.5, currency="EUR"), 6 * s)
    add(
        "approval",
        "support-bot",
        Approval(action_id=f"{run}-refund-ok", decision="approved", reviewer="rev-anna"),
        8 * s,
    )
    add(
        "approval",
        "pricing-agent",
        Approval(action_id=f"{run}-price-ok", decision="approved", reviewer="rev-ben"),
        9 * s,
    )
    add("action", "pricing-agent", act("price-ok", "pricing", amount=19.9, currency="EUR"), 10 * s)
    add("action", "support-bot", act("draft-ok", "drafting"), 11 * s)
    # Violations, one per rule.
    add(
        "prompt",
        "shadow-scraper",
        Prompt(content="scrape the price list", input_tokens=160),
        12 * s,
    )
    add("action", "shadow-scraper", act("scrape-1", "data_access"), 12 * s)
    add(
        "action",
        "support-bot",
        act("refund-unreviewed", "refund", amount=480.0, currency="EUR"),
        13 * s,
    )
    add("action", "outreach-agent", act("send-1", "messaging", target="segment:churn-risk"), 14 * s)
    # High tier, needs review, none comes: a critical MissingApproval, which auto-suspends the
    # agent; this demo SDK does not follow the switch, so that suspension is not honoured.
    add("action", "records-agent", act("update-unreviewed", "record_update"), 14 * s)
    limit = TIER_POLICIES["low"].actions_per_minute
    for i in range(limit + 5):
        add(
            "action",
            "scheduler-agent",
            act(f"book-{i}", "scheduling"),
            15 * s + i * timedelta(milliseconds=100),
        )
    return out


def produce(client: Any, events: list[AuditEvent]) -> None:
    for ev in events:
        client.emit(ev)
    client.flush(30.0)


def run_kill_switch_demo(settings: Any, client: Any, *, wait: float = 15.0) -> dict[str, str]:
    """Suspend the three kill-switch demo agents, which behave three ways; agent → command id.

    Dedicated agents (not the workload's), so the workload's later actions never meet a
    suspension: ``kiosk-agent``'s SDK follows the switch (refused, acknowledged: verified);
    ``billing-agent``'s does not (no acknowledgement: not honoured); ``legacy-agent``'s rogue
    SDK acknowledges and acts anyway (not honoured).
    """
    from auditstream.governance.store import publish_command
    from auditstream.producers.client import AgentSuspended
    from auditstream.producers.killswitch import KillSwitch, new_command

    commands: dict[str, str] = {}
    with KillSwitch(client, settings, agents={KS_HONOURING}).start() as ks:
        for agent in (KS_HONOURING, KS_SILENT, KS_ROGUE):
            cmd = new_command(agent, "suspended", by="demo-operator", reason="governance demo")
            publish_command(settings, cmd)
            commands[agent] = cmd.command_id
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and not all(ks.is_suspended(a) for a in commands):
            time.sleep(0.1)
        # Honoured: the SDK refuses the action (and has acknowledged on its own).
        try:
            client.action(KS_HONOURING, "after-suspend", "scheduling")
            refused = False
        except AgentSuspended:
            refused = True
        if not refused:
            raise RuntimeError("the SDK did not refuse a suspended agent's action")
        # Not honoured: a rogue SDK acknowledges and then acts anyway.
        ack = SuspensionAck(
            command_id=commands[KS_ROGUE], state="suspended", sdk_instance="rogue-sdk"
        )
        client.emit(make_event("suspension_ack", KS_ROGUE, ack))
        time.sleep(0.05)  # the action's timestamp must be after the acknowledgement's
        rogue = Action(action_id="rogue-1", decision_type="scheduling")
        client.emit(make_event("action", KS_ROGUE, rogue))
        client.flush(30.0)
    # KS_SILENT: nobody follows the switch for it, so no acknowledgement ever comes.
    return commands


def sync_demo_registry(settings: Any, registry_path: Any = None) -> str:
    """Publish and store the demo registry; one report line. Before any traffic, so the
    workload's events are joined with it."""
    from pathlib import Path

    from auditstream.governance.registry import load_registry
    from auditstream.governance.store import (
        current_from_clickhouse,
        insert_records,
        plan_sync,
        publish_records,
    )
    from auditstream.stream.clickhouse import get_client

    path = Path(registry_path or Path(__file__).parent / "demo_registry.yaml")
    registry = load_registry(path)
    ch = get_client(settings)
    try:
        plan = plan_sync(registry, current_from_clickhouse(ch), by="demo", source=str(path))
        publish_records(settings, plan.records)
        insert_records(ch, plan.records)
    finally:
        ch.close()
    return f"governance: {len(plan.records)} registry change(s) synced from {path.name}"


def run_governance_traffic(settings: Any, client: Any) -> list[str]:
    """Produce the scenario (stamped now) and run the kill-switch demo; report lines."""
    events = scenario(run=f"demo{int(time.time())}")
    produce(client, events)
    commands = run_kill_switch_demo(settings, client)
    return [
        f"governance: {len(events)} governance events (compliant + one violation per rule)",
        *(
            f"governance: published suspend {c} for {a} (a request; the pipeline verifies it)"
            for a, c in commands.items()
        ),
        "governance: expect ShadowAgent, MissingApproval, SuggestOnlyAction, RateLimitExceeded, "
        "KillSwitchNotHonoured; see `auditstream agents killswitch`, "
        "`auditstream report governance`",
    ]


def run_governance_demo(settings: Any, client: Any, registry_path: Any = None) -> list[str]:
    """Sync the demo registry, then its traffic and the kill-switch demo (``agents demo``).

    ``auditstream demo`` calls the two halves itself: the registry before its workload, the
    governance traffic after it, so each agent's events reach the worker in time order.
    """
    return [
        sync_demo_registry(settings, registry_path),
        *run_governance_traffic(settings, client),
    ]
