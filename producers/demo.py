"""``auditstream demo``: the synthetic workload through the SDK into the local stack, end to end.

1. Bring up the local stack unless it already runs (``LocalStack.up`` starts only what is
   missing: dev broker, ClickHouse server, topics, migrations, worker).
2. Send the workload: valid events through :class:`AuditClient` (exactly as an agent would),
   the malformed records as raw bytes through a plain producer (the SDK refuses to send
   invalid events, so they come "from a buggy producer in another language").
3. Wait until ClickHouse holds this run's rows: events are recognised by this run's ``source``
   (``urn:auditstream:run:<run_id>:...``), dead letters by the (partition, offset) of each
   malformed record the broker acknowledged.
4. Print what arrived and how to query it.
"""

from __future__ import annotations

import secrets
import shutil
import time
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from auditstream.producers.client import (
    HEADERS,
    AuditClient,
    AuditClientError,
    BufferFull,
    producer_config,
)
from auditstream.producers.workload import generate_records


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<26}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )


def run_demo(
    *,
    events: int = 10_000,
    rate: float = 0.0,
    seed: int = 1,
    malformed: int | None = None,
    wait: float = 120.0,
    state_dir: Path | None = None,
    broker: str = "noida",
    ports: tuple[int, int, int] = (19092, 18123, 19000),
    alertmanager_port: int | None = 19093,
    console: Console | None = None,
) -> int:
    """Returns the exit code: 0 when every row arrived, 1 otherwise (with a hint why)."""
    console = console or Console()
    missing = [m for m in ("clickhouse_connect", "faust", "noida_db") if not find_spec(m)]
    if missing:
        console.print(
            f"the demo runs the whole pipeline locally and needs its extra ({missing[0]} "
            "is missing): pip install 'auditstream[pipeline]'",
            style="red",
            markup=False,
        )
        return 2
    from auditstream.deploy.alertmanager import AlertmanagerError
    from auditstream.deploy.broker import BrokerError
    from auditstream.deploy.clickhouse_server import ClickHouseServerError
    from auditstream.deploy.local import STACK_JSON, LocalStack, StackError
    from auditstream.settings import Settings

    base = Settings.from_env()
    state = Path(state_dir or base.state_dir)
    n_bad = events // 100 if malformed is None else malformed
    if not 0 <= n_bad <= events:
        console.print("[red]--malformed must be between 0 and --events[/red]")
        return 2

    # A recorded stack keeps its ports and broker; otherwise start one as asked.
    if (state / STACK_JSON).exists():
        stack = LocalStack.from_state(state)
    else:
        stack = LocalStack(state, broker, *ports, alertmanager_port=alertmanager_port)  # type: ignore[arg-type]
    try:
        with console.status("bringing up the local stack (broker, ClickHouse, worker)..."):
            status = stack.up()
    except (StackError, BrokerError, ClickHouseServerError, AlertmanagerError) as exc:
        console.print(f"the local stack did not come up: {exc}", style="red", markup=False)
        console.print("(`auditstream down` stops whatever did start)")
        return 1
    settings = stack.settings
    console.print(
        f"stack: broker {status['broker']['bootstrap']} ({status['broker']['kind']}), "
        f"ClickHouse {status['clickhouse']['http']}, worker pid {status['worker']['pid']}",
        soft_wrap=True,
    )

    # Governance hook (docs/governance.md): the demo registry first, so the workload is joined
    # with it; its compliant + violating traffic after the workload (see below).
    governance = True
    try:
        from auditstream.governance.demo import sync_demo_registry

        console.print(sync_demo_registry(settings), markup=False, soft_wrap=True)
    except Exception as exc:  # the governance part must not stop the pipeline demo
        governance = False
        console.print(f"governance demo skipped: {exc}", style="yellow", markup=False)

    run_id = secrets.token_hex(4)
    # The workload is hours of history that ends now: analysts' "last N hours" queries see it,
    # and the governance and alert traffic stamped now comes after it in event time.
    records = generate_records(events, seed, n_bad, end=datetime.now(UTC), run_id=run_id)
    n_valid = events - n_bad
    console.print(
        f"run {run_id}: {n_valid:,} events from 6 agents + {n_bad:,} malformed records "
        f"→ {settings.topics.events}"
    )

    from confluent_kafka import Producer

    bad_offsets: list[tuple[int, int]] = []
    bad_failures: list[str] = []

    def on_raw(err: Any, msg: Any) -> None:
        if err is None:
            bad_offsets.append((msg.partition(), msg.offset()))
        else:
            bad_failures.append(str(err))

    raw = Producer(producer_config(settings))
    t0 = time.perf_counter()
    with _progress(console) as progress, AuditClient(settings, block_timeout=30.0) as client:
        task = progress.add_task("sending", total=len(records), rate="")
        for i, record in enumerate(records, start=1):
            if record.event is not None:
                try:
                    client.emit(record.event)
                except BufferFull as exc:  # the broker stopped answering mid-run
                    console.print(f"sending stopped: {exc}", style="red", markup=False)
                    return 1
            else:
                raw.produce(
                    settings.topics.events, record.value, record.key, headers=HEADERS,
                    on_delivery=on_raw,
                )  # fmt: skip
                raw.poll(0)
            if rate > 0:
                ahead = i / rate - (time.perf_counter() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            if i % 250 == 0 or i == len(records):
                elapsed = time.perf_counter() - t0
                progress.update(task, completed=i, rate=f"{i / elapsed:,.0f} ev/s")
        try:
            client.flush(60)
        except AuditClientError as exc:  # DeliveryError / FlushTimeout: say so, stop here
            console.print(str(exc), style="red", markup=False)
            return 1
        raw.flush(60)
        send_s = time.perf_counter() - t0
    if bad_failures:
        console.print(f"[red]{len(bad_failures)} malformed records not delivered[/red]")
        return 1
    console.print(f"all {events:,} records acknowledged by the broker after {send_s:.2f}s")

    ok = _wait_for_rows(console, settings, run_id, n_valid, bad_offsets, wait)
    if governance:
        try:
            from auditstream.governance.demo import run_governance_traffic

            with AuditClient(settings) as gov_client:
                for line in run_governance_traffic(settings, gov_client):
                    console.print(line, markup=False, soft_wrap=True)
        except Exception as exc:
            console.print(f"governance demo skipped: {exc}", style="yellow", markup=False)
    # Alerts hook (docs/alerts.md): an error spike on one agent, a complaint burst on another.
    try:
        from auditstream.alerts.inject import run_alerts_demo

        for line in run_alerts_demo(settings):
            console.print(line, markup=False, soft_wrap=True)
    except Exception as exc:  # the alerts part must not stop the pipeline demo
        console.print(f"alerts demo skipped: {exc}", style="yellow", markup=False)
    _summary(console, settings, stack, run_id, bad_offsets)
    return 0 if ok else 1


# Only our own values reach these SQL snippets (a hex run id, the configured topic name and
# integer offsets); the topic is checked below because it comes from the environment.
def _run_filter(run_id: str) -> str:
    return f"startsWith(source, 'urn:auditstream:run:{run_id}:')"


def _dead_filter(topic: str, offsets: list[tuple[int, int]]) -> str:
    if "'" in topic or "\\" in topic:
        raise ValueError(f"unexpected characters in topic name {topic!r}")
    pairs = ", ".join(f"({int(p)}, {int(o)})" for p, o in offsets) or "(0, 0)"
    return f"kafka_topic = '{topic}' AND (kafka_partition, kafka_offset) IN ({pairs})"


def _wait_for_rows(
    console: Console,
    settings: Any,
    run_id: str,
    n_valid: int,
    bad_offsets: list[tuple[int, int]],
    wait: float,
) -> bool:
    from auditstream.stream.clickhouse import get_client

    ch = get_client(settings)
    topic = settings.topics.events
    q_events = f"SELECT uniqExact(event_id) FROM events WHERE {_run_filter(run_id)}"
    q_dead = (
        "SELECT count() FROM (SELECT DISTINCT kafka_partition, kafka_offset FROM dead_letters "
        f"WHERE {_dead_filter(topic, bad_offsets)})"
    )
    deadline = time.monotonic() + wait
    try:
        with _progress(console) as progress:
            t_ev = progress.add_task("events in ClickHouse", total=n_valid, rate="")
            t_dl = progress.add_task("dead letters in ClickHouse", total=len(bad_offsets), rate="")
            while True:
                got_ev = int(ch.query(q_events).result_rows[0][0])
                got_dl = int(ch.query(q_dead).result_rows[0][0])
                progress.update(t_ev, completed=got_ev)
                progress.update(t_dl, completed=got_dl)
                if got_ev >= n_valid and got_dl >= len(bad_offsets):
                    return True
                if time.monotonic() >= deadline:
                    console.print(
                        f"[red]only {got_ev:,}/{n_valid:,} events and {got_dl}/{len(bad_offsets)}"
                        f" dead letters after {wait:.0f}s: is the worker running? "
                        "`auditstream status`, and its log[/red]"
                    )
                    return False
                time.sleep(0.5)
    finally:
        ch.close()


def _summary(
    console: Console, settings: Any, stack: Any, run_id: str, bad_offsets: list[tuple[int, int]]
) -> None:
    from auditstream.stream.clickhouse import get_client, list_queries, parse_url

    ch = get_client(settings)
    try:
        by_type = ch.query(
            "SELECT event_type, count(), countIf(is_error = 1), sum(total_tokens) FROM events "
            f"WHERE {_run_filter(run_id)} GROUP BY event_type ORDER BY count() DESC"
        ).result_rows
        by_reason = ch.query(
            "SELECT reason_field, any(reason), count() FROM (SELECT * FROM dead_letters FINAL "
            f"WHERE {_dead_filter(settings.topics.events, bad_offsets)}) "
            "GROUP BY reason_field ORDER BY count() DESC"
        ).result_rows
    finally:
        ch.close()
    table = Table(title=f"run {run_id}: events in ClickHouse")
    for column in ("type", "rows", "errors", "tokens"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for event_type, rows, errors, tokens in by_type:
        table.add_row(str(event_type), f"{rows:,}", f"{errors:,}", f"{tokens:,}")
    console.print(table)
    dead = Table(title=f"run {run_id}: dead letters by offending field")
    dead.add_column("field")
    dead.add_column("example reason", overflow="ellipsis", max_width=60)
    dead.add_column("rows", justify="right")
    for reason_field, reason, rows in by_reason:
        dead.add_row(str(reason_field), str(reason), f"{rows:,}")
    console.print(dead)

    db = parse_url(settings.clickhouse_url).database
    http = stack.clickhouse.http_url
    # Prefer an events query for the hint; any named query works the same way.
    queries = sorted(list_queries(), key=lambda q: (not q.startswith(("events", "agent")), q))
    sql = f"SELECT agent_id, event_type, count() FROM {db}.events GROUP BY 1, 2 ORDER BY 1, 2"
    console.print("\n[bold]Query it[/bold] (the worker keeps running; `auditstream down` stops it)")
    hints = [f"source {stack.state_dir}/stack.env"]
    if queries:
        hints.append(f"auditstream query {queries[0]}    # all: {', '.join(queries)}")
    hints.append(f"curl '{http}/' --data-binary \"{sql} FORMAT PrettyCompact\"")
    if shutil.which("clickhouse-client"):
        hints.append(
            f"clickhouse-client --port {stack.config.tcp_port} --query "
            f'"SELECT reason_field, count() FROM {db}.dead_letters GROUP BY 1"'
        )
    for hint in hints:
        console.print("  " + hint, soft_wrap=True, highlight=False, markup=False)
