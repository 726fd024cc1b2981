"""The agent registry: a declarative YAML file kept in git, validated into typed entries.

Example (a complete one ships as ``governance/demo_registry.yaml``)::

    version: 1
    agents:
      - id: support-bot
        name: Customer support assistant
        purpose: Answers order questions and issues small refunds
        decision_types: [drafting, refund]
        owners: {accountable: jane@example.com, escalation: oncall-support@example.com}
        autonomy: autonomous
        impact: {financial: moderate, privacy: low}
        approval_status: approved

Loading is strict: unknown keys are errors (a typo such as ``autonmy`` must not silently mean
"no constraint"), and every error names the file, the line, the JSON path and the agent id:
``registry.yaml:12: $.agents[1].autonomy (agent 'pricing-bot'): Invalid enum value 'full'``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct, field

from auditstream.governance.rubric import (
    Autonomy,
    ImpactLevel,
    RiskTier,
    TierPolicy,
    effective_tier,
    policy_for,
)
from auditstream.producers.contract import MAX_ID_CHARS, DecisionType

REGISTRY_VERSION = 1

AgentId = Annotated[
    str, Meta(min_length=1, max_length=MAX_ID_CHARS, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]
Name = Annotated[str, Meta(min_length=1, max_length=256)]
Text = Annotated[str, Meta(max_length=4096)]
Contact = Annotated[str, Meta(min_length=1, max_length=256)]
Reason = Annotated[str, Meta(min_length=3, max_length=2048)]
Lifecycle = Literal["active", "retired"]
ApprovalStatus = Literal["proposed", "approved", "rejected"]


class Owners(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """RACI: one accountable owner, any number of responsible/consulted/informed, one escalation."""

    accountable: Contact | None = None
    responsible: list[Contact] = field(default_factory=list)
    consulted: list[Contact] = field(default_factory=list)
    informed: list[Contact] = field(default_factory=list)
    escalation: Contact | None = None


class Impact(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    content: ImpactLevel = "none"
    privacy: ImpactLevel = "none"
    financial: ImpactLevel = "none"
    operational: ImpactLevel = "none"
    regulatory: ImpactLevel = "none"


class TierOverride(Struct, kw_only=True, forbid_unknown_fields=True):
    tier: RiskTier
    reason: Reason
    by: Contact | None = None


class RateLimits(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    actions_per_minute: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None


class Model(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    provider: Name | None = None
    name: Name | None = None
    # Vendor outside the organisation: its contract reference is a required control at high tier.
    external: bool = True


class Retirement(Struct, kw_only=True, forbid_unknown_fields=True):
    by: Contact
    reason: Reason
    at: str | None = None


class AgentEntry(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One agent as declared in the registry file."""

    id: AgentId
    name: Name
    purpose: Text = ""
    use_case: Name | None = None
    team: Name | None = None
    channels: list[Name] = field(default_factory=list)
    data_sources: list[Name] = field(default_factory=list)
    personal_data: list[Name] = field(default_factory=list)
    decision_types: list[DecisionType] = field(default_factory=list)
    model: Model | None = None
    contract_ref: Name | None = None
    dpia_ref: Name | None = None
    owners: Owners = field(default_factory=Owners)
    autonomy: Autonomy = "human_review"
    impact: Impact = field(default_factory=Impact)
    tier_override: TierOverride | None = None
    review_required: list[DecisionType] = field(default_factory=list)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    auto_suspend_on_critical: bool | None = None
    approval_status: ApprovalStatus = "proposed"
    approved_by: Contact | None = None
    status: Lifecycle = "active"
    retired: Retirement | None = None

    # -- derived views -------------------------------------------------------------------------
    @property
    def risk_tier(self) -> RiskTier:
        override = self.tier_override
        return effective_tier(
            msgspec.to_builtins(self.impact) or {},
            override.tier if override else None,
            override.reason if override else None,
        )

    @property
    def policy(self) -> TierPolicy:
        return policy_for(
            self.risk_tier,
            extra_review=frozenset(self.review_required),
            actions_per_minute=self.rate_limits.actions_per_minute,
            auto_suspend_on_critical=self.auto_suspend_on_critical,
        )

    @property
    def active(self) -> bool:
        return self.status == "active"

    def missing_controls(self) -> list[str]:
        """Controls this agent's tier requires that the entry does not provide (KPI input)."""
        have = {
            "accountable_owner": bool(self.owners.accountable),
            "escalation_contact": bool(self.owners.escalation),
            "responsible_owner": bool(self.owners.responsible),
            "dpia_if_personal_data": bool(self.dpia_ref) or not self.personal_data,
            "contract_if_external_vendor": bool(self.contract_ref)
            or self.model is None
            or not self.model.external,
        }
        return [c for c in self.policy.required_controls if not have[c]]

    @property
    def policy_aligned(self) -> bool:
        """Approved, active, and every control its tier requires is in place."""
        return self.active and self.approval_status == "approved" and not self.missing_controls()

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


