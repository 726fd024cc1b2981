"""Topics on both dev brokers: partition counts, compaction, idempotence."""

from __future__ import annotations

import pytest

from auditstream.deploy.topics import TopicSpec, ensure_topics, topic_specs

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("broker", ["noida", "tansu"])
def test_topics_created_with_partitions_and_compaction(make_env, broker: str) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    env = make_env(broker=broker, partitions=3)  # make_env already called ensure_topics once
    assert ensure_topics(env.settings) == []  # idempotent: nothing new the second time
    admin = AdminClient({"bootstrap.servers": env.bootstrap})
    md = admin.list_topics(timeout=10)
    for spec in topic_specs(env.settings):
        assert len(md.topics[spec.name].partitions) == spec.partitions, spec.name
    t = env.settings.topics
    resources = [ConfigResource("topic", name) for name in (t.registry, t.control, t.events)]
    configs = {r.name: f.result() for r, f in admin.describe_configs(resources).items()}
    assert configs[t.registry]["cleanup.policy"].value == "compact"
    assert configs[t.control]["cleanup.policy"].value == "compact"
    # The events topic keeps the broker default (delete); tansu reports no default at all.
    events_policy = configs[t.events].get("cleanup.policy")
    assert events_policy is None or events_policy.value == "delete"


def test_extra_topics_and_partition_mismatch(make_env) -> None:
    env = make_env(partitions=2)
    extra = TopicSpec(f"{env.settings.topics.prefix}.extra", 2)
    assert ensure_topics(env.settings, extra=[extra]) == [extra.name]
    wrong = TopicSpec(extra.name, 5)
    with pytest.raises(RuntimeError, match="partitions"):
        ensure_topics(env.settings, extra=[wrong], timeout=4)
