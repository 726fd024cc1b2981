-- Alerts firing now (latest version per fingerprint and incident), newest first.
SELECT fingerprint, incident_id, alertname, agent_id, severity, starts_at, updated_at,
       group_key, annotations['summary'] AS summary, value, flapping
FROM
(
    SELECT fingerprint, incident_id,
           argMax(status, version) AS status, argMax(alertname, version) AS alertname,
           argMax(agent_id, version) AS agent_id, argMax(severity, version) AS severity,
           argMax(starts_at, version) AS starts_at, argMax(updated_at, version) AS updated_at,
           argMax(group_key, version) AS group_key, argMax(annotations, version) AS annotations,
           argMax(value, version) AS value, argMax(flapping, version) AS flapping
    FROM alerts
    GROUP BY fingerprint, incident_id
)
WHERE status = 'firing'
ORDER BY starts_at DESC
LIMIT {limit:UInt32}
