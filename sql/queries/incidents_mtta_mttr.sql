-- MTTA / MTTR per alert name and severity over incidents opened in the last {days} days:
-- time from `opened` to the first `acknowledged` and to the first `resolved` (auto or human).
SELECT alertname, severity, count() AS incidents,
       countIf(acked > toDateTime64(0, 3)) AS acknowledged,
       round(avgIf(dateDiff('millisecond', opened, acked) / 1000, acked > toDateTime64(0, 3)), 1) AS mtta_s,
       round(avgIf(dateDiff('millisecond', opened, resolved) / 1000, resolved > toDateTime64(0, 3)), 1) AS mttr_s,
       round(quantileIf(0.5)(dateDiff('millisecond', opened, resolved) / 1000, resolved > toDateTime64(0, 3)), 1) AS median_ttr_s
FROM
(
    SELECT incident_id, any(alertname) AS alertname, any(severity) AS severity,
           minIf(at, action = 'opened') AS opened,
           minIf(at, action = 'acknowledged') AS acked,
           minIf(at, action = 'resolved') AS resolved
    FROM incidents
    GROUP BY incident_id
    HAVING opened >= now64(3) - toIntervalDay({days:UInt32})
)
GROUP BY alertname, severity
ORDER BY incidents DESC
