"""The auditstream event contract, version 1: one schema used by producers, workers and tests.

An event is a CloudEvents 1.0 envelope (structured mode, JSON) whose ``data`` follows the
OpenTelemetry GenAI semantic conventions where they apply (``gen_ai.*``, ``error.type``) and
plain snake_case names where no convention exists (``action_id``, ``decision_type``, ...).

- ``subject`` is the agent id; it is also the Kafka record key, so one agent's events stay in
  order on one partition. Only a customer complaint may leave it empty (the agent is not always
  known to whoever files it); the stream then links the complaint through its conversation or
  action id.
- ``type`` is one of :data:`EVENT_TYPES`; each has its own ``data`` struct below.
- Limits: the encoded event at most ``max_bytes`` (256 KiB by default), free text at most
  :data:`MAX_TEXT_CHARS`, ids at most :data:`MAX_ID_CHARS`, at most :data:`MAX_ATTRIBUTES`
  attributes.

Decoding is strict and names the offending field:

>>> raw = b'{"specversion":"1.0","id":"e1","source":"urn:agent:a","type":"ai.auditstream.action",'
>>> raw += b'"time":"2026-01-01T00:00:00Z","subject":"a","data":{"decision_type":"guessing"}}'
>>> try:
...     decode_event(raw)
... except ContractError as exc:
...     print(exc.field)
$.data.decision_type

and a valid event round-trips:

>>> ev = make_event("action", "agent-7", Action(action_id="a1", decision_type="pricing"))
>>> decode_event(encode_event(ev)).data.decision_type
'pricing'
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Raw, Struct, field

SCHEMA_VERSION = 1
SCHEMA_URI = f"urn:auditstream:schema:event:{SCHEMA_VERSION}"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
TYPE_PREFIX = "ai.auditstream."

MAX_EVENT_BYTES = 256 * 1024
MAX_TEXT_CHARS = 64 * 1024
MAX_ID_CHARS = 256
MAX_ATTRIBUTES = 64

Id = Annotated[str, Meta(min_length=1, max_length=MAX_ID_CHARS)]
Text = Annotated[str, Meta(max_length=MAX_TEXT_CHARS)]
Short = Annotated[str, Meta(max_length=1024)]
Count = Annotated[int, Meta(ge=0, le=2**31 - 1)]
Millis = Annotated[float, Meta(ge=0, le=7 * 24 * 3600 * 1000)]
AwareTime = Annotated[datetime, Meta(tz=True)]
AttrValue = str | int | float | bool
Attributes = Annotated[dict[str, AttrValue], Meta(max_length=MAX_ATTRIBUTES)]

DecisionType = Literal[
    "drafting",
    "segmenting",
    "routing",
    "pricing",
    "entitlement",
    "record_update",
    "refund",
    "messaging",
    "scheduling",
    "data_access",
    "other",
]
DECISION_TYPES: tuple[str, ...] = DecisionType.__args__  # type: ignore[attr-defined]
Outcome = Literal["succeeded", "failed", "pending", "blocked", "reverted"]
ApprovalDecision = Literal["approved", "rejected", "modified", "escalated"]
Severity = Literal["low", "medium", "high", "critical"]


class EventData(Struct, kw_only=True, omit_defaults=True):
    """Fields every event type may carry (OTel GenAI attribute names on the wire)."""

    agent_id: Id | None = field(default=None, name="gen_ai.agent.id")
    agent_name: Short | None = field(default=None, name="gen_ai.agent.name")
    conversation_id: Id | None = field(default=None, name="gen_ai.conversation.id")
    operation_name: Short | None = field(default=None, name="gen_ai.operation.name")
    provider_name: Short | None = field(default=None, name="gen_ai.provider.name")
    request_model: Short | None = field(default=None, name="gen_ai.request.model")
    attributes: Attributes = field(default_factory=dict)


class Prompt(EventData, kw_only=True, omit_defaults=True):
    """What the agent sent to a model."""

    content: Text = ""
    input_tokens: Count | None = field(default=None, name="gen_ai.usage.input_tokens")


class Output(EventData, kw_only=True, omit_defaults=True):
    """What a model returned to the agent."""

    content: Text = ""
    input_tokens: Count | None = field(default=None, name="gen_ai.usage.input_tokens")
    output_tokens: Count | None = field(default=None, name="gen_ai.usage.output_tokens")
    response_model: Short | None = field(default=None, name="gen_ai.response.model")
    finish_reasons: list[Short] = field(default_factory=list, name="gen_ai.response.finish_reasons")
    start_time: AwareTime | None = None
    latency_ms: Millis | None = None


class Action(EventData, kw_only=True, omit_defaults=True):
    """Something the agent did in the world: a decision of some type, on a target."""

    action_id: Id
    decision_type: DecisionType
    target: Short | None = None
    outcome: Outcome = "succeeded"
    tool_name: Short | None = field(default=None, name="gen_ai.tool.name")
    tool_call_id: Id | None = field(default=None, name="gen_ai.tool.call.id")
    amount: float | None = None
    currency: Annotated[str, Meta(max_length=3)] | None = None
    start_time: AwareTime | None = None
    latency_ms: Millis | None = None


class Approval(EventData, kw_only=True, omit_defaults=True):
    """A human's review decision on an action."""

    action_id: Id
    decision: ApprovalDecision
    reviewer: Id
    reason: Text | None = None


