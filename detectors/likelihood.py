"""Anomaly likelihood (Ahmad, Lavin, Purdy, Agha 2017): one scale for very different raw scores.

A detector's raw score (a forest's path length, a tree's mass, a z-score) has a level and a
spread of its own on every series, so no single threshold suits them all. The likelihood asks
instead how unusual the *recent average* raw score (last ``short`` values) is under an
exponentially weighted Gaussian of that average's own history (``1/horizon``), and reports the
Gaussian upper tail on a log scale, ``-log10(tail) / 10`` (0.5 = a 1-in-1e5 event, 1.0 = 1e-10
or rarer). It is the step :class:`~auditstream.detectors.default.ContextLikelihood` uses per
channel, as a small reusable piece with a plain-list state.

>>> lik = AnomalyLikelihood(short=3, horizon=100, min_std=0.01)
>>> for r in [0.5, 0.52, 0.48, 0.51] * 25:
...     lik.update(r)
>>> lik.score(0.5) < 0.1 < 0.9 < lik.score(0.9)
True
>>> clone = AnomalyLikelihood(short=3, horizon=100, min_std=0.01)
>>> clone.load(lik.dump())
>>> clone.score(0.7) == lik.score(0.7)
True
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from .base import StateError

__all__ = ["AnomalyLikelihood"]

_SQRT2 = math.sqrt(2.0)


class AnomalyLikelihood:
    """Log-scaled Gaussian tail of the recent mean raw score under its own running statistics.

    ``score`` is pure (no state change); ``update`` learns one raw score. The Gaussian needs
    ``min_count`` raw scores before it scores anything above 0.
    """

    __slots__ = ("_n", "_raws", "alpha", "mean", "min_count", "min_std", "short", "var")

    def __init__(
        self, short: int = 5, horizon: int = 1000, min_std: float = 0.01, min_count: int = 2
    ) -> None:
        if short < 1 or horizon < 1 or min_std <= 0 or min_count < 2:
            raise ValueError("need short >= 1, horizon >= 1, min_std > 0, min_count >= 2")
        self.short, self.alpha = short, 1.0 / horizon
        self.min_std, self.min_count = min_std, min_count
        self.mean = 0.0
        self.var = 0.0
        self._n = 0
        self._raws: deque[float] = deque(maxlen=short)

    def _recent_mean(self, raw: float) -> float:
        raws = self._raws
        total = sum(raws) + raw
        k = len(raws) + 1
        if k > self.short:
            total -= raws[0]
            k -= 1
        return total / k

    def score(self, raw: float) -> float:
        """Likelihood score in ``[0, 1]`` of ``raw`` given what was learnt (no state change)."""
        if self._n < self.min_count:
            return 0.0
        z = (self._recent_mean(raw) - self.mean) / max(math.sqrt(self.var), self.min_std)
        tail = 0.5 * math.erfc(z / _SQRT2)
        return min(1.0, -math.log10(tail + 1e-10) / 10.0)

    def update(self, raw: float) -> None:
        """Learn one raw score."""
        self._raws.append(raw)
        avg = sum(self._raws) / len(self._raws)
        self._n += 1
        a = max(self.alpha, 1.0 / self._n)
        d = avg - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)

    def dump(self) -> list[Any]:
        """State as plain numbers: ``[mean, var, n, recent raw scores]``."""
        return [self.mean, self.var, self._n, list(self._raws)]

    def load(self, state: Any) -> None:
        """Restore :meth:`dump` output (raises :class:`StateError` when malformed)."""
        try:
            mean, var, n, raws = state
            self.mean, self.var, self._n = float(mean), float(var), int(n)
            if len(raws) > self.short:
                raise ValueError
            self._raws = deque((float(r) for r in raws), maxlen=self.short)
        except (TypeError, ValueError):
            raise StateError("malformed anomaly-likelihood state") from None
