-- 0004: per-minute, per-agent rollup, maintained on insert by a materialized view.
-- Counts are SimpleAggregateFunction(sum) (cheap, mergeable); latency quantiles are t-digest
-- states merged at query time. Read it through the `events_per_minute` view, which merges the
-- partial rows of each (agent, minute). Exact because a replayed record is never inserted twice.
CREATE TABLE IF NOT EXISTS {{database}}.events_minute_agg
(
    minute        DateTime('UTC'),
    agent_id      String,
    events        SimpleAggregateFunction(sum, UInt64),
    errors        SimpleAggregateFunction(sum, UInt64),
    actions       SimpleAggregateFunction(sum, UInt64),
    complaints    SimpleAggregateFunction(sum, UInt64),
    input_tokens  SimpleAggregateFunction(sum, UInt64),
    output_tokens SimpleAggregateFunction(sum, UInt64),
    total_tokens  SimpleAggregateFunction(sum, UInt64),
    payload_bytes SimpleAggregateFunction(sum, UInt64),
    latency       AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), Nullable(Float64)),
    latency_max   SimpleAggregateFunction(max, Nullable(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (agent_id, minute)
TTL minute + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.events_minute_mv
TO {{database}}.events_minute_agg
AS SELECT
    toStartOfMinute(event_time) AS minute,
    agent_id,
    toUInt64(count()) AS events,
    toUInt64(sum(is_error)) AS errors,
    toUInt64(countIf(event_type = 'action')) AS actions,
    toUInt64(countIf(event_type = 'complaint')) AS complaints,
    toUInt64(sum(input_tokens)) AS input_tokens,
    toUInt64(sum(output_tokens)) AS output_tokens,
    toUInt64(sum(total_tokens)) AS total_tokens,
    toUInt64(sum(payload_bytes)) AS payload_bytes,
    quantilesTDigestState(0.5, 0.9, 0.99)(latency_ms) AS latency,
    max(latency_ms) AS latency_max
FROM {{database}}.events
GROUP BY minute, agent_id;

CREATE VIEW IF NOT EXISTS {{database}}.events_per_minute
AS SELECT
    minute,
    agent_id,
    sum(events) AS events,
    sum(errors) AS errors,
    sum(actions) AS actions,
    sum(complaints) AS complaints,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens,
    sum(payload_bytes) AS payload_bytes,
    quantilesTDigestMerge(0.5, 0.9, 0.99)(latency) AS latency_quantiles,
    latency_quantiles[1] AS latency_p50_ms,
    latency_quantiles[2] AS latency_p90_ms,
    latency_quantiles[3] AS latency_p99_ms,
    max(latency_max) AS latency_max_ms
FROM {{database}}.events_minute_agg
GROUP BY minute, agent_id;
