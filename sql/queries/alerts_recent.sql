-- Alert episodes (any status) that started in the last {hours} hours, latest version each.
-- (The aggregation runs in a subquery so that WHERE filters the starts_at *column*.)
SELECT fingerprint, incident_id, alertname, agent_id, severity, status,
       first_start AS starts_at, ends_at, summary
FROM
(
    SELECT fingerprint, incident_id, argMax(alertname, version) AS alertname,
           argMax(agent_id, version) AS agent_id, argMax(severity, version) AS severity,
           argMax(status, version) AS status, min(starts_at) AS first_start,
           argMax(ends_at, version) AS ends_at, argMax(annotations, version)['summary'] AS summary
    FROM alerts
    WHERE starts_at >= now64(3) - toIntervalHour({hours:UInt32})
    GROUP BY fingerprint, incident_id
)
ORDER BY starts_at DESC
LIMIT {limit:UInt32}
