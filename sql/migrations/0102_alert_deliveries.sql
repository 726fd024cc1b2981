-- 0102: every delivery attempt to a receiver (Alertmanager, PagerDuty, Slack, webhook), so a
-- failing receiver is visible (`auditstream alerts deliveries`), never silent. No secrets here:
-- `receiver` is the configured name, `error` never contains URLs with tokens.
CREATE TABLE IF NOT EXISTS {{database}}.alert_deliveries
(
    attempted_at   DateTime64(3, 'UTC'),
    receiver       LowCardinality(String),
    receiver_type  LowCardinality(String),
    fingerprint    String,
    incident_id    String,
    action         LowCardinality(String),
    outcome        LowCardinality(String),
    http_status    UInt16,
    attempts       UInt16,
    error          String,
    duration_ms    Float64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(attempted_at)
ORDER BY (receiver, attempted_at, fingerprint)
TTL toDateTime(attempted_at) + INTERVAL {{retention_days}} DAY;
