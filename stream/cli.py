"""Commands of the stream area: ``auditstream worker`` and ``auditstream bench pipeline``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Annotated

import typer

PLUGINS_ENV = "AUDITSTREAM_STREAM_PLUGINS"


def _plugins_from(value: str | None) -> tuple[str, ...] | None:
    """``None`` → default plugins; ``"none"`` → no plugins; ``"a,b"`` → those modules."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return ()
    return tuple(p.strip() for p in value.split(",") if p.strip())


def worker(
    loglevel: Annotated[
        str, typer.Option("--loglevel", "-l", help="debug, info, warning, error")
    ] = "info",
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=1,
            help="Worker processes (one faust worker per core; they share the consumer group).",
        ),
    ] = 1,
    plugins: Annotated[
        str | None,
        typer.Option(
            envvar=PLUGINS_ENV,
            help="Comma-separated plugin modules instead of the default ones ('none' for none).",
        ),
    ] = None,
) -> None:
    """Run the stream worker (faust): events topic → validate → enrich → ClickHouse.

    Configured from the environment (AUDITSTREAM_*); SIGTERM or Ctrl-C stops it cleanly
    (the batch in flight is either stored and acked, or left for redelivery).
    """
    if workers > 1:
        raise typer.Exit(_run_many(workers, loglevel, plugins))
    import logging

    from auditstream.settings import Settings
    from auditstream.stream.app import PLUGINS, create_app

    settings = Settings.from_env()
    selected = _plugins_from(plugins)
    app = create_app(settings, plugins=PLUGINS if selected is None else selected)
    logging.getLogger(__name__).info("worker settings: %s", settings.redacted())
    if settings.metrics_port is not None:
        from auditstream.stream.metrics import serve_metrics

        serve_metrics(app.stream_context.stats, settings.metrics_port, settings.metrics_addr)
        logging.getLogger(__name__).info(
            "metrics on http://%s:%d/metrics", settings.metrics_addr, settings.metrics_port
        )
    from faust.worker import Worker

    # faust's Worker installs SIGTERM/SIGINT handlers that stop the app gracefully.
    w = Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # No terminal spinner: at level >= WARNING it sets the root logger to DEBUG so that every
    # (aiokafka per-frame) debug record spins it, which cost ~7% of the worker's CPU.
    w.spinner = None
    w.execute_from_commandline()


def _run_many(n: int, loglevel: str, plugins: str | None) -> int:
    """Supervise ``n`` single-process workers; forward SIGTERM/SIGINT; exit with the worst code."""
    cmd = [sys.executable, "-m", "auditstream.cli", "worker", "-l", loglevel]
    env = dict(os.environ)
    if plugins is not None:
        env[PLUGINS_ENV] = plugins
    base_port = env.get("AUDITSTREAM_METRICS_PORT")
    procs = []
    for i in range(n):
        if base_port:  # one endpoint per process
            env["AUDITSTREAM_METRICS_PORT"] = str(int(base_port) + i)
        procs.append(subprocess.Popen(cmd, env=dict(env)))

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [p.wait() for p in procs]
    return max(codes, key=abs)


def bench_pipeline(
    events: Annotated[int, typer.Option("--events", "-n", min=1000)] = 100_000,
    as_json: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False,
    broker: Annotated[str, typer.Option(help="noida or tansu (local stack only).")] = "noida",
    reuse: Annotated[
        bool,
        typer.Option(help="Use the running stack from AUDITSTREAM_* instead of starting one."),
    ] = False,
    plugins: Annotated[
        str, typer.Option(help="Worker plugins: 'none' (the sink alone) or a module list.")
    ] = "none",
    keep: Annotated[bool, typer.Option(help="Keep the temporary state directory.")] = False,
) -> None:
    """End-to-end events/s through the worker into ClickHouse vs a bare consume loop."""
    from auditstream.stream.bench import run_pipeline_bench

    if broker not in ("noida", "tansu"):
        raise typer.BadParameter("broker must be noida or tansu")
    run_pipeline_bench(
        events=events, as_json=as_json, broker=broker, reuse=reuse, plugins=plugins, keep=keep
    )


def bench_faust_ceiling(
    events: Annotated[int, typer.Option("--events", "-n", min=10_000)] = 50_000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The faust framework's own limit here: an ack-only agent (no decode, no ClickHouse)."""
    import json

    from auditstream.stream.ceiling import run_ceiling

    rate, per_cpu = run_ceiling(events)
    if as_json:
        print(json.dumps({"events_per_s": round(rate), "events_per_cpu_s": round(per_cpu)}))
    else:
        print(f"ack-only faust agent: {rate:,.0f} events/s, {per_cpu:,.0f} events per CPU-second")


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    app.command("worker")(worker)
    groups["bench"].command("pipeline")(bench_pipeline)
    groups["bench"].command("faust-ceiling")(bench_faust_ceiling)
