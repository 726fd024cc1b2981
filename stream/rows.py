"""Row building: enriched events and dead letters → column-oriented Arrow tables.

Columnar on purpose: ClickHouse ingests one Arrow block per micro-batch far faster than
Python row lists (see /work/shared/infra.md: ~1.2 s vs ~13 s per million rows), and building
one Python list per column is the cheapest way to get there from Python objects.
The column names here and the ``events`` / ``dead_letters`` migrations must agree; a unit test
checks this against the migration files.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pyarrow as pa

from auditstream.producers.contract import (
    SCHEMA_VERSION,
    Action,
    Approval,
    Complaint,
    Error,
    Feedback,
    Output,
    SuspensionAck,
)
from auditstream.stream.enrich import EnrichedEvent
from auditstream.stream.validate import DeadLetter

_attrs_encoder = msgspec.json.Encoder()

_S = pa.string()
_TS = pa.timestamp("ms", tz="UTC")

# (column name, arrow type). Order is free (inserts name their columns).
EVENT_SCHEMA = pa.schema(
    [
        ("event_id", _S),
        ("event_type", _S),
        ("event_time", _TS),
        ("agent_id", _S),
        ("source", _S),
        ("agent_name", _S),
        ("conversation_id", _S),
        ("operation_name", _S),
        ("provider_name", _S),
        ("request_model", _S),
        ("response_model", _S),
        ("action_id", _S),
        ("decision_type", _S),
        ("target", _S),
        ("outcome", _S),
        ("tool_name", _S),
        ("tool_call_id", _S),
        ("amount", pa.float64()),
        ("currency", _S),
        ("approval_decision", _S),
        ("reviewer", _S),
        ("error_type", _S),
        ("complaint_id", _S),
        ("complaint_channel", _S),
        ("complaint_category", _S),
        ("severity", _S),
        ("customer_id_hash", _S),
        ("feedback_score", pa.float32()),
        ("command_id", _S),
        ("suspension_state", _S),
        ("content", _S),
        ("finish_reasons", pa.list_(_S)),
        ("attributes", _S),
        ("latency_ms", pa.float64()),
        ("input_tokens", pa.uint32()),
        ("output_tokens", pa.uint32()),
        ("total_tokens", pa.uint32()),
        ("is_error", pa.uint8()),
        ("payload_bytes", pa.uint32()),
        ("content_chars", pa.uint32()),
        ("redactions", pa.uint16()),
        ("agent_owner", _S),
        ("agent_team", _S),
        ("risk_tier", _S),
        ("autonomy_level", _S),
        ("agent_registered", pa.uint8()),
        ("kafka_topic", _S),
        ("kafka_partition", pa.uint16()),
        ("kafka_offset", pa.uint64()),
        ("schema_version", pa.uint8()),
    ]
)
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_SCHEMA.names)

DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("received_at", _TS),
        ("kafka_topic", _S),
        ("kafka_partition", pa.uint16()),
        ("kafka_offset", pa.uint64()),
        ("kafka_key", pa.binary()),
        ("error_class", _S),
        ("reason_field", _S),
        ("reason", _S),
        ("raw", pa.binary()),
        ("raw_bytes", pa.uint32()),
        ("raw_redactions", pa.uint16()),
    ]
)
DEAD_LETTER_COLUMNS: tuple[str, ...] = tuple(DEAD_LETTER_SCHEMA.names)

# Stored raw bytes of a dead letter are capped (the full record stays on the dead-letter topic).
MAX_STORED_RAW = 64 * 1024


def event_columns(batch: Sequence[EnrichedEvent]) -> dict[str, list[object]]:
    """One list per column (pure; the hot path: one pass, attribute access only)."""
    cols: dict[str, list[object]] = {name: [] for name in EVENT_COLUMNS}
    a = {name: col.append for name, col in cols.items()}
    for e in batch:
        ev = e.event
        d = ev.data
        a["event_id"](ev.id)
        a["event_type"](e.kind)
        a["event_time"](ev.time)
        a["agent_id"](e.agent_id)
        a["source"](ev.source)
        a["agent_name"](d.agent_name or "")
        a["conversation_id"](d.conversation_id or "")
        a["operation_name"](d.operation_name or "")
        a["provider_name"](d.provider_name or "")
        a["request_model"](d.request_model or "")
        a["response_model"](d.response_model or "" if isinstance(d, Output) else "")
        action_id = getattr(d, "action_id", None) or ""
        a["action_id"](action_id)
        a["decision_type"](e.decision_type)
        is_action = isinstance(d, Action)
        a["target"]((d.target or "") if is_action else "")
        a["outcome"](d.outcome if is_action else "")
        a["tool_name"](getattr(d, "tool_name", None) or "")
        a["tool_call_id"]((d.tool_call_id or "") if is_action else "")
        a["amount"](d.amount if is_action else None)
        a["currency"]((d.currency or "") if is_action else "")
        is_approval = isinstance(d, Approval)
        a["approval_decision"](d.decision if is_approval else "")
        a["reviewer"](d.reviewer if is_approval else "")
        a["error_type"](d.error_type if isinstance(d, Error) else "")
        is_complaint = isinstance(d, Complaint)
        a["complaint_id"](d.complaint_id if is_complaint else "")
        a["complaint_channel"]((d.channel or "") if is_complaint else "")
        a["complaint_category"]((d.category or "") if is_complaint else "")
        a["severity"](d.severity if is_complaint else "")
        a["customer_id_hash"](e.customer_id_hash)
        a["feedback_score"](d.score if isinstance(d, Feedback) else None)
        is_ack = isinstance(d, SuspensionAck)
        a["command_id"](d.command_id if is_ack else "")
        a["suspension_state"](d.state if is_ack else "")
        a["content"](e.text)
        a["finish_reasons"](d.finish_reasons if isinstance(d, Output) else [])
        a["attributes"](_attrs_encoder.encode(d.attributes).decode() if d.attributes else "")
        a["latency_ms"](e.latency_ms)
        a["input_tokens"](e.input_tokens)
        a["output_tokens"](e.output_tokens)
        a["total_tokens"](e.total_tokens)
        a["is_error"](1 if e.is_error else 0)
        a["payload_bytes"](e.payload_bytes)
        a["content_chars"](e.content_chars)
        a["redactions"](min(e.redactions, 65535))
        ag = e.agent
        if ag is None:
            a["agent_owner"]("")
            a["agent_team"]("")
            a["risk_tier"]("")
            a["autonomy_level"]("")
            a["agent_registered"](0)
        else:
            a["agent_owner"](ag.owner)
            a["agent_team"](ag.team)
            a["risk_tier"](ag.risk_tier)
            a["autonomy_level"](ag.autonomy_level)
            a["agent_registered"](1 if ag.registered else 0)
        a["kafka_topic"](e.topic)
        a["kafka_partition"](e.partition)
        a["kafka_offset"](e.offset)
        a["schema_version"](SCHEMA_VERSION)
    return cols


def events_table(batch: Sequence[EnrichedEvent]) -> pa.Table:
    cols = event_columns(batch)
    return pa.Table.from_arrays(
        [pa.array(cols[f.name], type=f.type) for f in EVENT_SCHEMA], schema=EVENT_SCHEMA
    )


def dead_letter_columns(batch: Sequence[DeadLetter]) -> dict[str, list[object]]:
    from auditstream.stream.redact import redact

    cols: dict[str, list[object]] = {name: [] for name in DEAD_LETTER_COLUMNS}
    for d in batch:
        raw = d.raw[:MAX_STORED_RAW]
        redactions = 0
        # The stored copy of a rejected record is redacted like any free text when it is
        # UTF-8 (PII never reaches ClickHouse); the dead-letter *topic* keeps the exact bytes.
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None:
            red, redactions = redact(text)
            if redactions:
                raw = red.encode()
        cols["received_at"].append(d.received_ms)
        cols["kafka_topic"].append(d.topic)
        cols["kafka_partition"].append(d.partition)
        cols["kafka_offset"].append(d.offset)
        cols["kafka_key"].append(d.key or b"")
        cols["error_class"].append(d.error_class)
        cols["reason_field"].append(d.field)
        cols["reason"].append(d.reason[:4096])
        cols["raw"].append(raw)
        cols["raw_bytes"].append(len(d.raw))
        cols["raw_redactions"].append(min(redactions, 65535))
    return cols


def dead_letters_table(batch: Sequence[DeadLetter]) -> pa.Table:
    cols = dead_letter_columns(batch)
    return pa.Table.from_arrays(
        [pa.array(cols[f.name], type=f.type) for f in DEAD_LETTER_SCHEMA],
        schema=DEAD_LETTER_SCHEMA,
    )
