-- The latest {limit} dead letters: why each record was refused, where it came from, and the
-- start of its (PII-redacted) raw bytes.
SELECT received_at, error_class, reason_field, reason,
       kafka_topic, kafka_partition, kafka_offset, raw_bytes,
       substring(raw, 1, 200) AS raw_head
FROM dead_letters
ORDER BY received_at DESC, kafka_partition, kafka_offset
LIMIT {limit:UInt32}
