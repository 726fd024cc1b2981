-- Alert episodes (any status) that started in the last {hours} hours, latest version each.
SELECT fingerprint, incident_id, argMax(alertname, version) AS alertname,
       argMax(agent_id, version) AS agent_id, argMax(severity, version) AS severity,
       argMax(status, version) AS status, argMax(starts_at, version) AS starts_at,
       argMax(ends_at, version) AS ends_at, argMax(annotations, version)['summary'] AS summary
FROM alerts
WHERE starts_at >= now64(3) - toIntervalHour({hours:UInt32})
GROUP BY fingerprint, incident_id
ORDER BY starts_at DESC
LIMIT {limit:UInt32}