class RegistryFile(Struct, kw_only=True, forbid_unknown_fields=True):
    version: Literal[1] = 1
    agents: list[AgentEntry] = field(default_factory=list)


class RegistryError(ValueError):
    """Bad registry input: ``location`` is ``file:line``, ``path`` a JSON path into the file."""

    def __init__(self, location: str, path: str, reason: str, agent_id: str | None = None):
        who = f" (agent {agent_id!r})" if agent_id else ""
        super().__init__(f"{location}: {path}{who}: {reason}")
        self.location = location
        self.path = path
        self.reason = reason
        self.agent_id = agent_id


@dataclass(frozen=True)
class Registry:
    """Validated registry: entries by id, in file order."""

    agents: Mapping[str, AgentEntry]
    source: str = "<memory>"

    def get(self, agent_id: str) -> AgentEntry | None:
        return self.agents.get(agent_id)

    def __iter__(self) -> Any:
        return iter(self.agents.values())

    def __len__(self) -> int:
        return len(self.agents)

    def to_file_dict(self) -> dict[str, Any]:
        return {"version": REGISTRY_VERSION, "agents": [a.to_dict() for a in self.agents.values()]}


_MSGSPEC_PATH = re.compile(r" - at `(\$[^`]*)`$")
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _line_of(node: Any, path: str) -> int | None:
    """1-based line of the YAML node at ``path`` (deepest node that exists), if known."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else None
    for key, index in _PATH_TOKEN.findall(path[1:] if path.startswith("$") else path):
        if isinstance(node, yaml.MappingNode) and key:
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if nxt is None:
                # The key is missing or unknown: point at the key itself when it is there.
                k_node = next((k for k, _ in node.value if getattr(k, "value", None) == key), None)
                return k_node.start_mark.line + 1 if k_node is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and index:
            i = int(index)
            if i >= len(node.value):
                return line
            node = node.value[i]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _agent_id_at(data: Any, path: str) -> str | None:
    match = re.match(r"^\$\.agents\[(\d+)\]", path)
    if not match or not isinstance(data, Mapping):
        return None
    agents = data.get("agents")
    i = int(match.group(1))
    if isinstance(agents, list) and i < len(agents) and isinstance(agents[i], Mapping):
        value = agents[i].get("id")
        return str(value) if value is not None else None
    return None


def parse_registry(text: str, source: str = "<string>") -> Registry:
    """Validate registry YAML text; raises :class:`RegistryError` at the first problem."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(exc, "problem", None) or str(exc)
        raise RegistryError(where, "$", f"not valid YAML: {problem}") from None
    if data is None:
        data = {}
    # Shorthands: a bare list of agents, or one agent (what `agents register FILE` takes).
    # Error paths always read as in a full file ($.agents[i]...); lines point into *this* text.
    shape = "file"
    if isinstance(data, list):
        data, shape = {"version": REGISTRY_VERSION, "agents": data}, "list"
    elif isinstance(data, Mapping) and "id" in data and "agents" not in data:
        data, shape = {"version": REGISTRY_VERSION, "agents": [data]}, "entry"
    if not isinstance(data, Mapping):
        raise RegistryError(f"{source}:1", "$", "expected a mapping with `version` and `agents`")

    def locate(path: str) -> str:
        line = None
        if root is not None:
            if shape == "list":
                path = re.sub(r"^\$\.agents", "$", path)
            elif shape == "entry":
                path = re.sub(r"^\$\.agents\[0\]", "$", path)
            line = _line_of(root, path)
        return f"{source}:{line}" if line else source

    try:
        parsed = msgspec.convert(data, RegistryFile, strict=True)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _MSGSPEC_PATH.search(message)
        path = match.group(1) if match else "$"
        reason = message[: match.start()] if match else message
        where = locate(path)
        unknown = re.search(r"unknown field `([^`]+)`", reason)
        if unknown:
            where = locate(f"{path}.{unknown.group(1)}")
        raise RegistryError(where, path, reason, _agent_id_at(data, path)) from None
    return _check_semantics(parsed, locate, source)


