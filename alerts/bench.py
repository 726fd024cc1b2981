"""`auditstream bench alerts`: seeded workload with injected incidents, scored against the truth.

The workload is many agents over simulated hours: Poisson traffic with a slow daily swing, a small
baseline error rate and rare baseline complaints per agent, then injected incidents (error spikes
of several sizes and lengths, complaint bursts, agents going silent) separated by long quiet
stretches. It runs through the *same* pure code as the worker (:class:`AgentSignals` per agent,
:class:`Engine` on their findings, ticks every ``tick_s`` of event time); no broker is involved.

Scoring per alert kind: an alert (a firing episode) that starts during an injection of its kind
on its agent (or within ``grace`` after it ends) detects that injection; the first such alert is
a true positive, every other alert — including a second alert for the same injection — is false.
Delay = alert start (event time) − injection start.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np

from auditstream.alerts.engine import Engine, EnginePolicy
from auditstream.alerts.signals import (
    AGENT_SILENT,
    COMPLAINT_BURST,
    ERROR_SPIKE,
    AgentSignals,
    Observation,
    SignalConfig,
)

KINDS = {
    ERROR_SPIKE: "error_spike",
    COMPLAINT_BURST: "complaint_burst",
    AGENT_SILENT: "agent_silent",
}
GRACE_S = {ERROR_SPIKE: 300.0, COMPLAINT_BURST: 900.0, AGENT_SILENT: 120.0}
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, an arbitrary fixed epoch


@dataclass(frozen=True)
class Injection:
    agent_id: str
    alertname: str
    start: float
    end: float
    size: float  # error-rate increase, complaints in the burst, or silent seconds


@dataclass
class Workload:
    agents: list[str]
    hours: float
    observations: list[Observation]
    injections: list[Injection]


@dataclass
class KindResult:
    injected: int = 0
    detected: int = 0
    alerts: int = 0
    true_alerts: int = 0
    delays: list[float] = field(default_factory=list)

    def summary(self, agent_days: float) -> dict[str, float | None]:
        false = self.alerts - self.true_alerts
        return {
            "recall": round(self.detected / self.injected, 4) if self.injected else None,
            "precision": round(self.true_alerts / self.alerts, 4) if self.alerts else None,
            "median_delay_s": round(statistics.median(self.delays), 1) if self.delays else None,
            "false_per_agent_day": round(false / agent_days, 4),
        }


def make_workload(seed: int, agents: int = 40, hours: float = 12.0) -> Workload:
    """Everything (rates, incident kinds, times and sizes) is drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    horizon = hours * 3600.0
    warmup = 3600.0  # baselines learn for an hour before the first incident
    ids = [f"agent-{seed}-{i:03d}" for i in range(agents)]
    obs: list[Observation] = []
    injections: list[Injection] = []
    for agent in ids:
        rate = rng.uniform(6.0, 40.0) / 60.0  # operations per second
        p_err = rng.uniform(0.002, 0.04)
        complaint_rate = rng.uniform(0.05, 0.5) / 3600.0
        phase = rng.uniform(0, 2 * math.pi)
        # Incidents: 0–2 per agent, at least 90 minutes apart, after the warm-up.
        spikes: list[tuple[float, float, float]] = []
        bursts: list[tuple[float, float, int]] = []
        silences: list[tuple[float, float]] = []
        t_next = T0 + warmup + rng.uniform(0, 3600)
        for _ in range(int(rng.integers(0, 3))):
            if t_next > T0 + horizon - 3600:
                break
            kind = rng.choice([ERROR_SPIKE, COMPLAINT_BURST, AGENT_SILENT])
            if kind == ERROR_SPIKE:
                dur = rng.uniform(300, 1200)
                size = float(rng.choice([0.15, 0.3, 0.6]) * rng.uniform(0.8, 1.2))
                spikes.append((t_next, t_next + dur, size))
                injections.append(Injection(agent, ERROR_SPIKE, t_next, t_next + dur, size))
            elif kind == COMPLAINT_BURST:
                dur = rng.uniform(60, 240)
                n = int(rng.integers(5, 21))
                bursts.append((t_next, t_next + dur, n))
                injections.append(Injection(agent, COMPLAINT_BURST, t_next, t_next + dur, n))
            else:
                dur = rng.uniform(900, 2400)
                silences.append((t_next, t_next + dur))
                injections.append(Injection(agent, AGENT_SILENT, t_next, t_next + dur, dur))
            t_next += dur + rng.uniform(5400, 4 * 3600)
        # Traffic: thinned Poisson process with a ±30 % daily swing.
        peak = rate * 1.3
        n_max = int(rng.poisson(peak * horizon))
        times = np.sort(rng.uniform(T0, T0 + horizon, n_max))
        swing = 1.0 + 0.3 * np.sin(2 * math.pi * (times - T0) / 86400.0 + phase)
        times = times[rng.uniform(0, 1, n_max) < swing / 1.3]
        p = np.full(len(times), p_err)
        for a, b, size in spikes:
            p[(times >= a) & (times < b)] = min(0.9, p_err + size)
        keep = np.ones(len(times), dtype=bool)
        for a, b in silences:
            keep &= (times < a) | (times >= b)
        times, p = times[keep], p[keep]
        errors = rng.uniform(0, 1, len(times)) < p
        latency = rng.lognormal(math.log(800.0), 0.5, len(times))
        tokens = rng.poisson(600, len(times))
        for t, e, lat, tok in zip(
            times.tolist(), errors.tolist(), latency.tolist(), tokens.tolist(), strict=True
        ):
            obs.append(
                Observation(
                    t=t,
                    agent_id=agent,
                    kind="error" if e else "action",
                    is_error=e,
                    latency_ms=None if e else lat,
                    tokens=0 if e else tok,
                )
            )
        # Complaints: a rare baseline plus the bursts.
        c_times = list(rng.uniform(T0, T0 + horizon, int(rng.poisson(complaint_rate * horizon))))
        for a, b, n in bursts:
            c_times += list(rng.uniform(a, b, n))
        obs += [Observation(t=float(t), agent_id=agent, kind="complaint") for t in c_times]
    obs.sort(key=lambda o: o.t)
    return Workload(ids, hours, obs, injections)


