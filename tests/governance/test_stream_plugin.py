"""Pure parts of the worker plugin: the registry-backed inventory and violation → Finding."""

from __future__ import annotations

from datetime import UTC, datetime

from auditstream.alerts.model import decode_finding, encode_finding
from auditstream.governance.registry import parse_registry, retire_entry
from auditstream.governance.rules import Violation
from auditstream.governance.store import RegistryRecord, encode_record
from auditstream.governance.stream import RegistryInventory, to_finding
from auditstream.stream.enrich import Inventory

T0 = datetime(2026, 1, 1, tzinfo=UTC)
REG = parse_registry(
    "agents:\n  - {id: a, name: A, team: t1, owners: {accountable: ann}, "
    "impact: {privacy: severe}, autonomy: suggest_only}\n"
)


def record(entry) -> bytes:  # type: ignore[no-untyped-def]
    return encode_record(
        RegistryRecord(
            entry=entry,
            version=1,
            changed_at=T0,
            changed_by="ci",
            change="registered",
            changed_fields=[],
            source="r",
        )
    )


def test_inventory_joins_registry_records_and_survives_bad_ones() -> None:
    inv = RegistryInventory()
    assert isinstance(inv, Inventory)
    inv.apply(b"a", record(REG.agents["a"]))
    info = inv.lookup("a")
    assert info is not None
    assert (info.owner, info.team, info.risk_tier, info.autonomy_level, info.registered) == (
        "ann",
        "t1",
        "high",
        "suggest_only",
        True,
    )
    inv.apply(b"x", b"{not json")  # skipped, not fatal
    assert inv.lookup("x") is None
    retired = retire_entry(REG, "a", by="cto", reason="gone now", at="2026").agents["a"]
    inv.apply(b"a", record(retired))
    assert inv.lookup("a").registered is False  # type: ignore[union-attr]
    inv.apply(b"a", None)  # tombstone
    assert inv.lookup("a") is None and inv.entry("a") is None


def test_violation_becomes_a_valid_finding() -> None:
    v = Violation(
        rule="MissingApproval",
        agent_id="a",
        severity="critical",
        summary="x" * 2000,
        event_time=T0,
        labels={"decision_type": "refund"},
        details={"action_id": "a1"},
    )
    f = decode_finding(encode_finding(to_finding(v)))
    assert (f.alertname, f.agent_id, f.severity, f.source, f.kind) == (
        "MissingApproval",
        "a",
        "critical",
        "governance",
        "oneshot",
    )
    assert f.labels == {"decision_type": "refund"} and f.annotations == {"action_id": "a1"}
    assert len(f.summary) == 1024
