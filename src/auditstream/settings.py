"""Runtime configuration, read from the environment (12-factor) with local-stack defaults.

Standard library only: the agent-side SDK imports this without the pipeline's dependencies.

Kafka client settings pass through: every ``AUDITSTREAM_KAFKA_<KEY>`` variable becomes the
librdkafka property ``<key>`` with ``_`` → ``.`` (``AUDITSTREAM_KAFKA_SASL_MECHANISM=PLAIN`` →
``sasl.mechanism=PLAIN``), so SASL/TLS for a production cluster needs no code change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

ENV_PREFIX = "AUDITSTREAM_"
KAFKA_PASSTHROUGH_PREFIX = "AUDITSTREAM_KAFKA_"
# Variables under the pass-through prefix that are ours, not librdkafka properties.
_KAFKA_OWN_KEYS = {"BOOTSTRAP", "TOPIC_PREFIX", "PARTITIONS", "REPLICATION"}
_SECRET_WORDS = ("password", "secret", "token", "key")


@dataclass(frozen=True)
class Topics:
    """Kafka topic names; one prefix keeps several deployments apart on one cluster."""

    prefix: str = "audit"

    @property
    def events(self) -> str:
        return f"{self.prefix}.events"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def findings(self) -> str:
        """Detector and policy findings, before the alert engine dedups and groups them."""
        return f"{self.prefix}.findings"

    @property
    def registry(self) -> str:
        return f"{self.prefix}.registry"

    @property
    def control(self) -> str:
        return f"{self.prefix}.control"


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_extra: Mapping[str, str] = field(default_factory=dict)
    topics: Topics = field(default_factory=Topics)
    partitions: int = 6
    replication: int = 1
    clickhouse_url: str = "http://default:@127.0.0.1:18123/auditstream"
    retention_days: int = 365
    sink_batch_size: int = 5000
    sink_batch_seconds: float = 0.5
    max_event_bytes: int = 256 * 1024
    state_dir: str = ".state"
    # Key of the HMAC that pseudonymises customer ids before storage (never logged).
    pii_hash_key: str = field(default="", repr=False)
    # Governance: how long an action may wait for its human approval, and the SDK for its
    # kill-switch acknowledgement, before the pipeline reports a violation.
    governance_approval_window_s: float = 900.0
    governance_ack_timeout_s: float = 60.0
    governance_shadow_grace_s: float = 30.0
    # Prometheus /metrics of the worker (counters of events, dead letters, alerts, deliveries);
    # off unless a port is set. `--workers N` gives worker i the port + i.
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        extra = {
            key[len(KAFKA_PASSTHROUGH_PREFIX) :].lower().replace("_", "."): value
            for key, value in env.items()
            if key.startswith(KAFKA_PASSTHROUGH_PREFIX)
            and key[len(KAFKA_PASSTHROUGH_PREFIX) :] not in _KAFKA_OWN_KEYS
        }
        defaults = cls()
        return cls(
            kafka_bootstrap=env.get("AUDITSTREAM_KAFKA_BOOTSTRAP", defaults.kafka_bootstrap),
            kafka_extra=extra,
            topics=Topics(env.get("AUDITSTREAM_KAFKA_TOPIC_PREFIX", defaults.topics.prefix)),
            partitions=int(env.get("AUDITSTREAM_KAFKA_PARTITIONS", defaults.partitions)),
            replication=int(env.get("AUDITSTREAM_KAFKA_REPLICATION", defaults.replication)),
            clickhouse_url=env.get("AUDITSTREAM_CLICKHOUSE_URL", defaults.clickhouse_url),
            retention_days=int(env.get("AUDITSTREAM_RETENTION_DAYS", defaults.retention_days)),
            sink_batch_size=int(env.get("AUDITSTREAM_SINK_BATCH_SIZE", defaults.sink_batch_size)),
            sink_batch_seconds=float(
                env.get("AUDITSTREAM_SINK_BATCH_SECONDS", defaults.sink_batch_seconds)
            ),
            max_event_bytes=int(env.get("AUDITSTREAM_MAX_EVENT_BYTES", defaults.max_event_bytes)),
            state_dir=env.get("AUDITSTREAM_STATE_DIR", defaults.state_dir),
            pii_hash_key=env.get("AUDITSTREAM_PII_HASH_KEY", defaults.pii_hash_key),
            governance_approval_window_s=float(
                env.get(
                    "AUDITSTREAM_GOVERNANCE_APPROVAL_WINDOW_S",
                    defaults.governance_approval_window_s,
                )
            ),
            governance_ack_timeout_s=float(
                env.get("AUDITSTREAM_GOVERNANCE_ACK_TIMEOUT_S", defaults.governance_ack_timeout_s)
            ),
            governance_shadow_grace_s=float(
                env.get("AUDITSTREAM_GOVERNANCE_SHADOW_GRACE_S", defaults.governance_shadow_grace_s)
            ),
            metrics_port=int(env["AUDITSTREAM_METRICS_PORT"])
            if env.get("AUDITSTREAM_METRICS_PORT")
            else None,
            metrics_addr=env.get("AUDITSTREAM_METRICS_ADDR", defaults.metrics_addr),
        )

    def kafka_config(self, **overrides: object) -> dict[str, object]:
        """librdkafka configuration: bootstrap + pass-through security settings + overrides."""
        conf: dict[str, object] = {"bootstrap.servers": self.kafka_bootstrap}
        conf.update(self.kafka_extra)
        conf.update(overrides)
        return conf

    def redacted(self) -> dict[str, object]:
        """A loggable view: credentials in URLs and secret-looking Kafka keys are masked."""
        return {
            "kafka_bootstrap": self.kafka_bootstrap,
            "kafka_extra": {k: mask_if_secret(k, v) for k, v in self.kafka_extra.items()},
            "topic_prefix": self.topics.prefix,
            "clickhouse_url": redact_url(self.clickhouse_url),
            "retention_days": self.retention_days,
            "sink_batch_size": self.sink_batch_size,
            "sink_batch_seconds": self.sink_batch_seconds,
        }


def mask_if_secret(key: str, value: str) -> str:
    return "***" if any(word in key.lower() for word in _SECRET_WORDS) else value


def redact_url(url: str) -> str:
    """``http://user:pw@host/db`` → ``http://user:***@host/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