def run(
    workload: Workload,
    config: SignalConfig | None = None,
    policy: EnginePolicy | None = None,
    tick_s: float = 5.0,
) -> dict[str, KindResult]:
    config = config or SignalConfig(enabled=(ERROR_SPIKE, COMPLAINT_BURST, AGENT_SILENT))
    engine = Engine(policy or EnginePolicy())
    signals = {a: AgentSignals(a, config) for a in workload.agents}
    fired: list[tuple[str, str, float]] = []  # (agent, alertname, event time it fired)

    def handle(findings: list) -> None:
        for f in findings:
            alerts, _ = engine.process(f)
            _collect(alerts)

    def _collect(alerts: list) -> None:
        for a in alerts:
            if (a.status == "firing" and a.version == 1) or (a.status == "firing" and _new(a)):
                fired.append((a.agent_id or "", a.alertname, a.updated_at.timestamp()))

    seen_incidents: set[str] = set()

    def _new(a) -> bool:  # type: ignore[no-untyped-def]
        if a.incident_id in seen_incidents:
            return False
        seen_incidents.add(a.incident_id)
        return True

    next_tick = workload.observations[0].t if workload.observations else T0
    for ob in workload.observations:
        while ob.t >= next_tick:
            for sig in signals.values():
                handle(sig.tick(next_tick))
            _collect(engine.tick(next_tick)[0])
            next_tick += tick_s
        handle(signals[ob.agent_id].observe(ob))
    results = score(workload, fired)
    for name in config.enabled:  # kinds that never fired still get a (zero) line
        results.setdefault(name, KindResult())
    return results


def score(workload: Workload, fired: list[tuple[str, str, float]]) -> dict[str, KindResult]:
    results = {k: KindResult() for k in KINDS}
    results.update({name: KindResult() for _, name, _ in fired if name not in results})
    for inj in workload.injections:
        results[inj.alertname].injected += 1
    detected: set[int] = set()
    for agent, name, t in sorted(fired, key=lambda x: x[2]):
        if name not in results:
            results[name] = KindResult()
        res = results[name]
        res.alerts += 1
        grace = GRACE_S.get(name, 300.0)
        for i, inj in enumerate(workload.injections):
            if (
                inj.agent_id == agent
                and inj.alertname == name
                and inj.start <= t <= inj.end + grace
            ):
                if i not in detected:
                    detected.add(i)
                    res.detected += 1
                    res.true_alerts += 1
                    res.delays.append(t - inj.start)
                break
    return results


def bench(seed: int, agents: int = 40, hours: float = 12.0) -> dict[str, dict[str, float | None]]:
    wl = make_workload(seed, agents, hours)
    results = run(wl)
    agent_days = len(wl.agents) * wl.hours / 24.0
    return {KINDS.get(k, k): r.summary(agent_days) for k, r in results.items()}