class Error(EventData, kw_only=True, omit_defaults=True):
    """A failure inside the agent (model error, tool error, timeout, ...)."""

    error_type: Short = field(name="error.type")
    message: Text | None = None
    action_id: Id | None = None
    tool_name: Short | None = field(default=None, name="gen_ai.tool.name")


class Complaint(EventData, kw_only=True, omit_defaults=True):
    """A customer complaint, linked to a conversation or action when known."""

    complaint_id: Id
    action_id: Id | None = None
    channel: Short | None = None
    category: Short | None = None
    severity: Severity = "medium"
    text: Text | None = None
    customer_id: Id | None = None


class Feedback(EventData, kw_only=True, omit_defaults=True):
    """A rating of an output or action (thumbs, stars, CSAT), normalised to [-1, 1]."""

    score: Annotated[float, Meta(ge=-1.0, le=1.0)]
    action_id: Id | None = None
    comment: Text | None = None


class SuspensionAck(EventData, kw_only=True, omit_defaults=True):
    """The SDK's acknowledgement that it now honours a suspend (or resume) command."""

    command_id: Id
    state: Literal["suspended", "resumed"]
    sdk_instance: Id | None = None


DATA_TYPES: dict[str, type[EventData]] = {
    "prompt": Prompt,
    "output": Output,
    "action": Action,
    "approval": Approval,
    "error": Error,
    "complaint": Complaint,
    "feedback": Feedback,
    "suspension_ack": SuspensionAck,
}
EVENT_TYPES: tuple[str, ...] = tuple(TYPE_PREFIX + name for name in DATA_TYPES)
EventType = Literal[
    "ai.auditstream.prompt",
    "ai.auditstream.output",
    "ai.auditstream.action",
    "ai.auditstream.approval",
    "ai.auditstream.error",
    "ai.auditstream.complaint",
    "ai.auditstream.feedback",
    "ai.auditstream.suspension_ack",
]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class AuditEvent(Struct, kw_only=True):
    """A CloudEvents 1.0 envelope around one of the data structs above."""

    specversion: Literal["1.0"] = "1.0"
    id: Id
    source: Annotated[str, Meta(min_length=1, max_length=1024)]
    type: EventType
    time: AwareTime
    subject: Id | None = None
    data: EventData
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str = SCHEMA_URI

    @property
    def kind(self) -> str:
        """The short type name: ``"action"`` for ``ai.auditstream.action``."""
        return self.type[len(TYPE_PREFIX) :]

    @property
    def agent_id(self) -> str | None:
        return self.subject

    def kafka_key(self) -> bytes:
        """Agent id; a complaint with no known agent is keyed by its conversation, then its id."""
        key = self.subject or self.data.conversation_id or self.id
        return key.encode()


