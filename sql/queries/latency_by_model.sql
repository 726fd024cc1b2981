-- Model latency and token use over the last {hours} hours, per provider and model
-- (outputs and actions that reported a latency).
SELECT provider_name, request_model,
       count() AS calls,
       round(quantile(0.5)(latency_ms), 1) AS p50_ms,
       round(quantile(0.9)(latency_ms), 1) AS p90_ms,
       round(quantile(0.99)(latency_ms), 1) AS p99_ms,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens
FROM events
WHERE latency_ms IS NOT NULL AND event_time >= now64(3) - toIntervalHour({hours:UInt32})
GROUP BY provider_name, request_model
ORDER BY calls DESC
