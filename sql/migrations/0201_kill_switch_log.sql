-- 0201: kill-switch verification log (governance).
--
-- One row per step of a suspend/resume command as the pipeline observed it: `commanded` (seen on
-- the control topic, with actor and reason), `acknowledged` (the SDK's suspension_ack event),
-- `not_honoured` (an action after the acknowledgement, or no acknowledgement in time),
-- `resumed`. Only these rows may say an agent stopped; the CLI only says what it published.
CREATE TABLE IF NOT EXISTS {{database}}.kill_switch_log
(
    command_id  String,
    agent_id    String,
    status      LowCardinality(String),
    at          DateTime64(3, 'UTC'),
    detail      String,
    by          String,
    reason      String,
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (agent_id, command_id, status, at);
