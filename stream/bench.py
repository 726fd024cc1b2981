"""``auditstream bench pipeline``: end-to-end events/s through the worker into ClickHouse.

One run, one broker, one topic:

1. start a private local stack (dev broker + ClickHouse server) in a temporary directory, or,
   with ``--reuse``, use the servers the ``AUDITSTREAM_*`` environment points at (a fresh topic
   prefix and database either way, dropped afterwards);
2. produce N realistic workload events (the SDK engineer's seeded workload);
3. bare baseline: a plain confluent-kafka consumer reads the N records (fresh group);
4. the real thing: start ``auditstream worker`` as a subprocess and time from the first row in
   ClickHouse to the N-th (the steady rate; start-up and group join are excluded, and reported
   separately), and read the worker's CPU seconds from /proc (events per CPU-second ≈ per core);
5. the SDK's cost per ``AuditClient.emit`` on the caller's thread.

A figure, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auditstream.settings import Settings, Topics


@dataclass
class PipelineFigures:
    events: int
    events_per_s: float
    bare_consume_per_s: float
    emit_us: float | None
    worker_cpu_s: float | None
    events_per_cpu_s: float | None
    time_to_first_row_s: float
    total_s: float

    @property
    def ratio(self) -> float:
        return self.events_per_s / self.bare_consume_per_s if self.bare_consume_per_s else 0.0

    def summary_json(self) -> str:
        return json.dumps(
            {
                "events_per_s": round(self.events_per_s, 1),
                "bare_consume_per_s": round(self.bare_consume_per_s, 1),
                "ratio": round(self.ratio, 4),
                "emit_us": None if self.emit_us is None else round(self.emit_us, 3),
            }
        )


def _produce(settings: Settings, pairs: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        settings.kafka_config(
            **{"linger.ms": 20, "acks": "all", "enable.idempotence": True, "log_level": 0}
        )
    )
    failures: list[str] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    topic = settings.topics.events
    for key, value in pairs:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120) != 0 or failures:
        raise RuntimeError(f"producing the workload failed: {failures[:3]}")


def bare_consume(settings: Settings, n: int, timeout_s: float = 300.0) -> float:
    """Records/s of a plain confluent-kafka poll loop over the events topic (fresh group)."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"bench-bare-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "log_level": 0,
            }
        )
    )
    consumer.subscribe([settings.topics.events])
    seen = first = 0
    start = None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < n and time.monotonic() < deadline:
            batch = consumer.consume(10_000, 0.5)
            got = sum(1 for m in batch if m.error() is None)
            if got and start is None:
                # Clock starts after the first batch (group join excluded); it is not counted.
                start, first = time.perf_counter(), got
            seen += got
        end = time.perf_counter()
    finally:
        consumer.close()
    if seen < n or start is None:
        raise RuntimeError(f"bare consumer saw {seen} of {n} records")
    return (seen - first) / max(end - start, 1e-9)


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def _rows(client: Any) -> int:
    return int(client.command("SELECT count() FROM events"))