def _check_semantics(parsed: RegistryFile, locate: Callable[[str], str], source: str) -> Registry:
    """Rules a schema cannot say: unique ids, retirement record, approval needs an approver."""
    agents: dict[str, AgentEntry] = {}

    def fail(i: int, sub: str, reason: str, agent_id: str) -> RegistryError:
        path = f"$.agents[{i}]{sub}"
        return RegistryError(locate(path), path, reason, agent_id)

    for i, entry in enumerate(parsed.agents):
        if entry.id in agents:
            raise fail(i, ".id", "duplicate agent id (each agent appears once)", entry.id)
        if entry.status == "retired" and entry.retired is None:
            raise fail(i, ".retired", "a retired agent needs `retired: {by, reason}`", entry.id)
        if entry.approval_status == "approved" and not entry.approved_by:
            raise fail(i, ".approved_by", "an approved agent needs `approved_by`", entry.id)
        if entry.tier_override is not None and not entry.tier_override.reason.strip():
            raise fail(i, ".tier_override.reason", "a tier override needs a reason", entry.id)
        agents[entry.id] = entry
    return Registry(agents=agents, source=source)


def load_registry(path: str | Path) -> Registry:
    """Read and validate a registry file (see :func:`parse_registry`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(str(p), "$", f"cannot read the registry file: {exc.strerror}") from None
    return parse_registry(text, source=str(p))


def dump_registry(registry: Registry | Iterable[AgentEntry]) -> str:
    """YAML text for a registry (comments in a hand-written file are not preserved)."""
    import yaml

    agents = registry.agents.values() if isinstance(registry, Registry) else registry
    doc = {"version": REGISTRY_VERSION, "agents": [a.to_dict() for a in agents]}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def merge_entries(registry: Registry, entries: Sequence[AgentEntry]) -> tuple[Registry, list[str]]:
    """Add or replace entries by id; returns the new registry and the ids that were replaced."""
    agents = dict(registry.agents)
    replaced = [e.id for e in entries if e.id in agents]
    for entry in entries:
        agents[entry.id] = entry
    return Registry(agents=agents, source=registry.source), replaced


def retire_entry(registry: Registry, agent_id: str, *, by: str, reason: str, at: str) -> Registry:
    """The registry with ``agent_id`` retired (kept, not deleted: history matters)."""
    entry = registry.get(agent_id)
    if entry is None:
        raise KeyError(f"agent {agent_id!r} is not in {registry.source}")
    if not reason.strip() or len(reason.strip()) < 3:
        raise ValueError("retiring an agent needs a reason")
    retired = msgspec.structs.replace(
        entry, status="retired", retired=Retirement(by=by, reason=reason.strip(), at=at)
    )
    agents = dict(registry.agents)
    agents[agent_id] = retired
    return Registry(agents=agents, source=registry.source)


def diff_entries(old: AgentEntry | None, new: AgentEntry) -> list[str]:
    """Top-level fields that differ (all set fields for a new agent): the 'what' of history."""
    new_d = new.to_dict()
    if old is None:
        return sorted(new_d)
    old_d = old.to_dict()
    return sorted(k for k in set(old_d) | set(new_d) if old_d.get(k) != new_d.get(k))
