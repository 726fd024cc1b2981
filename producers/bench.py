"""Emit-cost measurements (a command, never a timed test): ``auditstream bench emit``.

``measure_emit_cost`` is what ``auditstream bench pipeline`` reports as ``emit_us``: wall time
on the caller's thread per ``AuditClient.emit`` of a pre-built event, over a burst that fits
the buffer (so it never measures blocking), with the background thread running concurrently.
``compare_strategies`` times the design alternatives on the same broker, so the choice in
client.py can be re-checked on any machine.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from auditstream.producers.client import HEADERS, AuditClient, producer_config
from auditstream.producers.contract import AuditEvent, encode_event, validate_event
from auditstream.producers.workload import events as workload_events
from auditstream.settings import Settings


def _sample(n: int) -> list[AuditEvent]:
    """``n`` realistic events (reused cyclically beyond the first 10,000 to keep set-up short)."""
    base = workload_events(min(n, 10_000), seed=42, start=datetime.now(UTC))
    return [base[i % len(base)] for i in range(n)]


@dataclass(frozen=True)
class EmitCost:
    """Per call on the caller's thread, best of ``repeats`` bursts. ``wall_us`` includes time
    the caller waits for the GIL while the background thread encodes and produces (a tight
    loop makes them compete; a real agent mostly waits on I/O); ``cpu_us`` is the caller
    thread's own CPU time (``time.thread_time``), immune to other load on the machine."""

    wall_us: float
    cpu_us: float
    n: int


def _burst(
    settings: Settings, n: int, repeats: int, topic: str | None, call: Callable[..., object]
) -> EmitCost:
    wall, cpu = float("inf"), float("inf")
    with AuditClient(settings, topic=topic, max_buffer=n + 1) as client:
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.thread_time()
            call(client)
            wall = min(wall, time.perf_counter() - t0)
            cpu = min(cpu, time.thread_time() - c0)
            client.flush(120)  # between bursts: each burst starts with an empty buffer
    return EmitCost(wall / n * 1e6, cpu / n * 1e6, n)


def emit_cost(
    settings: Settings, n: int = 100_000, *, repeats: int = 3, topic: str | None = None
) -> EmitCost:
    """``AuditClient.emit`` of pre-built events (the pipeline benchmark's ``emit_us``)."""
    evs = _sample(n)

    def run(client: AuditClient) -> None:
        emit = client.emit
        for ev in evs:
            emit(ev)

    return _burst(settings, n, repeats, topic, run)


def call_cost(
    settings: Settings, n: int = 100_000, *, repeats: int = 3, topic: str | None = None
) -> EmitCost:
    """A convenience call (``client.action(...)``): builds the event, then emits it."""

    def run(client: AuditClient) -> None:
        action = client.action
        for i in range(n):
            action("bench-agent", "act-1", "pricing", target="sku-1", amount=float(i))

    return _burst(settings, n, repeats, topic, run)


def measure_emit_cost(settings: Settings, n: int = 100_000, *, topic: str | None = None) -> float:
    """µs per ``emit()`` on the caller's thread (wall time, best of 3 bursts of ``n``)."""
    return emit_cost(settings, n, topic=topic).wall_us


@dataclass(frozen=True)
class StrategyResult:
    name: str
    caller_us: float  # wall time per event on the caller's thread
    total_s: float  # until every event was acknowledged (what the caller did not pay for)


def compare_strategies(
    settings: Settings, n: int = 50_000, *, topic: str | None = None
) -> list[StrategyResult]:
    """The alternatives considered for ``emit``, each with the same producer configuration."""
    from confluent_kafka import Producer

    topic = topic or settings.topics.events
    evs = _sample(n)
    conf = producer_config(settings)
    conf["queue.buffering.max.messages"] = max(n + 1, 100_000)

    def noop(_err: object, _msg: object) -> None:
        pass

    def direct(p: Producer, check: Callable[[AuditEvent], bytes]) -> float:
        t0 = time.perf_counter()
        for ev in evs:
            p.produce(topic, check(ev), ev.kafka_key(), headers=HEADERS, on_delivery=noop)
            p.poll(0)
        return time.perf_counter() - t0

    def via_thread(p: Producer, bounded_queue: bool) -> float:
        dq: collections.deque[AuditEvent] = collections.deque()
        q: queue.Queue[AuditEvent] = queue.Queue(maxsize=n + 1)
        done = threading.Event()

        def worker() -> None:
            while True:
                try:
                    ev = q.get(timeout=0.01) if bounded_queue else dq.popleft()
                except (queue.Empty, IndexError):
                    if done.is_set() and not dq and q.empty():
                        return
                    if not bounded_queue:
                        time.sleep(0.001)
                    continue
                raw = validate_event(ev)
                p.produce(topic, raw, ev.kafka_key(), headers=HEADERS, on_delivery=noop)
                p.poll(0)

        th = threading.Thread(target=worker)
        th.start()
        t0 = time.perf_counter()
        if bounded_queue:
            for ev in evs:
                q.put(ev, timeout=1)
        else:
            for ev in evs:
                if len(dq) <= n:
                    dq.append(ev)
        elapsed = time.perf_counter() - t0
        done.set()
        th.join()
        return elapsed

    runs: list[tuple[str, Callable[[Producer], float]]] = [
        ("direct produce(), encode only", lambda p: direct(p, encode_event)),
        ("direct produce(), encode+validate", lambda p: direct(p, validate_event)),
        ("queue.Queue(maxsize) + thread", lambda p: via_thread(p, True)),
        ("deque + thread (AuditClient's design)", lambda p: via_thread(p, False)),
    ]
    results = []
    for name, run in runs:
        producer = Producer(conf)
        t0 = time.perf_counter()
        caller = run(producer)
        producer.flush(120)
        results.append(StrategyResult(name, caller / n * 1e6, time.perf_counter() - t0))
    return results
