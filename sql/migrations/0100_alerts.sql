-- 0100: alerts, one row per alert *version* (the engine emits a new version on every state
-- change: fired, resolved, flapping). Current state = argMax(..., version) per fingerprint and
-- incident. ReplacingMergeTree on (fingerprint, incident_id, version): a replayed Kafka record
-- writes the same key again and collapses, so replays never add a version.
CREATE TABLE IF NOT EXISTS {{database}}.alerts
(
    fingerprint  String,
    incident_id  String,
    version      UInt32,
    alertname    LowCardinality(String),
    agent_id     String,
    severity     LowCardinality(String),
    status       LowCardinality(String),
    starts_at    DateTime64(3, 'UTC'),
    ends_at      Nullable(DateTime64(3, 'UTC')),
    updated_at   DateTime64(3, 'UTC'),
    group_key    String,
    labels       Map(String, String),
    annotations  Map(String, String),
    value        Float64,
    threshold    Nullable(Float64),
    kind         LowCardinality(String),
    flapping     UInt8,
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(starts_at)
ORDER BY (fingerprint, incident_id, version)
TTL toDateTime(starts_at) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000;
