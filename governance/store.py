"""Publishing the registry and kill-switch commands: Kafka topics and ClickHouse history.

- ``sync_registry``: the YAML file (source of truth, in git) → one history row per *changed*
  agent in ClickHouse ``agent_registry`` and one record per changed agent on the compacted
  ``<prefix>.registry`` topic. Agents missing from the file are retired (``--no-prune`` keeps
  them). Re-running with an unchanged file writes nothing.
- ``publish_command``: a suspend/resume command on the compacted ``<prefix>.control`` topic;
  returns where it landed. It never claims the agent stopped: only the pipeline's verification
  (``kill_switch_log``) may say that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from auditstream.governance.registry import AgentEntry, Registry, diff_entries
from auditstream.governance.rubric import derive_tier
from auditstream.producers.killswitch import ControlMessage, encode_control
from auditstream.settings import Settings

REGISTRY_COLUMNS: tuple[str, ...] = (
    "agent_id",
    "version",
    "changed_at",
    "changed_by",
    "change",
    "changed_fields",
    "source",
    "name",
    "team",
    "purpose",
    "use_case",
    "channels",
    "data_sources",
    "personal_data",
    "decision_types",
    "model_provider",
    "model_name",
    "model_external",
    "contract_ref",
    "dpia_ref",
    "accountable",
    "responsible",
    "consulted",
    "informed",
    "escalation",
    "autonomy",
    "derived_tier",
    "risk_tier",
    "tier_override_reason",
    "review_required",
    "actions_per_minute",
    "auto_suspend",
    "required_controls",
    "approval_status",
    "approved_by",
    "status",
    "retired_by",
    "retired_reason",
    "entry",
)


class RegistryRecord(msgspec.Struct, kw_only=True):
    """Value of a ``<prefix>.registry`` record (key = agent id): the entry plus its change."""

    entry: AgentEntry
    version: int
    changed_at: datetime
    changed_by: str
    change: str
    changed_fields: list[str]
    source: str


_record_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(RegistryRecord)


def encode_record(record: RegistryRecord) -> bytes:
    return _record_encoder.encode(record)


def decode_record(raw: bytes | bytearray | memoryview) -> RegistryRecord:
    return _record_decoder.decode(raw)


def registry_row(record: RegistryRecord) -> list[Any]:
    """One ``agent_registry`` row (order of :data:`REGISTRY_COLUMNS`)."""
    e = record.entry
    policy = e.policy
    impact = msgspec.to_builtins(e.impact) or {}
    model = e.model
    return [
        e.id,
        record.version,
        record.changed_at,
        record.changed_by,
        record.change,
        record.changed_fields,
        record.source,
        e.name,
        e.team or "",
        e.purpose,
        e.use_case or "",
        e.channels,
        e.data_sources,
        e.personal_data,
        list(e.decision_types),
        (model.provider or "") if model else "",
        (model.name or "") if model else "",
        1 if model is not None and model.external else 0,
        e.contract_ref or "",
        e.dpia_ref or "",
        e.owners.accountable or "",
        e.owners.responsible,
        e.owners.consulted,
        e.owners.informed,
        e.owners.escalation or "",
        e.autonomy,
        derive_tier(impact),
        e.risk_tier,
        e.tier_override.reason if e.tier_override else "",
        sorted(policy.review_required),
        policy.actions_per_minute,
        int(policy.auto_suspend_on_critical),
        list(policy.required_controls),
        e.approval_status,
        e.approved_by or "",
        e.status,
        e.retired.by if e.retired else "",
        e.retired.reason if e.retired else "",
        json.dumps(e.to_dict(), sort_keys=True),
    ]


@dataclass(frozen=True)
class SyncPlan:
    records: list[RegistryRecord]
    unchanged: list[str]


def plan_sync(
    registry: Registry,
    current: Mapping[str, AgentEntry],
    *,
    by: str,
    source: str,
    prune: bool = True,
    now: datetime | None = None,
) -> SyncPlan:
    """Which agents changed against ``current`` (the last synced state); pure."""
    from auditstream.governance.registry import retire_entry

    now = now or datetime.now(UTC)
    version = int(now.timestamp() * 1000)
    records: list[RegistryRecord] = []
    unchanged: list[str] = []
    for entry in registry:
        old = current.get(entry.id)
        if old is not None and old == entry:
            unchanged.append(entry.id)
            continue
        fields = diff_entries(old, entry)
        if old is None:
            change = "registered"
        elif entry.status == "retired" and old.status != "retired":
            change = "retired"
        else:
            change = "updated"
        records.append(
            RegistryRecord(
                entry=entry,
                version=version,
                changed_at=now,
                changed_by=by,
                change=change,
                changed_fields=fields,
                source=source,
            )
        )
    if prune:
        for agent_id, old in current.items():
            if agent_id in registry.agents or old.status == "retired":
                continue
            single = Registry(agents={agent_id: old}, source=source)
            retired = retire_entry(
                single, agent_id, by=by, reason="removed from the registry file", at=now.isoformat()
            ).agents[agent_id]
            records.append(
                RegistryRecord(
                    entry=retired,
                    version=version,
                    changed_at=now,
                    changed_by=by,
                    change="retired",
                    changed_fields=diff_entries(old, retired),
                    source=source,
                )
            )
    return SyncPlan(records=records, unchanged=unchanged)


def current_from_clickhouse(client: Any) -> dict[str, AgentEntry]:
    """The last synced entry per agent, from ``agent_registry`` history."""
    rows = client.query(
        "SELECT agent_id, argMax(entry, version) FROM agent_registry GROUP BY agent_id"
    ).result_rows
    out: dict[str, AgentEntry] = {}
    for agent_id, entry in rows:
        out[str(agent_id)] = msgspec.convert(json.loads(entry), AgentEntry)
    return out


def history(client: Any, agent_id: str) -> list[dict[str, Any]]:
    result = client.query(
        "SELECT version, changed_at, changed_by, change, changed_fields, source "
        "FROM agent_registry WHERE agent_id = {agent:String} ORDER BY version",
        parameters={"agent": agent_id},
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _produce(
    settings: Settings,
    topic: str,
    items: list[tuple[bytes, bytes]],
    producer: Any = None,
) -> list[tuple[int, int]]:
    """Produce keyed records idempotently and wait; returns (partition, offset) per record."""
    from confluent_kafka import KafkaException, Producer

    if producer is None:
        producer = Producer(settings.kafka_config(**{"enable.idempotence": True, "acks": "all"}))
    results: list[tuple[int, int] | None] = [None] * len(items)
    errors: list[str] = []

    def done(i: int) -> Any:
        def cb(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                results[i] = (msg.partition(), msg.offset())

        return cb

    for i, (key, value) in enumerate(items):
        producer.produce(topic, key=key, value=value, on_delivery=done(i))
        producer.poll(0)
    remaining = producer.flush(30.0)
    if remaining or errors or any(r is None for r in results):
        why = "; ".join(errors) or f"{remaining} record(s) not acknowledged within 30s"
        raise KafkaException(f"publishing to {topic} failed: {why}")
    return [r for r in results if r is not None]


def publish_records(settings: Settings, records: list[RegistryRecord]) -> None:
    if records:
        _produce(
            settings,
            settings.topics.registry,
            [(r.entry.id.encode(), encode_record(r)) for r in records],
        )


def insert_records(client: Any, records: list[RegistryRecord]) -> None:
    if records:
        client.insert(
            "agent_registry",
            [registry_row(r) for r in records],
            column_names=list(REGISTRY_COLUMNS),
        )


def publish_command(
    settings: Settings, command: ControlMessage, producer: Any = None
) -> tuple[int, int]:
    """Publish a suspend/resume command; returns (partition, offset) it was acknowledged at.

    ``producer``: a long-lived confluent-kafka Producer to reuse (the worker's auto-suspend).
    """
    items = [(command.agent_id.encode(), encode_control(command))]
    return _produce(settings, settings.topics.control, items, producer)[0]


KILL_SWITCH_COLUMNS = ("command_id", "agent_id", "status", "at", "detail", "by", "reason")


def kill_switch_status(client: Any, agent_id: str | None = None) -> list[dict[str, Any]]:
    """Verification steps per command (latest first), as the pipeline recorded them."""
    where = "WHERE agent_id = {agent:String}" if agent_id else ""
    result = client.query(
        f"SELECT command_id, agent_id, status, at, detail, by, reason FROM kill_switch_log "
        f"{where} ORDER BY at DESC, status LIMIT 100",
        parameters={"agent": agent_id} if agent_id else None,
    )
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]
