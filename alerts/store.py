"""ClickHouse rows for the alert path: ``alerts``, ``incidents``, ``alert_deliveries``.

Row builders are pure; the insert helpers take any clickhouse-connect client
(``auditstream.stream.clickhouse.get_client``). Replays write identical rows, which the
ReplacingMergeTree tables collapse (see sql/migrations/0100-0102).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from auditstream.alerts.delivery import DELIVERY_COLUMNS, DeliveryRecord
from auditstream.alerts.model import Alert, IncidentEvent

ALERT_COLUMNS = [
    "fingerprint",
    "incident_id",
    "version",
    "alertname",
    "agent_id",
    "severity",
    "status",
    "starts_at",
    "ends_at",
    "updated_at",
    "group_key",
    "labels",
    "annotations",
    "value",
    "threshold",
    "kind",
    "flapping",
]
INCIDENT_COLUMNS = [
    "incident_id",
    "fingerprint",
    "action",
    "at",
    "by",
    "alertname",
    "agent_id",
    "severity",
    "group_key",
    "note",
]


def alert_row(a: Alert) -> list[Any]:
    return [
        a.fingerprint,
        a.incident_id,
        a.version,
        a.alertname,
        a.agent_id or "",
        a.severity,
        a.status,
        a.starts_at,
        a.ends_at,
        a.updated_at,
        a.group_key,
        dict(a.labels),
        dict(a.annotations),
        float(a.value),
        a.threshold,
        a.kind,
        int(a.flapping),
    ]


def incident_row(ev: IncidentEvent) -> list[Any]:
    return [
        ev.incident_id,
        ev.fingerprint,
        ev.action,
        ev.at,
        ev.by,
        ev.alertname,
        ev.agent_id or "",
        ev.severity,
        ev.group_key,
        ev.note,
    ]


def insert_alerts(client: Any, alerts: Iterable[Alert]) -> int:
    rows = [alert_row(a) for a in alerts]
    if rows:
        client.insert("alerts", rows, column_names=ALERT_COLUMNS)
    return len(rows)


def insert_incidents(client: Any, events: Iterable[IncidentEvent]) -> int:
    rows = [incident_row(e) for e in events]
    if rows:
        client.insert("incidents", rows, column_names=INCIDENT_COLUMNS)
    return len(rows)


def insert_deliveries(client: Any, records: Iterable[DeliveryRecord]) -> int:
    rows = [r.row() for r in records]
    if rows:
        client.insert("alert_deliveries", rows, column_names=DELIVERY_COLUMNS)
    return len(rows)


def load_active(client: Any) -> list[Alert]:
    """Alerts whose latest version is firing: the delivery agent re-sends these after a restart
    (Alertmanager would otherwise let them expire while the condition still holds)."""
    cols = ", ".join(
        f"argMax({c}, version)"
        for c in ALERT_COLUMNS
        if c not in ("fingerprint", "incident_id", "version")
    )
    result = client.query(
        f"SELECT fingerprint, incident_id, max(version), {cols} FROM alerts "
        "GROUP BY fingerprint, incident_id"
    )
    out = []
    for row in result.result_rows:
        rec = dict(zip(ALERT_COLUMNS, row, strict=True))
        if rec["status"] != "firing":
            continue
        out.append(
            Alert(
                fingerprint=rec["fingerprint"],
                alertname=rec["alertname"],
                agent_id=rec["agent_id"] or None,
                severity=rec["severity"],
                labels=dict(rec["labels"]),
                annotations=dict(rec["annotations"]),
                status="firing",
                starts_at=_aware(rec["starts_at"]),
                ends_at=None,
                updated_at=_aware(rec["updated_at"]),
                incident_id=rec["incident_id"],
                group_key=rec["group_key"],
                value=float(rec["value"]),
                threshold=rec["threshold"],
                kind=rec["kind"],
                flapping=bool(rec["flapping"]),
                version=int(rec["version"]),
            )
        )
    return out


def _aware(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def human_action(
    incident: dict[str, Any], action: str, by: str, note: str = "", at: datetime | None = None
) -> IncidentEvent:
    """An on-call action (acknowledged / resolved / note) on an incident from incidents_list."""
    return IncidentEvent(
        incident_id=incident["incident_id"],
        fingerprint=incident.get("fingerprint", ""),
        action=action,  # type: ignore[arg-type]
        at=at or datetime.now(UTC),
        by=by,
        alertname=incident.get("alertname", ""),
        agent_id=incident.get("agent_id") or None,
        severity=incident.get("severity", "warning"),
        group_key=incident.get("group_key", ""),
        note=note,
    )
