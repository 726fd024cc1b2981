"""The published JSON Schema: generated from the contract, and agrees with it on samples."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from auditstream.producers import schema
from auditstream.producers.contract import DATA_TYPES, EVENT_TYPES, ContractError, decode_event
from auditstream.producers.workload import MALFORMED_KINDS, generate_records

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_committed_file_equals_generated() -> None:
    committed = schema.SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema.render_schema(), (
        "producers/schema/event-v1.json is stale: run python -m auditstream.producers.schema"
    )
    assert schema.main(["--check"]) == 0


def test_check_mode_detects_a_stale_file(tmp_path) -> None:
    stale = tmp_path / "event-v1.json"
    stale.write_text("{}\n")
    assert schema.main(["--check", "--output", str(stale)]) == 1
    assert schema.main(["--output", str(stale)]) == 0
    assert stale.read_text() == schema.render_schema()


def test_schema_ties_data_to_type() -> None:
    doc = schema.build_schema()
    assert doc["properties"]["type"]["enum"] == sorted(EVENT_TYPES)
    branches = {b["if"]["properties"]["type"]["const"]: b for b in doc["allOf"] if "const" in
                b["if"].get("properties", {}).get("type", {})}  # fmt: skip
    assert set(branches) == set(EVENT_TYPES)
    for kind, cls in DATA_TYPES.items():
        ref = branches["ai.auditstream." + kind]["then"]["properties"]["data"]["$ref"]
        assert ref == f"#/$defs/{cls.__name__}"
        assert cls.__name__ in doc["$defs"]
    assert "specversion" in doc["required"] and "subject" not in doc["required"]


jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator():
    doc = json.loads(schema.SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(doc)
    cls.check_schema(doc)
    return cls(doc, format_checker=cls.FORMAT_CHECKER)


def test_sample_events_validate(validator) -> None:
    records = generate_records(600, seed=11, start=START)
    kinds = set()
    for record in records:
        errors = list(validator.iter_errors(json.loads(record.value)))
        assert not errors, (record.value[:200], [e.message for e in errors])
        kinds.add(record.event.kind)
    assert kinds >= set(DATA_TYPES) - {"suspension_ack"}


@pytest.mark.parametrize(
    "kind", ["wrong_type", "unknown_type", "missing_subject", "bad_enum", "not_an_object"]
)
def test_schema_rejects_what_the_contract_rejects(validator, kind: str) -> None:
    assert kind in MALFORMED_KINDS
    records = generate_records(300, seed=5, malformed=len(MALFORMED_KINDS) * 2, start=START)
    bad = [r for r in records if r.kind == kind]
    assert bad
    for record in bad:
        with pytest.raises(ContractError):
            decode_event(record.value)
        assert not validator.is_valid(json.loads(record.value)), record.value[:200]


def test_complaint_without_subject_is_valid_in_both(validator) -> None:
    records = generate_records(4000, seed=2, start=START)
    lone = [r for r in records if r.event.kind == "complaint" and r.event.subject is None]
    assert lone
    for record in lone:
        assert validator.is_valid(json.loads(record.value))
