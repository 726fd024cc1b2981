"""The synthetic workload: deterministic, realistic, and its malformed records are malformed."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from auditstream.producers.contract import DECISION_TYPES, ContractError, decode_event
from auditstream.producers.workload import (
    AGENTS,
    MALFORMED_KINDS,
    events,
    generate,
    generate_records,
    iter_jsonl,
)

START = datetime(2026, 5, 4, tzinfo=UTC)


@pytest.fixture(scope="module")
def records():
    return generate_records(10_000, seed=1, malformed=100, start=START)


def test_same_seed_same_bytes_other_seed_other_bytes(records) -> None:
    again = generate(10_000, seed=1, malformed=100, start=START)
    assert again == [(r.key, r.value) for r in records]
    assert generate(200, seed=2, start=START) != generate(200, seed=3, start=START)


def test_exact_counts(records) -> None:
    assert len(records) == 10_000
    assert sum(r.valid for r in records) == 9_900
    assert Counter(r.kind for r in records if not r.valid) == dict.fromkeys(MALFORMED_KINDS, 10)
    assert len({r.event.id for r in records if r.valid}) == 9_900  # unique event ids


def test_every_valid_record_decodes_to_its_event_and_is_keyed_by_agent(records) -> None:
    for record in records:
        if record.valid:
            assert decode_event(record.value) == record.event
            assert record.key == record.event.kafka_key()


def test_every_malformed_record_is_rejected(records) -> None:
    fields = Counter()
    for record in records:
        if not record.valid:
            with pytest.raises(ContractError) as info:
                decode_event(record.value)
            fields[(record.kind, info.value.field)] += 1
    assert fields[("unknown_type", "$.type")] == 10
    assert fields[("missing_subject", "$.subject")] == 10
    assert fields[("bad_enum", "$.data.decision_type")] == 10
    assert fields[("bad_time", "$.time")] == 10
    assert fields[("wrong_type", "$.specversion")] == 10
    assert fields[("oversize", "$")] == 10


def test_realistic_mix(records) -> None:
    evs = [r.event for r in records if r.valid]
    kinds = Counter(e.kind for e in evs)
    assert {"prompt", "output", "action", "approval", "error", "complaint", "feedback"} <= set(
        kinds
    )
    assert kinds["action"] > kinds["approval"] > kinds["complaint"] > 0
    assert {e.data.decision_type for e in evs if e.kind == "action"} == set(DECISION_TYPES)
    assert {e.subject for e in evs if e.subject} == {a.agent_id for a in AGENTS}
    assert {e.data.decision for e in evs if e.kind == "approval"} == {
        "approved", "rejected", "modified", "escalated"
    }  # fmt: skip
    complaints = [e for e in evs if e.kind == "complaint"]
    assert any(c.subject is None for c in complaints)
    assert all(c.data.conversation_id and c.data.action_id for c in complaints)
    action_ids = {e.data.action_id for e in evs if e.kind == "action"}
    assert all(e.data.action_id in action_ids for e in evs if e.kind == "approval")
    times = [e.time for e in evs]
    assert times == sorted(times) and times[0] > START


def test_texts_carry_pii_for_the_redactor(records) -> None:
    texts = [
        getattr(r.event.data, "content", None) or getattr(r.event.data, "text", None) or ""
        for r in records
        if r.valid
    ]
    assert any(re.search(r"[\w.]+@example\.com", t) for t in texts)
    assert any(re.search(r"\+1 415 555 \d{4}", t) for t in texts)


def test_run_id_changes_ids_and_source_not_content() -> None:
    a = events(50, seed=4, start=START)
    b = events(50, seed=4, start=START, run_id="r1")
    assert [(e.kind, e.time, getattr(e.data, "content", None)) for e in a] == [
        (e.kind, e.time, getattr(e.data, "content", None)) for e in b
    ]
    assert not {e.id for e in a} & {e.id for e in b}
    assert not {e.data.conversation_id for e in a} & {e.data.conversation_id for e in b}
    assert all(e.source.startswith("urn:auditstream:run:r1:agent:") for e in b)


def test_jsonl_lines_and_argument_checks(records) -> None:
    lines = list(iter_jsonl(records[:20]))
    assert len(lines) == 20 and all(line.endswith(b"\n") for line in lines)
    assert all(line.count(b"\n") == 1 for line in lines)
    with pytest.raises(ValueError):
        generate_records(5, malformed=6)
    with pytest.raises(ValueError):
        events(-1)


def test_end_places_the_last_event_there_with_the_same_history() -> None:
    end = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    ending = events(500, seed=4, end=end)
    starting = events(500, seed=4, start=START)
    assert ending[-1].time == end and ending[0].time < end
    shift = ending[0].time - starting[0].time
    assert [e.time - shift for e in ending] == [e.time for e in starting]
    assert [e.id for e in ending] == [e.id for e in starting]
    with pytest.raises(ValueError, match="start or end"):
        events(5, start=START, end=end)
