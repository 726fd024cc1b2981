-- 0003: records the worker refused, with the reason (the contract's field path + message),
-- where they came from, and the raw bytes (capped at 64 KiB; UTF-8 payloads are PII-redacted
-- before storage; the dead-letter Kafka topic keeps the exact original bytes).
-- One row per (topic, partition, offset): that is the key a replay is recognised by.
CREATE TABLE IF NOT EXISTS {{database}}.dead_letters
(
    received_at     DateTime64(3, 'UTC'),
    kafka_topic     LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset    UInt64,
    kafka_key       String,
    error_class     LowCardinality(String),
    reason_field    String,
    reason          String,
    raw             String CODEC(ZSTD(3)),
    raw_bytes       UInt32,
    raw_redactions  UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (kafka_topic, kafka_partition, kafka_offset)
TTL toDateTime(received_at) + INTERVAL {{retention_days}} DAY
SETTINGS non_replicated_deduplication_window = 10000;
