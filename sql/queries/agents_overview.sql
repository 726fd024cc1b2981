-- Every agent over the last {hours} hours: volume, error rate, tokens, p99 latency, owner and
-- registration (inventory join as stored on the events).
SELECT agent_id,
       any(agent_owner) AS owner, any(agent_team) AS team, any(risk_tier) AS risk_tier,
       max(agent_registered) AS registered,
       count() AS events, uniqExact(event_id) AS distinct_events,
       round(avg(is_error), 4) AS error_rate,
       sum(total_tokens) AS tokens,
       round(quantile(0.99)(latency_ms), 1) AS p99_latency_ms,
       max(event_time) AS last_seen
FROM events
WHERE event_time >= now64(3) - toIntervalHour({hours:UInt32})
GROUP BY agent_id
ORDER BY events DESC
