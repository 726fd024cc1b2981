-- 0002: the events table (one row per valid event; free text already redacted by the worker).
--
-- ReplacingMergeTree keyed by the sorting key (agent_id, event_time, event_id): the sorting key
-- serves per-agent time-range queries, and a duplicate of an event (same id and time, e.g. an
-- SDK retry that bypassed the idempotent producer) collapses on merge; `FINAL` or
-- `uniqExact(event_id)` give exact answers before the merge. Replays from Kafka never produce a
-- second physical row in the first place (the worker's replay guard and insert dedup tokens,
-- see stream/README.md), so the per-minute rollup stays exact.
-- `non_replicated_deduplication_window` makes insert_deduplication_token work without Keeper.
CREATE TABLE IF NOT EXISTS {{database}}.events
(
    event_id           String,
    event_type         LowCardinality(String),
    event_time         DateTime64(3, 'UTC'),
    ingest_time        DateTime64(3, 'UTC') DEFAULT now64(3),
    agent_id           String,
    source             String,
    agent_name         String,
    conversation_id    String,
    operation_name     LowCardinality(String),
    provider_name      LowCardinality(String),
    request_model      LowCardinality(String),
    response_model     LowCardinality(String),
    action_id          String,
    decision_type      LowCardinality(String),
    target             String,
    outcome            LowCardinality(String),
    tool_name          LowCardinality(String),
    tool_call_id       String,
    amount             Nullable(Float64),
    currency           LowCardinality(String),
    approval_decision  LowCardinality(String),
    reviewer           String,
    error_type         LowCardinality(String),
    complaint_id       String,
    complaint_channel  LowCardinality(String),
    complaint_category LowCardinality(String),
    severity           LowCardinality(String),
    customer_id_hash   String,
    feedback_score     Nullable(Float32),
    command_id         String,
    suspension_state   LowCardinality(String),
    content            String CODEC(ZSTD(3)),
    finish_reasons     Array(LowCardinality(String)),
    attributes         String CODEC(ZSTD(3)),
    latency_ms         Nullable(Float64),
    input_tokens       UInt32,
    output_tokens      UInt32,
    total_tokens       UInt32,
    is_error           UInt8,
    payload_bytes      UInt32,
    content_chars      UInt32,
    redactions         UInt16,
    -- Inventory join (governance registry), as known when the event was processed.
    agent_owner        LowCardinality(String),
    agent_team         LowCardinality(String),
    risk_tier          LowCardinality(String),
    autonomy_level     LowCardinality(String),
    agent_registered   UInt8,
    -- Filled by later stages (online detectors); NULL until then.
    anomaly_score      Nullable(Float32),
    anomaly_detector   LowCardinality(String) DEFAULT '',
    kafka_topic        LowCardinality(String),
    kafka_partition    UInt16,
    kafka_offset       UInt64,
    schema_version     UInt8,
    INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_kafka_offset kafka_offset TYPE minmax GRANULARITY 1,
    INDEX idx_conversation conversation_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_action action_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (agent_id, event_time, event_id)
TTL toDateTime(event_time) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000;
