"""The default univariate detector: new extremes + context and seasonal novelty likelihoods.

Design (what the strongest NAB entries have in common, rebuilt small and fast):

1. **Spatial novelty** (as in Numenta's detector): a value outside every value seen so far
   (by more than ``extreme_margin`` of the range) is the clearest anomaly there is, and many
   real incidents start that way. Score 1.0.
2. **Context novelty** (the idea behind KNN-CAD and CAD-OSE): the last ``context`` values form
   a shingle; its Chebyshev distance to the nearest of the previous ``memory`` shingles, in
   units of ``resolution`` × the range seen so far, is the raw surprise in ``[0, 1]`` (0 = this
   shape happened before, 1 = nothing like it). It catches anomalies inside the usual range:
   odd jumps, denser spikes, a changed short-term shape.
3. **Seasonal novelty** (event time): a typical value per time-of-day slot (``season_slots``
   slots of ``season_seconds``, exponentially weighted with ``season_alpha``); the distance of
   the value to its slot's (or a neighbouring slot's) typical value, in units of
   ``season_resolution`` × range, is a second raw surprise. It catches what a short context
   cannot: a missing daily peak, a flat day, a jump at the wrong hour. Needs ``t``; inactive
   until ``season_warmup`` seasons of event time have passed, or when ``season_seconds=0``.
4. **Anomaly likelihood** (Ahmad et al. 2017), per channel: raw surprise is noisy and its level
   differs per series, so what is scored is how unlikely the *recent average* raw surprise
   (last ``short`` values) is under a Gaussian fitted to that average's own history
   (exponentially weighted, ``1/likelihood_horizon``), on a log scale: ``-log10(tail)/10``
   (0.5 = a 1-in-1e5 event, 1.0 = 1e-10 or rarer). This makes one threshold work across very
   different series. The score is the largest of the channels.
5. **Refractory period**: after a detection (score ≥ ``detection_level``), scores are halved
   for ``refractory`` values: one incident should page once, not fifty times.

The first ``warmup`` values score 0 (nothing to compare with yet). Counts (memory, warm-up,
refractory) are in values, the season is in event-time seconds; no wall clock anywhere.

State: the last ``memory + context - 1`` values, the season table and a few scalars (~5 KB
at the defaults, bounded by parameters, never by stream length). Throughput: the batch form
finds the nearest shingles of 64 values in one vectorised step.

>>> from auditstream.detectors.default import ContextLikelihood
>>> import math
>>> det = ContextLikelihood(warmup=100)
>>> daily = [math.sin(2 * math.pi * i / 50) for i in range(600)]
>>> s = det.score_many(daily)
>>> float(s[100:].max()) < 0.5          # a learnt cycle is not anomalous
True
>>> det.score_one(3.0)                   # beyond anything seen: a new extreme
1.0
>>> det.score_one(0.0) < 0.5             # ... while an ordinary value is fine
True
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .base import Detector, StateError, register

__all__ = ["ContextLikelihood"]

_SQRT2 = math.sqrt(2.0)


@register
class ContextLikelihood(Detector):
    """Spatial novelty + shingle nearest-neighbour surprise → anomaly likelihood → refractory."""

    name = "context_likelihood"
    max_state_bytes = 64 * 1024
    _state_fields = (
        "_values",
        "_n",
        "_lo",
        "_hi",
        "_raws",
        "_lik_mean",
        "_lik_var",
        "_lik_n",
        "_last_detection",
        "_t0",
        "_slot_mean",
        "_slot_n",
        "_s_raws",
        "_s_lik_mean",
        "_s_lik_var",
        "_s_lik_n",
    )

    def __init__(
        self,
        memory: int = 500,
        context: int = 6,
        resolution: float = 0.1,
        short: int = 5,
        likelihood_horizon: int = 1000,
        min_std: float = 0.01,
        warmup: int = 300,
        refractory: int = 50,
        detection_level: float = 0.99,
        extreme_margin: float = 0.001,
        season_seconds: float = 86400.0,
        season_slots: int = 48,
        season_alpha: float = 0.03,
        season_resolution: float = 0.2,
        season_warmup: float = 2.0,
    ) -> None:
        # Limits that keep the serialised state under 64 KB (9 bytes per float in msgpack).
        if memory < 10 or context < 1 or memory + context > 5000:
            raise ValueError("need memory >= 10, context >= 1, memory + context <= 5000")
        if resolution <= 0 or short < 1 or likelihood_horizon < 1 or min_std <= 0:
            raise ValueError("resolution, short, likelihood_horizon, min_std must be positive")
        if season_seconds < 0 or not 1 <= season_slots <= 288 or not 0 < season_alpha <= 1:
            raise ValueError("need season_seconds >= 0, 1 <= season_slots <= 288, alpha in (0, 1]")
        self._keep_params(
            memory=memory,
            context=context,
            resolution=resolution,
            short=short,
            likelihood_horizon=likelihood_horizon,
            min_std=min_std,
            warmup=warmup,
            refractory=refractory,
            detection_level=detection_level,
            extreme_margin=extreme_margin,
            season_seconds=season_seconds,
            season_slots=season_slots,
            season_alpha=season_alpha,
            season_resolution=season_resolution,
            season_warmup=season_warmup,
        )
        self.memory, self.context, self.resolution = memory, context, resolution
        self.short, self.alpha = short, 1.0 / likelihood_horizon
        self.min_std, self.warmup = min_std, warmup
        self.refractory, self.detection_level = refractory, detection_level
        self.extreme_margin = extreme_margin
        self.season_seconds, self.season_slots = season_seconds, season_slots
        self.season_alpha, self.season_resolution = season_alpha, season_resolution
        self.season_warmup = season_warmup * season_seconds
        self._n = 0
        self._lo = 0.0
        self._hi = 0.0
        self._raws: deque[float] = deque(maxlen=short)
        self._lik_mean = 0.0
        self._lik_var = 0.0
        self._lik_n = 0
        self._last_detection = -(10**9)
        # Seasonal channel: a typical value per time-of-season slot (event time).
        self._t0: float | None = None
        self._slot_mean = [0.0] * season_slots
        self._slot_n = [0] * season_slots
        self._s_raws: deque[float] = deque(maxlen=short)
        self._s_lik_mean = 0.0
        self._s_lik_var = 0.0
        self._s_lik_n = 0
        # Working buffer: values in a linear array twice the memory, compacted when full, so
        # the last `memory` shingles are always one strided view (no copy per value).
        self._cap = 2 * (memory + context)
        self._buf = np.zeros(self._cap)
        self._count = 0
        self._cache: tuple[int, float, float] | None = None  # (n, x, raw) shared score→learn

    # -- state: only the values that the memory still needs ---------------------------------
    @property
    def _values(self) -> np.ndarray:
        keep = self.memory + self.context - 1
        return self._buf[max(0, self._count - keep) : self._count].copy()

    @_values.setter
    def _values(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or len(values) > self.memory + self.context - 1:
            raise StateError("context_likelihood state has a malformed value buffer")
        self._buf = np.zeros(self._cap)
        self._buf[: len(values)] = values
        self._count = len(values)
        self._cache = None

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._raws = deque(self._raws, maxlen=self.short)
        self._s_raws = deque(self._s_raws, maxlen=self.short)
        if len(self._slot_mean) != self.season_slots or len(self._slot_n) != self.season_slots:
            raise StateError("context_likelihood state has a malformed season table")

    # -- the raw surprise -------------------------------------------------------------------
    def _raw(self, x: float) -> float:
        cache = self._cache
        if cache is not None and cache[0] == self._n and cache[1] == x:
            return cache[2]
        L, c = self.context, self._count
        if c < L:
            raw = 0.0
        else:
            span = self._hi - self._lo
            if span <= 0.0:
                span = max(abs(self._hi) * 0.01, 1e-9)
            first = max(0, c - self.memory - L + 1)
            rows = c - L + 1 - first  # shingles that end at values already seen (< current)
            buf = self._buf
            hist = as_strided(
                buf[first:], shape=(rows, L), strides=(buf.strides[0], buf.strides[0])
            )
            cur = np.empty(L)
            cur[: L - 1] = buf[c - L + 1 : c]
            cur[-1] = x
            d = float(np.abs(hist - cur).max(axis=1).min())
            raw = min(1.0, d / (self.resolution * span))
        self._cache = (self._n, x, raw)
        return raw

    def _nearest_block(self, block: np.ndarray) -> np.ndarray:
        """Nearest-shingle distances for a block of upcoming values, in one vectorised step.

        Equal, element for element, to what :meth:`_raw` computes value by value (the same
        subtractions, absolute values and minima), so the batch path scores identically.
        Entries whose shingle is not complete yet are NaN.
        """
        L, m, c, b = self.context, self.memory, self._count, len(block)
        vals = np.concatenate((self._buf[max(0, c - m - L + 1) : c], block))
        offset = c - (len(vals) - b)  # buffer index of vals[0]
        out = np.full(b, np.nan)
        if len(vals) < L + 1:
            return out
        sh = np.lib.stride_tricks.sliding_window_view(vals, L)  # shingle k ends at vals[k+L-1]
        ends = np.arange(L - 1, len(vals))
        # Block value i sits at vals[pos_i]; its history is the shingles ending in
        # [max(L-1, pos_i - m) .. pos_i - 1] (in buffer terms), exactly as in _raw.
        pos = np.arange(len(vals) - b, len(vals))
        ok = pos >= L
        if not ok.any():
            return out
        cur = sh[pos[ok] - L + 1]
        hist = sh[:-1]
        # Column by column (B×H temporaries that stay in cache, not a B×H×L tensor).
        dist = np.abs(np.subtract.outer(cur[:, 0], hist[:, 0]))
        tmp = np.empty_like(dist)
        for k in range(1, L):
            np.subtract.outer(cur[:, k], hist[:, k], out=tmp)
            np.abs(tmp, out=tmp)
            np.maximum(dist, tmp, out=dist)
        lo = np.maximum(L - 1, pos[ok] + offset - m) - offset
        end = ends[:-1][None, :]
        valid = (end >= lo[:, None]) & (end <= pos[ok][:, None] - 1)
        out[ok] = np.where(valid, dist, np.inf).min(axis=1)
        return out

    def _score_many(self, values: list[float], times: Any) -> np.ndarray:
        out = np.empty(len(values))
        times = list(times)
        block = 64
        for start in range(0, len(values), block):
            chunk = values[start : start + block]
            nearest = self._nearest_block(np.asarray(chunk))
            for i, x in enumerate(chunk):
                d = nearest[i]
                if d == d:  # not NaN: inject the precomputed distance into the raw cache
                    span = self._hi - self._lo
                    if span <= 0.0:
                        span = max(abs(self._hi) * 0.01, 1e-9)
                    self._cache = (self._n, x, min(1.0, float(d) / (self.resolution * span)))
                t = times[start + i]
                out[start + i] = self._score(x, t)
                self._learn(x, t)
        return out

    def _likelihood(self, raws: deque[float], raw: float, mean: float, var: float, n: int) -> float:
        """Log-scaled tail of the recent mean raw surprise under its own running Gaussian."""
        if n < 2:
            return 0.0
        total = sum(raws) + raw
        k = len(raws) + 1
        if k > self.short:
            total -= raws[0]
            k -= 1
        z = (total / k - mean) / max(math.sqrt(var), self.min_std)
        tail = 0.5 * math.erfc(z / _SQRT2)
        return min(1.0, -math.log10(tail + 1e-10) / 10.0)

    def _update(
        self, raws: deque[float], raw: float, mean: float, var: float, n: int
    ) -> tuple[float, float, int]:
        raws.append(raw)
        avg = sum(raws) / len(raws)
        n += 1
        a = max(self.alpha, 1.0 / n)
        d = avg - mean
        return mean + a * d, (1.0 - a) * (var + a * d * d), n

    def _season_raw(self, x: float, t: float | None) -> float | None:
        """Distance to the typical value of this time-of-season slot (or its neighbours)."""
        if self.season_seconds <= 0 or t is None or self._t0 is None:
            return None
        if t - self._t0 < self.season_warmup:
            return None
        span = self._hi - self._lo
        if span <= 0.0:
            return None
        slots = self.season_slots
        slot = int((t % self.season_seconds) * slots // self.season_seconds) % slots
        best = math.inf
        for k in (slot - 1, slot, (slot + 1) % slots):  # neighbours absorb phase jitter
            if self._slot_n[k]:
                best = min(best, abs(x - self._slot_mean[k]))
        if best == math.inf:
            return None
        return min(1.0, best / (self.season_resolution * span))

    def _base(self, x: float, t: float | None) -> float:
        if self._n < self.warmup:
            return 0.0
        # A new extreme by a rounding error is not news: require a sliver of the range.
        margin = self.extreme_margin * (self._hi - self._lo)
        if x > self._hi + margin or x < self._lo - margin:
            return 1.0
        score = self._likelihood(
            self._raws, self._raw(x), self._lik_mean, self._lik_var, self._lik_n
        )
        s_raw = self._season_raw(x, t)
        if s_raw is not None:
            s_score = self._likelihood(
                self._s_raws, s_raw, self._s_lik_mean, self._s_lik_var, self._s_lik_n
            )
            score = max(score, s_score)
        return score

    # -- protocol ---------------------------------------------------------------------------
    def _score(self, x: float, t: float | None) -> float:
        s = self._base(x, t)
        if self._n - self._last_detection <= self.refractory:
            return 0.5 * s
        return s

    def _learn(self, x: float, t: float | None) -> None:
        if (
            self._n >= self.warmup
            and self._n - self._last_detection > self.refractory
            and self._base(x, t) >= self.detection_level
        ):
            self._last_detection = self._n
        if self._n >= 1:
            self._lik_mean, self._lik_var, self._lik_n = self._update(
                self._raws, self._raw(x), self._lik_mean, self._lik_var, self._lik_n
            )
        self._learn_season(x, t)
        if self._count == self._cap:
            keep = self.memory + self.context - 1
            self._buf[:keep] = self._buf[self._count - keep : self._count]
            self._count = keep
        self._buf[self._count] = x
        self._count += 1
        if self._n == 0:
            self._lo = self._hi = x
        else:
            self._lo = min(self._lo, x)
            self._hi = max(self._hi, x)
        self._n += 1
        self._cache = None

    def _learn_season(self, x: float, t: float | None) -> None:
        if self.season_seconds <= 0 or t is None:
            return
        s_raw = self._season_raw(x, t)
        if s_raw is not None:
            self._s_lik_mean, self._s_lik_var, self._s_lik_n = self._update(
                self._s_raws, s_raw, self._s_lik_mean, self._s_lik_var, self._s_lik_n
            )
        if self._t0 is None:
            self._t0 = t
        slots = self.season_slots
        slot = int((t % self.season_seconds) * slots // self.season_seconds) % slots
        if self._slot_n[slot] == 0:
            self._slot_mean[slot] = x
        else:
            self._slot_mean[slot] += self.season_alpha * (x - self._slot_mean[slot])
        self._slot_n[slot] += 1
