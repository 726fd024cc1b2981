"""AuditClient pieces that need no broker: configuration, ids, validation, the hot-path guards."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace

import pytest

from auditstream.producers.client import (
    AgentSuspended,
    AuditClient,
    ClientClosed,
    DeliveryError,
    FlushTimeout,
    fast_event_id,
    producer_config,
)
from auditstream.producers.contract import Action, make_event
from auditstream.settings import Settings

# Nothing listens here: librdkafka connects lazily, so these tests never reach a broker.
NOWHERE = Settings(kafka_bootstrap="127.0.0.1:9")


def test_producer_config_guarantees_and_pass_through() -> None:
    settings = Settings.from_env(
        {
            "AUDITSTREAM_KAFKA_BOOTSTRAP": "k1:9093,k2:9093",
            "AUDITSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "AUDITSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "AUDITSTREAM_KAFKA_LINGER_MS": "50",
        }
    )
    conf = producer_config(settings)
    assert conf["bootstrap.servers"] == "k1:9093,k2:9093"
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["compression.type"] == "lz4"
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["linger.ms"] == "50"  # operators may tune batching through the environment
    assert int(conf["batch.size"]) > 0
    assert (
        producer_config(settings, overrides={"compression.type": "zstd"})["compression.type"]
        == "zstd"
    )


@pytest.mark.parametrize(
    "override",
    [{"acks": "1"}, {"acks": 0}, {"enable.idempotence": False}, {"enable.idempotence": "false"}],
)
def test_guarantees_cannot_be_weakened(override: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="weaken"):
        producer_config(NOWHERE, overrides=override)
    env = Settings(kafka_extra={k: str(v) for k, v in override.items()})
    with pytest.raises(ValueError, match="weaken"):
        producer_config(env)


def test_fast_event_ids_are_unique_uuid_shaped_and_redrawn_after_fork() -> None:
    ids = [fast_event_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids[:100] + ids[-100:])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next id and leave without running pytest's atexit
        os.write(write, fast_event_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 100).decode()
    os.waitpid(pid, 0)
    os.close(read)
    mine = fast_event_id()
    assert child_id[:24] != mine[:24]  # a forked child must not repeat the parent's ids


@pytest.fixture
def client():
    c = AuditClient(NOWHERE, topic="t", message_timeout_ms=1000)
    yield c
    c._closed = True  # nothing was sent; skip the flush in close()
    c._stop = True
    c._wake.set()
    c._thread.join(5)


def test_emit_rejects_non_events(client: AuditClient) -> None:
    with pytest.raises(TypeError, match="AuditEvent"):
        client.emit({"type": "ai.auditstream.prompt"})  # type: ignore[arg-type]


def test_invalid_event_is_never_sent_and_surfaces(client: AuditClient) -> None:
    seen = []
    client._on_delivery = lambda ev, exc: seen.append((ev.id, exc))
    event_id = client.action("agent-1", "a1", "guessing")
    long_action = Action(action_id="x" * 300, decision_type="pricing")
    long_id = client.emit(make_event("action", "agent-1", long_action))
    with pytest.raises(DeliveryError) as info:
        client.flush(5)
    assert info.value.event_ids == [event_id, long_id]
    assert "$.data.decision_type" in info.value.errors[event_id]
    assert "$.data.action_id" in info.value.errors[long_id]
    stats = client.stats()
    assert (stats.queued, stats.sent, stats.failed, stats.invalid, stats.dropped) == (2, 0, 2, 2, 0)
    assert [i for i, _ in seen] == [event_id, long_id] and all(e is not None for _, e in seen)
    client.flush(1)  # failures are reported once


def test_oversize_event_surfaces(client: AuditClient) -> None:
    event_id = client.prompt(
        "agent-1", "x" * 60_000, attributes={f"k{i}": "y" * 3500 for i in range(60)}
    )
    with pytest.raises(DeliveryError) as info:
        client.flush(5)
    assert "limit" in info.value.errors[event_id]


def test_suspension_seam_refuses_actions_only(client: AuditClient) -> None:
    client._suspended["agent-9"] = "cmd-1"
    with pytest.raises(AgentSuspended) as info:
        client.action("agent-9", "a1", "pricing")
    assert info.value.command_id == "cmd-1"
    client.action("agent-8", "a1", "guessing")  # other agents unaffected (invalid on purpose)
    with pytest.raises(DeliveryError):
        client.flush(5)
    assert client.stats().queued == 1


def test_secrets_are_masked_in_the_loggable_config() -> None:
    settings = replace(NOWHERE, kafka_extra={"sasl.password": "hunter2", "sasl.username": "u"})
    c = AuditClient(settings, topic="t")
    try:
        shown = c.redacted_config()
        assert shown["sasl.password"] == "***" and shown["sasl.username"] == "u"
        assert "hunter2" not in repr(shown)
    finally:
        c.close(1)
    with pytest.raises(ClientClosed):
        c.prompt("a", "late")


def test_close_with_an_unreachable_broker_accounts_for_every_event() -> None:
    failed: list[str] = []
    c = AuditClient(NOWHERE, topic="t", on_delivery=lambda e, x: x and failed.append(e.id))
    ids = [c.prompt("agent-1", f"m{i}") for i in range(50)]
    with pytest.raises(FlushTimeout):
        c.close(timeout=0.5)  # nothing listens at NOWHERE: no acknowledgement can come
    stats = c.stats()
    assert (stats.queued, stats.sent, stats.failed, stats.pending, stats.dropped) == (
        50,
        0,
        50,
        0,
        0,
    )
    assert sorted(failed) == sorted(ids)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        AuditClient(NOWHERE, max_buffer=0)
