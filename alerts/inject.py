"""Demo/test traffic with injected incidents: an error spike on one agent, a complaint burst on
another, quiet agents around them. Pure: contract events only, deterministic per seed.

Used by the end-to-end test and by the demo (``auditstream alerts inject`` produces it to the
events topic). Time is generated in slices (:meth:`IncidentScenario.events`), so a caller can
produce a backdated baseline first and then "live" slices as wall time passes.

Complaints are half attributed by ``subject`` and half only by the conversation they are about
(no agent named), so the stream's conversation → agent linking is exercised too.

:func:`produce_demo_incidents` (used by ``auditstream alerts inject`` and ``auditstream demo``)
is the one impure helper: it produces :func:`demo_scenario` to the events topic.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auditstream.producers.contract import (
    Action,
    AuditEvent,
    Complaint,
    Error,
    make_event,
)


@dataclass(frozen=True)
class Injected:
    alertname: str  # the alert it should raise: "ErrorSpike" | "ComplaintBurst"
    agent_id: str
    start: float  # event time, epoch seconds
    end: float
    size: float  # error probability during the spike / number of complaints


@dataclass
class IncidentScenario:
    """Steady traffic for ``agents`` plus the ``injected`` incidents (event time, seconds)."""

    agents: tuple[str, ...]
    injected: tuple[Injected, ...]
    rate_per_min: float = 60.0
    error_rate: float = 0.01
    seed: int = 0
    name_every: int = 2  # every n-th complaint names its agent; 0: none (all linked)

    def events(self, t_from: float, t_to: float) -> list[AuditEvent]:
        """Every event with event time in ``[t_from, t_to)``, in time order.

        Deterministic per (seed, second): slices of any width give the same events.
        """
        out: list[tuple[float, AuditEvent]] = []
        for second in range(math.floor(t_from), math.ceil(t_to)):
            for agent in self.agents:
                rng = random.Random(f"{self.seed}:{agent}:{second}")
                n = _poisson(rng, self.rate_per_min / 60.0)
                for i in range(n):
                    t = second + rng.random()
                    if not t_from <= t < t_to:
                        continue
                    out.append((t, self._operation(agent, t, i, rng)))
        for j, inj in enumerate(self.injected):
            if inj.alertname != "ComplaintBurst":
                continue
            rng = random.Random(f"{self.seed}:complaints:{j}")
            n = int(inj.size)
            for k in range(n):
                t = inj.start + (inj.end - inj.start) * (k + rng.random()) / n
                if t_from <= t < t_to:
                    out.append((t, self._complaint(inj, t, k)))
        out.sort(key=lambda x: x[0])
        return [e for _, e in out]

    def _error_prob(self, agent: str, t: float) -> float:
        for inj in self.injected:
            if inj.alertname == "ErrorSpike" and inj.agent_id == agent and inj.start <= t < inj.end:
                return inj.size
        return self.error_rate

    def _operation(self, agent: str, t: float, i: int, rng: random.Random) -> AuditEvent:
        when = datetime.fromtimestamp(t, UTC)
        conv = conversation_id(agent, t)
        action_id = f"{agent}-act-{int(t * 1000)}-{i}"
        if rng.random() < self._error_prob(agent, t):
            data: Error | Action = Error(
                error_type="tool_timeout",
                message="tool call timed out",
                action_id=action_id,
                conversation_id=conv,
            )
            kind = "error"
        else:
            data = Action(
                action_id=action_id,
                decision_type="routing",
                outcome="succeeded",
                latency_ms=round(rng.lognormvariate(math.log(400.0), 0.4), 1),
                conversation_id=conv,
            )
            kind = "action"
        return make_event(kind, agent, data, time=when, event_id=f"{action_id}-{kind}")

    def _complaint(self, inj: Injected, t: float, k: int) -> AuditEvent:
        # About a conversation the agent had a minute earlier (so the link already exists).
        conv = conversation_id(inj.agent_id, t - 60.0)
        named = self.name_every > 0 and k % self.name_every == 0
        data = Complaint(
            complaint_id=f"cmp-{inj.agent_id}-{int(t * 1000)}-{k}",
            conversation_id=conv,
            category="wrong_answer",
            severity="high",
            text="the agent routed my request to the wrong team",
        )
        return make_event(
            "complaint",
            inj.agent_id if named else None,
            data,
            time=datetime.fromtimestamp(t, UTC),
            event_id=data.complaint_id,
        )


def conversation_id(agent: str, t: float) -> str:
    """One conversation per agent and minute of event time."""
    return f"{agent}-conv-{int(t // 60)}"


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: fine for the small per-second rates used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def demo_scenario(now: float, seed: int = 0) -> tuple[IncidentScenario, float, float]:
    """The demo's scenario: 4 agents with 40 minutes of baseline, then a 90 s error spike on
    ``demo-spiky`` and 8 complaints in 40 s on ``demo-complained``, 5 minutes before ``now``.
    Returns the scenario, the baseline start and the injection start (event time)."""
    baseline_start = now - 45 * 60
    inject_at = now - 5 * 60
    scenario = IncidentScenario(
        agents=("demo-quiet-1", "demo-quiet-2", "demo-spiky", "demo-complained"),
        injected=(
            Injected("ErrorSpike", "demo-spiky", inject_at, inject_at + 90, 0.6),
            Injected("ComplaintBurst", "demo-complained", inject_at, inject_at + 40, 8),
        ),
        seed=seed,
    )
    return scenario, baseline_start, inject_at


def produce_events(producer: Any, topic: str, events: list[AuditEvent]) -> int:
    """Queue ``events`` on a confluent-kafka producer (waiting while its buffer is full)."""
    from auditstream.producers.contract import encode_event

    for ev in events:
        while True:
            try:
                producer.produce(topic, encode_event(ev), ev.kafka_key())
                break
            except BufferError:
                producer.poll(0.1)
    producer.poll(0)
    return len(events)


def produce_demo_incidents(settings: Any, *, seed: int = 0, live_s: float = 0.0) -> str:
    """Produce :func:`demo_scenario` (relative to now) to ``settings.topics.events``.

    45 minutes of backdated traffic for the 4 demo agents with an error spike on
    ``demo-spiky`` and a complaint burst on ``demo-complained`` 5 minutes ago, then, for
    ``live_s`` seconds, live traffic as wall time passes. Returns a one-line summary; raises
    ``RuntimeError`` when the broker did not acknowledge every event.
    """
    from confluent_kafka import Producer

    now = time.time()
    scenario, start, inject_at = demo_scenario(now, seed)
    producer = Producer(settings.kafka_config(**{"enable.idempotence": True, "acks": "all"}))
    topic = settings.topics.events

    def send(t_from: float, t_to: float) -> int:
        return produce_events(producer, topic, scenario.events(t_from, t_to))

    n = send(start, now)
    produced_to = now
    while time.time() < now + live_s:
        time.sleep(1.0)
        n += send(produced_to, time.time())
        produced_to = time.time()
    left = producer.flush(30)
    if left:
        raise RuntimeError(f"{left} of {n} injected event(s) not delivered")
    return (
        f"produced {n} events for {', '.join(scenario.agents)} to {topic}; "
        f"injected at {inject_at:.0f} (event time): ErrorSpike on demo-spiky, "
        "ComplaintBurst on demo-complained. Watch: auditstream alerts list"
    )


DEMO_ALERTS = (("ErrorSpike", "demo-spiky"), ("ComplaintBurst", "demo-complained"))


def run_alerts_demo(settings: Any, *, wait_s: float = 90.0, seed: int = 0) -> Iterator[str]:
    """The demo's alert part: inject the incidents, then wait (up to ``wait_s``) until the
    worker stored both alerts in ClickHouse. Yields lines to print; never fails the demo."""
    from auditstream.stream.clickhouse import get_client

    since = time.time()
    yield "alerts: " + produce_demo_incidents(settings, seed=seed)
    ch = get_client(settings)
    seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + wait_s
    try:
        while True:
            rows = ch.query(
                "SELECT alertname, agent_id, argMax(status, version), "
                "argMax(annotations['summary'], version) FROM alerts "
                "WHERE agent_id IN ('demo-spiky', 'demo-complained') "
                "AND inserted_at >= toDateTime64({since:Float64}, 3) GROUP BY 1, 2",
                parameters={"since": since},
            ).result_rows
            for alertname, agent, status, summary in rows:
                if (alertname, agent) not in seen:
                    seen.add((alertname, agent))
                    yield f"alert {alertname} on {agent}: {status} — {summary}"
            if all(a in seen for a in DEMO_ALERTS):
                yield "both injected incidents raised their alert (auditstream alerts list)"
                return
            if time.monotonic() >= deadline:
                missing = ", ".join(f"{a} on {g}" for a, g in DEMO_ALERTS if (a, g) not in seen)
                yield f"no alert yet for {missing} after {wait_s:.0f} s: auditstream alerts list"
                return
            time.sleep(1.0)
    finally:
        ch.close()
