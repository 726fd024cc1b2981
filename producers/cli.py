"""Producer-side commands: ``auditstream produce``, ``auditstream demo``, ``bench emit``."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from auditstream.settings import Settings

if TYPE_CHECKING:
    from rich.console import Console

    from auditstream.producers.produce import ProduceReport


def _settings(bootstrap: str | None, topic_prefix: str | None = None) -> Settings:
    settings = Settings.from_env()
    if bootstrap:
        settings = dataclasses.replace(settings, kafka_bootstrap=bootstrap)
    if topic_prefix:
        from auditstream.settings import Topics

        settings = dataclasses.replace(settings, topics=Topics(topic_prefix))
    return settings


InputFile = Annotated[
    str, typer.Argument(help="JSON-lines file of CloudEvents envelopes; - reads stdin")
]
Bootstrap = Annotated[
    str | None, typer.Option(help="Kafka bootstrap servers (default: $AUDITSTREAM_KAFKA_BOOTSTRAP)")
]
Topic = Annotated[str | None, typer.Option(help="Target topic (default: <prefix>.events)")]
SkipInvalid = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Report and skip bad lines; send the rest as they come"),
]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the broker's acknowledgements")]


def produce(
    file: InputFile = "-",
    bootstrap: Bootstrap = None,
    topic: Topic = None,
    skip_invalid: SkipInvalid = False,
    timeout: Timeout = 60.0,
) -> None:
    """Validate JSON-lines events and publish them to Kafka (any language can write them).

    Without --skip-invalid the whole input is checked first and nothing is sent if a line is
    invalid. Exit codes: 0 all sent; 1 invalid lines; 3 delivery failures.
    """
    from rich.console import Console

    from auditstream.producers import produce as p
    from auditstream.producers.client import AuditClient

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    settings = _settings(bootstrap)
    target = topic or settings.topics.events
    max_bytes = settings.max_event_bytes
    with contextlib.ExitStack() as resources:
        try:
            stream = p.open_input(file)
        except OSError as exc:
            err.print(f"cannot read {file}: {exc.strerror}", style="red", markup=False)
            raise typer.Exit(p.EXIT_INVALID) from None
        if file != "-":  # never close the process's stdin
            resources.enter_context(stream)
        if not skip_invalid:
            if file == "-":
                stream = resources.enter_context(p.spool(stream))
            checked = p.check_all(stream, max_bytes=max_bytes)
            if checked.invalid:
                _print_problems(err, checked)
                err.print(
                    f"{checked.invalid} of {checked.lines} line(s) invalid: nothing sent "
                    "(fix them, or use --skip-invalid)",
                    style="red",
                )
                raise typer.Exit(p.EXIT_INVALID)
            stream.seek(0)

        def factory() -> AuditClient:
            return AuditClient(
                settings,
                topic=target,
                message_timeout_ms=int(timeout * 1000),
                block_timeout=timeout,
            )

        report = p.send_lines(stream, factory, max_bytes=max_bytes, flush_timeout=timeout + 5)
    _print_problems(err, report)
    for line in report.delivery_errors:
        err.print(f"delivery: {line}", style="red", markup=False)
    summary = (
        f"{report.lines} line(s): {report.valid} valid, {report.invalid} invalid"
        f"{' (skipped)' if report.invalid else ''}; sent {report.sent}, failed {report.failed}"
        f"{f', pending {report.pending}' if report.pending else ''} → {target} on "
        f"{settings.kafka_bootstrap}"
    )
    if report.exit_code:
        err.print(summary, markup=False)
    else:
        typer.echo(summary)
    raise typer.Exit(report.exit_code)


def _print_problems(console: Console, report: ProduceReport) -> None:
    # markup=False: reasons quote the offending input, which may contain [brackets].
    for problem in report.problems:
        console.print(str(problem), style="yellow", markup=False)
    hidden = report.invalid - len(report.problems)
    if hidden > 0:
        console.print(f"... and {hidden} more invalid line(s)", style="yellow")


Events = Annotated[int, typer.Option(help="Events per measurement")]
Compare = Annotated[bool, typer.Option("--compare", help="Also time the design alternatives")]
AsJson = Annotated[bool, typer.Option("--json", help="End with one JSON line of figures")]


def bench_emit(
    events: Events = 100_000,
    bootstrap: Bootstrap = None,
    topic: Topic = None,
    compare: Compare = False,
    as_json: AsJson = False,
) -> None:
    """SDK cost per emit on the caller's thread, against a running broker."""
    from auditstream.producers import bench

    settings = _settings(bootstrap)
    if compare:
        typer.echo(f"alternatives, {events:,} events each (wall time on the caller's thread):")
        for r in bench.compare_strategies(settings, events, topic=topic):
            typer.echo(f"  {r.name:40s} {r.caller_us:7.2f} µs/event   all acked {r.total_s:.2f}s")
    emit = bench.emit_cost(settings, events, topic=topic)
    call = bench.call_cost(settings, events, topic=topic)
    typer.echo(
        f"AuditClient.emit(prebuilt event): {emit.wall_us:.2f} µs wall, {emit.cpu_us:.2f} µs "
        f"caller-thread CPU per call (best of 3 bursts of {events:,})"
    )
    typer.echo(
        f"AuditClient.action(...) incl. building the event: {call.wall_us:.2f} µs wall, "
        f"{call.cpu_us:.2f} µs caller-thread CPU per call"
    )
    if as_json:
        figures = {
            "emit_us": round(emit.wall_us, 3),
            "emit_cpu_us": round(emit.cpu_us, 3),
            "action_call_us": round(call.wall_us, 3),
            "action_call_cpu_us": round(call.cpu_us, 3),
        }
        typer.echo(json.dumps(figures))


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("produce")(produce)
    app.command("demo")(demo)
    groups["bench"].command("emit")(bench_emit)


