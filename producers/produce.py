"""``auditstream produce``: publish JSON-lines events (CloudEvents envelopes) from a file or stdin.

Any language (or ``kcat``-style shell pipelines) can write the lines; this command validates
each against the contract and sends it through :class:`AuditClient` (same producer settings,
keys and header as the SDK).

- Without ``skip_invalid`` it is all-or-nothing for input errors: the whole input is checked
  first (stdin is spooled to a temporary file), and if any line is invalid nothing is sent.
- With ``skip_invalid`` lines stream through as they come (usable behind ``tail -f``), bad lines
  are reported and skipped.

Exit codes: 0 all sent; 1 invalid lines (reported with line number and field); 3 delivery
failures or timeout (the broker did not acknowledge every event).
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from auditstream.producers.contract import AuditEvent, ContractError, decode_event

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_DELIVERY = 3
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class LineProblem:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


@dataclass
class ProduceReport:
    lines: int = 0
    valid: int = 0
    invalid: int = 0
    sent: int = 0
    failed: int = 0
    pending: int = 0
    problems: list[LineProblem] = field(default_factory=list)
    delivery_errors: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.failed or self.pending or self.delivery_errors:
            return EXIT_DELIVERY
        return EXIT_INVALID if self.invalid else EXIT_OK

    def note_invalid(self, line: int, exc: ContractError) -> None:
        self.invalid += 1
        if len(self.problems) < MAX_LISTED_PROBLEMS:
            self.problems.append(LineProblem(line, exc.field, exc.reason))


def parse_lines(
    lines: Iterable[bytes], report: ProduceReport, *, max_bytes: int
) -> Iterator[tuple[int, AuditEvent]]:
    """Decode each non-blank line; invalid ones are recorded in ``report`` (pure, no I/O)."""
    for number, line in enumerate(lines, start=1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        report.lines += 1
        try:
            event = decode_event(line, max_bytes=max_bytes)
        except ContractError as exc:
            report.note_invalid(number, exc)
            continue
        report.valid += 1
        yield number, event


def check_all(stream: IO[bytes], *, max_bytes: int) -> ProduceReport:
    """First pass of the all-or-nothing mode: validate every line, send nothing."""
    report = ProduceReport()
    for _ in parse_lines(stream, report, max_bytes=max_bytes):
        pass
    return report


def send_lines(
    stream: IO[bytes],
    client_factory: Callable[[], object],
    *,
    max_bytes: int,
    flush_timeout: float,
) -> ProduceReport:
    """Decode and emit every valid line through a fresh :class:`AuditClient`; then flush."""
    from auditstream.producers.client import AuditClientError, DeliveryError, FlushTimeout

    report = ProduceReport()
    client = client_factory()
    try:
        for _, event in parse_lines(stream, report, max_bytes=max_bytes):
            client.emit(event)  # type: ignore[attr-defined]
        client.flush(flush_timeout)  # type: ignore[attr-defined]
    except DeliveryError as exc:
        report.delivery_errors = [f"{i}: {r}" for i, r in list(exc.errors.items())[:20]]
    except FlushTimeout as exc:
        report.delivery_errors = [str(exc)]
    except AuditClientError as exc:  # BufferFull: the broker is unreachable or too slow
        report.delivery_errors = [str(exc)]
    finally:
        stats = client.stats()  # type: ignore[attr-defined]
        report.sent, report.failed, report.pending = stats.sent, stats.failed, stats.pending
        with contextlib.suppress(AuditClientError):  # already reported above
            client.close(timeout=1.0)  # type: ignore[attr-defined]
    return report


def open_input(path: str) -> IO[bytes]:
    """``-`` is stdin; a file is opened in binary mode (lines may not even be UTF-8)."""
    return sys.stdin.buffer if path == "-" else open(path, "rb")


def spool(stream: IO[bytes]) -> IO[bytes]:
    """Copy a one-shot stream (stdin) to a temporary file so it can be read twice."""
    tmp = tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024)  # noqa: SIM115
    shutil.copyfileobj(stream, tmp)
    tmp.seek(0)
    return tmp  # type: ignore[return-value]
