"""Commands of the deploy area: up, down, status, topics, db migrate, query."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

StateDir = Annotated[
    str | None,
    typer.Option(
        "--state-dir",
        help="Where the stack keeps data, logs and pids [$AUDITSTREAM_STATE_DIR or .state]",
    ),
]


def _state_dir(value: str | None) -> str:
    from auditstream.settings import Settings

    return value or Settings.from_env().state_dir


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command()
    def up(
        broker: Annotated[str, typer.Option(help="Dev broker: noida or tansu")] = "noida",
        kafka_port: Annotated[int, typer.Option(help="Broker port (127.0.0.1)")] = 19092,
        http_port: Annotated[int, typer.Option(help="ClickHouse HTTP port")] = 18123,
        tcp_port: Annotated[int, typer.Option(help="ClickHouse native TCP port")] = 19000,
        state_dir: StateDir = None,
        no_worker: Annotated[
            bool, typer.Option("--no-worker", help="Do not start the worker")
        ] = False,
        alertmanager_port: Annotated[
            int, typer.Option(help="Port of the local Prometheus Alertmanager (0: none)")
        ] = 19093,
    ) -> None:
        """Start the local stack: dev broker, ClickHouse server, Alertmanager, topics,
        migrations, worker."""
        from auditstream.deploy.alertmanager import AlertmanagerError
        from auditstream.deploy.broker import BROKER_KINDS, BrokerError
        from auditstream.deploy.clickhouse_server import ClickHouseServerError
        from auditstream.deploy.local import LocalStack, StackError

        if broker not in BROKER_KINDS:
            _fail(f"--broker must be one of {', '.join(BROKER_KINDS)}")
        stack = LocalStack(
            _state_dir(state_dir), broker, kafka_port, http_port, tcp_port,  # type: ignore[arg-type]
            alertmanager_port=alertmanager_port or None,
        )  # fmt: skip
        try:
            status = stack.up(start_worker=not no_worker)
        except (StackError, BrokerError, ClickHouseServerError, AlertmanagerError) as exc:
            _fail(f"{exc}\n(run `auditstream down` to stop what did start)")
        _print_status(status)
        typer.echo(
            f"\nPoint other commands at it:  source {stack.state_dir}/stack.env\n"
            f"Query over HTTP:  curl '{status['clickhouse']['http']}/?query=SELECT+1'\n"
            "Stop it:  auditstream down"
        )

    @app.command()
    def down(state_dir: StateDir = None) -> None:
        """Stop the local stack (worker first, then broker, then ClickHouse), by PID."""
        from auditstream.deploy.local import LocalStack, StackError

        try:
            LocalStack.from_state(_state_dir(state_dir)).down()
        except StackError as exc:
            _fail(str(exc))
        typer.echo("local stack stopped")

    @app.command()
    def status(
        state_dir: StateDir = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    ) -> None:
        """Show the local stack's processes and whether each answers. Exit 1 if a part is down."""
        from auditstream.deploy.local import LocalStack, StackError

        try:
            st = LocalStack.from_state(_state_dir(state_dir)).status()
        except StackError as exc:
            _fail(str(exc))
        if as_json:
            typer.echo(json.dumps(st))
        else:
            _print_status(st)
        healthy = st["broker"]["ready"] and st["clickhouse"]["ready"]
        raise typer.Exit(0 if healthy else 1)

    @app.command()
    def topics() -> None:
        """Create the pipeline's Kafka topics if missing (explicit partitions, compaction)."""
        from auditstream.deploy.topics import ensure_topics, topic_specs
        from auditstream.settings import Settings

        settings = Settings.from_env()
        try:
            created = ensure_topics(settings)
        except Exception as exc:  # KafkaException, timeout, partition mismatch
            _fail(f"cannot create topics on {settings.kafka_bootstrap}: {exc}")
        for spec in topic_specs(settings):
            state = "created" if spec.name in created else "exists"
            extra = " compact" if spec.config.get("cleanup.policy") == "compact" else ""
            typer.echo(f"{state:8} {spec.name} ({spec.partitions} partitions{extra})")

    @groups["bench"].command("stack")
    def bench_stack(
        rows: Annotated[int, typer.Option(help="Rows for the insert test")] = 1_000_000,
        as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line")] = False,
    ) -> None:
        """Local-stack figures: server start/restart, broker start, HTTP insert/scan rates."""
        figures = measure_stack(rows)
        for key, value in figures.items():
            typer.echo(f"{key:28} {value:,.3f}")
        if as_json:
            typer.echo(json.dumps(figures))

    @groups["db"].command("migrate")
    def db_migrate() -> None:
        """Create the database and apply pending sql/migrations (idempotent)."""
        from auditstream.settings import Settings, redact_url
        from auditstream.stream.clickhouse import (
            ClickHouseConfigError,
            MigrationError,
            migrate_settings,
        )

        settings = Settings.from_env()
        try:
            applied = migrate_settings(settings)
        except (MigrationError, ClickHouseConfigError) as exc:
            _fail(str(exc))
        except Exception as exc:  # connection refused, auth, ...
            _fail(f"cannot migrate {redact_url(settings.clickhouse_url)}: {exc}")
        if not applied:
            typer.echo("database is up to date")
        for m in applied:
            note = f" (skipped on this server: {'; '.join(m.skipped)})" if m.skipped else ""
            typer.echo(f"applied {m.version:04d}_{m.name}{note}")

    @app.command()
    def query(
        name: Annotated[
            str | None, typer.Argument(help="Query name (sql/queries/NAME.sql)")
        ] = None,
        param: Annotated[
            list[str] | None, typer.Option("--param", "-p", help="k=v, repeatable")
        ] = None,
        fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv")] = "table",
        list_: Annotated[bool, typer.Option("--list", help="List the named queries")] = False,
    ) -> None:
        """Run an analysts' named query against AUDITSTREAM_CLICKHOUSE_URL."""
        from auditstream.settings import Settings, redact_url
        from auditstream.stream import clickhouse as ch

        if list_ or name is None:
            _print_query_list()
            return
        if fmt not in ("table", "json", "csv"):
            _fail("--format must be table, json or csv")
        try:
            params = parse_params(param or [])
            sql = ch.load_query(name)
            ch.bind_parameters(sql, params)
        except (ch.QueryError, ValueError) as exc:
            _fail(str(exc))
        settings = Settings.from_env()
        try:
            client = ch.get_client(settings)
            result = ch.run_query(client, name, params)
        except ch.QueryError as exc:
            _fail(str(exc))
        except Exception as exc:
            _fail(f"query {name!r} on {redact_url(settings.clickhouse_url)} failed: {exc}")
        _print_result(list(result.column_names), result.result_rows, fmt)


