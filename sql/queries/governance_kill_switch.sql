-- Kill-switch verification of one agent's suspend/resume commands, as the pipeline observed them
-- (pending_ack, acknowledged, not_honoured, resumed). Only this log may say an agent stopped.
SELECT at, command_id, status, detail, by, reason
FROM kill_switch_log
WHERE agent_id = {agent:String}
ORDER BY at, status
