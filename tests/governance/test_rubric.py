"""The risk rubric: impact → tier, overrides, and tier defaults an agent cannot loosen."""

from __future__ import annotations

import pytest

from auditstream.governance.rubric import TIER_POLICIES, derive_tier, effective_tier, policy_for


@pytest.mark.parametrize(
    ("impact", "tier"),
    [
        ({}, "low"),
        ({"content": "low", "privacy": "low"}, "low"),
        ({"content": "low", "privacy": "low", "financial": "low"}, "medium"),  # sum 3
        ({"financial": "moderate"}, "medium"),
        ({"financial": "moderate", "privacy": "moderate"}, "high"),  # two moderates
        ({"regulatory": "severe"}, "high"),
        (
            {
                "content": "low",
                "privacy": "low",
                "financial": "low",
                "operational": "low",
                "regulatory": "moderate",
            },
            "high",  # sum 6
        ),
    ],
)
def test_derive_tier(impact: dict[str, str], tier: str) -> None:
    assert derive_tier(impact) == tier


def test_unknown_dimension_and_level_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown impact dimension"):
        derive_tier({"reputational": "low"})
    with pytest.raises(ValueError, match="unknown impact level"):
        derive_tier({"privacy": "huge"})


def test_override_needs_reason() -> None:
    assert (
        effective_tier({"regulatory": "severe"}, "medium", "sandbox only, no real customers")
        == "medium"
    )
    with pytest.raises(ValueError, match="needs a reason"):
        effective_tier({}, "high", "  ")
    with pytest.raises(ValueError, match="unknown tier"):
        effective_tier({}, "extreme", "because")  # type: ignore[arg-type]


def test_agent_can_tighten_but_not_loosen() -> None:
    high = TIER_POLICIES["high"]
    p = policy_for("high", actions_per_minute=10_000, auto_suspend_on_critical=False)
    assert p.actions_per_minute == high.actions_per_minute
    assert p.auto_suspend_on_critical is True
    p = policy_for(
        "low", extra_review={"pricing"}, actions_per_minute=5, auto_suspend_on_critical=True
    )
    assert p.review_required == frozenset({"pricing"})
    assert p.actions_per_minute == 5
    assert p.auto_suspend_on_critical is True


def test_tiers_are_monotonic() -> None:
    low, medium, high = (TIER_POLICIES[t] for t in ("low", "medium", "high"))
    assert low.review_required <= medium.review_required <= high.review_required
    assert low.actions_per_minute >= medium.actions_per_minute >= high.actions_per_minute
    assert (
        set(low.required_controls) <= set(medium.required_controls) <= set(high.required_controls)
    )
