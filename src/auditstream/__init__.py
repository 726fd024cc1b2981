"""auditstream: an audit trail and anomaly alerts for autonomous AI agents.

Layout (each folder installs as a sub-package of ``auditstream``):

- ``auditstream.producers``  the event contract and the agent-side SDK (Kafka producer)
- ``auditstream.stream``     faust workers: validate → enrich → score → sink to ClickHouse
- ``auditstream.detectors``  online anomaly detectors and the NAB benchmark harness
- ``auditstream.alerts``     alert model, incident lifecycle, delivery outbox, on-call CLI
- ``auditstream.governance`` agent inventory, risk tiers, policy rules, kill switch, KPIs
- ``auditstream.deploy``     the embedded local stack and production configuration
- ``auditstream.sql``        ClickHouse migrations, views and analysts' queries
"""

__version__ = "0.1.0"
