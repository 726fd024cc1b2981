"""The sink, the schema and the analysts' queries against a real ClickHouse server (no worker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auditstream.producers.workload import generate_records
from auditstream.stream.clickhouse import get_client, run_query
from auditstream.stream.enrich import EmptyInventory, EnrichedEvent, KafkaCoords
from auditstream.stream.sink import ClickHouseSink
from auditstream.stream.validate import DeadLetter, decode

pytestmark = pytest.mark.integration

STREAM_QUERIES = {
    "agent_activity": {"agent": "support-bot", "hours": 48},
    "agents_overview": {"hours": 48},
    "errors_by_agent": {"hours": 48},
    "dead_letters_recent": {"limit": 50},
    "decisions_by_type": {"hours": 48},
    "complaints_by_agent": {"days": 2},
    "latency_by_model": {"hours": 48},
    "event_trail": {"conversation": ""},
}


def _batch(n: int, malformed: int) -> tuple[list[EnrichedEvent], list[DeadLetter], list[Any]]:
    start = datetime.now(UTC) - timedelta(minutes=30)
    records = generate_records(n, seed=21, malformed=malformed, start=start)
    good: list[EnrichedEvent] = []
    dead: list[DeadLetter] = []
    for i, rec in enumerate(records):
        out = decode(rec.value, KafkaCoords("x.events", i % 6, i // 6, rec.key), EmptyInventory())
        (dead if isinstance(out, DeadLetter) else good).append(out)  # type: ignore[arg-type]
    return good, dead, records


def test_retried_batch_is_deduplicated_in_table_and_rollup(make_env: Any) -> None:
    env = make_env("noida")
    sink = ClickHouseSink(lambda: get_client(env.settings))
    good, dead, _ = _batch(3_000, 30)
    sink.write(good, dead)
    sink.write(good, dead)  # a retry after a lost acknowledgement: same dedup tokens
    ch = env.ch()
    assert ch.command("SELECT count() FROM events") == len(good)
    assert ch.command("SELECT count() FROM dead_letters") == len(dead)
    assert ch.command("SELECT sum(events) FROM events_per_minute") == len(good)
    tokens = sum(e.total_tokens for e in good)
    assert ch.command("SELECT sum(total_tokens) FROM events_per_minute") == tokens
    # The replay guard's view of what is stored, per partition, from an offset on.
    stored = sink.stored_offsets("x.events", 2, 100)
    expected = {e.offset for e in good if e.partition == 2 and e.offset >= 100}
    expected |= {d.offset for d in dead if d.partition == 2 and d.offset >= 100}
    assert sorted(stored) == sorted(expected)
    # The rollup view has sane latency quantiles (p50 <= p90 <= p99 <= max).
    row = ch.query(
        "SELECT min(latency_p90_ms - latency_p50_ms), min(latency_max_ms - latency_p99_ms + 1)"
        " FROM events_per_minute WHERE latency_max_ms IS NOT NULL"
    ).result_rows[0]
    assert row[0] >= 0 and row[1] > 0


def test_every_stream_query_runs_and_answers(make_env: Any) -> None:
    env = make_env("noida")
    sink = ClickHouseSink(lambda: get_client(env.settings))
    good, dead, _ = _batch(2_000, 20)
    sink.write(good, dead)
    ch = env.ch()
    conversation = next(e.event.data.conversation_id for e in good if e.event.data.conversation_id)
    results: dict[str, Any] = {}
    for name, params in STREAM_QUERIES.items():
        if name == "event_trail":
            params = {"conversation": conversation}
        results[name] = run_query(ch, name, params)
    assert results["agent_activity"].row_count > 0
    overview = {r["agent_id"]: r for r in results["agents_overview"].named_results()}
    assert sum(r["events"] for r in overview.values()) == len(good)
    assert results["dead_letters_recent"].row_count == len(dead)
    assert all(r["reason"] for r in results["dead_letters_recent"].named_results())
    decisions = list(results["decisions_by_type"].named_results())
    n_actions = sum(1 for e in good if e.kind == "action")
    assert sum(r["actions"] for r in decisions) == n_actions
    complaints = list(results["complaints_by_agent"].named_results())
    assert sum(r["complaints"] for r in complaints) == sum(1 for e in good if e.kind == "complaint")
    assert results["latency_by_model"].row_count > 0
    trail = list(results["event_trail"].named_results())
    assert trail and all(r["event_type"] for r in trail)
    assert results["errors_by_agent"].row_count > 0
