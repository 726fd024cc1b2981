"""AuditClient and `auditstream produce` against a real Kafka-protocol broker (noida-db).

The shared session broker (tests/conftest.py) serves the normal cases; the broker-down cases
start their own broker, because they stop and restart it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from auditstream.producers.client import (
    AuditClient,
    BufferFull,
    DeliveryError,
    FlushTimeout,
)
from auditstream.producers.contract import CONTENT_TYPE, decode_event
from auditstream.producers.workload import generate_records
from auditstream.settings import Settings

pytestmark = pytest.mark.integration


_created: list[tuple[str, str]] = []


def make_topic(bootstrap: str, partitions: int = 3) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"sdk_{uuid.uuid4().hex[:10]}.events"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        fut.result(30)
    _created.append((bootstrap, name))
    return name


@pytest.fixture(autouse=True)
def _drop_topics():
    """Delete this test's topics afterwards: the shared broker's snapshot grows with each."""
    yield
    from confluent_kafka.admin import AdminClient

    from auditstream.deploy.procs import port_open

    while _created:
        bootstrap, name = _created.pop()
        if not port_open(int(bootstrap.rsplit(":", 1)[1])):
            continue  # a broker a test stopped: its data dir goes with tmp_path
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for fut in admin.delete_topics([name], operation_timeout=10).values():
            with contextlib.suppress(Exception):
                fut.result(15)


def consume(bootstrap: str, topic: str, n: int, timeout: float = 60.0) -> list:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    out: list = []
    import time

    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg)
    finally:
        consumer.close()
    return out


def record_count(bootstrap: str, topic: str) -> int:
    """Records in the topic, from the high watermarks (no waiting on a consumer)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        parts = c.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        c.close()


# -- the normal path on the shared broker --------------------------------------------------


@pytest.mark.parametrize("broker", ["noida", "tansu"])
def test_every_call_arrives_keyed_by_agent_with_the_cloudevents_header(
    request: pytest.FixtureRequest, broker: str
) -> None:
    bootstrap = request.getfixturevalue(f"{broker}_broker").bootstrap
    topic = make_topic(bootstrap)
    delivered: list[tuple[str, object]] = []
    settings = Settings(kafka_bootstrap=bootstrap)
    with AuditClient(
        settings, topic=topic, on_delivery=lambda e, x: delivered.append((e.id, x))
    ) as c:
        ids = {
            c.prompt("support-bot", "Reach me at jane@example.com", conversation_id="c1",
                     model="gpt-4o-mini", input_tokens=12): "support-bot",
            c.output("support-bot", "Done.", conversation_id="c1", output_tokens=3,
                     latency_ms=420.0, finish_reasons=["stop"]): "support-bot",
            c.action("pricing-agent", "a1", "pricing", target="sku-1", amount=9.5,
                     currency="EUR"): "pricing-agent",
            c.approval("pricing-agent", "a1", "rejected", "rev-1", reason="no"): "pricing-agent",
            c.error("routing-agent", "timeout", message="queue api timed out"): "routing-agent",
            c.complaint("k1", conversation_id="c1", text="wrong refund"): "c1",  # no agent known
            c.feedback("support-bot", 0.5, comment="ok"): "support-bot",
        }  # fmt: skip
        c.flush(30)
        stats = c.stats()
    assert (stats.queued, stats.sent, stats.failed, stats.pending, stats.dropped) == (7, 7, 0, 0, 0)
    assert sorted(i for i, _ in delivered) == sorted(ids) and all(x is None for _, x in delivered)

    messages = consume(bootstrap, topic, len(ids))
    assert len(messages) == len(ids)
    for msg in messages:
        event = decode_event(msg.value())
        assert msg.key().decode() == ids[event.id]
        assert dict(msg.headers())["content-type"] == CONTENT_TYPE.encode()
    kinds = {decode_event(m.value()).kind for m in messages}
    assert kinds == {"prompt", "output", "action", "approval", "error", "complaint", "feedback"}


def test_one_agents_events_keep_their_order_on_one_partition(noida_broker) -> None:
    bootstrap = noida_broker.bootstrap
    topic = make_topic(bootstrap, partitions=6)
    with AuditClient(Settings(kafka_bootstrap=bootstrap), topic=topic) as c:
        for i in range(300):
            c.action(f"agent-{i % 3}", f"a{i:04d}", "routing")
    messages = consume(bootstrap, topic, 300)
    assert len(messages) == 300
    by_agent: dict[bytes, list] = {}
    for m in messages:
        by_agent.setdefault(m.key(), []).append(m)
    assert len(by_agent) == 3
    for agent_msgs in by_agent.values():
        assert len({m.partition() for m in agent_msgs}) == 1
        agent_msgs.sort(key=lambda m: m.offset())
        action_ids = [decode_event(m.value()).data.action_id for m in agent_msgs]
        assert action_ids == sorted(action_ids)


