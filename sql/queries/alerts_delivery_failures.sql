-- Delivery attempts that did not succeed in the last {hours} hours, newest first.
SELECT attempted_at, receiver, receiver_type, action, outcome, http_status, attempts,
       fingerprint, incident_id, error
FROM alert_deliveries
WHERE outcome != 'ok' AND attempted_at >= now64(3) - toIntervalHour({hours:UInt32})
ORDER BY attempted_at DESC
LIMIT {limit:UInt32}
