"""Pure unit tests of the per-agent signals (no broker): what fires, what does not, restarts."""

from __future__ import annotations

import itertools
import math
import random

from auditstream.alerts.engine import Engine
from auditstream.alerts.inject import IncidentScenario, Injected
from auditstream.alerts.signals import (
    AGENT_SILENT,
    COMPLAINT_BURST,
    ERROR_SPIKE,
    LATENCY_SPIKE,
    AgentSignals,
    Observation,
    binomial_tail,
    events_query,
)

T0 = 1_767_225_600.0


def traffic(
    agent: str,
    start: float,
    end: float,
    rate_per_s: float,
    p_err: float,
    seed: int = 0,
    latency: float = 400.0,
):  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    t = start
    out = []
    while True:
        t += rng.expovariate(rate_per_s)
        if t >= end:
            return out
        err = rng.random() < p_err
        out.append(
            Observation(
                t=t,
                agent_id=agent,
                kind="error" if err else "action",
                is_error=err,
                latency_ms=None if err else rng.lognormvariate(0, 0.2) * latency,
                tokens=500,
            )
        )


def run(sig: AgentSignals, obs: list[Observation], tick_s: float = 5.0) -> list:  # type: ignore[type-arg]
    out = []
    # Ticks on a fixed grid, as the worker's timer: a restart continues the same schedule.
    next_tick = math.ceil(obs[0].t / tick_s) * tick_s if obs else 0.0
    for ob in obs:
        while ob.t >= next_tick:
            out += sig.tick(next_tick)
            next_tick += tick_s
        out += sig.observe(ob)
    return out


def firing(findings: list, name: str) -> list:  # type: ignore[type-arg]
    return [f for f in findings if f.alertname == name and f.firing]


def test_error_spike_fires_fast_and_clears() -> None:
    sig = AgentSignals("a")
    base = traffic("a", T0, T0 + 3600, 0.5, 0.01)
    assert firing(run(sig, base), ERROR_SPIKE) == []
    spike = traffic("a", T0 + 3600, T0 + 3900, 0.5, 0.5, seed=1)
    after = traffic("a", T0 + 3900, T0 + 4500, 0.5, 0.01, seed=2)
    found = run(sig, spike + after)
    fired = firing(found, ERROR_SPIKE)
    assert fired and fired[0].event_time.timestamp() - (T0 + 3600) <= 60
    assert fired[0].severity == "critical" and fired[0].agent_id == "a"
    assert "errors in" in fired[0].summary and "events_query" in fired[0].annotations
    cleared = [f for f in found if f.alertname == ERROR_SPIKE and not f.firing]
    assert len(cleared) == 1 and cleared[0].event_time.timestamp() > T0 + 3900
    # Re-announcements are rate limited (the engine dedups anyway).
    times = [f.event_time.timestamp() for f in fired]
    assert all(b - a >= 30 for a, b in itertools.pairwise(times))


def test_more_traffic_with_the_same_error_fraction_is_not_a_spike() -> None:
    sig = AgentSignals("a")
    base = traffic("a", T0, T0 + 3600, 0.5, 0.03)
    surge = traffic("a", T0 + 3600, T0 + 4200, 5.0, 0.03, seed=3)  # 10× the traffic
    found = run(sig, base + surge)
    assert firing(found, ERROR_SPIKE) == []


def test_complaint_burst_and_single_complaints() -> None:
    sig = AgentSignals("a")
    obs = traffic("a", T0, T0 + 7200, 0.3, 0.01)
    # A few isolated complaints over two hours: normal.
    obs += [Observation(t=T0 + k * 1500.0, agent_id="a", kind="complaint") for k in range(1, 5)]
    obs.sort(key=lambda o: o.t)
    assert firing(run(sig, obs), COMPLAINT_BURST) == []
    burst = [Observation(t=T0 + 7200 + 10 * k, agent_id="a", kind="complaint") for k in range(6)]
    more = traffic("a", T0 + 7200, T0 + 9000, 0.3, 0.01, seed=5)
    found = run(sig, sorted(burst + more, key=lambda o: o.t))
    fired = firing(found, COMPLAINT_BURST)
    assert fired and fired[0].event_time.timestamp() <= T0 + 7200 + 60
    assert [f for f in found if f.alertname == COMPLAINT_BURST and not f.firing]


