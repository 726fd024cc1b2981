"""Multivariate per-event scorer: how unusual is this event's *combination* of numbers?

One event (an agent action, a model output) carries several numbers at once: latency, input
and output tokens, an amount. Each may be ordinary on its own while the combination is not
(many tokens but instant latency). :class:`MultivariateGaussian` keeps an exponentially
weighted mean and covariance of a fixed, ordered feature list (log1p-transformed when
``log_features`` says so, since latencies, token counts and amounts are heavy-tailed) and scores
the Mahalanobis distance through the chi-square distribution, i.e. the probability mass of a
Gaussian closer to the mean than the event. ``min_std`` floors every feature's spread (in the
transformed space): a feature that barely varies (synthetic traffic, fixed-size payloads) would
otherwise make a change of a few percent look like a 50-sigma event. Missing features are
imputed with their mean (they neither raise nor lower the score) and are not learnt.

>>> from auditstream.detectors.multivariate import MultivariateGaussian
>>> det = MultivariateGaussian(features=("latency_ms", "output_tokens"), warmup=20)
>>> import random
>>> rng = random.Random(7)
>>> for _ in range(300):
...     n = rng.uniform(100, 1000)
...     det.learn_one({"latency_ms": 5 * n + rng.gauss(0, 100), "output_tokens": n})
>>> det.score_one({"latency_ms": 2500.0, "output_tokens": 500.0}) < 0.9
True
>>> det.score_one({"latency_ms": 20.0, "output_tokens": 900.0}) > 0.999
True
>>> max(det.explain({"latency_ms": 20.0, "output_tokens": 900.0}).items(), key=lambda kv: kv[1])[0]
'latency_ms'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import gammainc

from .base import Detector, DetectorInputError, check_value, register

__all__ = ["MultivariateGaussian"]

MAX_FEATURES = 32


@register
class MultivariateGaussian(Detector):
    """EW Gaussian (mean + covariance) over named features; score = chi-square CDF of d²."""

    name = "multivariate_gaussian"
    max_state_bytes = 8 * (MAX_FEATURES * MAX_FEATURES + 2 * MAX_FEATURES) + 4096
    _state_fields = ("_mean", "_cov", "_n")

    def __init__(
        self,
        features: Sequence[str] = ("value",),
        alpha: float = 0.01,
        warmup: int = 30,
        log_features: bool = True,
        ridge: float = 1e-6,
        min_std: float = 0.0,
    ) -> None:
        feats = tuple(features)
        if not 1 <= len(feats) <= MAX_FEATURES or len(set(feats)) != len(feats):
            raise ValueError(f"need 1..{MAX_FEATURES} distinct feature names")
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        if not 0.0 <= min_std < math.inf:
            raise ValueError("min_std must be >= 0")
        self._keep_params(
            features=list(feats),
            alpha=alpha,
            warmup=warmup,
            log_features=log_features,
            ridge=ridge,
            min_std=min_std,
        )
        self.min_std = min_std
        self.features, self.alpha, self.warmup = feats, alpha, warmup
        self.log_features, self.ridge = log_features, ridge
        k = len(feats)
        self._mean = np.zeros(k)
        self._cov = np.zeros((k, k))
        self._n = 0

    # -- inputs -------------------------------------------------------------------------------
    def _vector(self, x: Mapping[str, Any] | float) -> tuple[np.ndarray, np.ndarray]:
        """(values, present-mask); a bare number is accepted for a one-feature scorer."""
        if not isinstance(x, Mapping):
            if len(self.features) != 1:
                raise DetectorInputError("expected a mapping of feature name to number")
            x = {self.features[0]: x}
        vals = np.empty(len(self.features))
        mask = np.zeros(len(self.features), dtype=bool)
        for i, f in enumerate(self.features):
            raw = x.get(f)
            if raw is None:
                vals[i] = self._mean[i]
                continue
            v = check_value(raw)
            if self.log_features:
                v = math.copysign(math.log1p(abs(v)), v)
            vals[i], mask[i] = v, True
        return vals, mask

    def _distance_terms(self, v: np.ndarray) -> np.ndarray:
        d = v - self._mean
        k = len(d)
        floor = self.ridge * (1.0 + np.trace(self._cov) / k) + self.min_std**2
        cov = self._cov + floor * np.eye(k)
        # Per-feature share of d² = d·Σ⁻¹d (sums to the Mahalanobis distance).
        return d * np.linalg.solve(cov, d)

    # -- protocol (mapping inputs) ------------------------------------------------------------
    def score_one(self, x: Mapping[str, Any] | float, t: float | None = None) -> float:  # type: ignore[override]
        v, mask = self._vector(x)
        if self._n < max(self.warmup, 2) or not mask.any():
            return 0.0
        d2 = float(self._distance_terms(v).sum())
        return float(gammainc(len(v) / 2.0, max(d2, 0.0) / 2.0))  # chi-square CDF

    def learn_one(self, x: Mapping[str, Any] | float, t: float | None = None) -> None:  # type: ignore[override]
        v, mask = self._vector(x)
        if not mask.any():
            return
        self._n += 1
        if self._n == 1:
            self._mean = v.copy()
            return
        a = self.alpha
        d = np.where(mask, v - self._mean, 0.0)
        self._mean = self._mean + a * d
        self._cov = (1.0 - a) * (self._cov + a * np.outer(d, d))

    def score_learn_one(self, x: Mapping[str, Any] | float, t: float | None = None) -> float:  # type: ignore[override]
        s = self.score_one(x, t)
        self.learn_one(x, t)
        return s

    def score_many(self, xs: Sequence[Any], ts: Sequence[float] | None = None) -> np.ndarray:  # type: ignore[override]
        return np.array([self.score_learn_one(x) for x in xs], dtype=np.float64)

    def explain(self, x: Mapping[str, Any]) -> dict[str, float]:
        """Each feature's share of the squared distance (largest = what made it unusual)."""
        v, _ = self._vector(x)
        return dict(zip(self.features, self._distance_terms(v).tolist(), strict=True))

    def _score(self, x: float, t: float | None) -> float:
        return self.score_one(x, t)

    def _learn(self, x: float, t: float | None) -> None:
        self.learn_one(x, t)
