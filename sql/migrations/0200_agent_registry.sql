-- 0200: the agent registry with full history (governance).
--
-- Append-only: every `auditstream agents sync` / register / retire that changes an agent writes
-- one row (who, when, which fields, the whole entry as JSON), so the history answers "who
-- changed what, when"; the current state is the latest version per agent
-- (view governance_agents_current). The registry file in git stays the source of truth; the
-- compacted `<prefix>.registry` topic carries the same rows to the workers.
-- Derived values (risk_tier, required_controls) are recorded as they were at the change, so a
-- later change of the rubric never rewrites history.
CREATE TABLE IF NOT EXISTS {{database}}.agent_registry
(
    agent_id             String,
    version              UInt64,
    changed_at           DateTime64(3, 'UTC'),
    changed_by           String,
    change               LowCardinality(String),
    changed_fields       Array(String),
    source               String,
    name                 String,
    team                 LowCardinality(String),
    purpose              String,
    use_case             String,
    channels             Array(String),
    data_sources         Array(String),
    personal_data        Array(String),
    decision_types       Array(LowCardinality(String)),
    model_provider       LowCardinality(String),
    model_name           LowCardinality(String),
    model_external       UInt8,
    contract_ref         String,
    dpia_ref             String,
    accountable          String,
    responsible          Array(String),
    consulted            Array(String),
    informed             Array(String),
    escalation           String,
    autonomy             LowCardinality(String),
    derived_tier         LowCardinality(String),
    risk_tier            LowCardinality(String),
    tier_override_reason String,
    review_required      Array(LowCardinality(String)),
    actions_per_minute   UInt32,
    auto_suspend         UInt8,
    required_controls    Array(LowCardinality(String)),
    approval_status      LowCardinality(String),
    approved_by          String,
    status               LowCardinality(String),
    retired_by           String,
    retired_reason       String,
    entry                String CODEC(ZSTD(3))
)
ENGINE = MergeTree
ORDER BY (agent_id, version);
