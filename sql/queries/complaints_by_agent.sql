-- Customer complaints over the last {days} days per agent, category and severity. A complaint
-- filed without an agent is attributed through its action or conversation when known.
SELECT multiIf(c.agent_id != '', c.agent_id,
               act.action_agent != '', act.action_agent,
               conv.conversation_agent != '', conv.conversation_agent,
               '(unknown)') AS agent,
       c.complaint_category AS category,
       c.severity AS severity,
       count() AS complaints,
       uniqExact(c.customer_id_hash) AS customers
FROM
(
    SELECT agent_id, action_id, conversation_id, complaint_category, severity, customer_id_hash
    FROM events
    WHERE event_type = 'complaint' AND event_time >= now64(3) - toIntervalDay({days:UInt32})
) AS c
LEFT JOIN
(
    SELECT action_id, any(agent_id) AS action_agent
    FROM events
    WHERE event_type = 'action' AND action_id != ''
    GROUP BY action_id
) AS act ON act.action_id = c.action_id AND c.action_id != ''
LEFT JOIN
(
    SELECT conversation_id, any(agent_id) AS conversation_agent
    FROM events
    WHERE conversation_id != '' AND agent_id != ''
    GROUP BY conversation_id
) AS conv ON conv.conversation_id = c.conversation_id AND c.conversation_id != ''
GROUP BY agent, category, severity
ORDER BY complaints DESC
