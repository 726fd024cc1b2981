"""Statistical baselines: windowed Gaussian, EWMA z-score and a robust (median/MAD) z-score.

They are cheap, explainable and a yardstick for the smarter detectors. The Gaussian ones
turn a z-score into ``erf(|z| / sqrt(2))``, the probability mass a Gaussian puts closer to the
mean than ``x`` (0.95 ≈ two standard deviations, 0.997 ≈ three); the robust one reports the
same tail on a log scale, because MAD-scaled z-scores of heavy-tailed data are often huge.

>>> from auditstream.detectors.stats import RobustZScore
>>> det = RobustZScore(window=64, step=8)
>>> _ = det.score_many([5.0, 5.2, 4.9, 5.1] * 20)
>>> det.score_one(5.1) < 0.9, det.score_one(50.0) > 0.999
(True, True)
"""

from __future__ import annotations

import math
import statistics
from collections import deque

from .base import Detector, register

__all__ = ["EWMAZScore", "RobustZScore", "WindowedGaussian"]

_SQRT2 = math.sqrt(2.0)
_LN10 = math.log(10.0)
_SQRT_PI = math.sqrt(math.pi)


def _z_to_score(z: float) -> float:
    return math.erf(abs(z) / _SQRT2)


def _z_to_log_score(z: float) -> float:
    """Two-sided Gaussian tail of ``z`` on a log scale, squashed into ``[0, 1)``: ``L/(L + 10)``.

    ``L = -log10 P(|Z| >= |z|)`` is computed without underflow (asymptotic series far out), so
    the score keeps growing with ``|z|`` instead of tying at 1.0: heavy-tailed data, where
    MAD-scaled z-scores of 40 or 4000 are common, stays ordered and one threshold can pick the
    largest deviations.
    3σ ≈ 0.20, a 1e-10 tail = 0.5, a 1e-100 tail ≈ 0.91.

    >>> _z_to_log_score(0.0), round(_z_to_log_score(3.0), 2)
    (0.0, 0.2)
    >>> _z_to_log_score(40.0) < _z_to_log_score(41.0) < _z_to_log_score(4000.0) < 1.0
    True
    """
    az = min(abs(z), 1e150)  # beyond that u*u overflows; nothing real gets there
    if az < 37.0:
        logl = -math.log10(math.erfc(az / _SQRT2))
    else:  # erfc underflows: its asymptotic series (relative error < 1e-11 from here on)
        u = az / _SQRT2
        w = 1.0 / (2.0 * u * u)
        series = 1.0 - w + 3.0 * w * w - 15.0 * w**3
        logl = (u * u + math.log(u * _SQRT_PI) - math.log(series)) / _LN10
    logl = max(0.0, logl)
    return logl / (logl + 10.0)


@register
class WindowedGaussian(Detector):
    """Gaussian tail score against the mean/std of a trailing window (NAB's baseline).

    Mean and deviation are recomputed every ``step`` points over the last ``window`` values,
    as NAB's ``windowedGaussian`` does; the state is that window (≤ 8 bytes per value).

    >>> det = WindowedGaussian(window=100, step=10)
    >>> _ = det.score_many([1.0, 2.0, 3.0] * 40)
    >>> det.score_one(2.0) < 0.1, det.score_one(9.0) > 0.99
    (True, True)
    """

    name = "windowed_gaussian"
    max_state_bytes = 9 * 6400 + 4096  # msgpack: 9 bytes per float64
    _state_fields = ("_buf", "_mean", "_std", "_since")

    def __init__(self, window: int = 6400, step: int = 100, min_std: float = 1e-9) -> None:
        if window < 2 or step < 1 or window > 6400:
            raise ValueError("need 2 <= window <= 6400 and step >= 1")
        self._keep_params(window=window, step=step, min_std=min_std)
        self.window, self.step, self.min_std = window, step, min_std
        self._buf: deque[float] = deque(maxlen=window)
        self._mean = 0.0
        self._std = 0.0
        self._since = 0

    def _score(self, x: float, t: float | None) -> float:
        if len(self._buf) < 2 or self._std <= 0.0:
            return 0.0
        return _z_to_score((x - self._mean) / max(self._std, self.min_std))

    def _learn(self, x: float, t: float | None) -> None:
        self._buf.append(x)
        self._since += 1
        if self._since >= self.step or len(self._buf) <= self.step:
            self._since = 0
            self._mean = math.fsum(self._buf) / len(self._buf)
            self._std = statistics.pstdev(self._buf, self._mean) if len(self._buf) > 1 else 0.0


