"""The event contract: every type round-trips; bad input names the right field; limits hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from auditstream.producers.contract import (
    CONTENT_TYPE,
    DATA_TYPES,
    MAX_ATTRIBUTES,
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    Action,
    Approval,
    Complaint,
    ContractError,
    Error,
    Feedback,
    Output,
    Prompt,
    SuspensionAck,
    decode_event,
    encode_event,
    make_event,
    to_builtins,
    validate_event,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)

SAMPLES = {
    "prompt": Prompt(content="hi", input_tokens=3, conversation_id="c1", request_model="m"),
    "output": Output(
        content="hello",
        input_tokens=3,
        output_tokens=5,
        finish_reasons=["stop"],
        latency_ms=812.5,
        start_time=T0,
    ),
    "action": Action(
        action_id="a1",
        decision_type="refund",
        target="order:9",
        outcome="pending",
        amount=12.5,
        currency="EUR",
        tool_name="issue_refund",
        attributes={"attempt": 2, "dry_run": False, "ratio": 0.5, "note": "x"},
    ),
    "approval": Approval(action_id="a1", decision="rejected", reviewer="rev-1", reason="policy"),
    "error": Error(error_type="timeout", message="model timed out", action_id="a1"),
    "complaint": Complaint(complaint_id="k1", action_id="a1", severity="high", text="bad"),
    "feedback": Feedback(score=-0.5, comment="slow"),
    "suspension_ack": SuspensionAck(command_id="cmd-1", state="suspended", sdk_instance="i-1"),
}


def envelope(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "specversion": "1.0",
        "id": "e1",
        "source": "urn:agent:a",
        "type": "ai.auditstream.action",
        "time": "2026-01-01T00:00:00Z",
        "subject": "agent-a",
        "data": {"action_id": "a1", "decision_type": "pricing"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def raw(**overrides: object) -> bytes:
    return json.dumps(envelope(**overrides)).encode()


def error_of(data: bytes | str) -> ContractError:
    with pytest.raises(ContractError) as info:
        decode_event(data)
    return info.value


def test_samples_cover_every_event_type() -> None:
    assert set(SAMPLES) == set(DATA_TYPES)


@pytest.mark.parametrize("kind", sorted(DATA_TYPES))
def test_every_type_round_trips(kind: str) -> None:
    event = make_event(kind, "agent-7", SAMPLES[kind], time=T0, event_id="id-" + kind)
    wire = validate_event(event)
    back = decode_event(wire)
    assert back == event
    assert back.kind == kind
    assert encode_event(back) == wire  # stable encoding: a replayed event is byte-identical
    assert event.kafka_key() == b"agent-7"


def test_wire_uses_otel_genai_names() -> None:
    data = Output(content="x", input_tokens=1, output_tokens=2, conversation_id="c", agent_id="a")
    wire = json.loads(encode_event(make_event("output", "a", data)))
    assert wire["data"]["gen_ai.usage.input_tokens"] == 1
    assert wire["data"]["gen_ai.usage.output_tokens"] == 2
    assert wire["data"]["gen_ai.conversation.id"] == "c"
    assert wire["data"]["gen_ai.agent.id"] == "a"
    assert wire["specversion"] == "1.0" and wire["subject"] == "a"
    assert CONTENT_TYPE.startswith("application/cloudevents+json")


def test_complaint_may_have_no_agent_and_is_keyed_by_conversation() -> None:
    event = make_event("complaint", None, Complaint(complaint_id="k", conversation_id="conv-9"))
    back = decode_event(validate_event(event))
    assert back.subject is None
    assert back.kafka_key() == b"conv-9"
    lone = make_event("complaint", None, Complaint(complaint_id="k"), event_id="ev-1")
    assert lone.kafka_key() == b"ev-1"


def test_time_keeps_its_offset_and_precision() -> None:
    tz = timezone(timedelta(hours=2))
    event = make_event("prompt", "a", Prompt(content="x"), time=datetime(2026, 1, 1, 3, tzinfo=tz))
    assert decode_event(encode_event(event)).time == datetime(2026, 1, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wire", "field"),
    [
        (raw(data={"action_id": "a1", "decision_type": "guessing"}), "$.data.decision_type"),
        (raw(data={"decision_type": "pricing"}), "$.data"),  # action_id missing
        (raw(data={"action_id": "", "decision_type": "pricing"}), "$.data.action_id"),
        (raw(data={"action_id": "a", "decision_type": "pricing", "amount": "12"}), "$.data.amount"),
        (raw(data={"action_id": "a", "decision_type": "other", "outcome": "ok"}), "$.data.outcome"),
        (raw(type="ai.auditstream.telepathy"), "$.type"),
        (raw(type="ai.auditstream.feedback", data={"score": 2}), "$.data.score"),
        (raw(type="ai.auditstream.output", data={"gen_ai.usage.output_tokens": -1}),
         "$.data.gen_ai.usage.output_tokens"),
        (raw(type="ai.auditstream.approval", data={"action_id": "a", "decision": "approved"}),
         "$.data"),  # reviewer missing
        (raw(specversion="0.3"), "$.specversion"),
        (raw(specversion=_DROP), "$"),
        (raw(id=""), "$.id"),
        (raw(id=7), "$.id"),
        (raw(time="yesterday"), "$.time"),
        (raw(time="2026-01-01T00:00:00"), "$.time"),  # no offset: ambiguous instant
        (raw(subject=_DROP), "$.subject"),
        (raw(subject=None), "$.subject"),
        (raw(data={"action_id": "a", "decision_type": "pricing", "gen_ai.agent.id": "other"}),
         "$.data.gen_ai.agent.id"),  # differs from subject
        (raw(data="not an object"), "$.data"),
        (b"[1, 2]", "$"),
        (b"", "$"),
        (b'{"specversion": "1.0", "id": "e1"', "$"),
        (b'{"id": "\xff\xfe"}', "$"),
    ],
)  # fmt: skip
def test_bad_input_names_the_field(wire: bytes, field: str) -> None:
    err = error_of(wire)
    assert err.field == field, err
    assert str(err).startswith(field)


def test_event_size_limit() -> None:
    big = make_event("prompt", "a", Prompt(content="x" * (MAX_TEXT_CHARS - 10)))
    wire = encode_event(big)
    assert len(wire) < MAX_EVENT_BYTES
    decode_event(wire)
    err = error_of(wire + b" " * (MAX_EVENT_BYTES - len(wire) + 1))
    assert err.field == "$" and "limit" in err.reason
    with pytest.raises(ContractError, match="limit"):
        decode_event(wire, max_bytes=1000)
    with pytest.raises(ContractError, match="limit"):
        validate_event(big, max_bytes=1000)


def test_field_limits() -> None:
    too_long_text = make_event("prompt", "a", Prompt(content="x" * (MAX_TEXT_CHARS + 1)))
    assert error_of(encode_event(too_long_text)).field == "$.data.content"
    long_id = make_event("action", "a", Action(action_id="i" * (MAX_ID_CHARS + 1),
                                                decision_type="other"))  # fmt: skip
    assert error_of(encode_event(long_id)).field == "$.data.action_id"
    attrs = {f"k{i}": i for i in range(MAX_ATTRIBUTES + 1)}
    many = make_event("prompt", "a", Prompt(content="x", attributes=attrs))
    assert error_of(encode_event(many)).field == "$.data.attributes"
    long_subject = make_event("prompt", "s" * (MAX_ID_CHARS + 1), Prompt(content="x"))
    assert error_of(encode_event(long_subject)).field == "$.subject"


def test_make_event_rejects_unknown_kind_and_wrong_data() -> None:
    with pytest.raises(ContractError) as info:
        make_event("telepathy", "a", Prompt())
    assert info.value.field == "$.type"
    with pytest.raises(ContractError) as info:
        make_event("action", "a", Prompt())
    assert info.value.field == "$.data"


def test_to_builtins_is_plain_json() -> None:
    event = make_event("action", "a", SAMPLES["action"], time=T0, event_id="x")
    plain = to_builtins(event)
    assert json.loads(json.dumps(plain)) == json.loads(encode_event(event))
