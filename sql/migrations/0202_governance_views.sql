-- 0202: governance KPI views (maturity matrix), readable by any ClickHouse client.
--
-- governance_agents_current: latest registry version per agent.
-- governance_agent_controls: per active agent, which controls its tier requires are missing and
--   whether its use case is policy-aligned (approved + every required control in place).
-- governance_shadow_agents: agents seen in events that are not active in the registry.
-- governance_kpis: one row with the KPI values `auditstream report governance` prints.
-- The control checks mirror auditstream.governance.registry.AgentEntry.missing_controls; the
-- report test asserts both give the same numbers.
CREATE VIEW IF NOT EXISTS {{database}}.governance_agents_current AS
SELECT *
FROM {{database}}.agent_registry
ORDER BY agent_id, version DESC
LIMIT 1 BY agent_id;

CREATE VIEW IF NOT EXISTS {{database}}.governance_agent_controls AS
SELECT
    agent_id,
    name,
    team,
    accountable,
    risk_tier,
    autonomy,
    approval_status,
    personal_data,
    dpia_ref,
    arrayFilter(
        c -> NOT multiIf(
            c = 'accountable_owner', accountable != '',
            c = 'escalation_contact', escalation != '',
            c = 'responsible_owner', length(responsible) > 0,
            c = 'dpia_if_personal_data', dpia_ref != '' OR length(personal_data) = 0,
            c = 'contract_if_external_vendor', contract_ref != '' OR model_external = 0,
            false),
        required_controls) AS missing_controls,
    approval_status = 'approved' AND length(missing_controls) = 0 AS policy_aligned
FROM {{database}}.governance_agents_current
WHERE status = 'active';

CREATE VIEW IF NOT EXISTS {{database}}.governance_shadow_agents AS
SELECT
    agent_id,
    count() AS events,
    min(event_time) AS first_seen,
    max(event_time) AS last_seen,
    anyLast(source) AS source
FROM {{database}}.events
WHERE agent_id != ''
  AND agent_id NOT IN (SELECT agent_id FROM {{database}}.governance_agent_controls)
GROUP BY agent_id;

CREATE VIEW IF NOT EXISTS {{database}}.governance_kpis AS
SELECT
    count() AS agents,
    countIf(accountable != '') AS agents_with_owner,
    if(agents = 0, 0, round(agents_with_owner / agents, 4)) AS owner_coverage,
    countIf(policy_aligned) AS policy_aligned_use_cases,
    if(agents = 0, 0, round(policy_aligned_use_cases / agents, 4)) AS policy_aligned_ratio,
    countIf(length(personal_data) > 0) AS agents_with_personal_data,
    countIf(length(personal_data) > 0 AND dpia_ref != '') AS agents_with_dpia,
    if(agents_with_personal_data = 0, 1,
       round(agents_with_dpia / agents_with_personal_data, 4)) AS dpia_coverage,
    (SELECT count() FROM {{database}}.governance_shadow_agents) AS shadow_agents
FROM {{database}}.governance_agent_controls;