DemoEvents = Annotated[int, typer.Option(help="Records to send (valid + malformed)")]
Rate = Annotated[float, typer.Option(help="Records per second (0 = as fast as possible)")]
Seed = Annotated[int, typer.Option(help="Workload seed (same seed, same content)")]
Malformed = Annotated[int | None, typer.Option(help="Malformed records (default: 1%)")]
Wait = Annotated[float, typer.Option(help="Seconds to wait for the rows in ClickHouse")]
StateDir = Annotated[
    Path | None,
    typer.Option(help="Local stack state directory (default: $AUDITSTREAM_STATE_DIR or .state)"),
]

BrokerKind = Annotated[str, typer.Option(help="Dev broker if the stack is started: noida, tansu")]
KafkaPort = Annotated[int, typer.Option(help="Broker port if the stack is started")]
HttpPort = Annotated[int, typer.Option(help="ClickHouse HTTP port if the stack is started")]
TcpPort = Annotated[int, typer.Option(help="ClickHouse TCP port if the stack is started")]
AmPort = Annotated[
    int, typer.Option(help="Alertmanager port if the stack is started (0: no Alertmanager)")
]


def demo(
    events: DemoEvents = 10_000,
    rate: Rate = 0.0,
    seed: Seed = 1,
    malformed: Malformed = None,
    wait: Wait = 120.0,
    state_dir: StateDir = None,
    broker: BrokerKind = "noida",
    kafka_port: KafkaPort = 19092,
    http_port: HttpPort = 18123,
    tcp_port: TcpPort = 19000,
    alertmanager_port: AmPort = 19093,
) -> None:
    """Run a synthetic agent workload through the SDK into the local stack, then show counts.

    Brings the local stack up if it is not running, sends the workload (with some malformed
    records) with a progress bar, waits until the rows are in ClickHouse and prints how to
    query them.
    """
    from auditstream.producers.demo import run_demo

    code = run_demo(
        events=events,
        rate=rate,
        seed=seed,
        malformed=malformed,
        wait=wait,
        state_dir=state_dir,
        broker=broker,
        ports=(kafka_port, http_port, tcp_port),
        alertmanager_port=alertmanager_port or None,
    )
    if code:
        raise typer.Exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `auditstream` command")
