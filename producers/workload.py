"""A seeded, realistic synthetic workload of agent audit events, plus malformed records.

Used by the demo, the integration tests and the benchmarks, so it is deterministic: the same
``seed`` (and ``start``) gives byte-identical records. Shape of the traffic:

- six agents (support bot, pricing, routing, records, outreach, scheduler), each with its own
  model, tools and decision types; together they cover every ``DecisionType``;
- conversations: prompt → output → one or more actions (with latency, tokens, targets,
  outcomes); some actions get a human approval (approved/rejected/modified/escalated); some
  steps fail with an error; customers file complaints linked by conversation and/or action id
  (some without a known agent: no subject); ratings come as feedback;
- some texts carry e-mail addresses and phone numbers (the stream redacts PII);
- malformed records on request, as raw bytes, in assorted ways (:data:`MALFORMED_KINDS`).

>>> records = generate_records(50, seed=7, malformed=5, start=datetime(2026, 1, 1, tzinfo=UTC))
>>> sum(r.valid for r in records), sum(not r.valid for r in records)
(45, 5)
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from auditstream.producers.contract import (
    DECISION_TYPES,
    MAX_EVENT_BYTES,
    Action,
    Approval,
    AuditEvent,
    Complaint,
    Error,
    EventData,
    Feedback,
    Output,
    Prompt,
    encode_event,
    make_event,
)


@dataclass(frozen=True)
class AgentProfile:
    agent_id: str
    name: str
    provider: str
    model: str
    decision_types: tuple[str, ...]
    tools: tuple[str, ...]
    approval_rate: float  # share of actions a human reviews
    error_rate: float  # share of steps that fail
    mean_latency_ms: float
    asks: tuple[str, ...]  # what customers ask this agent
    answers: tuple[str, ...]


AGENTS: tuple[AgentProfile, ...] = (
    AgentProfile(
        "support-bot", "Customer support assistant", "openai", "gpt-4o-mini",
        ("drafting", "messaging", "refund"), ("kb_search", "send_reply", "issue_refund"),
        0.15, 0.03, 900.0,
        ("My order {order} never arrived, can you help?",
         "I was charged twice for {order}. Reach me at {email}.",
         "How do I reset my password? My number is {phone}.",
         "Cancel my subscription please."),
        ("I'm sorry about that. I've opened a case for {order}.",
         "I have refunded the duplicate charge on {order}.",
         "Here is a reset link; it expires in 30 minutes."),
    ),
    AgentProfile(
        "pricing-agent", "Dynamic pricing agent", "anthropic", "claude-sonnet-4",
        ("pricing", "segmenting"), ("price_api", "segment_store"),
        0.35, 0.02, 1500.0,
        ("Propose a price for SKU {sku} in segment {segment}.",
         "Competitor dropped {sku} by 10%; adjust?"),
        ("Recommend {amount} EUR for {sku} (elasticity -1.3).",
         "Keep {sku} unchanged; margin floor reached."),
    ),
    AgentProfile(
        "routing-agent", "Ticket routing agent", "openai", "gpt-4.1",
        ("routing", "segmenting", "scheduling"), ("queue_api", "calendar"),
        0.05, 0.02, 400.0,
        ("Route ticket {ticket}: customer reports a billing error.",
         "Ticket {ticket} from {email} mentions a data breach."),
        ("Routed {ticket} to billing tier 2.", "Escalated {ticket} to security on-call."),
    ),
    AgentProfile(
        "records-agent", "CRM records agent", "google", "gemini-2.5-flash",
        ("record_update", "data_access", "entitlement"), ("crm_update", "crm_read", "entitle"),
        0.25, 0.05, 700.0,
        ("Update the address of customer {customer}; new phone {phone}.",
         "Grant premium entitlement to {customer}."),
        ("Updated customer {customer}.", "Entitlement premium granted to {customer}."),
    ),
    AgentProfile(
        "outreach-agent", "Outreach e-mail agent", "anthropic", "claude-haiku-4",
        ("messaging", "drafting", "segmenting"), ("mailer", "template_store"),
        0.2, 0.04, 1100.0,
        ("Draft a win-back e-mail for segment {segment}.",
         "Send the renewal reminder to {email}."),
        ("Drafted the win-back e-mail (112 words).", "Reminder queued for {email}."),
    ),
    AgentProfile(
        "scheduler-agent", "Field service scheduler", "mistral", "mistral-large",
        ("scheduling", "routing", "other"), ("calendar", "dispatch"),
        0.1, 0.06, 600.0,
        ("Book a technician for {customer} next week.",
         "Move appointment {ticket} to Friday; call {phone} first."),
        ("Booked Tuesday 10:00 for {customer}.", "Moved {ticket} to Friday 14:00."),
    ),
)  # fmt: skip

assert set(DECISION_TYPES) <= {d for a in AGENTS for d in a.decision_types}

ERROR_TYPES = ("timeout", "rate_limited", "tool_error", "invalid_output", "upstream_5xx")
REVIEWERS = ("rev-anna", "rev-ben", "rev-chloe", "rev-dmitri")
COMPLAINT_TEXTS = (
    "The assistant refunded the wrong order and I still have no answer.",
    "I was quoted a different price than I paid. Call me on {phone}.",
    "Your bot sent my data to someone else! Contact {email}.",
    "Nobody came to the appointment.",
)
MALFORMED_KINDS: tuple[str, ...] = (
    "bad_json",
    "wrong_type",
    "oversize",
    "unknown_type",
    "missing_subject",
    "bad_time",
    "non_utf8",
    "bad_enum",
    "not_an_object",
    "empty",
)


@dataclass(frozen=True)
class Record:
    """One Kafka record of the workload. Valid records carry their ``event``; malformed ones
    name their ``kind`` (one of :data:`MALFORMED_KINDS`)."""

    key: bytes
    value: bytes
    event: AuditEvent | None = None
    kind: str = "valid"

    @property
    def valid(self) -> bool:
        return self.event is not None


@dataclass
class _Gen:
    rng: random.Random
    ids: random.Random
    clock: datetime
    step: timedelta
    source_prefix: str = "urn:auditstream:agent:"
    out: list[AuditEvent] = field(default_factory=list)

    def uid(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def short(self, prefix: str) -> str:
        return f"{prefix}-{self.ids.getrandbits(40):010x}"

    def fill(self, template: str) -> str:
        r = self.rng
        return template.format(
            order=f"ORD-{r.randint(10000, 99999)}",
            email=f"{r.choice(('jane.doe', 'm.rossi', 'kim88', 'li.wei'))}@example.com",
            phone=f"+1 415 555 {r.randint(1000, 9999)}",
            sku=f"SKU-{r.randint(100, 999)}",
            segment=r.choice(("smb", "enterprise", "churn-risk", "students")),
            ticket=f"T-{r.randint(100000, 999999)}",
            customer=f"cust-{r.randint(1, 5000)}",
            amount=f"{r.uniform(5, 500):.2f}",
        )

    def emit(self, kind: str, agent: str | None, data: EventData, lag_ms: float = 0.0) -> None:
        self.clock += self.step + timedelta(milliseconds=lag_ms)
        source = f"{self.source_prefix}{agent or 'customer-portal'}"
        self.out.append(
            make_event(kind, agent, data, source=source, time=self.clock, event_id=self.uid())
        )


def _conversation(g: _Gen, agent: AgentProfile) -> None:
    r = g.rng
    conv = g.short("conv")
    common = {
        "conversation_id": conv,
        "agent_name": agent.name,
        "provider_name": agent.provider,
        "request_model": agent.model,
    }
    ask = g.fill(r.choice(agent.asks))
    in_tokens = 20 + len(ask) // 3 + r.randint(0, 400)
    g.emit("prompt", agent.agent_id, Prompt(content=ask, input_tokens=in_tokens,
                                            operation_name="chat", **common))  # fmt: skip
    latency = max(30.0, r.lognormvariate(0, 0.5) * agent.mean_latency_ms)
    if r.random() < agent.error_rate:
        g.emit("error", agent.agent_id, Error(error_type=r.choice(ERROR_TYPES),
                                              message=f"model call failed after {latency:.0f} ms",
                                              **common), latency)  # fmt: skip
        return
    answer = g.fill(r.choice(agent.answers))
    g.emit(
        "output", agent.agent_id,
        Output(content=answer, input_tokens=in_tokens, output_tokens=10 + r.randint(0, 600),
               response_model=agent.model, finish_reasons=["stop"], latency_ms=round(latency, 1),
               start_time=g.clock, operation_name="chat", **common),
        latency,
    )  # fmt: skip
    for _ in range(r.choice((1, 1, 1, 2, 3))):
        action_id = g.short("act")
        decision = r.choice(agent.decision_types)
        failed = r.random() < agent.error_rate
        tool_latency = max(5.0, r.lognormvariate(0, 0.7) * 120)
        money = decision in ("pricing", "refund")
        g.emit(
            "action", agent.agent_id,
            Action(action_id=action_id, decision_type=decision,  # type: ignore[arg-type]
                   target=f"{decision}:{g.fill('{customer}')}",
                   outcome="failed" if failed else r.choice(("succeeded",) * 8 + ("pending",)),
                   tool_name=r.choice(agent.tools), tool_call_id=g.short("call"),
                   amount=round(r.uniform(1, 900), 2) if money else None,
                   currency="EUR" if money else None, latency_ms=round(tool_latency, 1),
                   attributes={"attempt": 1, "dry_run": False}, **common),
            tool_latency,
        )  # fmt: skip
        if failed:
            err = Error(error_type="tool_error", action_id=action_id, tool_name=agent.tools[0],
                        message="tool returned HTTP 502", **common)  # fmt: skip
            g.emit("error", agent.agent_id, err)
        if r.random() < agent.approval_rate:
            decision_made = r.choices(("approved", "rejected", "modified", "escalated"),
                                      (70, 15, 10, 5))[0]  # fmt: skip
            g.emit("approval", agent.agent_id,
                   Approval(action_id=action_id, decision=decision_made,  # type: ignore[arg-type]
                            reviewer=r.choice(REVIEWERS),
                            reason=None if decision_made == "approved" else "policy check",
                            **common), r.uniform(5_000, 60_000))  # fmt: skip
        if r.random() < 0.04:
            # Complaints: linked by action and conversation; a third come in without an agent.
            known = r.random() < 0.67
            g.emit("complaint", agent.agent_id if known else None,
                   Complaint(complaint_id=g.short("cmp"), action_id=action_id,
                             conversation_id=conv, channel=r.choice(("email", "phone", "chat")),
                             category=decision, severity=r.choice(("low", "medium", "high",
                                                                   "critical")),  # type: ignore[arg-type]
                             text=g.fill(r.choice(COMPLAINT_TEXTS)),
                             customer_id=g.fill("{customer}")))  # fmt: skip
    if r.random() < 0.3:
        g.emit("feedback", agent.agent_id, Feedback(score=round(r.uniform(-1, 1), 2),
                                                    comment=r.choice((None, "helpful", "slow")),
                                                    conversation_id=conv))  # fmt: skip


def events(
    n: int,
    seed: int = 0,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    run_id: str | None = None,
) -> list[AuditEvent]:
    """Exactly ``n`` valid events, in time order, from whole conversations (the last one cut).

    ``start`` defaults to the current hour (UTC), so data stays inside retention windows while
    runs within an hour remain identical; pass it for byte-identical output across runs.
    ``end`` instead places the last event at that time (the demo's history ends now).
    ``run_id`` changes the ids (event, conversation, action, ...) and marks the ``source``
    (``urn:auditstream:run:<run_id>:agent:<agent>``), not the content: repeated demo runs with
    one seed add rows instead of being deduplicated as replays, and a run's rows can be
    counted by source.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if start is not None and end is not None:
        raise ValueError("give start or end, not both")
    if end is not None:
        # The clock's steps do not depend on where it starts: measure the span, then start
        # that much before `end` (a demo's history then ends now instead of hours ahead).
        probe = events(n, seed, start=end, run_id=run_id)
        start = end - (probe[-1].time - end) if probe else end
    if start is None:
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    g = _Gen(
        rng=random.Random(seed),
        ids=random.Random(f"{seed}:{run_id or ''}"),
        clock=start,
        step=timedelta(milliseconds=25),
        source_prefix=f"urn:auditstream:run:{run_id}:agent:"
        if run_id
        else "urn:auditstream:agent:",
    )
    weights = (30, 15, 20, 15, 10, 10)
    while len(g.out) < n:
        _conversation(g, g.rng.choices(AGENTS, weights)[0])
    return g.out[:n]


def malformed_record(kind: str, rng: random.Random, template: AuditEvent) -> Record:
    """One invalid record of the given kind, derived from a valid event (so only one thing
    is wrong with it)."""
    key = template.kafka_key()
    good = encode_event(template)
    text = good.decode()
    if kind == "bad_json":
        value = good[: rng.randint(10, max(11, len(good) - 2))]
    elif kind == "wrong_type":
        value = text.replace('"specversion":"1.0"', '"specversion":1.0', 1).encode()
    elif kind == "oversize":
        # Every field within its own limit, the whole over the event limit: only size is wrong.
        data = Prompt(content="x" * 60_000, attributes={f"k{i}": "y" * 3200 for i in range(64)})
        agent = template.subject or "support-bot"
        big = make_event("prompt", agent, data, time=template.time, event_id=template.id)
        value = encode_event(big)
        if len(value) <= MAX_EVENT_BYTES:  # pragma: no cover - guards the limits above
            raise RuntimeError("oversize record is not over the limit")
    elif kind == "unknown_type":
        value = text.replace(f'"type":"{template.type}"', '"type":"ai.auditstream.telepathy"', 1)
        value = value.encode()
    elif kind == "missing_subject":
        data = Action(action_id="act-x", decision_type="pricing")
        ev = make_event("action", None, data, time=template.time, event_id=template.id)
        value = encode_event(ev).replace(b'"subject":null,', b"")
    elif kind == "bad_time":
        when = rng.choice(("yesterday", "2026-13-45T99:00:00Z", "2026-01-01T00:00:00"))
        value = text.replace(f'"time":"{encode_time(template)}"', f'"time":"{when}"', 1).encode()
    elif kind == "non_utf8":
        value = good.replace(b'"id":"', b'"id":"\xff\xfe', 1)
    elif kind == "bad_enum":
        value = text.replace(f'"type":"{template.type}"', '"type":"ai.auditstream.action"', 1)
        value = value.replace('"data":{', '"data":{"action_id":"a","decision_type":"guessing",', 1)
        value = value.encode()
    elif kind == "not_an_object":
        value = rng.choice((b"[1,2,3]", b'"hello"', b"42", b"null"))
    elif kind == "empty":
        value = b""
    else:
        raise ValueError(f"unknown malformed kind {kind!r}; expected one of {MALFORMED_KINDS}")
    return Record(key=key, value=value, kind=kind)


def encode_time(event: AuditEvent) -> str:
    """The ``time`` field exactly as :func:`encode_event` writes it."""
    raw = encode_event(event)
    start = raw.index(b'"time":"') + 8
    return raw[start : raw.index(b'"', start)].decode()


def generate_records(
    n_events: int,
    seed: int = 0,
    malformed: int = 0,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    run_id: str | None = None,
) -> list[Record]:
    """``n_events`` records in total, of which ``malformed`` are invalid (kinds in rotation,
    positions spread deterministically through the stream)."""
    if not 0 <= malformed <= n_events:
        raise ValueError("need 0 <= malformed <= n_events")
    valid = events(n_events - malformed, seed, start=start, end=end, run_id=run_id)
    records = [Record(e.kafka_key(), encode_event(e), e) for e in valid]
    rng = random.Random(f"{seed}:malformed")
    templates = valid or events(1, seed, start=start, end=end, run_id=run_id)
    for i in range(malformed):
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        bad = malformed_record(kind, rng, rng.choice(templates))
        records.insert(rng.randint(0, len(records)), bad)
    return records


def generate(
    n_events: int,
    seed: int = 0,
    malformed: int = 0,
    *,
    start: datetime | None = None,
    run_id: str | None = None,
) -> list[tuple[bytes, bytes]]:
    """The workload as Kafka ``(key, value)`` pairs (see :func:`generate_records`)."""
    return [
        (r.key, r.value)
        for r in generate_records(n_events, seed, malformed, start=start, run_id=run_id)
    ]


def iter_jsonl(records: list[Record]) -> Iterator[bytes]:
    """Records as JSON lines for ``auditstream produce`` (a newline inside a malformed value
    cannot occur: encoded events are compact JSON)."""
    for record in records:
        yield record.value + b"\n"
