"""Per-agent signals: windowed series in event time, scored online, turned into findings.

Pure code (no faust, no clock). One :class:`AgentSignals` per agent holds everything needed to
score that agent's series; :meth:`AgentSignals.to_bytes` / :meth:`AgentSignals.from_bytes`
serialise it whole (detector states included), so the faust worker keeps it in a changelogged
table keyed by agent id and a restart or rebalance resumes with warm baselines. The benchmark
(`auditstream bench alerts`) drives the very same class.

Series (per agent) and how each is scored:

- **ErrorSpike** — error count in sliding windows of 1, 3 and 10 minutes, scored by
  :class:`auditstream.detectors.CountSpike` (Gamma-Poisson, one detector per window length,
  learning closed buckets). Fires when the surprise reaches ``error_p`` (1e-5) in any window *and*
  the error *fraction* in that window is both ≥ ``min_error_fraction_delta`` above and ≥ 2× the
  agent's baseline fraction: more errors because of more traffic is not an error spike.
  Evaluated on every error (so detection does not wait for a window to close); cleared when the
  3-minute window is unremarkable again (p > ``clear_p``) — hysteresis against flapping.
- **ComplaintBurst** — complaints in sliding 5- and 30-minute windows, CountSpike again (sparse,
  mostly zero series is exactly what it models), at least ``min_complaints``.
- **AgentSilent** — the per-minute event count is learnt by a CountSpike; an agent whose
  expected rate makes the current gap improbable (``P(no event in gap) < silent_p``) is silent.
  Only ticks can notice silence: the worker's wall-clock timer advances event time (see
  docs/alerts.md, "ticks"). Cleared by the agent's next event.
- **LatencySpike** / **TokenSpike** — per-minute mean latency and mean tokens per operation,
  scored by ``ewma_zscore`` on log values; fire after ``sustain_buckets`` consecutive minutes
  that are extreme *and* above the usual level.
- **EventOutliers** — each operation's (latency, tokens, size, tool use) scored by the
  ``multivariate_gaussian`` detector; fires when a minute has ≥ ``min_outliers`` outlying events
  making up ≥ ``outlier_fraction`` of it.

A firing condition is re-announced at most every ``refresh_s`` (the engine needs to hear from a
condition to keep it open); its clearing is announced once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from scipy.special import betainc

from auditstream.alerts.model import Finding, Severity, utc
from auditstream.detectors import CountSpike, load_detector, make_detector

BUCKET_S = 10.0  # resolution of the sliding windows
MINUTE = 60.0

ERROR_SPIKE = "ErrorSpike"
COMPLAINT_BURST = "ComplaintBurst"
AGENT_SILENT = "AgentSilent"
LATENCY_SPIKE = "LatencySpike"
TOKEN_SPIKE = "TokenSpike"
EVENT_OUTLIERS = "EventOutliers"
ALL_SIGNALS = (
    ERROR_SPIKE,
    COMPLAINT_BURST,
    AGENT_SILENT,
    LATENCY_SPIKE,
    TOKEN_SPIKE,
    EVENT_OUTLIERS,
)
EVENT_FEATURES = ("latency_ms", "tokens", "payload_bytes", "tool")


@dataclass(frozen=True)
class SignalConfig:
    enabled: tuple[str, ...] = ALL_SIGNALS
    error_windows_s: tuple[float, ...] = (60.0, 180.0, 600.0)
    error_p: float = 1e-5
    clear_p: float = 1e-2
    clear_fraction_p: float = 0.05
    volume_half_life_min: float = 120.0
    min_errors: int = 4
    min_error_fraction_delta: float = 0.05
    cold_error_fraction: float = 0.5
    complaint_windows_s: tuple[float, ...] = (300.0, 1800.0)
    complaint_p: float = 1e-4
    min_complaints: int = 3
    silent_p: float = 1e-6
    min_silent_s: float = 30.0
    warmup_s: float = 1800.0
    latency_z_score: float = 0.9999  # detector score (normal CDF of z) for an extreme minute
    sustain_buckets: int = 3
    outlier_score: float = 0.99999  # per-event multivariate score of an outlying event
    min_outliers: int = 5  # per minute, and at least outlier_fraction of the minute's events
    outlier_fraction: float = 0.2
    min_bucket_events: int = 5
    refresh_s: float = 30.0
    severities: dict[str, Severity] = field(
        default_factory=lambda: {
            ERROR_SPIKE: "critical",
            COMPLAINT_BURST: "warning",
            AGENT_SILENT: "critical",
            LATENCY_SPIKE: "warning",
            TOKEN_SPIKE: "warning",
            EVENT_OUTLIERS: "warning",
        }
    )


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """What the signals need from one event (built from an EnrichedEvent or by the bench)."""

    t: float  # event time, epoch seconds
    agent_id: str
    kind: str  # contract short type: "action", "error", "complaint", ...
    is_error: bool = False
    latency_ms: float | None = None
    tokens: int = 0
    payload_bytes: int = 0
    tool: bool = False  # the event used a tool
    event_id: str = ""


OPERATION_KINDS = frozenset({"prompt", "output", "action", "error"})


def observation_from_enriched(ev: Any, agent_id: str | None = None) -> Observation:
    """From an ``auditstream.stream.enrich.EnrichedEvent`` (duck-typed to keep this pure)."""
    return Observation(
        t=ev.event.time.timestamp(),
        agent_id=agent_id or ev.agent_id,
        kind=ev.kind,
        is_error=bool(ev.is_error),
        latency_ms=ev.latency_ms,
        tokens=int(ev.total_tokens or 0),
        payload_bytes=int(ev.payload_bytes or 0),
        tool=bool(getattr(ev.event.data, "tool_name", None)),
        event_id=ev.event.id,
    )


# -- probability helpers ---------------------------------------------------------------------
def poisson_zero(rate_per_s: float, gap_s: float) -> float:
    return math.exp(-max(rate_per_s, 0.0) * max(gap_s, 0.0))


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(betainc(k, n - k + 1, min(max(p, 1e-12), 1.0)))


def _p_from_score(score: float, cap: float = 12.0) -> float:
    return 10.0 ** (-score * cap)


class _Buckets(msgspec.Struct, array_like=True):
    """Sliding-window counters at BUCKET_S resolution: start → [ops, errors, complaints]."""

    starts: list[float] = msgspec.field(default_factory=list)
    counts: list[list[int]] = msgspec.field(default_factory=list)

    def add(self, t: float, ops: int, errors: int, complaints: int) -> None:
        start = math.floor(t / BUCKET_S) * BUCKET_S
        if self.starts and self.starts[-1] == start:
            c = self.counts[-1]
        else:
            # Late events land in their own (older) bucket when it is still kept.
            for i in range(len(self.starts) - 1, -1, -1):
                if self.starts[i] == start:
                    c = self.counts[i]
                    break
                if self.starts[i] < start:
                    self.starts.insert(i + 1, start)
                    c = [0, 0, 0]
                    self.counts.insert(i + 1, c)
                    break
            else:
                self.starts.insert(0, start)
                c = [0, 0, 0]
                self.counts.insert(0, c)
        c[0] += ops
        c[1] += errors
        c[2] += complaints

    def window(self, now: float, length: float) -> tuple[int, int, int]:
        lo = now - length
        ops = err = comp = 0
        for start, c in zip(self.starts, self.counts, strict=True):
            if start + BUCKET_S > lo and start <= now:
                ops += c[0]
                err += c[1]
                comp += c[2]
        return ops, err, comp

    def prune(self, now: float, keep: float) -> None:
        cut = 0
        while cut < len(self.starts) and self.starts[cut] + BUCKET_S <= now - keep:
            cut += 1
        if cut:
            del self.starts[:cut]
            del self.counts[:cut]


class _Minute(msgspec.Struct, array_like=True):
    """The open one-minute bucket of the per-minute series."""

    start: float = -1.0
    ops: int = 0
    errors: int = 0
    complaints: int = 0
    latency_sum: float = 0.0
    latency_n: int = 0
    tokens: int = 0
    scored: int = 0  # events scored by the multivariate detector
    outliers: int = 0


class _State(msgspec.Struct, kw_only=True):
    agent_id: str
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    first_t: float | None = None
    last_event_t: float | None = None
    watermark: float = 0.0
    buckets: _Buckets = msgspec.field(default_factory=_Buckets)
    minute: _Minute = msgspec.field(default_factory=_Minute)
    err_ops: float = 0.0  # decayed operations (error-fraction baseline)
    err_errs: float = 0.0
    detectors: dict[str, bytes] = msgspec.field(default_factory=dict)
    firing: dict[str, float] = msgspec.field(default_factory=dict)  # signal → last announced
    streak: dict[str, int] = msgspec.field(default_factory=dict)
    cleared_at: dict[str, float] = msgspec.field(default_factory=dict)  # signal → last clear
    levels: dict[str, float] = msgspec.field(default_factory=dict)  # EW mean of latency/tokens


FRACTION_HALF_LIFE_S = 6 * 3600.0


class AgentSignals:
    """All series of one agent. Feed :meth:`observe` in event order; call :meth:`tick` often."""

    def __init__(self, agent_id: str, config: SignalConfig | None = None) -> None:
        self.config = config or SignalConfig()
        self.s = _State(agent_id=agent_id)
        self._dets: dict[str, Any] = {}
        self._init_detectors()

    # -- persistence ----------------------------------------------------------------------
    def _init_detectors(self) -> None:
        cfg = self.config
        for w in cfg.error_windows_s:
            # prior ~ 1 error per 20 minutes, worth 20 minutes of evidence; half-life 12 h.
            self._dets[f"err{int(w)}"] = CountSpike(
                bucket_seconds=w,
                half_life_buckets=12 * 3600.0 / w,
                prior_rate=w / 1200.0,
                prior_buckets=max(1.0, 1200.0 / w),
                min_count=cfg.min_errors,
                clip_factor=3.0,
            )
        for w in cfg.complaint_windows_s:
            # prior ~ 1 complaint per 4 hours worth one day of evidence; half-life 3 days.
            self._dets[f"cmp{int(w)}"] = CountSpike(
                bucket_seconds=w,
                half_life_buckets=3 * 86400.0 / w,
                prior_rate=w / (4 * 3600.0),
                prior_buckets=86400.0 / w,
                min_count=cfg.min_complaints,
                clip_factor=3.0,
            )
        self._dets["volume"] = CountSpike(
            bucket_seconds=MINUTE,
            half_life_buckets=cfg.volume_half_life_min,
            prior_rate=1.0,
            prior_buckets=2.0,
        )
        # Per event: is this combination of latency, tokens, size and tool use unusual for
        # this agent? (EW mean/covariance of log values, Mahalanobis distance → chi-square
        # score.) A spread of at least 0.25 in log space: an outlier differs by multiples, not
        # by the few percent that separate two events of an agent with near-constant sizes.
        self._dets["events"] = make_detector(
            "multivariate_gaussian",
            features=EVENT_FEATURES,
            alpha=0.005,
            warmup=200,
            min_std=0.25,
        )
        self._dets["latency"] = make_detector("ewma_zscore", alpha=0.02, warmup=30)
        self._dets["tokens"] = make_detector("ewma_zscore", alpha=0.02, warmup=30)

    def to_bytes(self) -> bytes:
        self.s.detectors = {k: d.to_bytes() for k, d in self._dets.items()}
        return msgspec.msgpack.encode(self.s)

    @classmethod
    def from_bytes(cls, raw: bytes, config: SignalConfig | None = None) -> AgentSignals:
        s = msgspec.msgpack.decode(raw, type=_State)
        obj = cls(s.agent_id, config)
        obj.s = s
        for k, blob in s.detectors.items():
            obj._dets[k] = load_detector(blob)
        s.detectors = {}
        return obj

    def set_labels(self, labels: dict[str, str]) -> None:
        """Owner/team/risk tier from the inventory: they become alert labels (grouping)."""
        self.s.labels = {k: v for k, v in labels.items() if v}

    # -- input ----------------------------------------------------------------------------
    def observe(self, ob: Observation) -> list[Finding]:
        s, cfg = self.s, self.config
        out: list[Finding] = []
        t = ob.t
        if s.first_t is None:
            s.first_t = t
        out += self._advance(t)
        is_op = ob.kind in OPERATION_KINDS
        is_complaint = ob.kind == "complaint"
        s.buckets.add(t, int(is_op), int(ob.is_error), int(is_complaint))
        m = s.minute
        m.ops += int(is_op)
        m.errors += int(ob.is_error)
        m.complaints += int(is_complaint)
        if ob.latency_ms is not None and ob.latency_ms >= 0:
            m.latency_sum += ob.latency_ms
            m.latency_n += 1
        m.tokens += max(ob.tokens, 0)
        if EVENT_OUTLIERS in cfg.enabled and is_op and not ob.is_error:
            x = {
                "latency_ms": ob.latency_ms,
                "tokens": float(max(ob.tokens, 0)),
                "payload_bytes": float(max(ob.payload_bytes, 0)),
                "tool": 1.0 if ob.tool else 0.0,
            }
            det = self._dets["events"]
            score = det.score_one(x, t)
            m.scored += 1
            if score >= cfg.outlier_score:
                m.outliers += 1  # outliers are not learnt: they must not widen the normal
            else:
                det.learn_one(x, t)
        if not is_complaint:
            # A complaint is about the agent, not from it: it does not prove the agent alive.
            s.last_event_t = t if s.last_event_t is None else max(s.last_event_t, t)
            if AGENT_SILENT in s.firing:
                out.append(self._finding(AGENT_SILENT, t, False, 0.0, None, None, "agent is back"))
        if ob.is_error and ERROR_SPIKE in cfg.enabled:
            out += self._eval_errors(t)
        if is_complaint and COMPLAINT_BURST in cfg.enabled:
            out += self._eval_complaints(t)
        return out

    def tick(self, now: float, silence_now: float | None = None) -> list[Finding]:
        """Advance event time without an event (closes buckets, notices silence).

        ``silence_now`` (default ``now``) is the time silence is judged at: the stream passes
        the newest event time any agent sent, so that when *every* producer stops (a demo
        ends, an ingest outage) agents are not each reported silent; that is a pipeline-level
        condition, not an agent's. ``now`` still advances, so other conditions resolve.
        """
        out = self._advance(now)
        if AGENT_SILENT in self.config.enabled:
            out += self._eval_silence(now if silence_now is None else min(now, silence_now))
        return out

    # -- time ------------------------------------------------------------------------------
    def _advance(self, t: float) -> list[Finding]:
        s = self.s
        out: list[Finding] = []
        if t <= s.watermark:
            return out
        prev = s.watermark
        s.watermark = t
        m = s.minute
        minute_start = math.floor(t / MINUTE) * MINUTE
        if m.start < 0:
            m.start = minute_start
        elif minute_start > m.start:
            out += self._close_minute(m)
            s.minute = _Minute(start=minute_start)
        # Learn closed windows of each error/complaint detector, then re-check active conditions.
        if prev > 0:
            for key, det in self._dets.items():
                if not key.startswith(("err", "cmp")):
                    continue
                w = det.bucket_seconds
                # The bucket holding the previous watermark closed; later ones up to t are empty
                # (the detector counts skipped buckets as zeros itself).
                closed_end = math.floor(prev / w) * w + w
                if t >= closed_end:
                    ops, err, comp = s.buckets.window(closed_end - 1e-9, w)
                    x = err if key.startswith("err") else comp
                    signal = ERROR_SPIKE if key.startswith("err") else COMPLAINT_BURST
                    if signal in s.firing:
                        # Learning a spike would teach the baseline that spikes are normal.
                        x = min(x, round(det.expected_count(closed_end - 1.0)))
                    det.learn_one(x, closed_end - 1.0)
                    if key.startswith("err"):
                        self._learn_fraction(ops, err, w)
            if math.floor(t / BUCKET_S) > math.floor(prev / BUCKET_S):
                out += self._eval_clear(t)
        s.buckets.prune(t, max(self.config.error_windows_s + self.config.complaint_windows_s) + 60)
        return out

    def _learn_fraction(self, ops: int, errs: int, w: float) -> None:
        s = self.s
        if ERROR_SPIKE in s.firing:
            return
        d = 0.5 ** (w / FRACTION_HALF_LIFE_S)
        s.err_ops = s.err_ops * d + ops
        s.err_errs = s.err_errs * d + errs

    def _base_fraction(self) -> float:
        # Beta prior worth 200 operations at a 2% error rate.
        return (self.s.err_errs + 4.0) / (self.s.err_ops + 200.0)

    def _close_minute(self, m: _Minute) -> list[Finding]:
        s, cfg = self.s, self.config
        out: list[Finding] = []
        t_end = m.start + MINUTE
        vol = self._dets["volume"]
        vol.learn_one(float(m.ops), m.start)
        if EVENT_OUTLIERS in cfg.enabled:
            many = m.outliers >= cfg.min_outliers and m.outliers >= cfg.outlier_fraction * m.scored
            if many:
                out += self._announce(
                    EVENT_OUTLIERS,
                    t_end,
                    float(m.outliers),
                    float(cfg.min_outliers),
                    None,
                    f"{m.outliers} of {m.scored} events in a minute had an unusual combination "
                    "of latency, tokens, size and tool use",
                )
            elif EVENT_OUTLIERS in s.firing:
                out.append(
                    self._finding(EVENT_OUTLIERS, t_end, False, m.outliers, None, None, "normal")
                )
        # Mean latency and mean tokens per operation (a cost per call, not the traffic volume).
        for key, signal, x, ok in (
            (
                "latency",
                LATENCY_SPIKE,
                math.log1p(m.latency_sum / m.latency_n) if m.latency_n else 0.0,
                m.latency_n >= cfg.min_bucket_events,
            ),
            (
                "tokens",
                TOKEN_SPIKE,
                math.log1p(m.tokens / m.ops) if m.ops else 0.0,
                m.ops >= cfg.min_bucket_events,
            ),
        ):
            if signal not in cfg.enabled or not ok:
                continue
            det = self._dets[key]
            score = det.score_one(x, m.start)
            # The z-score detector is two-sided; only "higher than usual" is a spike.
            level = s.levels.get(key)
            extreme = score >= cfg.latency_z_score and level is not None and x > level
            if extreme:
                s.streak[signal] = s.streak.get(signal, 0) + 1
            else:
                s.streak[signal] = 0
                det.learn_one(x, m.start)
                s.levels[key] = x if level is None else level + 0.02 * (x - level)
            value = math.expm1(x)
            if s.streak[signal] >= cfg.sustain_buckets:
                out += self._announce(
                    signal, t_end, value, None, score, f"mean {key} per operation {value:.0f}"
                )
            elif signal in s.firing and not extreme:
                out.append(
                    self._finding(signal, t_end, False, value, None, score, "back to normal")
                )
        return out

    # -- evaluations ------------------------------------------------------------------------
    def _warm(self, t: float) -> bool:
        return self.s.first_t is not None and t - self.s.first_t >= self.config.warmup_s

    def _span(self, signal: str, t: float, w: float) -> float:
        """Window length, cut at the last clear: the tail of a past spike must not re-fire it."""
        cleared = self.s.cleared_at.get(signal)
        return w if cleared is None else max(BUCKET_S, min(w, t - cleared))

    def _eval_errors(self, t: float) -> list[Finding]:
        s, cfg = self.s, self.config
        base = self._base_fraction()
        best: tuple[float, float, int, int, float] | None = None  # p, w, ops, errs, score
        warm = self._warm(t)
        for w in cfg.error_windows_s:
            ops, errs, _ = s.buckets.window(t, self._span(ERROR_SPIKE, t, w))
            if errs < cfg.min_errors or ops == 0:
                continue
            frac = errs / ops
            if frac < base + cfg.min_error_fraction_delta or frac < 2.0 * base:
                continue
            if not warm and frac < cfg.cold_error_fraction:
                # A new agent has no baseline yet: only an obviously broken one pages.
                continue
            score = self._dets[f"err{int(w)}"].score_one(float(errs), t)
            # The count detector knows the usual error *count*; the binomial tail adds the
            # denominator, so a busier minute with a normal error fraction does not fire.
            p = max(_p_from_score(score), binomial_tail(errs, ops, base))
            if best is None or p < best[0]:
                best = (p, w, ops, errs, score)
        if best is None or best[0] > cfg.error_p:
            return []
        p, w, ops, errs, score = best
        return self._announce(
            ERROR_SPIKE,
            t,
            errs / ops,
            base,
            score,
            f"{errs} errors in {ops} operations over {int(w)} s "
            f"({errs / ops:.0%}, baseline {base:.1%}, p≈{p:.1e})",
            window_s=w,
        )

    def _eval_complaints(self, t: float) -> list[Finding]:
        s, cfg = self.s, self.config
        best: tuple[float, float, int, float, float] | None = None
        for w in cfg.complaint_windows_s:
            _, _, comp = s.buckets.window(t, self._span(COMPLAINT_BURST, t, w))
            if comp < cfg.min_complaints:
                continue
            det = self._dets[f"cmp{int(w)}"]
            score = det.score_one(float(comp), t)
            p = _p_from_score(score)
            if best is None or p < best[0]:
                best = (p, w, comp, score, det.expected_count(t))
        if best is None or best[0] > cfg.complaint_p:
            return []
        p, w, comp, score, expected = best
        return self._announce(
            COMPLAINT_BURST,
            t,
            float(comp),
            expected,
            score,
            f"{comp} complaints in {int(w) // 60} min (expected {expected:.2f}, p≈{p:.1e})",
            window_s=w,
        )

    def _eval_clear(self, t: float) -> list[Finding]:
        s, cfg = self.s, self.config
        out: list[Finding] = []
        if ERROR_SPIKE in s.firing:
            w = sorted(cfg.error_windows_s)[len(cfg.error_windows_s) // 2]
            ops, errs, _ = s.buckets.window(t, w)
            p = _p_from_score(self._dets[f"err{int(w)}"].score_one(float(errs), t))
            # Clear only when the error *fraction* is unremarkable too: a quiet agent in the
            # middle of a spike has few errors in absolute terms but still a high fraction.
            p_frac = binomial_tail(errs, ops, self._base_fraction())
            if (p > cfg.clear_p or errs < cfg.min_errors) and p_frac > cfg.clear_fraction_p:
                out.append(
                    self._finding(ERROR_SPIKE, t, False, errs / max(ops, 1), None, None, "cleared")
                )
            elif t - s.firing[ERROR_SPIKE] >= cfg.refresh_s:
                out += self._eval_errors(t)
        if COMPLAINT_BURST in s.firing:
            w = min(cfg.complaint_windows_s)
            _, _, comp = s.buckets.window(t, w)
            p = _p_from_score(self._dets[f"cmp{int(w)}"].score_one(float(comp), t))
            if p > cfg.clear_p or comp < cfg.min_complaints:
                out.append(self._finding(COMPLAINT_BURST, t, False, comp, None, None, "cleared"))
            elif t - s.firing[COMPLAINT_BURST] >= cfg.refresh_s:
                out += self._eval_complaints(t)
        return out

    def _eval_silence(self, now: float) -> list[Finding]:
        s, cfg = self.s, self.config
        if s.last_event_t is None or not self._warm(now):
            return []
        gap = now - s.last_event_t
        if gap < cfg.min_silent_s:
            return []
        rate = self._dets["volume"].expected_count(s.last_event_t) / MINUTE
        p = poisson_zero(rate, gap)
        if p > cfg.silent_p:
            return []
        return self._announce(
            AGENT_SILENT,
            now,
            gap,
            -math.log(cfg.silent_p) / max(rate, 1e-9),
            min(1.0, -math.log10(max(p, 1e-300)) / 12.0),
            f"no events for {gap:.0f} s (expected {rate * MINUTE:.1f}/min)",
            since=s.last_event_t,
        )

    # -- findings ---------------------------------------------------------------------------
    def _announce(
        self,
        signal: str,
        t: float,
        value: float,
        threshold: float | None,
        score: float | None,
        summary: str,
        window_s: float | None = None,
        since: float | None = None,
    ) -> list[Finding]:
        s = self.s
        last = s.firing.get(signal)
        if last is not None and t - last < self.config.refresh_s:
            return []
        extra = {}
        if window_s is not None:
            extra["window_s"] = f"{window_s:.0f}"
        start = since if since is not None else t - (window_s or MINUTE)
        extra["events_query"] = events_query(self.s.agent_id, start, t, signal)
        return [self._finding(signal, t, True, value, threshold, score, summary, extra)]

    def _finding(
        self,
        signal: str,
        t: float,
        firing: bool,
        value: float,
        threshold: float | None,
        score: float | None,
        summary: str,
        annotations: dict[str, str] | None = None,
    ) -> Finding:
        if firing:
            self.s.firing[signal] = t
        else:
            self.s.firing.pop(signal, None)
            self.s.streak.pop(signal, None)
            self.s.cleared_at[signal] = t
        return Finding(
            alertname=signal,
            agent_id=self.s.agent_id,
            severity=self.config.severities.get(signal, "warning"),
            labels=dict(self.s.labels),
            value=float(value),
            threshold=threshold,
            score=score,
            summary=f"{self.s.agent_id}: {summary}",
            annotations=annotations or {},
            event_time=utc(t),
            kind="condition",
            firing=firing,
            source="alerts.signals",
        )


_KIND_FILTER = {
    ERROR_SPIKE: "AND (event_type = 'ai.auditstream.error' OR is_error = 1)",
    COMPLAINT_BURST: "AND event_type = 'ai.auditstream.complaint'",
}


def events_query(agent_id: str, start: float, end: float, signal: str) -> str:
    """The ClickHouse query an on-call engineer runs to see the events behind an alert."""
    safe = agent_id.replace("\\", "\\\\").replace("'", "\\'")
    return (
        "SELECT event_time, event_type, event_id, is_error, latency_ms FROM events "
        f"WHERE agent_id = '{safe}' "
        f"AND event_time BETWEEN toDateTime64({start:.3f}, 3) AND toDateTime64({end:.3f}, 3) "
        f"{_KIND_FILTER.get(signal, '')} ORDER BY event_time LIMIT 200"
    ).replace("  ", " ")


def all_findings(signals: Iterable[AgentSignals], now: float) -> list[Finding]:
    out: list[Finding] = []
    for sig in signals:
        out += sig.tick(now)
    return out
