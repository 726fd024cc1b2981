-- Registry history of one agent: who changed what, when (every sync/register/retire).
SELECT changed_at, changed_by, change, changed_fields, risk_tier, autonomy, approval_status,
       status, source
FROM agent_registry
WHERE agent_id = {agent:String}
ORDER BY version
