"""End-to-end: real dev broker → `auditstream worker` subprocess → real ClickHouse server.

Required cases of the issue: (a) 10,000 records of which 100 malformed → exactly 9,900 event
rows and 100 dead letters with reasons; (b) kill -9 the worker mid-stream and restart → exact
counts, no duplicates, exact rollup; (c) the same end-to-end case on the tansu broker.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from auditstream.deploy.procs import free_port
from auditstream.producers.workload import Record, generate_records

pytestmark = pytest.mark.integration

# Short group timeouts (tansu needs 6 s: see infra.md); plugins off: this area's tests check
# the sink alone (plugins have their own tests).
WORKER_ENV = {
    # AUDITSTREAM_TEST_STREAM_PLUGINS=default runs the same cases with every plugin installed.
    **(
        {}
        if os.environ.get("AUDITSTREAM_TEST_STREAM_PLUGINS") == "default"
        else {"AUDITSTREAM_STREAM_PLUGINS": "none"}
    ),
    "AUDITSTREAM_FAUST_SESSION_TIMEOUT": "6",
    "AUDITSTREAM_FAUST_COMMIT_INTERVAL": "1.0",
}
WORKER_LOGLEVEL = os.environ.get("AUDITSTREAM_TEST_WORKER_LOGLEVEL", "warning")
DEADLINE_S = float(
    os.environ.get("AUDITSTREAM_TEST_DEADLINE", "240")
)  # a generous upper bound for waiting, never a speed assertion


def produce(settings: Any, records: list[Record]) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        settings.kafka_config(
            **{"enable.idempotence": True, "acks": "all", "linger.ms": 20, "log_level": 0}
        )
    )
    errors: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    for rec in records:
        while True:
            try:
                producer.produce(
                    settings.topics.events, rec.value, rec.key, on_delivery=on_delivery
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert errors == []


def start_worker(env: Any, log_name: str, **extra_env: str) -> Any:
    """``python -m auditstream.cli worker`` with this test's settings (a real subprocess)."""
    return env.spawn(
        [sys.executable, "-m", "auditstream.cli", "worker", "-l", WORKER_LOGLEVEL],
        env=env.env_vars(**{**WORKER_ENV, **extra_env}),
        log_name=log_name,
    )


