-- Governance maturity-matrix KPIs (one row): agents, owner coverage, policy-aligned use cases,
-- DPIA coverage for agents touching personal data, shadow agents (see docs/governance.md).
SELECT * FROM governance_kpis