def test_silence_needs_ticks_and_ends_with_the_next_event() -> None:
    sig = AgentSignals("a")
    run(sig, traffic("a", T0, T0 + 3600, 0.5, 0.01))
    last = sig.s.last_event_t
    assert last is not None
    assert sig.tick(last + 20) == []  # 20 s without events at 30/min: normal
    found = []
    t = last
    while not found and t < last + 600:
        t += 5
        found = firing(sig.tick(t), AGENT_SILENT)
    assert found and t - last <= 60
    back = sig.observe(Observation(t=t + 100, agent_id="a", kind="action"))
    assert [(f.alertname, f.firing) for f in back] == [(AGENT_SILENT, False)]


def test_no_agent_is_silent_when_every_producer_stopped() -> None:
    # Wall time moves on (now), but the newest event anyone sent is the agent's own last one:
    # everything stopped at once, which is not this agent's silence...
    sig = AgentSignals("a")
    run(sig, traffic("a", T0, T0 + 3600, 0.5, 0.01))
    last = sig.s.last_event_t
    assert last is not None
    assert firing(sig.tick(last + 900, silence_now=last + 2), AGENT_SILENT) == []
    # ...while other agents still talking (their newest event is recent) make it one.
    assert firing(sig.tick(last + 905, silence_now=last + 905), AGENT_SILENT)


def test_event_clock_latest_is_the_newest_event_in_any_partition() -> None:
    from auditstream.alerts.stream import EventClock

    clock = EventClock()
    assert clock.latest() is None
    clock.observe(0, 100.0)
    clock.observe(1, 250.0)
    clock.observe(0, 90.0)  # older: ignored
    assert clock.latest() == 250.0 and clock.now(0) is not None and clock.now(0) >= 100.0
    # A partition that saw nothing follows the furthest clock (its complaint signals must tick).
    assert clock.now(2) is None
    furthest = clock.now_any()
    assert furthest is not None and furthest >= 250.0 > (clock.now(0) or 0.0)
    assert EventClock().now_any() is None


def test_new_agent_is_not_declared_silent_before_warmup() -> None:
    sig = AgentSignals("a")
    run(sig, traffic("a", T0, T0 + 600, 0.5, 0.01))
    assert firing(sig.tick(T0 + 1500), AGENT_SILENT) == []  # 15 min gap, but not warm yet
    assert firing(sig.tick(T0 + 2400), AGENT_SILENT)  # warm now, and still nothing: silent


def test_latency_spike_needs_sustained_minutes() -> None:
    sig = AgentSignals("a")
    run(sig, traffic("a", T0, T0 + 7200, 1.0, 0.0))
    one = traffic("a", T0 + 7200, T0 + 7260, 1.0, 0.0, seed=7, latency=4000)
    normal = traffic("a", T0 + 7260, T0 + 7500, 1.0, 0.0, seed=8)
    assert firing(run(sig, one + normal), LATENCY_SPIKE) == []  # one slow minute: no page
    slow = traffic("a", T0 + 7500, T0 + 7800, 1.0, 0.0, seed=9, latency=4000)
    assert firing(run(sig, slow), LATENCY_SPIKE)