def test_idempotent_producer_is_in_effect(noida_broker) -> None:
    """librdkafka's own statistics: the broker assigned a producer id (idempotence on)."""
    stats: list[str] = []
    topic = make_topic(noida_broker.bootstrap)
    client = AuditClient(
        Settings(kafka_bootstrap=noida_broker.bootstrap),
        topic=topic,
        config={"statistics.interval.ms": 100, "stats_cb": stats.append},
    )
    with client:
        client.prompt("a", "hello")
        client.flush(30)
        import time

        deadline = time.monotonic() + 10
        while not any('"Assigned"' in s for s in stats) and time.monotonic() < deadline:
            time.sleep(0.1)
    eos = json.loads(next(s for s in reversed(stats) if '"Assigned"' in s))["eos"]
    assert eos["idemp_state"] == "Assigned" and eos["producer_id"] >= 0
    conf = client._conf
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert conf["compression.type"] == "lz4" and float(conf["linger.ms"]) > 0


def test_a_workload_burst_is_delivered_exactly(noida_broker) -> None:
    bootstrap = noida_broker.bootstrap
    topic = make_topic(bootstrap, partitions=6)
    records = generate_records(5_000, seed=9, start=datetime.now(UTC))
    with AuditClient(Settings(kafka_bootstrap=bootstrap), topic=topic, max_buffer=1_000) as c:
        for r in records:
            c.emit(r.event)
        c.flush(60)
        assert c.stats().sent == 5_000
    assert record_count(bootstrap, topic) == 5_000


