-- Shadow agents: ids seen in events that are not active in the registry (inventory gaps).
SELECT agent_id, events, first_seen, last_seen, source
FROM governance_shadow_agents
ORDER BY events DESC
