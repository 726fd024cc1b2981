-- One agent's activity per minute over the last {hours} hours (from the events_per_minute rollup):
-- events, errors, actions, complaints, tokens and latency quantiles.
SELECT minute, events, errors, actions, complaints, total_tokens,
       round(latency_p50_ms, 1) AS p50_ms, round(latency_p99_ms, 1) AS p99_ms
FROM events_per_minute
WHERE agent_id = {agent:String}
  AND minute >= now() - toIntervalHour({hours:UInt32})
ORDER BY minute
