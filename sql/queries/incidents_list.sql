-- Incidents with their current state (open | acknowledged | resolved) and who acted.
SELECT incident_id, alertname, agent_id, severity, group_key, opened_at, acked_at, acked_by,
       resolved_at, resolved_by,
       multiIf(resolved_at > opened_at, 'resolved', acked_at > toDateTime64(0, 3), 'acknowledged', 'open') AS state
FROM
(
    SELECT incident_id,
           any(alertname) AS alertname, any(agent_id) AS agent_id, any(severity) AS severity,
           any(group_key) AS group_key,
           minIf(at, action = 'opened') AS opened_at,
           minIf(at, action = 'acknowledged') AS acked_at,
           argMinIf(by, at, action = 'acknowledged') AS acked_by,
           -- A reopen after a resolve makes the incident open again.
           maxIf(at, action = 'resolved') AS last_resolved,
           maxIf(at, action = 'reopened') AS last_reopened,
           if(last_resolved > last_reopened, last_resolved, toDateTime64(0, 3)) AS resolved_at,
           argMaxIf(by, at, action = 'resolved') AS resolved_by
    FROM incidents
    GROUP BY incident_id
    HAVING opened_at > toDateTime64(0, 3)
)
WHERE {state:String} = 'all' OR state = {state:String}
   OR ({state:String} = 'active' AND state != 'resolved')
ORDER BY opened_at DESC
LIMIT {limit:UInt32}
