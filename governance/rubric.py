"""The risk rubric: declared impact → risk tier → the controls that tier requires.

Pure functions and constants only; ``docs/governance.md`` documents the same table for humans.

Each agent declares its potential harm on five dimensions (content, privacy, financial,
operational, regulatory), each ``none`` / ``low`` / ``moderate`` / ``severe``. The tier is
derived, never typed in, so two agents with the same impact always get the same tier:

- **high** if any dimension is ``severe``, or two or more are ``moderate``, or the score sum is
  at least 6 (points: none 0, low 1, moderate 2, severe 3);
- **medium** if any dimension is ``moderate``, or the sum is at least 3;
- **low** otherwise.

An explicit override may move the tier either way but must carry a reason (recorded with the
registry history), because a tier silently typed in is exactly the liability gap this closes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

RiskTier = Literal["low", "medium", "high"]
ImpactLevel = Literal["none", "low", "moderate", "severe"]
Autonomy = Literal["autonomous", "human_review", "suggest_only"]

TIERS: tuple[RiskTier, ...] = ("low", "medium", "high")
IMPACT_DIMENSIONS: tuple[str, ...] = (
    "content",
    "privacy",
    "financial",
    "operational",
    "regulatory",
)
IMPACT_POINTS: Mapping[str, int] = {"none": 0, "low": 1, "moderate": 2, "severe": 3}


@dataclass(frozen=True)
class TierPolicy:
    """The defaults a tier imposes; an agent may tighten them, never loosen them."""

    tier: RiskTier
    # Decision types that need a matching human approval before (or shortly after) execution.
    review_required: frozenset[str]
    # Executed actions per agent per rolling minute.
    actions_per_minute: int
    # Whether a critical alert on the agent publishes a suspend command by itself.
    auto_suspend_on_critical: bool
    # Controls an agent must have for its use case to count as policy-aligned (KPI).
    required_controls: tuple[str, ...]


# Money, entitlements and records are hard to undo; the higher the tier, the more of them a
# human must see. Drafting and scheduling stay autonomous up to high tier, where anything that
# reaches a customer (messaging) or personal data (data_access) is reviewed too.
TIER_POLICIES: Mapping[RiskTier, TierPolicy] = {
    "low": TierPolicy(
        tier="low",
        review_required=frozenset(),
        actions_per_minute=120,
        auto_suspend_on_critical=False,
        required_controls=("accountable_owner",),
    ),
    "medium": TierPolicy(
        tier="medium",
        review_required=frozenset({"pricing", "entitlement", "refund"}),
        actions_per_minute=60,
        auto_suspend_on_critical=False,
        required_controls=("accountable_owner", "escalation_contact", "dpia_if_personal_data"),
    ),
    "high": TierPolicy(
        tier="high",
        review_required=frozenset(
            {"pricing", "entitlement", "refund", "record_update", "data_access", "messaging"}
        ),
        actions_per_minute=20,
        auto_suspend_on_critical=True,
        required_controls=(
            "accountable_owner",
            "escalation_contact",
            "responsible_owner",
            "dpia_if_personal_data",
            "contract_if_external_vendor",
        ),
    ),
}


def score(impact: Mapping[str, str]) -> int:
    """Sum of impact points over the five dimensions (a missing dimension counts as none)."""
    return sum(IMPACT_POINTS[impact.get(dim, "none")] for dim in IMPACT_DIMENSIONS)


def derive_tier(impact: Mapping[str, str]) -> RiskTier:
    """The rubric tier for a declared impact, before any override."""
    unknown = set(impact) - set(IMPACT_DIMENSIONS)
    if unknown:
        raise ValueError(
            f"unknown impact dimension(s) {sorted(unknown)}; expected {list(IMPACT_DIMENSIONS)}"
        )
    levels = [impact.get(dim, "none") for dim in IMPACT_DIMENSIONS]
    for level in levels:
        if level not in IMPACT_POINTS:
            raise ValueError(f"unknown impact level {level!r}; expected {list(IMPACT_POINTS)}")
    total = score(impact)
    moderate = levels.count("moderate")
    if "severe" in levels or moderate >= 2 or total >= 6:
        return "high"
    if moderate >= 1 or total >= 3:
        return "medium"
    return "low"


def effective_tier(
    impact: Mapping[str, str], override: RiskTier | None = None, reason: str | None = None
) -> RiskTier:
    """The tier used for enforcement: the override when given (with a reason), else the rubric."""
    if override is None:
        return derive_tier(impact)
    if override not in TIERS:
        raise ValueError(f"unknown tier {override!r}; expected one of {list(TIERS)}")
    if not reason or not reason.strip():
        raise ValueError("a risk-tier override needs a reason")
    return override


def policy_for(
    tier: RiskTier,
    *,
    extra_review: frozenset[str] | set[str] = frozenset(),
    actions_per_minute: int | None = None,
    auto_suspend_on_critical: bool | None = None,
) -> TierPolicy:
    """The tier defaults, tightened by the agent's own declarations.

    An agent's rate limit only applies when it is lower than the tier's, extra decision types
    are added to the review set, and auto-suspend can be switched on but never off for a tier
    that requires it: a registry entry cannot opt out of its tier's guardrails.
    """
    base = TIER_POLICIES[tier]
    rate = base.actions_per_minute
    if actions_per_minute is not None:
        rate = min(rate, actions_per_minute)
    suspend = base.auto_suspend_on_critical or bool(auto_suspend_on_critical)
    return TierPolicy(
        tier=tier,
        review_required=base.review_required | frozenset(extra_review),
        actions_per_minute=rate,
        auto_suspend_on_critical=suspend,
        required_controls=base.required_controls,
    )
