"""Decode → validate → enrich (pure): derived fields, inventory join, dead-letter reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from auditstream.producers.contract import (
    Action,
    Approval,
    Complaint,
    Error,
    Feedback,
    Output,
    Prompt,
    encode_event,
    make_event,
)
from auditstream.producers.workload import MALFORMED_KINDS, generate_records
from auditstream.stream.enrich import (
    AgentInfo,
    DictInventory,
    EmptyInventory,
    EnrichedEvent,
    Inventory,
    KafkaCoords,
)
from auditstream.stream.validate import CONTRACT, EMPTY, ENCODING, OVERSIZE, DeadLetter, decode

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
C = KafkaCoords("p.events", 3, 41, b"agent-1")


def ok(raw: bytes, inventory: Inventory | None = None, **kw: object) -> EnrichedEvent:
    out = decode(raw, C, inventory or EmptyInventory(), **kw)  # type: ignore[arg-type]
    assert isinstance(out, EnrichedEvent), out
    return out


def bad(raw: bytes | None, **kw: object) -> DeadLetter:
    out = decode(raw, C, EmptyInventory(), **kw)  # type: ignore[arg-type]
    assert isinstance(out, DeadLetter), out
    return out


def test_output_derived_fields_and_coords() -> None:
    data = Output(content="hi", input_tokens=12, output_tokens=30, latency_ms=250.0)
    raw = encode_event(make_event("output", "agent-1", data, time=T0))
    e = ok(raw)
    assert (e.kind, e.agent_id) == ("output", "agent-1")
    assert (e.input_tokens, e.output_tokens, e.total_tokens) == (12, 30, 42)
    assert e.latency_ms == 250.0
    assert e.is_error is False
    assert e.payload_bytes == len(raw)
    assert e.content_chars == 2 and e.text == "hi"
    assert (e.topic, e.partition, e.offset) == ("p.events", 3, 41)


def test_latency_from_start_time_and_clock_skew() -> None:
    data = Action(action_id="a1", decision_type="pricing", start_time=T0 - timedelta(seconds=1.5))
    assert ok(encode_event(make_event("action", "agent-1", data, time=T0))).latency_ms == 1500.0
    skewed = Action(action_id="a1", decision_type="pricing", start_time=T0 + timedelta(seconds=1))
    # An end before the start is a producer clock problem, not a negative latency.
    assert ok(encode_event(make_event("action", "agent-1", skewed, time=T0))).latency_ms is None


@pytest.mark.parametrize(
    ("kind", "data", "is_error"),
    [
        ("error", Error(error_type="timeout", message="tool timed out"), True),
        ("action", Action(action_id="a", decision_type="refund", outcome="failed"), True),
        ("action", Action(action_id="a", decision_type="refund"), False),
        ("approval", Approval(action_id="a", decision="rejected", reviewer="r1"), False),
        ("feedback", Feedback(score=-1.0), False),
    ],
)
def test_error_flag(kind: str, data: object, is_error: bool) -> None:
    raw = encode_event(make_event(kind, "agent-1", data, time=T0))  # type: ignore[arg-type]
    assert ok(raw).is_error is is_error


def test_pii_is_redacted_inside_the_event_and_customer_id_hashed() -> None:
    data = Complaint(
        complaint_id="c1",
        customer_id="cust-9",
        text="reach me at jane@example.com or +1 415 555 2671",
        attributes={"contact": "jane@example.com", "n": 3},
    )
    e = ok(encode_event(make_event("complaint", "agent-1", data, time=T0)), hash_key=b"k")
    assert e.text == "reach me at <email> or <phone>"
    assert e.redactions == 3
    assert e.content_chars == len(data.text or "")
    # The event carried to plugins and storage is the redacted one.
    assert e.event.data.text == e.text  # type: ignore[attr-defined]
    assert e.event.data.attributes == {"contact": "<email>", "n": 3}
    assert e.customer_id_hash.startswith("c_") and "cust-9" not in e.customer_id_hash
    assert e.event.data.customer_id == e.customer_id_hash  # type: ignore[attr-defined]


def test_unchanged_event_is_not_copied() -> None:
    e = ok(encode_event(make_event("prompt", "agent-1", Prompt(content="plain"), time=T0)))
    assert e.redactions == 0 and e.text == "plain"


def test_inventory_join_and_unknown_agent() -> None:
    info = AgentInfo("agent-1", "Bot", "alice", "support", "high", "L3", True)
    raw = encode_event(make_event("prompt", "agent-1", Prompt(content="x"), time=T0))
    assert ok(raw, DictInventory({"agent-1": info})).agent == info
    assert ok(raw, DictInventory({})).agent is None


def test_complaint_without_agent_is_valid_with_empty_agent_id() -> None:
    data = Complaint(complaint_id="c2", conversation_id="conv-1")
    e = ok(encode_event(make_event("complaint", None, data, time=T0)))
    assert e.agent_id == "" and e.agent is None


@pytest.mark.parametrize(
    ("raw", "field", "cls"),
    [
        (None, "$", EMPTY),
        (b"", "$", EMPTY),
        (b"{not json", "$", CONTRACT),
        (b"[1,2]", "$", CONTRACT),
    ],
)
def test_dead_letter_reasons(raw: bytes | None, field: str, cls: str) -> None:
    d = bad(raw)
    assert (d.field, d.error_class) == (field, cls)
    assert d.reason
    assert (d.topic, d.partition, d.offset, d.key) == ("p.events", 3, 41, b"agent-1")


def test_oversize_is_refused_before_parsing() -> None:
    raw = encode_event(make_event("prompt", "agent-1", Prompt(content="x" * 2000), time=T0))
    d = bad(raw, max_bytes=1000)
    assert d.error_class == OVERSIZE and "1000-byte limit" in d.reason
    assert d.raw == raw


def test_non_utf8_inside_data_is_a_dead_letter_not_a_crash() -> None:
    # msgspec raises UnicodeDecodeError (not its DecodeError) for this one: must not escape.
    raw = encode_event(make_event("prompt", "agent-1", Prompt(content="hé"), time=T0))
    raw = raw.replace("hé".encode(), "h\xe9".encode("latin-1"))
    d = bad(raw)
    assert d.error_class == ENCODING and "UTF-8" in d.reason


def test_wrong_field_is_named() -> None:
    raw = encode_event(
        make_event("output", "agent-1", Output(content="x", input_tokens=1), time=T0)
    ).replace(b'"gen_ai.usage.input_tokens":1', b'"gen_ai.usage.input_tokens":"many"')
    d = bad(raw)
    assert d.field == "$.data.gen_ai.usage.input_tokens" and d.error_class == CONTRACT


def test_every_malformed_workload_kind_is_dead_lettered_with_a_reason() -> None:
    records = generate_records(400, seed=5, malformed=3 * len(MALFORMED_KINDS), start=T0)
    seen: set[str] = set()
    for i, rec in enumerate(records):
        out = decode(rec.value, KafkaCoords("t", 0, i, rec.key), EmptyInventory())
        if rec.valid:
            assert isinstance(out, EnrichedEvent)
            assert out.event_id == rec.event.id  # type: ignore[union-attr]
        else:
            assert isinstance(out, DeadLetter), rec.kind
            assert out.reason and out.field.startswith("$")
            seen.add(rec.kind)
    assert seen == set(MALFORMED_KINDS)