def measure_stack(rows: int) -> dict[str, float]:
    """Start throw-away servers on free ports in a temp dir and time them (not a test)."""
    import tempfile
    import time

    import pyarrow as pa

    from auditstream.deploy.broker import DevBroker
    from auditstream.deploy.clickhouse_server import ClickHouseServer
    from auditstream.deploy.procs import free_port

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="auditstream-bench-") as tmp:
        server = ClickHouseServer(f"{tmp}/ch", free_port(), free_port())
        try:
            t0 = time.perf_counter()
            server.start()
            out["clickhouse_start_s"] = time.perf_counter() - t0
            server.stop()
            t0 = time.perf_counter()
            server.start()
            out["clickhouse_restart_s"] = time.perf_counter() - t0
            import clickhouse_connect

            client = clickhouse_connect.get_client(host="127.0.0.1", port=server.http_port)
            client.command(
                "CREATE TABLE b (id UInt64, agent String, v Float64) ENGINE = MergeTree ORDER BY id"
            )
            table = pa.table(
                {
                    "id": pa.array(range(rows), pa.uint64()),
                    "agent": pa.array([f"agent-{i % 50}" for i in range(rows)]),
                    "v": pa.array([i * 0.5 for i in range(rows)], pa.float64()),
                }
            )
            t0 = time.perf_counter()
            client.insert_arrow("b", table)
            out["http_insert_arrow_rows_per_s"] = rows / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            groups_ = client.query("SELECT agent, count(), avg(v) FROM b GROUP BY agent")
            if len(groups_.result_rows) != min(rows, 50):
                raise RuntimeError("bench: unexpected group-by result")
            out["http_groupby_rows_per_s"] = rows / (time.perf_counter() - t0)
            client.close()
        finally:
            server.stop()
        for kind in ("noida", "tansu"):
            broker = DevBroker(kind, free_port(), f"{tmp}/{kind}")  # type: ignore[arg-type]
            try:
                t0 = time.perf_counter()
                broker.start()
                out[f"{kind}_start_s"] = time.perf_counter() - t0
            finally:
                broker.stop()
    return out


def parse_params(items: list[str]) -> dict[str, str]:
    """``["agent=a1", "hours=24"]`` → dict; values stay strings (the server parses by type)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def _print_query_list() -> None:
    from rich.console import Console
    from rich.table import Table

    from auditstream.stream import clickhouse as ch

    table = Table("query", "parameters", "description")
    for q in ch.list_queries():
        sql = ch.load_query(q)
        params = ", ".join(f"{k}:{t}" for k, t in ch.query_parameters(sql).items())
        table.add_row(q, params, ch.query_description(sql))
    Console().print(table)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _print_result(columns: list[str], rows: list[Any], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            sys.stdout.write(
                json.dumps(dict(zip(columns, _jsonable(list(row)), strict=True))) + "\n"
            )
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([_jsonable(list(r)) for r in rows])
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*columns)
        for row in rows:
            table.add_row(*(str(_jsonable(v)) for v in row))
        Console().print(table)
        Console(stderr=True).print(f"{len(rows)} row(s)")


def _print_status(st: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def mark(ok: bool) -> str:
        return "[green]up[/green]" if ok else "[red]down[/red]"

    table = Table("part", "pid", "state", "where")
    b, c, w = st["broker"], st["clickhouse"], st["worker"]
    table.add_row(f"broker ({b['kind']})", str(b["pid"] or "-"), mark(b["ready"]), b["bootstrap"])
    table.add_row(
        "clickhouse", str(c["pid"] or "-"), mark(c["ready"]),
        f"{c['http']} (tcp {c['tcp_port']}, db {c['database']})",
    )  # fmt: skip
    table.add_row("worker", str(w["pid"] or "-"), mark(w["running"]), w["log"])
    am = st.get("alertmanager")
    if am:
        table.add_row("alertmanager", str(am["pid"] or "-"), mark(am["ready"]), am["url"])
    Console().print(table)