@register
class EWMAZScore(Detector):
    """Z-score against an exponentially weighted mean and variance (constant-size state).

    ``alpha`` is the weight of the newest value; the first ``warmup`` values score 0.

    >>> det = EWMAZScore(alpha=0.05, warmup=5)
    >>> _ = det.score_many([10.0, 11.0] * 50)
    >>> det.score_one(10.5) < 0.1, det.score_one(20.0) > 0.99
    (True, True)
    """

    name = "ewma_zscore"
    max_state_bytes = 512
    _state_fields = ("_mean", "_var", "_n")

    def __init__(self, alpha: float = 0.02, warmup: int = 30, min_std: float = 1e-9) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")
        self._keep_params(alpha=alpha, warmup=warmup, min_std=min_std)
        self.alpha, self.warmup, self.min_std = alpha, warmup, min_std
        self._mean = 0.0
        self._var = 0.0
        self._n = 0

    def _score(self, x: float, t: float | None) -> float:
        if self._n < max(self.warmup, 2):
            return 0.0
        return _z_to_score((x - self._mean) / max(math.sqrt(self._var), self.min_std))

    def _learn(self, x: float, t: float | None) -> None:
        self._n += 1
        if self._n == 1:
            self._mean = x
            return
        # Incremental EW mean/variance (West 1979 form, stable for long streams).
        a = self.alpha
        d = x - self._mean
        self._mean += a * d
        self._var = (1.0 - a) * (self._var + a * d * d)


@register
class RobustZScore(Detector):
    """Z-score against the median and MAD of a trailing window (robust to earlier spikes).

    Median and MAD are recomputed every ``step`` values (they move slowly, and sorting every
    point would cost ``window·log(window)``).

    >>> det = RobustZScore(window=32, step=4)
    >>> _ = det.score_many([1.0, 1.0, 1.2, 0.9] * 10 + [100.0] + [1.0, 1.1] * 5)
    >>> det.score_one(1.0) < det.score_one(5.0) < det.score_one(100.0)
    True
    """

    name = "robust_zscore"
    max_state_bytes = 9 * 4096 + 4096
    _state_fields = ("_buf", "_med", "_mad", "_since")

    def __init__(
        self, window: int = 512, step: int = 16, min_mad: float = 1e-9, scale_floor: float = 1.0
    ) -> None:
        if window < 4 or step < 1 or window > 4096:
            raise ValueError("need 4 <= window <= 4096 and step >= 1")
        self._keep_params(window=window, step=step, min_mad=min_mad, scale_floor=scale_floor)
        self.scale_floor = scale_floor
        self.window, self.step, self.min_mad = window, step, min_mad
        self._buf: deque[float] = deque(maxlen=window)
        self._med = 0.0
        self._mad = 0.0
        self._since = 0

    def _score(self, x: float, t: float | None) -> float:
        if len(self._buf) < 4:
            return 0.0
        return _z_to_log_score((x - self._med) / max(self._mad, self.min_mad))

    def _learn(self, x: float, t: float | None) -> None:
        self._buf.append(x)
        self._since += 1
        if self._since >= self.step or len(self._buf) <= self.step:
            self._since = 0
            self._med = statistics.median(self._buf)
            dev = [abs(v - self._med) for v in self._buf]
            # 1.4826·MAD estimates σ for Gaussian data; when over half the window sits on the
            # median (idle counters) MAD is 0, so fall back to 1.2533·mean absolute deviation.
            mad = statistics.median(dev)
            # Floor: a fraction of the mean absolute deviation, so a window where most values
            # repeat exactly (MAD ≈ 0) does not turn every small move into a 40-sigma event.
            mean_dev = 1.2533 * math.fsum(dev) / len(dev)
            self._mad = max(1.4826 * mad, self.scale_floor * mean_dev)
