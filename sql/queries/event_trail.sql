-- The audit trail of one conversation, in order: every prompt, output, action, approval, error,
-- complaint and feedback (free text already PII-redacted).
SELECT event_time, agent_id, event_type, decision_type, action_id, outcome, approval_decision,
       error_type, latency_ms, total_tokens, substring(content, 1, 200) AS content, event_id
FROM events FINAL
WHERE conversation_id = {conversation:String}
ORDER BY event_time, event_id
