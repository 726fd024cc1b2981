"""On-call commands: ``auditstream alerts ...``, ``auditstream incidents ...``, ``bench alerts``."""

from __future__ import annotations

import json
from typing import Any

import typer

alerts_app = typer.Typer(
    help="Alerts: what is firing, and whether on-call was told.", no_args_is_help=True
)
incidents_app = typer.Typer(
    help="Incidents: list, acknowledge, resolve, show the timeline and the events behind one.",
    no_args_is_help=True,
)


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(incidents_app, name="incidents")
    groups["bench"].command("alerts")(bench_alerts)
    groups["bench"].command("alert-latency")(bench_alert_latency)


def _client() -> Any:
    from auditstream.settings import Settings
    from auditstream.stream.clickhouse import get_client

    return get_client(Settings.from_env())


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def _print_table(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    if as_json:
        for r in rows:
            typer.echo(json.dumps({c: r.get(c) for c in columns}, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    Console().print(table)


def _run(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    from auditstream.stream.clickhouse import run_query

    return _rows(run_query(_client(), name, params))


@alerts_app.command("list")
def alerts_list(
    all_: bool = typer.Option(False, "--all", help="Also resolved alerts of the last --hours."),
    hours: int = typer.Option(24, help="With --all: how far back."),
    limit: int = typer.Option(100),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Alerts firing now (or, with --all, every alert episode of the last hours)."""
    if all_:
        rows = _run("alerts_recent", {"hours": hours, "limit": limit})
        cols = [
            "starts_at",
            "ends_at",
            "status",
            "alertname",
            "agent_id",
            "severity",
            "incident_id",
            "summary",
        ]
    else:
        rows = _run("alerts_open", {"limit": limit})
        cols = [
            "starts_at",
            "alertname",
            "agent_id",
            "severity",
            "group_key",
            "incident_id",
            "summary",
        ]
    _print_table(rows, cols, as_json)
    if not as_json:
        typer.echo(f"{len(rows)} alert(s)")


@alerts_app.command("deliveries")
def alerts_deliveries(
    hours: int = typer.Option(24),
    limit: int = typer.Option(100),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Failed deliveries to receivers (exit code 1 when there are any)."""
    rows = _run("alerts_delivery_failures", {"hours": hours, "limit": limit})
    cols = [
        "attempted_at",
        "receiver",
        "receiver_type",
        "action",
        "http_status",
        "attempts",
        "incident_id",
        "error",
    ]
    _print_table(rows, cols, as_json)
    if not as_json:
        typer.echo(
            f"{len(rows)} failed deliver{'y' if len(rows) == 1 else 'ies'} in the last {hours} h"
        )
    if rows:
        raise typer.Exit(1)


@incidents_app.command("list")
def incidents_list(
    state: str = typer.Option("active", help="active | open | acknowledged | resolved | all"),
    limit: int = typer.Option(100),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Incidents with their state and who acknowledged / resolved them."""
    if state not in ("active", "open", "acknowledged", "resolved", "all"):
        raise typer.BadParameter("state must be active, open, acknowledged, resolved or all")
    rows = _run("incidents_list", {"state": state, "limit": limit})
    cols = [
        "incident_id",
        "state",
        "alertname",
        "agent_id",
        "severity",
        "opened_at",
        "acked_by",
        "resolved_by",
    ]
    _print_table(rows, cols, as_json)


def _find(incident_id: str) -> dict[str, Any]:
    rows = _run("incidents_list", {"state": "all", "limit": 1_000_000})
    for r in rows:
        if r["incident_id"] == incident_id:
            return r
    typer.echo(f"no incident {incident_id!r}", err=True)
    raise typer.Exit(2)


def _act(incident_id: str, action: str, by: str, note: str) -> None:
    from auditstream.alerts.store import human_action, insert_incidents

    if not by.strip():
        raise typer.BadParameter("--by must name who acts")
    inc = _find(incident_id)
    fp_rows = (
        _client()
        .query(
            "SELECT any(fingerprint) FROM incidents WHERE incident_id = {i:String}",
            parameters={"i": incident_id},
        )
        .result_rows
    )
    inc["fingerprint"] = fp_rows[0][0] if fp_rows else ""
    ev = human_action(inc, action, by.strip(), note)
    insert_incidents(_client(), [ev])
    typer.echo(f"{incident_id}: {action} by {ev.by}")
    _notify(inc, action)


def _notify(inc: dict[str, Any], action: str) -> None:
    """Tell PagerDuty/Slack/webhook receivers about a human ack/resolve (best effort, recorded)."""
    import asyncio

    from auditstream.alerts.delivery import Deliverer, load_config
    from auditstream.alerts.store import insert_deliveries

    config = load_config()
    if not config.receivers:
        return
    rows = (
        _client()
        .query(
            "SELECT argMax(fingerprint, version), argMax(alertname, version),"
            " argMax(agent_id, version),"
            " argMax(severity, version), argMax(labels, version), argMax(annotations, version),"
            " argMax(starts_at, version), argMax(group_key, version), max(version)"
            " FROM alerts WHERE incident_id = {i:String}",
            parameters={"i": inc["incident_id"]},
        )
        .result_rows
    )
    if not rows or not rows[0][0]:
        return
    from datetime import UTC, datetime

    from auditstream.alerts.model import Alert

    fp, name, agent, sev, labels, ann, starts, group, version = rows[0]
    alert = Alert(
        fingerprint=fp,
        alertname=name,
        agent_id=agent or None,
        severity=sev,
        labels=dict(labels),
        annotations=dict(ann),
        status="firing",
        starts_at=starts.replace(tzinfo=UTC) if starts.tzinfo is None else starts,
        updated_at=datetime.now(UTC),
        incident_id=inc["incident_id"],
        group_key=group,
        version=int(version),
    )
    act = "acknowledge" if action == "acknowledged" else "resolve"

    async def go() -> list[Any]:
        d = Deliverer(config)
        try:
            # Only PagerDuty/Slack/webhook: Alertmanager keeps following the condition itself.
            d.config = type(config)(
                tuple(r for r in config.receivers if r.type != "alertmanager"), config.retry
            )
            return await d.deliver(alert, act)  # type: ignore[arg-type]
        finally:
            await d.aclose()

    records = asyncio.run(go())
    insert_deliveries(_client(), records)
    for r in records:
        typer.echo(f"  {r.receiver}: {r.outcome}" + (f" ({r.error})" if r.error else ""))


@incidents_app.command("ack")
def incidents_ack(
    incident_id: str,
    by: str = typer.Option(..., "--by", help="Who acknowledges (recorded)."),
    note: str = typer.Option("", help="Optional note."),
) -> None:
    """Acknowledge an incident (recorded with who and when; PagerDuty is told)."""
    _act(incident_id, "acknowledged", by, note)


@incidents_app.command("resolve")
def incidents_resolve(
    incident_id: str,
    by: str = typer.Option(..., "--by", help="Who resolves (recorded)."),
    note: str = typer.Option("", help="Optional note."),
) -> None:
    """Resolve an incident by hand (the alert itself still resolves when its condition clears)."""
    _act(incident_id, "resolved", by, note)


@incidents_app.command("show")
def incidents_show(incident_id: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """An incident's timeline, its alert's numbers, and the events behind it."""
    inc = _find(incident_id)
    timeline = _run("incidents_timeline", {"incident": incident_id})
    client = _client()
    alert_rows = client.query(
        "SELECT version, status, updated_at, annotations FROM alerts WHERE incident_id = {i:String}"
        " ORDER BY version",
        parameters={"i": incident_id},
    ).result_rows
    annotations = dict(alert_rows[-1][3]) if alert_rows else {}
    query = annotations.get("events_query", "")
    events: list[dict[str, Any]] = []
    if query:
        events = _rows(client.query(query))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "incident": inc,
                    "timeline": timeline,
                    "annotations": annotations,
                    "events": events,
                },
                default=str,
            )
        )
        return
    typer.echo(
        f"Incident {incident_id}: {inc['alertname']} on {inc['agent_id'] or '-'}"
        f" ({inc['severity']})"
    )
    typer.echo(f"  state: {inc['state']}   group: {inc['group_key']}")
    for k in ("summary", "value", "threshold", "score", "window_s", "flapping"):
        if k in annotations:
            typer.echo(f"  {k}: {annotations[k]}")
    typer.echo("Timeline:")
    for row in timeline:
        typer.echo(
            f"  {row['at']}  {row['action']:<13} by {row['by']}"
            + (f"  {row['note']}" if row["note"] else "")
        )
    typer.echo(f"Events behind it ({len(events)} shown):")
    if query:
        typer.echo(f"  query: {query}")
    for e in events[:50]:
        typer.echo("  " + "  ".join(str(v) for v in e.values()))


@incidents_app.command("mtta")
def incidents_mtta(
    days: int = typer.Option(30), as_json: bool = typer.Option(False, "--json")
) -> None:
    """MTTA / MTTR per alert name and severity (from the incidents lifecycle rows)."""
    rows = _run("incidents_mtta_mttr", {"days": days})
    cols = [
        "alertname",
        "severity",
        "incidents",
        "acknowledged",
        "mtta_s",
        "mttr_s",
        "median_ttr_s",
    ]
    _print_table(rows, cols, as_json)


@alerts_app.command("inject")
def alerts_inject(
    seed: int = typer.Option(0, help="Traffic seed."),
    live_s: float = typer.Option(
        0.0, help="After the backdated part, keep producing live traffic for this many seconds."
    ),
) -> None:
    """Demo: produce 45 min of traffic for 4 agents with an error spike on `demo-spiky` and a
    complaint burst on `demo-complained` (5 min ago, event time) to the events topic."""
    from auditstream.alerts.inject import produce_demo_incidents
    from auditstream.settings import Settings

    try:
        typer.echo(produce_demo_incidents(Settings.from_env(), seed=seed, live_s=live_s))
    except RuntimeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(3) from None


def bench_alerts(
    seed: int = typer.Option(1, help="Workload seed (agents, timings, incident sizes)."),
    agents: int = typer.Option(40, help="Number of simulated agents."),
    hours: float = typer.Option(12.0, help="Simulated hours of traffic."),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line of the figures."),
    all_signals: bool = typer.Option(
        False,
        "--all-signals",
        help="Also run the latency, token and per-event outlier signals (nothing injected for "
        "them: their alerts are all false, which is what this measures).",
    ),
) -> None:
    """Recall, precision, detection delay and false alerts per agent-day against injected truth."""
    import time

    from auditstream.alerts.bench import KINDS, make_workload, run
    from auditstream.alerts.signals import SignalConfig

    started = time.perf_counter()
    wl = make_workload(seed, agents, hours)
    results = run(wl, SignalConfig() if all_signals else None)
    elapsed = time.perf_counter() - started
    agent_days = len(wl.agents) * wl.hours / 24.0
    typer.echo(
        f"alerts bench: seed {seed}, {len(wl.agents)} agents × {wl.hours:g} h "
        f"({agent_days:g} agent-days), {len(wl.observations)} events, "
        f"{len(wl.injections)} injected incidents, {elapsed:.1f} s"
    )
    figures: dict[str, Any] = {}
    for name, res in results.items():
        kind = KINDS.get(name, name)
        figures[kind] = res.summary(agent_days)
        f = figures[kind]
        typer.echo(
            f"  {kind:<16} injected {res.injected:>3}  detected {res.detected:>3}"
            f"  alerts {res.alerts:>3}  recall {_fmt(f['recall'])}"
            f"  precision {_fmt(f['precision'])}  median delay {_fmt(f['median_delay_s'], 's')}"
            f"  false/agent-day {f['false_per_agent_day']:.3f}"
        )
    if as_json:
        typer.echo(json.dumps(figures))


def bench_alert_latency(
    trials: int = typer.Option(5, min=1, max=50, help="Fresh agents to burst, one at a time."),
    as_json: bool = typer.Option(False, "--json", help="End with one JSON line of the figures."),
    keep: bool = typer.Option(False, help="Keep the temporary stack's folder (logs)."),
) -> None:
    """Wall time from an error burst to its alert in a real Alertmanager (temporary stack)."""
    from auditstream.alerts.latency import run_latency_bench

    try:
        figures = run_latency_bench(trials=trials, as_json=as_json, keep=keep)
    except RuntimeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(3) from None
    if figures.missed:
        raise typer.Exit(1)


def _fmt(x: float | None, unit: str = "") -> str:
    return "n/a" if x is None else f"{x:.3g}{unit}"
