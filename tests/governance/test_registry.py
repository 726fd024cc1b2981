"""Registry loading: valid files load, bad input gets an error naming file, line, path, agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditstream.governance.registry import (
    RegistryError,
    diff_entries,
    dump_registry,
    load_registry,
    parse_registry,
    retire_entry,
)

GOOD = """\
version: 1
agents:
  - id: support-bot
    name: Support assistant
    decision_types: [drafting, refund]
    personal_data: [contact]
    dpia_ref: DPIA-7
    owners: {accountable: jane@example.com, escalation: oncall@example.com}
    autonomy: autonomous
    impact: {financial: moderate}
    approval_status: approved
    approved_by: risk-board
  - id: pricing-bot
    name: Pricing
    autonomy: suggest_only
    impact: {financial: severe}
"""


def test_good_registry_loads_with_derived_tier() -> None:
    reg = parse_registry(GOOD, "r.yaml")
    assert list(reg.agents) == ["support-bot", "pricing-bot"]
    support = reg.agents["support-bot"]
    assert support.risk_tier == "medium"
    assert "refund" in support.policy.review_required
    assert support.policy_aligned
    pricing = reg.agents["pricing-bot"]
    assert pricing.risk_tier == "high"
    assert not pricing.policy_aligned  # not approved, no owner
    assert "accountable_owner" in pricing.missing_controls()


def _error(text: str) -> RegistryError:
    with pytest.raises(RegistryError) as info:
        parse_registry(text, "r.yaml")
    return info.value


def test_bad_enum_names_line_path_and_agent() -> None:
    err = _error(GOOD.replace("autonomy: suggest_only", "autonomy: full"))
    assert err.path == "$.agents[1].autonomy"
    assert err.agent_id == "pricing-bot"
    assert err.location == "r.yaml:15"
    assert "r.yaml:15: $.agents[1].autonomy (agent 'pricing-bot')" in str(err)


def test_unknown_key_is_an_error_not_silently_ignored() -> None:
    err = _error(GOOD.replace("autonomy: autonomous", "autonmy: autonomous"))
    assert "unknown field `autonmy`" in err.reason
    assert err.location == "r.yaml:9"
    assert err.agent_id == "support-bot"


def test_bad_decision_type_and_missing_name() -> None:
    err = _error(GOOD.replace("[drafting, refund]", "[drafting, guessing]"))
    assert err.path == "$.agents[0].decision_types[1]"
    err = _error(GOOD.replace("    name: Pricing\n", ""))
    assert err.path == "$.agents[1]"
    assert "name" in err.reason


def test_semantic_errors() -> None:
    err = _error(GOOD.replace("id: pricing-bot", "id: support-bot"))
    assert "duplicate agent id" in err.reason and err.path == "$.agents[1].id"
    err = _error(GOOD.replace("    approved_by: risk-board\n", ""))
    assert "approved_by" in err.reason
    err = _error(GOOD + "    status: retired\n")
    assert "retired" in err.reason
    err = _error(GOOD + "    tier_override: {tier: low}\n")
    assert err.path == "$.agents[1].tier_override" and "reason" in err.reason


def test_yaml_syntax_error_and_wrong_shape() -> None:
    err = _error("agents:\n  - id: [unclosed\n")
    assert err.location.startswith("r.yaml:") and "not valid YAML" in err.reason
    err = _error("just a string")
    assert "mapping" in err.reason


def test_nested_path_lines_and_shorthands() -> None:
    err = _error(
        GOOD.replace("owners: {accountable: jane@example.com,", "owners: {accountable: 5,")
    )
    assert err.path == "$.agents[0].owners.accountable" and err.location == "r.yaml:8"
    err = _error("- id: a\n  name: A\n- id: b\n  name: B\n  autonomy: full\n")
    assert err.path == "$.agents[1].autonomy" and err.location == "r.yaml:5"
    assert err.agent_id == "b"
    err = _error("id: solo\nname: Solo\nimpact: {privacy: huge}\n")
    assert err.path == "$.agents[0].impact.privacy" and err.location == "r.yaml:3"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read"):
        load_registry(tmp_path / "nope.yaml")


def test_round_trip_retire_and_diff(tmp_path: Path) -> None:
    reg = parse_registry(GOOD, "r.yaml")
    retired = retire_entry(reg, "pricing-bot", by="cto", reason="replaced", at="2026-01-01")
    path = tmp_path / "r.yaml"
    path.write_text(dump_registry(retired))
    again = load_registry(path)
    entry = again.agents["pricing-bot"]
    assert entry.status == "retired" and entry.retired is not None and entry.retired.by == "cto"
    assert diff_entries(reg.agents["pricing-bot"], entry) == ["retired", "status"]
    assert again.agents["support-bot"] == reg.agents["support-bot"]
    with pytest.raises(KeyError):
        retire_entry(reg, "ghost", by="x", reason="gone", at="now")


def test_demo_registry_is_valid() -> None:
    import auditstream.governance as gov

    reg = load_registry(Path(gov.__file__).parent / "demo_registry.yaml")
    assert len(reg) >= 3
    assert {a.autonomy for a in reg} >= {"autonomous", "human_review", "suggest_only"}
