-- governance_mtta_mttr_by_owner: mean time to acknowledge / resolve incidents, per accountable
-- owner of the agent (from the registry), over the alert path's `incidents` lifecycle rows
-- (IncidentEvent: incident_id, action opened|acknowledged|resolved, at, agent_id).
-- Created by `auditstream report governance` once the `incidents` table exists.
-- requires: incidents
CREATE VIEW IF NOT EXISTS governance_mtta_mttr_by_owner AS
SELECT
    ifNull(r.accountable, '') AS owner,
    count() AS incidents,
    avgIf(dateDiff('millisecond', opened, acked) / 1000, acked > toDateTime64(0, 3)) AS mtta_s,
    avgIf(dateDiff('millisecond', opened, resolved) / 1000, resolved > toDateTime64(0, 3)) AS mttr_s
FROM
(
    SELECT
        incident_id,
        any(agent_id) AS agent_id,
        minIf(at, action = 'opened') AS opened,
        minIf(at, action = 'acknowledged') AS acked,
        minIf(at, action = 'resolved') AS resolved
    FROM incidents
    GROUP BY incident_id
    HAVING opened > toDateTime64(0, 3)
) AS i
LEFT JOIN governance_agents_current AS r ON r.agent_id = i.agent_id
GROUP BY owner;
