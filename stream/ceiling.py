"""``auditstream bench faust-ceiling``: the framework's own limit on this machine.

Runs the sink's exact consumption pattern (a faust agent with ``noack_take`` and explicit acks)
but does nothing with the records: no decode, no ClickHouse. Its events per CPU-second is the
ceiling any faust-based worker reaches here, so ``bench pipeline`` figures can be read against
it. A figure, not a test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from auditstream.settings import Settings, Topics


def _cpu() -> float:
    fields = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child(bootstrap: str, prefix: str, n: int, datadir: str) -> None:
    """The measured process: an ack-only faust agent; prints one RESULT line and exits."""
    import faust
    from faust.worker import Worker

    app = faust.App(
        f"{prefix}-ceiling",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,  # faust would otherwise leave "<id>-data" in the caller's cwd
        web_enabled=False,
        topic_partitions=6,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=10_000,
        broker_max_poll_records=5_000,
    )
    topic = app.topic(
        f"{prefix}.events",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    state: dict[str, float] = {"n": 0}

    @app.agent(topic)
    async def ack_only(stream):  # type: ignore[no-untyped-def]
        async for taken in stream.noack_take(5_000, within=0.5):
            if "t0" not in state:
                state.update(t0=time.perf_counter(), c0=_cpu(), first=len(taken))
            state["n"] += len(taken)
            for event in taken:
                await stream.ack(event)
            if state["n"] >= n:
                counted = n - state["first"]
                rate = counted / (time.perf_counter() - state["t0"])
                per_cpu = counted / max(_cpu() - state["c0"], 1e-9)
                print(f"RESULT {rate:.0f} {per_cpu:.0f}", flush=True)
                os._exit(0)

    worker = Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()


def run_ceiling(events: int) -> tuple[float, float]:
    """(events/s, events per CPU-second) of an ack-only faust agent on a private noida broker."""
    from auditstream.deploy.broker import DevBroker
    from auditstream.deploy.procs import free_port
    from auditstream.deploy.topics import ensure_topics
    from auditstream.producers.workload import generate
    from auditstream.stream.bench import _produce

    tmp = Path(tempfile.mkdtemp(prefix="auditstream-ceiling-"))
    broker = DevBroker("noida", free_port(), tmp / "broker").start()
    try:
        settings = replace(Settings(), kafka_bootstrap=broker.bootstrap, topics=Topics("ceiling"))
        ensure_topics(settings)
        _produce(settings, generate(events, seed=1, start=datetime.now(UTC)))
        cmd = [sys.executable, "-m", "auditstream.stream.ceiling", broker.bootstrap, "ceiling"]
        out = subprocess.run(
            [*cmd, str(events), str(tmp / "faust")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        for line in out.stdout.splitlines():
            if line.startswith("RESULT "):
                rate, per_cpu = line.split()[1:3]
                return float(rate), float(per_cpu)
        raise RuntimeError(f"ceiling worker failed: {out.stderr[-2000:]}")
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
