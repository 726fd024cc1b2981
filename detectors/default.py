"""The default univariate detector: new-extreme + context-novelty likelihood, with refractory.

Design (what the strongest NAB entries have in common, rebuilt small and fast):

1. **Spatial novelty** (as in Numenta's detector): a value outside every value seen so far
   (by more than ``extreme_margin`` of the range) is the clearest anomaly there is, and many
   real incidents start that way. Score 1.0.
2. **Context novelty** (the idea behind KNN-CAD and CAD-OSE): the last ``context`` values form
   a shingle; its Chebyshev distance to the nearest of the previous ``memory`` shingles, in
   units of ``resolution`` × the range seen so far, is the raw surprise in ``[0, 1]`` (0 = this
   shape happened before, 1 = nothing like it). It catches anomalies inside the usual range: a
   missing daily peak, a flat stretch, denser spikes.
3. **Anomaly likelihood** (Ahmad et al. 2017): raw surprise is noisy and its level differs per
   series, so what is scored is how unlikely the *recent average* raw surprise (last ``short``
   values) is under a Gaussian fitted to that average's own history (exponentially weighted,
   ``1/likelihood_horizon``), reported on a log scale: ``-log10(tail)/10`` (0.5 = a 1-in-1e5
   event, 1.0 = 1e-10 or rarer). This makes one threshold work across very different series.
4. **Refractory period**: after a detection (score ≥ ``detection_level``), scores are halved
   for ``refractory`` values: one incident should page once, not fifty times.

The first ``warmup`` values score 0 (nothing to compare with yet). Time is the value index:
``t`` is accepted and ignored, so behaviour depends on event order only.

State: the last ``memory + context - 1`` values and a few scalars (~8 KB at the defaults);
no wall clock. Throughput: one vectorised nearest-neighbour search per value.

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
    ) -> None:
        if memory < 10 or context < 1 or memory + context > 6000:
            raise ValueError("need memory >= 10, context >= 1, memory + context <= 6000")
        if resolution <= 0 or short < 1 or likelihood_horizon < 1 or min_std <= 0:
            raise ValueError("resolution, short, likelihood_horizon, min_std must be positive")
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
        )
        self.memory, self.context, self.resolution = memory, context, resolution
        self.short, self.alpha = short, 1.0 / likelihood_horizon
        self.min_std, self.warmup = min_std, warmup
        self.refractory, self.detection_level = refractory, detection_level
        self.extreme_margin = extreme_margin
        self._n = 0
        self._lo = 0.0
        self._hi = 0.0
        self._raws: deque[float] = deque(maxlen=short)
        self._lik_mean = 0.0
        self._lik_var = 0.0
        self._lik_n = 0
        self._last_detection = -(10**9)
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
                out[start + i] = self._score(x, None)
                self._learn(x, None)
        return out

    def _likelihood(self, raw: float) -> float:
        if self._lik_n < 2:
            return 0.0
        raws = self._raws
        total = sum(raws) + raw
        k = len(raws) + 1
        if k > self.short:
            total -= raws[0]
            k -= 1
        z = (total / k - self._lik_mean) / max(math.sqrt(self._lik_var), self.min_std)
        tail = 0.5 * math.erfc(z / _SQRT2)
        return min(1.0, -math.log10(tail + 1e-10) / 10.0)

    def _base(self, x: float) -> float:
        if self._n < self.warmup:
            return 0.0
        # A new extreme by a rounding error is not news: require a sliver of the range.
        margin = self.extreme_margin * (self._hi - self._lo)
        if x > self._hi + margin or x < self._lo - margin:
            return 1.0
        return self._likelihood(self._raw(x))

    # -- protocol ---------------------------------------------------------------------------
    def _score(self, x: float, t: float | None) -> float:
        s = self._base(x)
        if self._n - self._last_detection <= self.refractory:
            return 0.5 * s
        return s

    def _learn(self, x: float, t: float | None) -> None:
        if (
            self._n >= self.warmup
            and self._n - self._last_detection > self.refractory
            and self._base(x) >= self.detection_level
        ):
            self._last_detection = self._n
        if self._n >= 1:
            raw = self._raw(x)
            self._raws.append(raw)
            avg = sum(self._raws) / len(self._raws)
            self._lik_n += 1
            a = max(self.alpha, 1.0 / self._lik_n)
            d = avg - self._lik_mean
            self._lik_mean += a * d
            self._lik_var = (1.0 - a) * (self._lik_var + a * d * d)
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
