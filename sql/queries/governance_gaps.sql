-- Active agents that are not policy-aligned: the controls their risk tier requires but lacks,
-- and their approval status (the "Improve" column of the maturity matrix).
SELECT agent_id, name, team, accountable, risk_tier, autonomy, approval_status, missing_controls
FROM governance_agent_controls
WHERE NOT policy_aligned
ORDER BY risk_tier DESC, agent_id