def test_restart_from_bytes_continues_exactly() -> None:
    """A worker restart restores the state from the table: the same findings as no restart."""
    obs = traffic("a", T0, T0 + 3600, 0.5, 0.01) + traffic(
        "a", T0 + 3600, T0 + 3800, 0.5, 0.5, seed=1
    )
    whole = AgentSignals("a")
    expected = run(whole, obs)
    first = AgentSignals("a")
    half = len(obs) // 2
    got = run(first, obs[:half])
    restored = AgentSignals.from_bytes(first.to_bytes())
    assert restored.s.err_ops == first.s.err_ops > 0  # warm baseline survived
    got += run(restored, obs[half:])
    strip = [(f.alertname, f.firing, f.event_time, f.summary) for f in expected]
    assert [(f.alertname, f.firing, f.event_time, f.summary) for f in got] == strip
    assert firing(got, ERROR_SPIKE)


def test_scenario_raises_exactly_the_injected_alerts() -> None:
    """The e2e scenario through the pure path: two alerts, both resolve, quiet agents silent."""
    live = T0 + 40 * 60
    sc = IncidentScenario(
        agents=("q1", "q2", "spiky", "complained"),
        injected=(
            Injected("ErrorSpike", "spiky", live, live + 90, 0.6),
            Injected("ComplaintBurst", "complained", live, live + 40, 8),
        ),
    )
    events = sc.events(T0, live + 900)
    assert any(e.subject is None for e in events)  # some complaints only name the conversation
    eng, sigs, alerts = Engine(), {}, []
    next_tick = T0
    for ev in events:
        t = ev.time.timestamp()
        while t >= next_tick:
            for s in sigs.values():
                for f in s.tick(next_tick):
                    alerts += eng.process(f)[0]
            alerts += eng.tick(next_tick)[0]
            next_tick += 5
        agent = ev.subject or ev.data.conversation_id.split("-conv-")[0]
        sig = sigs.setdefault(agent, AgentSignals(agent))
        ob = Observation(t=t, agent_id=agent, kind=ev.kind, is_error=ev.kind == "error")
        for f in sig.observe(ob):
            alerts += eng.process(f)[0]
    assert sorted((a.alertname, a.agent_id, a.status) for a in alerts) == [
        ("ComplaintBurst", "complained", "firing"),
        ("ComplaintBurst", "complained", "resolved"),
        ("ErrorSpike", "spiky", "firing"),
        ("ErrorSpike", "spiky", "resolved"),
    ]
    assert all(a.starts_at.timestamp() - live <= 60 for a in alerts)


def test_binomial_tail_and_query_escaping() -> None:
    assert binomial_tail(0, 10, 0.1) == 1.0
    assert binomial_tail(11, 10, 0.1) == 0.0
    assert abs(binomial_tail(1, 1, 0.25) - 0.25) < 1e-12
    q = events_query("o'brien\\", T0, T0 + 60, ERROR_SPIKE)
    assert "agent_id = 'o\\'brien\\\\'" in q and "is_error = 1" in q


def test_multivariate_event_outliers() -> None:
    from auditstream.alerts.signals import EVENT_OUTLIERS

    sig = AgentSignals("a")
    rng = random.Random(3)

    def ev(t: float, tokens: int, latency: float, size: int) -> Observation:
        return Observation(
            t=t, agent_id="a", kind="output", latency_ms=latency, tokens=tokens, payload_bytes=size
        )

    normal = []
    for i in range(3600):
        n = rng.randint(200, 2000)
        normal.append(ev(T0 + i, n, n * 2.0 * rng.uniform(0.8, 1.2), 400 + n // 2))
    assert firing(run(sig, normal), EVENT_OUTLIERS) == []
    # Each number is ordinary on its own; the combination (many tokens, instant answer) is not.
    odd = [ev(T0 + 3600 + i, 1900, 250.0, 1350) for i in range(60)]
    tail = [ev(T0 + 3660 + i, 1000, 2000.0, 900) for i in range(120)]
    found = run(sig, odd + tail)
    assert firing(found, EVENT_OUTLIERS)
    assert [f for f in found if f.alertname == EVENT_OUTLIERS and not f.firing]
    assert AgentSignals.from_bytes(sig.to_bytes()).to_bytes() == sig.to_bytes()
