"""`auditstream produce` line handling, without a broker."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from auditstream.producers.contract import MAX_EVENT_BYTES
from auditstream.producers.produce import (
    EXIT_DELIVERY,
    EXIT_INVALID,
    EXIT_OK,
    MAX_LISTED_PROBLEMS,
    ProduceReport,
    check_all,
    parse_lines,
)
from auditstream.producers.workload import generate_records

START = datetime(2026, 2, 2, tzinfo=UTC)


def test_line_numbers_fields_and_blank_lines() -> None:
    records = generate_records(12, seed=8, malformed=3, start=START)
    lines = [b"\n", b"   \r\n"] + [r.value + b"\r\n" for r in records]
    report = ProduceReport()
    good = list(parse_lines(lines, report, max_bytes=MAX_EVENT_BYTES))
    assert (report.lines, report.valid, report.invalid) == (12, 9, 3)
    assert [e.id for _, e in good] == [r.event.id for r in records if r.valid]
    expected = [i for i, r in enumerate(records, start=3) if not r.valid]
    assert [p.line for p in report.problems] == expected
    assert all(str(p).startswith(f"line {p.line}: $") for p in report.problems)
    assert report.exit_code == EXIT_INVALID


def test_check_all_reads_a_stream_and_caps_the_listing() -> None:
    stream = io.BytesIO(b"not json\n" * (MAX_LISTED_PROBLEMS + 5))
    report = check_all(stream, max_bytes=MAX_EVENT_BYTES)
    assert report.invalid == MAX_LISTED_PROBLEMS + 5
    assert len(report.problems) == MAX_LISTED_PROBLEMS
    assert report.problems[0].field == "$"


def test_size_limit_applies_per_line() -> None:
    record = generate_records(1, seed=1, start=START)[0]
    report = ProduceReport()
    assert not list(parse_lines([record.value], report, max_bytes=len(record.value) - 1))
    assert "limit" in report.problems[0].reason


def test_exit_codes() -> None:
    assert ProduceReport(lines=3, valid=3, sent=3).exit_code == EXIT_OK
    assert ProduceReport(lines=3, valid=3, sent=2, failed=1).exit_code == EXIT_DELIVERY
    assert ProduceReport(lines=3, valid=3, pending=3).exit_code == EXIT_DELIVERY
    assert ProduceReport(lines=3, valid=2, invalid=1, sent=2).exit_code == EXIT_INVALID