def test_many_threads_emit_concurrently_and_every_event_arrives_once(noida_broker) -> None:
    import threading

    bootstrap = noida_broker.bootstrap
    topic = make_topic(bootstrap, partitions=6)
    ids: list[list[str]] = [[] for _ in range(4)]
    with AuditClient(Settings(kafka_bootstrap=bootstrap), topic=topic, max_buffer=500) as c:

        def agent(n: int) -> None:
            for i in range(1_500):
                ids[n].append(c.action(f"agent-{n}", f"a{i}", "drafting"))

        threads = [threading.Thread(target=agent, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c.flush(60)
        stats = c.stats()
    assert (stats.queued, stats.sent, stats.failed, stats.dropped) == (6_000, 6_000, 0, 0)
    assert len({i for per_thread in ids for i in per_thread}) == 6_000
    assert record_count(bootstrap, topic) == 6_000


# -- broker down: our own broker, stopped and restarted ------------------------------------


@pytest.fixture
def own_broker(tmp_path: Path):
    from auditstream.deploy.broker import DevBroker
    from auditstream.deploy.procs import free_port

    broker = DevBroker("noida", free_port(), tmp_path / "broker")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_broker_down_events_fail_after_the_timeout_and_flush_lists_them(own_broker) -> None:
    topic = make_topic(own_broker.bootstrap)
    failures: list[tuple[str, object]] = []
    client = AuditClient(
        Settings(kafka_bootstrap=own_broker.bootstrap),
        topic=topic,
        message_timeout_ms=3_000,
        on_delivery=lambda e, x: x is not None and failures.append((e.id, x)),
    )
    try:
        client.prompt("agent-1", "before the outage")
        client.flush(30)
        own_broker.stop()
        lost = [client.action("agent-1", f"a{i}", "pricing") for i in range(5)]
        with pytest.raises(DeliveryError) as info:
            client.flush(30)
        assert sorted(info.value.event_ids) == sorted(lost)
        assert info.value.count == 5
        stats = client.stats()
        assert (stats.queued, stats.sent, stats.failed, stats.dropped) == (6, 1, 5, 0)
        assert sorted(i for i, _ in failures) == sorted(lost)
        assert all("timed out" in r.lower() or "timeout" in r.lower()
                   for r in info.value.errors.values())  # fmt: skip
    finally:
        client.close(timeout=1)


def test_broker_down_fills_the_buffer_then_blocks_then_raises_and_recovers(own_broker) -> None:
    topic = make_topic(own_broker.bootstrap)
    client = AuditClient(
        Settings(kafka_bootstrap=own_broker.bootstrap),
        topic=topic,
        max_buffer=20,
        block_timeout=0.3,
        message_timeout_ms=120_000,
        config={"queue.buffering.max.messages": 10},
    )
    try:
        warm_up = client.prompt("agent-1", "warm-up")
        client.flush(30)
        own_broker.stop()
        accepted: list[str] = []
        with pytest.raises(BufferFull, match="max_buffer=20"):
            for i in range(1_000):
                accepted.append(client.action("agent-1", f"a{i}", "routing"))
        # Bounded: our 20 + librdkafka's 10 + the one the background thread holds.
        assert 20 <= len(accepted) <= 31
        stats = client.stats()
        assert stats.queued == len(accepted) + 1 and stats.dropped == 0 and stats.failed == 0
        with pytest.raises(FlushTimeout):
            client.flush(0.5)  # nothing is lost, just not yet acknowledged

        own_broker.start()  # same port, same data dir: librdkafka reconnects and retries
        client.flush(60)
        stats = client.stats()
        assert (stats.sent, stats.failed, stats.pending) == (len(accepted) + 1, 0, 0)
    finally:
        client.close(timeout=5)
    arrived = consume(own_broker.bootstrap, topic, len(accepted) + 1)
    ids = [decode_event(m.value()).id for m in arrived]
    assert sorted(ids) == sorted([warm_up, *accepted])  # all there, none twice
    assert record_count(own_broker.bootstrap, topic) == len(accepted) + 1


# -- `auditstream produce` end to end --------------------------------------------------------


def run_produce(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "auditstream.cli", "produce", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def mixed_lines() -> tuple[bytes, list, list]:
    records = generate_records(60, seed=21, malformed=6, start=datetime.now(UTC))
    data = b"".join(r.value + b"\n" for r in records)
    return data, [r for r in records if r.valid], [r for r in records if not r.valid]


def test_produce_refuses_a_file_with_invalid_lines_and_sends_nothing(
    noida_broker, tmp_path: Path, mixed_lines
) -> None:
    data, _, invalid = mixed_lines
    path = tmp_path / "events.jsonl"
    path.write_bytes(data)
    topic = make_topic(noida_broker.bootstrap)
    proc = run_produce([str(path), "--bootstrap", noida_broker.bootstrap, "--topic", topic])
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.decode()
    assert "nothing sent" in err
    bad_values = {r.value for r in invalid}
    bad_lines = [i for i, line in enumerate(data.splitlines(), 1) if line in bad_values]
    assert len(bad_lines) == len(invalid) == 6
    for number in bad_lines:
        assert f"line {number}: $" in err
    assert f"{len(invalid)} of 60 line(s) invalid" in err
    assert record_count(noida_broker.bootstrap, topic) == 0


def test_produce_skip_invalid_from_stdin_sends_the_valid_lines(noida_broker, mixed_lines) -> None:
    data, valid, invalid = mixed_lines
    topic = make_topic(noida_broker.bootstrap)
    proc = run_produce(
        ["-", "--skip-invalid", "--bootstrap", noida_broker.bootstrap, "--topic", topic], data
    )
    assert proc.returncode == 1, proc.stderr  # some lines were invalid: not a clean run
    err = proc.stderr.decode()
    assert f"{len(valid)} valid, {len(invalid)} invalid (skipped); sent {len(valid)}" in err
    lines = data.splitlines()
    for i, line in enumerate(lines, 1):
        if line.strip() and any(line == r.value for r in invalid):
            assert f"line {i}: $" in err
    arrived = consume(noida_broker.bootstrap, topic, len(valid))
    assert sorted(decode_event(m.value()).id for m in arrived) == sorted(r.event.id for r in valid)
    assert {m.key() for m in arrived} == {r.key for r in valid}


def test_produce_all_valid_exits_zero(noida_broker, tmp_path: Path, mixed_lines) -> None:
    _, valid, _ = mixed_lines
    path = tmp_path / "good.jsonl"
    path.write_bytes(b"\n".join(r.value for r in valid) + b"\n\n")  # a blank line is fine
    topic = make_topic(noida_broker.bootstrap)
    proc = run_produce([str(path), "--bootstrap", noida_broker.bootstrap, "--topic", topic])
    assert proc.returncode == 0, proc.stderr
    assert f"sent {len(valid)}, failed 0" in proc.stdout.decode()
    assert record_count(noida_broker.bootstrap, topic) == len(valid)


def test_produce_to_an_unreachable_broker_fails_loudly(tmp_path: Path, mixed_lines) -> None:
    from auditstream.deploy.procs import free_port

    _, valid, _ = mixed_lines
    path = tmp_path / "good.jsonl"
    path.write_bytes(b"\n".join(r.value for r in valid[:3]) + b"\n")
    port = free_port()  # nothing listens there
    proc = run_produce([str(path), "--bootstrap", f"127.0.0.1:{port}", "--timeout", "2"])
    assert proc.returncode == 3, proc.stderr
    err = proc.stderr.decode()
    assert "failed 3" in err and "delivery:" in err
