"""Create the pipeline's Kafka topics up front, with explicit partition counts.

Never rely on broker auto-creation: an auto-created 1-partition source topic makes faust fail
with ``PartitionsMismatch``, and compaction must be set at creation for the keyed state topics.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from auditstream.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


COMPACT = {"cleanup.policy": "compact"}


def topic_specs(settings: Settings, *, extra: Iterable[TopicSpec | str] = ()) -> list[TopicSpec]:
    """The topics the pipeline needs (pure: unit-testable without a broker).

    Partitioning: ``events`` and ``findings`` scale with the workers (settings.partitions);
    dead letters and alerts are low-volume; registry and control are compacted latest-state
    topics keyed by agent id and co-partitioned with ``events`` so a worker can join them
    locally.
    """
    t, n = settings.topics, settings.partitions
    specs = [
        TopicSpec(t.events, n),
        TopicSpec(t.deadletter, 1),
        TopicSpec(t.findings, n),
        TopicSpec(t.alerts, 1),
        TopicSpec(t.registry, n, dict(COMPACT)),
        TopicSpec(t.control, n, dict(COMPACT)),
    ]
    # A bare name in ``extra`` gets the events topic's partition count.
    specs.extend(TopicSpec(e, n) if isinstance(e, str) else e for e in extra)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate topic names: {names}")
    return specs


def ensure_topics(
    settings: Settings,
    *,
    extra: Iterable[TopicSpec | str] = (),
    timeout: float = 30.0,
) -> list[str]:
    """Create missing topics (already-existing ones are fine); wait until all are visible.

    Returns the names of the topics that were created by this call. An existing topic with a
    different partition count is a loud error: silently using it would break key ordering.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    specs = topic_specs(settings, extra=extra)
    admin = AdminClient(settings.kafka_config())
    existing = admin.list_topics(timeout=timeout).topics
    missing = [s for s in specs if s.name not in existing]
    created: list[str] = []
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    s.name,
                    num_partitions=s.partitions,
                    replication_factor=settings.replication,
                    config=s.config,
                )
                for s in missing
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for name, fut in futures.items():
            try:
                fut.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a racing creator
                    raise
    _wait_visible(admin, specs, timeout)
    return created


def _wait_visible(admin: object, specs: list[TopicSpec], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    while True:
        md = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))  # type: ignore[attr-defined]
        problems = []
        for s in specs:
            topic = md.topics.get(s.name)
            if topic is None or topic.error is not None:
                problems.append(f"{s.name}: not visible yet")
            elif len(topic.partitions) != s.partitions:
                problems.append(
                    f"{s.name}: has {len(topic.partitions)} partitions, expected {s.partitions}"
                )
        if not problems:
            return
        mismatch = [p for p in problems if "partitions" in p]
        if mismatch and time.monotonic() > deadline - timeout / 2:
            raise RuntimeError("existing topics do not match: " + "; ".join(mismatch))
        if time.monotonic() >= deadline:
            raise TimeoutError("topics not ready: " + "; ".join(problems))
        time.sleep(0.2)
