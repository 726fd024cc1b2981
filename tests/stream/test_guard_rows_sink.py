"""Replay guard, row building vs the migrations, dedup tokens, sink retries (pure, no server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pyarrow as pa
import pytest

from auditstream.producers.workload import generate_records
from auditstream.stream.enrich import EmptyInventory, EnrichedEvent, KafkaCoords
from auditstream.stream.guard import ReplayGuard
from auditstream.stream.rows import (
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    MAX_STORED_RAW,
    dead_letters_table,
    events_table,
)
from auditstream.stream.sink import ClickHouseSink, dedup_token
from auditstream.stream.validate import DeadLetter, decode

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def coords(rec: tuple[str, int, int]) -> tuple[str, int, int]:
    return rec


# ---- replay guard ---------------------------------------------------------------------------


def test_guard_drops_stored_offsets_after_a_restart_and_then_stops_asking() -> None:
    stored = {("t", 0): {5, 6, 7, 9}}
    calls: list[tuple[str, int, int]] = []

    def loader(topic: str, partition: int, start: int) -> list[int]:
        calls.append((topic, partition, start))
        return sorted(o for o in stored.get((topic, partition), set()) if o >= start)

    g = ReplayGuard(loader)
    batch1 = [("t", 0, o) for o in range(5, 9)]  # redelivered from the last commit (5)
    assert g.filter(batch1, coords) == [("t", 0, 8)]
    batch2 = [("t", 0, o) for o in range(9, 12)]  # contiguous: no new query, 9 still skipped
    assert g.filter(batch2, coords) == [("t", 0, 10), ("t", 0, 11)]
    assert calls == [("t", 0, 5)]
    assert g.skipped == 4 and g.loads == 1  # 5, 6, 7 and 9
    # Past the replay: nothing is remembered any more, a contiguous batch costs no query.
    assert g.filter([("t", 0, 12)], coords) == [("t", 0, 12)]
    assert g.loads == 1


def test_guard_tracks_partitions_independently_and_rechecks_on_gaps() -> None:
    asked: list[tuple[int, int]] = []

    def loader(topic: str, partition: int, start: int) -> list[int]:
        asked.append((partition, start))
        return [start] if partition == 1 else []

    g = ReplayGuard(loader)
    out = g.filter([("t", 0, 0), ("t", 1, 10), ("t", 0, 1), ("t", 1, 11)], coords)
    assert out == [("t", 0, 0), ("t", 0, 1), ("t", 1, 11)]
    assert asked == [(0, 0), (1, 10)]
    # A gap (offset jumped: compaction, or another worker took over meanwhile) re-checks.
    g.filter([("t", 0, 50)], coords)
    assert asked[-1] == (0, 50)


def test_guard_reset_forces_a_recheck() -> None:
    n = {"loads": 0}

    def loader(topic: str, partition: int, start: int) -> list[int]:
        n["loads"] += 1
        return []

    g = ReplayGuard(loader)
    g.filter([("t", 0, 0)], coords)
    g.filter([("t", 0, 1)], coords)
    assert n["loads"] == 1
    g.reset()  # on partition assignment
    g.filter([("t", 0, 2)], coords)
    assert n["loads"] == 2


def test_guard_ignores_loader_offsets_below_the_batch() -> None:
    g = ReplayGuard(lambda t, p, s: [1, 2, 3, 10])
    assert g.filter([("t", 0, 3), ("t", 0, 4)], coords) == [("t", 0, 4)]


# ---- rows vs migrations ---------------------------------------------------------------------


def _migration_columns(filename: str, table: str) -> set[str]:
    sql = (resources.files("auditstream.sql") / "migrations" / filename).read_text()
    body = sql[sql.index(f"{{{{database}}}}.{table}") :]
    body = body[body.index("(") + 1 : body.index("\nENGINE")]
    cols = set()
    for line in body.splitlines():
        m = re.match(r"\s+([a-z_]+)\s+[A-Z]", line)
        if m and m.group(1) != "INDEX":
            cols.add(m.group(1))
    return cols


def test_event_columns_exist_in_the_events_migration() -> None:
    table_cols = _migration_columns("0002_events.sql", "events")
    assert set(EVENT_COLUMNS) <= table_cols
    # The only columns the sink does not write are filled by defaults or later stages.
    assert table_cols - set(EVENT_COLUMNS) == {"ingest_time", "anomaly_score", "anomaly_detector"}


def test_dead_letter_columns_match_the_migration() -> None:
    assert set(DEAD_LETTER_COLUMNS) == _migration_columns("0003_dead_letters.sql", "dead_letters")


def _decoded(n: int, malformed: int) -> tuple[list[EnrichedEvent], list[DeadLetter]]:
    good: list[EnrichedEvent] = []
    dead: list[DeadLetter] = []
    for i, rec in enumerate(generate_records(n, seed=3, malformed=malformed, start=T0)):
        out = decode(rec.value, KafkaCoords("p.events", i % 3, i, rec.key), EmptyInventory())
        (dead if isinstance(out, DeadLetter) else good).append(out)  # type: ignore[arg-type]
    return good, dead


def test_events_table_is_one_typed_row_per_event() -> None:
    good, _ = _decoded(300, 0)
    table = events_table(good)
    assert isinstance(table, pa.Table)
    assert table.num_rows == len(good) == 300
    rows = table.to_pylist()
    for e, row in zip(good, rows, strict=True):
        assert row["event_id"] == e.event_id
        assert row["event_type"] == e.kind
        assert row["total_tokens"] == e.input_tokens + e.output_tokens
        assert row["kafka_offset"] == e.offset
        assert row["content"] == e.text
        t = e.event.time
        assert row["event_time"] == t.replace(microsecond=t.microsecond // 1000 * 1000)  # ms
    kinds = {r["event_type"] for r in rows}
    assert {"prompt", "output", "action"} <= kinds
    assert all("@" not in r["content"] for r in rows)  # workload texts carry e-mails


def test_dead_letters_table_redacts_utf8_raw_and_caps_size() -> None:
    d = DeadLetter("t", 0, 7, b"k", b'{"oops": "mail a@b.com"', "$", "bad", "contract", 1000)
    big = DeadLetter("t", 0, 8, None, b"x" * (MAX_STORED_RAW + 10), "$", "big", "oversize", 1000)
    binary = DeadLetter("t", 0, 9, None, b"\xff\xfe\x00", "$", "utf", "encoding", 1000)
    rows = dead_letters_table([d, big, binary]).to_pylist()
    assert rows[0]["raw"] == b'{"oops": "mail <email>"' and rows[0]["raw_redactions"] == 1
    assert rows[0]["raw_bytes"] == len(d.raw)
    assert len(rows[1]["raw"]) == MAX_STORED_RAW and rows[1]["raw_bytes"] == MAX_STORED_RAW + 10
    assert rows[2]["raw"] == b"\xff\xfe\x00"
    assert [r["kafka_offset"] for r in rows] == [7, 8, 9]
    assert rows[1]["kafka_key"] == b""


# ---- dedup token and sink -------------------------------------------------------------------


def test_dedup_token_is_stable_and_distinct() -> None:
    a = dedup_token("events", [("t", 0, 1), ("t", 1, 5)])
    assert a == dedup_token("events", [("t", 0, 1), ("t", 1, 5)])
    assert a != dedup_token("events", [("t", 0, 1), ("t", 1, 6)])
    assert a != dedup_token("dead_letters", [("t", 0, 1), ("t", 1, 5)])


class FlakyClient:
    """Fails the first ``failures`` inserts (as a dropped connection would), then accepts."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.inserts: list[tuple[str, int, dict[str, Any]]] = []

    def insert_arrow(self, table: str, data: pa.Table, settings: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("connection reset by peer")
        self.inserts.append((table, data.num_rows, settings))

    def close(self) -> None:
        pass


def test_sink_retries_with_the_same_dedup_token_until_acknowledged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("auditstream.stream.sink.time.sleep", lambda s: None)
    client = FlakyClient(failures=3)
    made: list[FlakyClient] = []

    def factory() -> FlakyClient:
        made.append(client)
        return client

    sink = ClickHouseSink(factory)  # type: ignore[arg-type]
    good, dead = _decoded(200, 20)
    sink.write(good, dead)
    assert [(t, n) for t, n, _ in client.inserts] == [("events", 180), ("dead_letters", 20)]
    assert sink.retries == 3
    assert len(made) == 4  # a fresh client after every failure
    token = client.inserts[0][2]["insert_deduplication_token"]
    assert token == dedup_token("events", [(e.topic, e.partition, e.offset) for e in good])
    assert client.inserts[0][2]["deduplicate_blocks_in_dependent_materialized_views"] == 1


def test_sink_gives_up_only_when_stopping() -> None:
    client = FlakyClient(failures=100)
    sink = ClickHouseSink(lambda: client, should_stop=lambda: True)  # type: ignore[arg-type,return-value]
    good, _ = _decoded(10, 0)
    with pytest.raises(ConnectionError):
        sink.write(good, [])
    assert client.inserts == []