def run_worker_phase(
    settings: Settings, env: dict[str, str], n: int, log_path: Path, timeout_s: float = 600.0
) -> tuple[float, float, float | None, float, float | None]:
    """(steady events/s, time to first row, worker CPU s, total s, steady CPU s per event)."""
    from auditstream.stream.clickhouse import get_client

    client = get_client(settings)
    log = log_path.open("ab")
    t_spawn = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "auditstream.cli", "worker", "-l", "warning"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # Profiling hook: AUDITSTREAM_BENCH_PROFILER="py-spy record -f raw -o prof.txt -p" attaches
    # to the worker (the PID is appended) and is stopped with SIGINT so it writes its output.
    profiler = None
    if os.environ.get("AUDITSTREAM_BENCH_PROFILER"):
        cmd = [*shlex.split(os.environ["AUDITSTREAM_BENCH_PROFILER"]), str(proc.pid)]
        profiler = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        first_t = first_rows = None
        first_cpu: float | None = None
        rows = 0
        while rows < n:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with {proc.returncode}; log: {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {rows} of {n} rows after {timeout_s:.0f}s")
            time.sleep(0.05)
            rows = _rows(client)
            if rows and first_t is None:
                first_t, first_rows = time.perf_counter(), rows
                first_cpu = _cpu_seconds(proc.pid)
        end_t = time.perf_counter()
        cpu = _cpu_seconds(proc.pid)
        assert first_t is not None and first_rows is not None
        steady = (n - first_rows) / max(end_t - first_t, 1e-9)
        # CPU of the steady phase only (start-up imports and group join excluded), per event.
        steady_cpu = None
        if cpu is not None and first_cpu is not None and cpu > first_cpu:
            steady_cpu = (cpu - first_cpu) / (n - first_rows) if n > first_rows else None
        return steady, first_t - t_spawn, cpu, end_t - t_spawn, steady_cpu
    finally:
        from auditstream.deploy.procs import stop_pid

        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        if proc.poll() is None:
            stop_pid(proc.pid, timeout=30)
        log.close()
        client.close()


def run_pipeline_bench(
    *,
    events: int,
    as_json: bool,
    broker: str = "noida",
    reuse: bool = False,
    plugins: str = "none",
    keep: bool = False,
) -> PipelineFigures:
    from auditstream.deploy.local import LocalStack, settings_env
    from auditstream.deploy.procs import free_port
    from auditstream.deploy.topics import ensure_topics
    from auditstream.producers.workload import generate
    from auditstream.stream.clickhouse import ensure_database, get_client, migrate

    def say(msg: str) -> None:
        print(msg, file=sys.stderr if as_json else sys.stdout, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="auditstream-bench-"))
    name = f"bench_{uuid.uuid4().hex[:8]}"
    stack = None
    base = Settings.from_env()
    try:
        if reuse:
            settings = base
        else:
            stack = LocalStack(
                tmp / "stack",
                broker=broker,  # type: ignore[arg-type]
                kafka_port=free_port(),
                http_port=free_port(),
                tcp_port=free_port(),
                settings=base,
            )
            say(f"starting a local stack ({broker} + ClickHouse) in {tmp} ...")
            stack.up(start_worker=False)
            settings = stack.settings
        # A private topic prefix and database: the bench never mixes with other data.
        url = settings.clickhouse_url.rsplit("/", 1)[0] + f"/{name}"
        settings = replace(
            settings, topics=Topics(name), clickhouse_url=url, state_dir=str(tmp / "worker")
        )
        ensure_topics(settings)
        ensure_database(settings)
        admin = get_client(settings)
        migrate(admin, settings)
        admin.close()

        say(f"generating and producing {events:,} events to {settings.topics.events} ...")
        pairs = generate(events, seed=1, start=datetime.now(UTC))
        _produce(settings, pairs)
        del pairs

        say("bare confluent-kafka consume loop ...")
        bare = bare_consume(settings, events)

        say(f"worker (plugins={plugins!r}) → ClickHouse ...")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")},
            **settings_env(settings),
            "AUDITSTREAM_STREAM_PLUGINS": plugins,
            "AUDITSTREAM_FAUST_SESSION_TIMEOUT": "6" if broker == "tansu" else "10",
        }
        Path(settings.state_dir).mkdir(parents=True, exist_ok=True)
        steady, first_row, cpu, total, cpu_per_event = run_worker_phase(
            settings, env, events, tmp / "worker.log"
        )

        emit_us = None
        try:
            from auditstream.producers.bench import measure_emit_cost

            say("SDK emit cost on the caller's thread ...")
            emit_us = measure_emit_cost(settings, min(events, 100_000))
        except ImportError:  # pragma: no cover - SDK not installed
            say("AuditClient not available: emit_us not measured")

        figures = PipelineFigures(
            events=events,
            events_per_s=steady,
            bare_consume_per_s=bare,
            emit_us=emit_us,
            worker_cpu_s=cpu,
            events_per_cpu_s=(1.0 / cpu_per_event) if cpu_per_event else None,
            time_to_first_row_s=first_row,
            total_s=total,
        )
        _report(figures, say)
        if as_json:
            print(figures.summary_json(), flush=True)
        return figures
    finally:
        if stack is not None:
            stack.down()
        elif reuse:
            _drop_private(settings_or_none=locals().get("settings"))
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _drop_private(settings_or_none: Settings | None) -> None:
    """After ``--reuse``: drop the bench's database and topics from the shared servers."""
    if settings_or_none is None or not settings_or_none.topics.prefix.startswith("bench_"):
        return
    from auditstream.stream.clickhouse import get_client

    try:
        admin = get_client(settings_or_none, database="default")
        admin.command(f"DROP DATABASE IF EXISTS {settings_or_none.topics.prefix}")
        admin.close()
        from confluent_kafka.admin import AdminClient

        kafka = AdminClient(settings_or_none.kafka_config())
        prefix = settings_or_none.topics.prefix + "."
        names = [t for t in kafka.list_topics(timeout=5).topics if t.startswith(prefix)]
        if names:
            kafka.delete_topics(names)
    except Exception as exc:  # best effort clean-up; the figures are already printed
        print(f"warning: clean-up failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def _report(f: PipelineFigures, say: Any) -> None:
    say(f"events                       {f.events:,}")
    say(f"end-to-end (steady) events/s {f.events_per_s:,.0f}")
    say(f"bare consume events/s        {f.bare_consume_per_s:,.0f}")
    say(f"ratio                        {f.ratio:.3f}")
    if f.worker_cpu_s is not None:
        per_cpu = f.events_per_cpu_s or 0.0
        say(f"worker CPU seconds (total)   {f.worker_cpu_s:.2f}")
        say(f"steady events per CPU-second {per_cpu:,.0f}  (≈ per worker core)")
    say(f"worker start → first row     {f.time_to_first_row_s:.2f} s; total {f.total_s:.2f} s")
    if f.emit_us is not None:
        say(f"SDK emit on caller's thread  {f.emit_us:.2f} µs")