def consume_all(settings: Any, topic: str, n: int) -> list[tuple[bytes, dict[str, bytes]]]:
    """Read ``n`` records of ``topic`` from the start (fresh group), then a little more."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"check-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "log_level": 0,
            }
        )
    )
    consumer.subscribe([topic])
    out: list[tuple[bytes, dict[str, bytes]]] = []
    deadline = time.monotonic() + 60
    idle_after_n = 0
    try:
        while time.monotonic() < deadline and idle_after_n < 3:
            msg = consumer.poll(1.0)
            if msg is None:
                idle_after_n += len(out) >= n
                continue
            if msg.error() is None:
                out.append((msg.value() or b"", dict(msg.headers() or [])))
    finally:
        consumer.close()
    return out


def counts(client: Any) -> tuple[int, int]:
    events = client.command("SELECT count() FROM events")
    dead = client.command("SELECT count() FROM dead_letters")
    return int(events), int(dead)


def wait_for(client: Any, expected: tuple[int, int], proc: Any = None) -> tuple[int, int]:
    """Poll until the counts reach ``expected`` (or stop growing past the deadline)."""
    deadline = time.monotonic() + DEADLINE_S
    seen = counts(client)
    while seen != expected and time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode}: see its log")
        if seen[0] > expected[0] or seen[1] > expected[1]:
            break
        time.sleep(0.5)
        seen = counts(client)
    # Settle: anything extra (a duplicate) would land now.
    time.sleep(2.0)
    return counts(client)


def assert_exact(client: Any, records: list[Record]) -> None:
    valid = [r for r in records if r.valid]
    bad = [r for r in records if not r.valid]
    row = client.query(
        "SELECT count(), uniqExact(event_id), uniqExact(kafka_partition, kafka_offset),"
        " sum(total_tokens), sum(is_error) FROM events"
    ).result_rows[0]
    tokens = sum(
        (getattr(r.event.data, "input_tokens", None) or 0)
        + (getattr(r.event.data, "output_tokens", None) or 0)
        for r in valid
    )
    assert row[0] == len(valid)
    assert row[1] == len(valid)  # no duplicate event ids
    assert row[2] == len(valid)  # no record stored twice
    assert row[3] == tokens
    assert set(client.query("SELECT event_id FROM events").result_columns[0]) == {
        r.event.id for r in valid
    }
    # The per-minute rollup MV is exact too: a replay never inserted a second row.
    rollup = client.query(
        "SELECT sum(events), sum(errors), sum(total_tokens) FROM events_per_minute"
    ).result_rows[0]
    assert rollup == (len(valid), row[4], tokens)
    # Dead letters: one per malformed record, each with a reason naming a field.
    dl = client.query(
        "SELECT count(), uniqExact(kafka_partition, kafka_offset), countIf(reason = ''),"
        " countIf(reason_field = '') FROM dead_letters"
    ).result_rows[0]
    assert dl == (len(bad), len(bad), 0, 0)


@pytest.mark.parametrize("broker", ["noida", "tansu"])
def test_valid_and_malformed_end_to_end(make_env: Any, broker: str) -> None:
    """(a) on noida, and (c): the same case on tansu."""
    env = make_env(broker)
    records = generate_records(10_000, seed=11, malformed=100, start=datetime.now(UTC))
    assert sum(not r.valid for r in records) == 100
    produce(env.settings, records)
    metrics_port = free_port()
    worker = start_worker(env, f"worker-{broker}", AUDITSTREAM_METRICS_PORT=str(metrics_port))
    client = env.ch()
    got = wait_for(client, (9_900, 100), worker)
    assert got == (9_900, 100), _log(env, f"worker-{broker}")
    assert_exact(client, records)
    # The worker's Prometheus endpoint counts the same (read once the counters caught up).
    counters: dict[str, float] = {}
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        counters = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("auditstream_") and "_total " in line
        }
        if counters.get("auditstream_events_total") == 9_900:
            break
        time.sleep(0.5)
    assert counters.get("auditstream_events_total") == 9_900, counters
    assert counters.get("auditstream_dead_letters_total") == 100, counters
    # Every malformed kind is represented, with its reason class.
    classes = dict(
        client.query(
            "SELECT error_class, count() FROM dead_letters GROUP BY error_class"
        ).result_rows
    )
    assert sum(classes.values()) == 100
    assert {"contract", "empty"} <= set(classes)
    # PII never reaches storage.
    email = "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[a-z]{2,}"
    leaked = client.command(f"SELECT count() FROM events WHERE match(content, '{email}')")
    assert int(leaked) == 0
    # The dead-letter topic has them too: exact original bytes, the reason in headers.
    dlq = consume_all(env.settings, env.settings.topics.deadletter, 100)
    assert len(dlq) == 100
    originals = {r.value for r in records if not r.valid}
    assert {value for value, _ in dlq} <= originals
    assert all(h.get("reason") and h.get("source_offset") for _, h in dlq)
    # Clean shutdown on SIGTERM.
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0


@pytest.mark.parametrize("broker", ["noida", "tansu"])
def test_kill_9_mid_stream_then_restart_is_exact(make_env: Any, broker: str) -> None:
    """(b) kill -9 while the worker is inserting, restart: exact counts, no duplicates."""
    env = make_env(broker, sink_batch_size=500, sink_batch_seconds=0.2)
    records = generate_records(10_000, seed=12, malformed=100, start=datetime.now(UTC))
    produce(env.settings, records)
    client = env.ch()
    # Commit rarely, so that the kill lands with many stored-but-uncommitted records.
    # The restarted worker reuses the static member id (noida never expires a killed member).
    slow_commit = {
        "AUDITSTREAM_FAUST_COMMIT_INTERVAL": "30",
        "AUDITSTREAM_WORKER_INSTANCE_ID": "worker-0",
    }
    worker = start_worker(env, "worker-1", **slow_commit)
    deadline = time.monotonic() + DEADLINE_S
    while counts(client)[0] < 3_000 and time.monotonic() < deadline:
        assert worker.poll() is None, _log(env, "worker-1")
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    mid = counts(client)
    assert 0 < mid[0] < 9_900, "the kill should land mid-stream"
    worker2 = start_worker(env, "worker-2", **slow_commit)
    got = wait_for(client, (9_900, 100), worker2)
    assert got == (9_900, 100), _log(env, "worker-2")
    assert_exact(client, records)
    # Nothing was committed before the kill (30 s commit interval): the restarted worker got
    # the stored records again and its replay guard dropped them (the log line is the proof).
    log2 = _log(env, "worker-2", tail=None)
    skipped = [int(m) for m in re.findall(r"replay guard: skipped (\d+) ", log2)]
    assert sum(skipped) >= mid[0] + mid[1], log2[-3000:]
    worker2.send_signal(signal.SIGTERM)
    assert worker2.wait(timeout=60) == 0


def test_two_worker_processes_share_the_partitions_exactly(make_env: Any) -> None:
    """`auditstream worker --workers 2`: two group members, same exact result, clean stop."""
    env = make_env("noida", sink_batch_size=200)
    records = generate_records(3_000, seed=13, malformed=30, start=datetime.now(UTC))
    client = env.ch()
    supervisor = env.spawn(
        [sys.executable, "-m", "auditstream.cli", "worker", "--workers", "2", "-l", "info"],
        env=env.env_vars(**WORKER_ENV),
        log_name="workers",
    )
    produce(env.settings, records)
    got = wait_for(client, (2_970, 30), supervisor)
    assert got == (2_970, 30), _log(env, "workers")
    assert_exact(client, records)
    log = _log(env, "workers", tail=None)
    # Both processes joined the group and were assigned partitions.
    assert len(set(re.findall(r"\[(\d+)\] \[INFO\] Joined group", log))) == 2, log[-3000:]
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(timeout=90) == 0


def _log(env: Any, name: str, tail: int | None = 4000) -> str:
    path = env.state_dir / f"{name}.log"
    if not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace")
    return text if tail is None else text[-tail:]


def malformed_kinds(records: list[Record]) -> collections.Counter[str]:
    return collections.Counter(r.kind for r in records if not r.valid)
