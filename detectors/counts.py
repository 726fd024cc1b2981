"""Spike detector for sparse, bursty counts (errors, complaints per minute), often zero.

Gaussian z-scores fail on such series: the variance of a mostly-zero series is tiny, so one
error looks like a ten-sigma event, and a count cannot be negative. This detector models the
count in each time bucket as Poisson with an unknown rate, and keeps a Gamma posterior on that
rate whose evidence decays with a half-life in *event time* (buckets nobody reported are zero
counts). The predictive distribution of the next bucket is then negative binomial, and the
score is the surprise of the observed count, ``-log10 P(X >= x)``, scaled to ``[0, 1]`` by
``surprise_cap`` (default 12: score 0.5 means a 1-in-a-million count, 1.0 means 1e-12 or
rarer). Counts below ``min_count`` always score 0, so a single error never pages anyone.

Usage (one detector per agent and signal, fed once per bucket, or whenever events arrive with
their event time; missing buckets count as zeros):

>>> from auditstream.detectors.counts import CountSpike
>>> det = CountSpike(bucket_seconds=60, half_life_buckets=60)
>>> quiet = [0, 0, 1, 0, 0, 0, 2, 0, 0, 0] * 30
>>> _ = det.score_many(quiet, [60.0 * i for i in range(len(quiet))])
>>> t = 60.0 * len(quiet)
>>> det.score_one(1, t) < 0.1, det.score_one(15, t) > 0.5
(True, True)
>>> round(det.tail_probability(15, t), 12) < 1e-6
True
>>> det.expected_count(t) < 0.5
True
"""

from __future__ import annotations

import math

from scipy.special import betainc

from .base import Detector, register

__all__ = ["CountSpike"]


@register
class CountSpike(Detector):
    """Gamma-Poisson surprise of a count against its decayed event-time history.

    Parameters (global, not per series):

    - ``bucket_seconds``: the width of one count bucket in event time (ignored when ``t`` is
      ``None``: then each call is the next bucket).
    - ``half_life_buckets``: how fast old evidence fades (adapts to a new normal in about two
      half-lives).
    - ``prior_rate`` / ``prior_buckets``: the rate assumed before any data and how many buckets
      of evidence it is worth; keeps the first buckets of a new agent from alarming.
    - ``min_count``: counts below it score 0.
    - ``clip_factor``: a learnt count is capped at ``clip_factor · (expected + 1)`` so one huge
      burst does not blind the detector for a whole half-life.
    """

    name = "count_spike"
    max_state_bytes = 512
    _state_fields = ("_alpha", "_beta", "_last_bucket", "_n")

    def __init__(
        self,
        bucket_seconds: float = 60.0,
        half_life_buckets: float = 1440.0,
        prior_rate: float = 0.5,
        prior_buckets: float = 10.0,
        min_count: int = 3,
        surprise_cap: float = 12.0,
        clip_factor: float = 10.0,
    ) -> None:
        if bucket_seconds <= 0 or half_life_buckets <= 0 or prior_rate <= 0 or prior_buckets <= 0:
            raise ValueError("bucket_seconds, half_life_buckets, prior_* must be positive")
        self._keep_params(
            bucket_seconds=bucket_seconds,
            half_life_buckets=half_life_buckets,
            prior_rate=prior_rate,
            prior_buckets=prior_buckets,
            min_count=min_count,
            surprise_cap=surprise_cap,
            clip_factor=clip_factor,
        )
        self.bucket_seconds = float(bucket_seconds)
        self.decay = 0.5 ** (1.0 / half_life_buckets)
        self.prior_alpha = prior_rate * prior_buckets
        self.prior_beta = float(prior_buckets)
        self.min_count = min_count
        self.surprise_cap = surprise_cap
        self.clip_factor = clip_factor
        self._alpha = 0.0  # decayed sum of counts
        self._beta = 0.0  # decayed number of buckets
        self._last_bucket: float | None = None
        self._n = 0

    # -- event-time bookkeeping ---------------------------------------------------------------
    def _elapsed(self, t: float | None) -> float:
        """Buckets since the last learnt one (0 for late or same-bucket data)."""
        if self._last_bucket is None:
            return 1.0
        if t is None:
            return 1.0
        return max(0.0, math.floor(t / self.bucket_seconds) - self._last_bucket)

    def _posterior(self, t: float | None) -> tuple[float, float]:
        """Gamma(shape, rate) of the bucket rate at time ``t``, before its own count."""
        n = self._elapsed(t)
        if n <= 0.0:
            return self._alpha + self.prior_alpha, self._beta + self.prior_beta
        d = self.decay**n
        # The n-1 silent buckets in between add (decayed) exposure but no counts.
        silent = (self.decay - d) / (1.0 - self.decay)
        return d * self._alpha + self.prior_alpha, d * self._beta + silent + self.prior_beta

    # -- public extras ------------------------------------------------------------------------
    def expected_count(self, t: float | None = None) -> float:
        """Mean of the predictive distribution for the bucket at ``t``."""
        a, b = self._posterior(t)
        return a / b

    def tail_probability(self, x: float, t: float | None = None) -> float:
        """``P(X >= x)`` under the predictive negative binomial for the bucket at ``t``."""
        if x <= 0:
            return 1.0
        a, b = self._posterior(t)
        # NB(r=a, p=b/(b+1)):  P(X >= x) = I_{1-p}(x, a)  (regularised incomplete beta).
        return float(betainc(math.ceil(x), a, 1.0 / (b + 1.0)))

    # -- protocol -----------------------------------------------------------------------------
    def _score(self, x: float, t: float | None) -> float:
        if x < 0:
            from .base import DetectorInputError

            raise DetectorInputError(f"count must be >= 0, got {x}")
        if x < self.min_count:
            return 0.0
        p = self.tail_probability(x, t)
        if p <= 0.0:
            return 1.0
        return min(1.0, max(0.0, -math.log10(p) / self.surprise_cap))

    def _learn(self, x: float, t: float | None) -> None:
        if x < 0:
            from .base import DetectorInputError

            raise DetectorInputError(f"count must be >= 0, got {x}")
        a, b = self._posterior(t)
        cap = self.clip_factor * (a / b + 1.0)
        n = self._elapsed(t)
        if n <= 0.0:  # late or same bucket: add the count to the current bucket
            self._alpha += min(x, cap)
        else:
            self._alpha = a - self.prior_alpha + min(x, cap)
            self._beta = b - self.prior_beta + 1.0
            if t is None:
                self._last_bucket = (self._last_bucket or 0.0) + 1.0
            else:
                self._last_bucket = float(math.floor(t / self.bucket_seconds))
        self._n += 1
