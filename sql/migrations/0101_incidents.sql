-- 0101: incidents as append-only lifecycle rows (opened, acknowledged, resolved, reopened, note),
-- each with who did it. One incident = one firing episode of one alert fingerprint. MTTA/MTTR
-- come from these rows in SQL (queries/incidents_mtta_mttr.sql). Identical rows (a replay)
-- collapse on the sorting key.
CREATE TABLE IF NOT EXISTS {{database}}.incidents
(
    incident_id  String,
    fingerprint  String,
    action       LowCardinality(String),
    at           DateTime64(3, 'UTC'),
    by           String,
    alertname    LowCardinality(String),
    agent_id     String,
    severity     LowCardinality(String),
    group_key    String,
    note         String,
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (incident_id, action, at, by)
TTL toDateTime(at) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000;
