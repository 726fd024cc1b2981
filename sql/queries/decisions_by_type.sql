-- Actions over the last {hours} hours by decision type and outcome, with the share a human
-- reviewed (approval events linked by action_id) and the amount involved.
SELECT a.decision_type, a.outcome,
       count() AS actions,
       uniqExact(a.agent_id) AS agents,
       countIf(r.action_id != '') AS reviewed,
       countIf(r.decision = 'rejected') AS rejected,
       round(sum(a.amount), 2) AS amount
FROM
(
    SELECT event_id, agent_id, action_id, decision_type, outcome, amount
    FROM events
    WHERE event_type = 'action' AND event_time >= now64(3) - toIntervalHour({hours:UInt32})
) AS a
LEFT JOIN
(
    SELECT action_id, argMax(approval_decision, event_time) AS decision
    FROM events
    WHERE event_type = 'approval' AND action_id != ''
    GROUP BY action_id
) AS r ON r.action_id = a.action_id
GROUP BY a.decision_type, a.outcome
ORDER BY actions DESC