class _Envelope(Struct, kw_only=True):
    id: Id
    source: Annotated[str, Meta(min_length=1, max_length=1024)]
    type: EventType
    time: AwareTime
    subject: Id | None = None
    data: Raw
    specversion: Literal["1.0"]
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str = SCHEMA_URI


class ContractError(ValueError):
    """An event that does not follow the contract; ``field`` is a JSON path like ``$.data.x``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_data_decoders = {TYPE_PREFIX + name: msgspec.json.Decoder(cls) for name, cls in DATA_TYPES.items()}
_encoder = msgspec.json.Encoder()
_PATH = re.compile(r" - at `(\$[^`]*)`$")


def _contract_error(exc: msgspec.DecodeError, prefix: str = "") -> ContractError:
    message = str(exc)
    match = _PATH.search(message)
    if match is None:
        return ContractError(prefix if prefix else "$", message)
    path = match.group(1)
    if prefix:
        path = prefix + path[1:]
    return ContractError(path, message[: match.start()])


def decode_event(
    raw: bytes | bytearray | memoryview | str, *, max_bytes: int = MAX_EVENT_BYTES
) -> AuditEvent:
    """Parse and validate one encoded event; raises :class:`ContractError` naming the field."""
    if len(raw) > max_bytes:
        raise ContractError("$", f"event is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        env = _envelope_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise _contract_error(exc) from None
    except UnicodeDecodeError as exc:  # msgspec raises this, not DecodeError, for bad UTF-8
        raise ContractError("$", f"not valid UTF-8 ({exc.reason})") from None
    try:
        data = _data_decoders[env.type].decode(env.data)
    except msgspec.DecodeError as exc:
        raise _contract_error(exc, "$.data") from None
    except UnicodeDecodeError as exc:
        raise ContractError("$.data", f"not valid UTF-8 ({exc.reason})") from None
    _check_consistency(env.subject, env.type, data)
    return AuditEvent(
        id=env.id,
        source=env.source,
        type=env.type,
        time=env.time,
        subject=env.subject,
        data=data,
        dataschema=env.dataschema,
    )


def _check_consistency(subject: str | None, event_type: str, data: EventData) -> None:
    if subject is None and event_type != TYPE_PREFIX + "complaint":
        raise ContractError("$.subject", "the agent id is required for this event type")
    if data.agent_id is not None and subject is not None and data.agent_id != subject:
        raise ContractError(
            "$.data.gen_ai.agent.id", f"{data.agent_id!r} differs from subject {subject!r}"
        )


def encode_event(event: AuditEvent) -> bytes:
    """Encode to the wire format (compact JSON, UTF-8)."""
    return _encoder.encode(event)


def validate_event(event: AuditEvent, *, max_bytes: int = MAX_EVENT_BYTES) -> bytes:
    """Encode an event built in code and check it exactly as a worker will; returns the bytes."""
    raw = encode_event(event)
    decode_event(raw, max_bytes=max_bytes)
    return raw


def new_event_id() -> str:
    return str(uuid.uuid4())


def make_event(
    kind: str,
    agent_id: str | None,
    data: EventData,
    *,
    source: str | None = None,
    time: datetime | None = None,
    event_id: str | None = None,
) -> AuditEvent:
    """Build an envelope for ``data`` (``kind`` is the short type name, e.g. ``"prompt"``)."""
    if kind not in DATA_TYPES:
        raise ContractError(
            "$.type", f"unknown event type {kind!r}; expected one of {sorted(DATA_TYPES)}"
        )
    if not isinstance(data, DATA_TYPES[kind]):
        raise ContractError(
            "$.data", f"{kind} events carry {DATA_TYPES[kind].__name__}, not {type(data).__name__}"
        )
    return AuditEvent(
        id=event_id or new_event_id(),
        source=source or f"urn:auditstream:agent:{agent_id or 'unknown'}",
        type=TYPE_PREFIX + kind,  # type: ignore[arg-type]
        time=time or datetime.now(UTC),
        subject=agent_id,
        data=data,
    )


def to_builtins(event: AuditEvent) -> dict[str, Any]:
    """The event as plain JSON-compatible Python objects (wire field names)."""
    return msgspec.to_builtins(event)
