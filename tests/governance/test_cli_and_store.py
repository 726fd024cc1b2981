"""Registry CLI on files (no servers) and the pure sync planning / row building."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from auditstream.cli import app
from auditstream.governance.registry import load_registry, parse_registry
from auditstream.governance.report import OwnerTimes, _seconds, compute_kpis, render_text
from auditstream.governance.store import REGISTRY_COLUMNS, plan_sync, registry_row

runner = CliRunner()
ENTRY = """\
id: triage-bot
name: Triage
autonomy: autonomous
impact: {operational: low}
owners: {accountable: ann@example.com}
"""


def test_register_list_show_retire(tmp_path: Path) -> None:
    reg = tmp_path / "registry.yaml"
    entry = tmp_path / "entry.yaml"
    entry.write_text(ENTRY)
    result = runner.invoke(app, ["agents", "register", str(entry), "--registry", str(reg)])
    assert result.exit_code == 0, result.output
    assert "registered triage-bot (tier low, autonomous)" in result.output
    result = runner.invoke(app, ["agents", "list", "--registry", str(reg), "--json"])
    assert '"id": "triage-bot"' in result.output and '"tier": "low"' in result.output
    result = runner.invoke(app, ["agents", "show", "triage-bot", "--registry", str(reg)])
    assert "# risk tier: low (rubric)" in result.output
    assert "# missing controls: none" in result.output
    result = runner.invoke(
        app,
        [
            "agents",
            "retire",
            "triage-bot",
            "--by",
            "cto",
            "--reason",
            "replaced",
            "--registry",
            str(reg),
        ],
    )
    assert result.exit_code == 0, result.output
    retired = load_registry(reg).agents["triage-bot"]
    assert retired.status == "retired" and retired.retired and retired.retired.by == "cto"


def test_bad_input_gets_a_precise_error_and_exit_code(tmp_path: Path) -> None:
    reg = tmp_path / "registry.yaml"
    entry = tmp_path / "entry.yaml"
    entry.write_text(ENTRY.replace("autonomous", "yolo"))
    result = runner.invoke(app, ["agents", "register", str(entry), "--registry", str(reg)])
    assert result.exit_code == 2
    assert "entry.yaml:3: $.agents[0].autonomy" in result.output  # line in the user's file
    assert "'triage-bot'" in result.output
    assert not reg.exists()
    result = runner.invoke(app, ["agents", "show", "nobody", "--registry", str(entry)])
    assert result.exit_code == 2  # the file itself is invalid: reported, not a traceback
    result = runner.invoke(app, ["suspend", "x", "--by", "alice", "--reason", " "])
    assert result.exit_code == 2 and "reason" in result.output


def test_report_from_file_json_last_line(tmp_path: Path) -> None:
    import json

    import auditstream.governance as gov

    demo = Path(gov.__file__).parent / "demo_registry.yaml"
    result = runner.invoke(app, ["report", "governance", "--registry", str(demo), "--json"])
    assert result.exit_code == 0, result.output
    values = json.loads(result.output.strip().splitlines()[-1])
    assert values == compute_kpis(load_registry(demo)).values()
    assert values["agents"] == 13 and values["agents_with_owner"] == 12
    assert values["policy_aligned_use_cases"] == 11 and values["dpia_coverage"] == 0.4


def test_kpis_ignore_retired_and_count_shadows() -> None:
    reg = parse_registry(
        "agents:\n"
        "  - {id: a, name: A, owners: {accountable: x}, personal_data: [contact]}\n"
        "  - {id: b, name: B, status: retired, retired: {by: x, reason: old one}}\n"
    )
    k = compute_kpis(reg, ["ghost", "a", "ghost"])
    assert (k.agents, k.owner_coverage, k.dpia_coverage, k.shadow_agents) == (1, 1.0, 0.0, 1)
    assert k.gaps == {"a": ["approval_proposed"]}
    assert "shadow agents (inventory gaps) .... 1  [ghost]" in render_text(k)


def test_owner_times_without_acknowledgements_render_as_a_dash() -> None:
    # ClickHouse's avgIf over no acknowledged incident is NaN: it must not print as "nans".
    assert _seconds(float("nan")) is None and _seconds(None) is None and _seconds(12) == 12.0
    reg = parse_registry("agents:\n  - {id: a, name: A, owners: {accountable: x}}\n")
    k = compute_kpis(reg)
    k.mtta_mttr_by_owner = [OwnerTimes("x", 2, _seconds(float("nan")), 30.0)]
    assert "x: 2 incidents, MTTA -, MTTR 30s" in render_text(k)


def test_plan_sync_detects_changes_and_prunes() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    old = parse_registry("agents:\n  - {id: a, name: A}\n  - {id: b, name: B}\n")
    new = parse_registry("agents:\n  - {id: a, name: A2}\n  - {id: c, name: C}\n")
    plan = plan_sync(new, old.agents, by="ci", source="r.yaml", now=now)
    changes = {(r.entry.id, r.change, tuple(r.changed_fields)) for r in plan.records}
    assert ("a", "updated", ("name",)) in changes
    assert ("b", "retired", ("retired", "status")) in changes
    assert any(c[0] == "c" and c[1] == "registered" for c in changes)
    assert (
        plan_sync(new, old.agents, by="ci", source="r", prune=False, now=now).records[-1].entry.id
        == "c"
    )
    row = registry_row(plan.records[0])
    assert len(row) == len(REGISTRY_COLUMNS)
    assert dict(zip(REGISTRY_COLUMNS, row, strict=True))["changed_by"] == "ci"
