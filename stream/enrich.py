"""Enrichment: the decoded contract event plus derived fields and the agent-inventory join.

Pure code (no I/O): ``enrich(event, raw_size, inventory, coords)`` is what the worker runs per
record and what plugins (alerts, governance) receive. Free text is redacted and customer ids
are pseudonymised *here*, so the ``event`` inside an :class:`EnrichedEvent` is already safe to
store or forward; nothing downstream ever sees the original PII.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import msgspec

from auditstream.producers.contract import (
    Action,
    Approval,
    AuditEvent,
    Complaint,
    Error,
    EventData,
    Feedback,
    Output,
    Prompt,
)
from auditstream.stream.redact import hash_customer_id, redact, redact_opt

# Used when no key is configured (AUDITSTREAM_PII_HASH_KEY): still a stable pseudonym, but
# only keyed hashing resists a dictionary attack; production deployments must set the key.
DEFAULT_HASH_KEY = b"auditstream-dev-only-pseudonym-key"


class KafkaCoords(NamedTuple):
    """Where a record came from: the idempotency key of the sink."""

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """One agent as the inventory (governance registry) knows it."""

    agent_id: str
    name: str = ""
    owner: str = ""
    team: str = ""
    risk_tier: str = ""
    autonomy_level: str = ""
    registered: bool = True


@runtime_checkable
class Inventory(Protocol):
    """The agent-inventory seam; governance installs a registry-backed implementation."""

    def lookup(self, agent_id: str) -> AgentInfo | None: ...


class EmptyInventory:
    """No registry: every agent is unknown (stored with ``agent_registered = 0``)."""

    def lookup(self, agent_id: str) -> AgentInfo | None:
        return None


class DictInventory:
    """An in-memory inventory (tests, demos, a registry snapshot)."""

    def __init__(self, agents: dict[str, AgentInfo] | None = None) -> None:
        self.agents: dict[str, AgentInfo] = dict(agents or {})

    def lookup(self, agent_id: str) -> AgentInfo | None:
        return self.agents.get(agent_id)


@dataclass(slots=True)
class EnrichedEvent:
    """A valid event with its derived fields; ``event`` holds redacted free text."""

    event: AuditEvent
    kind: str  # short type name: "prompt", "action", ...
    agent_id: str  # subject; "" for a complaint with no known agent
    latency_ms: float | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    is_error: bool
    payload_bytes: int
    content_chars: int  # length of the (original) free text
    text: str  # redacted free text of the event (content, message, complaint text, ...)
    redactions: int  # number of PII matches replaced in this event
    decision_type: str  # actions only; "" otherwise
    customer_id_hash: str  # complaints only; "" otherwise
    agent: AgentInfo | None
    topic: str
    partition: int
    offset: int

    @property
    def event_id(self) -> str:
        return self.event.id

    @property
    def coords(self) -> KafkaCoords:
        return KafkaCoords(self.topic, self.partition, self.offset)


def _latency_ms(event: AuditEvent, data: EventData) -> float | None:
    latency = getattr(data, "latency_ms", None)
    if latency is not None:
        return float(latency)
    start = getattr(data, "start_time", None)
    if start is None:
        return None
    # Producer clocks: an end before the start is a producer bug, not a negative latency.
    delta = (event.time - start).total_seconds() * 1000.0
    return delta if delta >= 0 else None


def _redact_attributes(attrs: dict[str, object]) -> tuple[dict[str, object], int]:
    total = 0
    out: dict[str, object] | None = None
    for key, value in attrs.items():
        if isinstance(value, str):
            red, n = redact(value)
            if n:
                if out is None:
                    out = dict(attrs)
                out[key] = red
                total += n
    return (attrs if out is None else out), total


def _redact_data(data: EventData, hash_key: bytes) -> tuple[EventData, str, int, int, str]:
    """Returns (safe data, redacted text, original text chars, redactions, customer hash)."""
    changes: dict[str, object] = {}
    text = ""
    chars = 0
    count = 0
    customer_hash = ""
    text_field = None
    if isinstance(data, (Prompt, Output)):
        text_field = "content"
    elif isinstance(data, Error):
        text_field = "message"
    elif isinstance(data, Complaint):
        text_field = "text"
        if data.customer_id is not None:
            customer_hash = hash_customer_id(data.customer_id, hash_key)
            changes["customer_id"] = customer_hash
    elif isinstance(data, Feedback):
        text_field = "comment"
    elif isinstance(data, Approval):
        text_field = "reason"
    if text_field is not None:
        original = getattr(data, text_field)
        if original:
            chars = len(original)
            red, n = redact(original)
            text = red
            if n:
                changes[text_field] = red
                count += n
    if isinstance(data, Action) and data.target:
        red_target, n = redact_opt(data.target)
        if n:
            changes["target"] = red_target
            count += n
    if data.attributes:
        attrs, n = _redact_attributes(data.attributes)
        if n:
            changes["attributes"] = attrs
            count += n
    if changes:
        data = msgspec.structs.replace(data, **changes)
    return data, text, chars, count, customer_hash


def enrich(
    event: AuditEvent,
    raw_size: int,
    inventory: Inventory,
    coords: KafkaCoords,
    *,
    hash_key: bytes = DEFAULT_HASH_KEY,
) -> EnrichedEvent:
    """Derive fields, redact PII and join the agent inventory (pure; no I/O)."""
    data = event.data
    safe_data, text, chars, redactions, customer_hash = _redact_data(data, hash_key)
    if safe_data is not data:
        event = msgspec.structs.replace(event, data=safe_data)
    input_tokens = getattr(data, "input_tokens", None) or 0
    output_tokens = getattr(data, "output_tokens", None) or 0
    kind = event.kind
    is_error = kind == "error" or (isinstance(data, Action) and data.outcome == "failed")
    agent_id = event.subject or ""
    return EnrichedEvent(
        event=event,
        kind=kind,
        agent_id=agent_id,
        latency_ms=_latency_ms(event, data),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        is_error=is_error,
        payload_bytes=raw_size,
        content_chars=chars,
        text=text,
        redactions=redactions,
        decision_type=data.decision_type if isinstance(data, Action) else "",
        customer_id_hash=customer_hash,
        agent=inventory.lookup(agent_id) if agent_id else None,
        topic=coords.topic,
        partition=coords.partition,
        offset=coords.offset,
    )
