"""The governance maturity matrix: KPI values, from a registry in memory or from the SQL views.

``compute_kpis`` (pure) and ``kpis_from_clickhouse`` (the ``governance_kpis`` view) must agree;
the integration test checks they do on a known registry.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from auditstream.governance.registry import Registry


@dataclass(frozen=True)
class OwnerTimes:
    owner: str
    incidents: int
    mtta_s: float | None
    mttr_s: float | None


@dataclass
class GovernanceKpis:
    agents: int
    agents_with_owner: int
    owner_coverage: float
    policy_aligned_use_cases: int
    policy_aligned_ratio: float
    agents_with_personal_data: int
    agents_with_dpia: int
    dpia_coverage: float
    shadow_agents: int
    shadow_agent_ids: list[str] = field(default_factory=list)
    gaps: dict[str, list[str]] = field(default_factory=dict)  # agent id → missing controls
    mtta_mttr_by_owner: list[OwnerTimes] | None = None  # None: no incidents table yet

    def values(self) -> dict[str, Any]:
        """The one-line JSON of ``report governance --json``: the KPI numbers only."""
        keys = (
            "agents",
            "agents_with_owner",
            "owner_coverage",
            "policy_aligned_use_cases",
            "policy_aligned_ratio",
            "agents_with_personal_data",
            "agents_with_dpia",
            "dpia_coverage",
            "shadow_agents",
        )
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        if self.mtta_mttr_by_owner is not None:
            out["mtta_mttr_by_owner"] = [asdict(o) for o in self.mtta_mttr_by_owner]
        return out


def _ratio(num: int, den: int, empty: float) -> float:
    return empty if den == 0 else round(num / den, 4)


def compute_kpis(registry: Registry, shadow_agent_ids: Iterable[str] = ()) -> GovernanceKpis:
    """KPIs over the *active* agents of a registry (pure; the views compute the same)."""
    active = [a for a in registry if a.active]
    with_owner = sum(1 for a in active if a.owners.accountable)
    aligned = sum(1 for a in active if a.policy_aligned)
    personal = [a for a in active if a.personal_data]
    dpia = sum(1 for a in personal if a.dpia_ref)
    shadow = sorted(set(shadow_agent_ids) - {a.id for a in active})
    return GovernanceKpis(
        agents=len(active),
        agents_with_owner=with_owner,
        owner_coverage=_ratio(with_owner, len(active), 0.0),
        policy_aligned_use_cases=aligned,
        policy_aligned_ratio=_ratio(aligned, len(active), 0.0),
        agents_with_personal_data=len(personal),
        agents_with_dpia=dpia,
        dpia_coverage=_ratio(dpia, len(personal), 1.0),
        shadow_agents=len(shadow),
        shadow_agent_ids=shadow,
        gaps={
            a.id: (a.missing_controls() or [])
            + ([] if a.approval_status == "approved" else [f"approval_{a.approval_status}"])
            for a in active
            if not a.policy_aligned
        },
    )


def _table_exists(client: Any, name: str) -> bool:
    rows = client.query(
        "SELECT count() FROM system.tables "
        "WHERE database = currentDatabase() AND name = {n:String}",
        parameters={"n": name},
    ).result_rows
    return bool(rows and rows[0][0])


def ensure_optional_views(client: Any) -> list[str]:
    """Create views that depend on other areas' tables (``sql/views/governance_*.sql``) once
    those tables exist; returns the views created. Safe to call repeatedly."""
    from importlib import resources

    created: list[str] = []
    root = resources.files("auditstream.sql") / "views"
    if not root.is_dir():
        return created
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not (entry.name.startswith("governance_") and entry.name.endswith(".sql")):
            continue
        text = entry.read_text(encoding="utf-8")
        needs = [
            ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("-- requires:")
        ]
        if all(_table_exists(client, t) for t in needs):
            body = "\n".join(ln for ln in text.splitlines() if not ln.startswith("--")).strip()
            client.command(body.rstrip(";"))
            created.append(entry.name[:-4])
    return created


def kpis_from_clickhouse(client: Any) -> GovernanceKpis:
    """The same KPIs, read from the SQL views (what any ClickHouse client would see)."""
    result = client.query("SELECT * FROM governance_kpis")
    row = dict(zip(result.column_names, result.result_rows[0], strict=True))
    shadow = [
        r[0]
        for r in client.query(
            "SELECT agent_id FROM governance_shadow_agents ORDER BY agent_id"
        ).result_rows
    ]
    gaps_rows = client.query(
        "SELECT agent_id, missing_controls, approval_status FROM governance_agent_controls "
        "WHERE NOT policy_aligned ORDER BY agent_id"
    ).result_rows
    gaps = {
        str(a): list(m) + ([] if s == "approved" else [f"approval_{s}"]) for a, m, s in gaps_rows
    }
    times: list[OwnerTimes] | None = None
    if "governance_mtta_mttr_by_owner" in ensure_optional_views(client):
        res = client.query(
            "SELECT owner, incidents, mtta_s, mttr_s FROM governance_mtta_mttr_by_owner "
            "ORDER BY owner"
        )
        times = [
            OwnerTimes(str(o), int(n), _seconds(a), _seconds(r)) for o, n, a, r in res.result_rows
        ]
    return GovernanceKpis(
        agents=int(row["agents"]),
        agents_with_owner=int(row["agents_with_owner"]),
        owner_coverage=float(row["owner_coverage"]),
        policy_aligned_use_cases=int(row["policy_aligned_use_cases"]),
        policy_aligned_ratio=float(row["policy_aligned_ratio"]),
        agents_with_personal_data=int(row["agents_with_personal_data"]),
        agents_with_dpia=int(row["agents_with_dpia"]),
        dpia_coverage=float(row["dpia_coverage"]),
        shadow_agents=int(row["shadow_agents"]),
        shadow_agent_ids=shadow,
        gaps=gaps,
        mtta_mttr_by_owner=times,
    )


def _seconds(x: Any) -> float | None:
    """A mean from the view; ``avgIf`` over no acknowledged/resolved incident is NaN: none."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def render_text(k: GovernanceKpis) -> str:
    """The maturity matrix as plain text."""

    def pct(x: float) -> str:
        return f"{x * 100:.1f}%"

    lines = [
        "Governance maturity matrix",
        f"  Inventory      agents registered (active) ........ {k.agents}",
        f"                 shadow agents (inventory gaps) .... {k.shadow_agents}"
        + (f"  [{', '.join(k.shadow_agent_ids)}]" if k.shadow_agent_ids else ""),
        f"  Ownership      accountable owner assigned ........ {k.agents_with_owner}/{k.agents}"
        f" ({pct(k.owner_coverage)})",
        f"  Classify/Design policy-aligned use cases ......... "
        f"{k.policy_aligned_use_cases}/{k.agents} ({pct(k.policy_aligned_ratio)})",
        f"  Privacy        DPIA coverage (personal data) ..... "
        f"{k.agents_with_dpia}/{k.agents_with_personal_data} ({pct(k.dpia_coverage)})",
    ]
    if k.mtta_mttr_by_owner is None:
        lines.append(
            "  Monitor        MTTA/MTTR by owner ................ (no incidents table yet)"
        )
    elif not k.mtta_mttr_by_owner:
        lines.append("  Monitor        MTTA/MTTR by owner ................ no incidents")
    else:
        lines.append("  Monitor        MTTA/MTTR by owner:")
        for o in k.mtta_mttr_by_owner:
            mtta = "-" if o.mtta_s is None else f"{o.mtta_s:.0f}s"
            mttr = "-" if o.mttr_s is None else f"{o.mttr_s:.0f}s"
            lines.append(
                f"                 {o.owner or '(no owner)'}: {o.incidents} incidents, "
                f"MTTA {mtta}, MTTR {mttr}"
            )
    if k.gaps:
        lines.append("  Improve        agents not policy-aligned:")
        for agent_id, missing in sorted(k.gaps.items()):
            lines.append(f"                 {agent_id}: {', '.join(missing) or 'not approved'}")
    return "\n".join(lines)
