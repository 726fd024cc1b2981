-- Errors per agent and error type over the last {hours} hours (error events and failed actions).
SELECT agent_id,
       if(event_type = 'error', error_type, concat('failed_action:', decision_type)) AS error,
       count() AS errors,
       uniqExact(conversation_id) AS conversations,
       max(event_time) AS last_seen
FROM events
WHERE is_error = 1 AND event_time >= now64(3) - toIntervalHour({hours:UInt32})
GROUP BY agent_id, error
ORDER BY errors DESC
