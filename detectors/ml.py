"""Machine-learning detectors behind the protocol: river HalfSpaceTrees, sklearn IsolationForest.

Both see a *shingle* (the current value and the ``shingle - 1`` before it), so they can notice
a change in shape, not only an unusual level.

- :class:`HalfSpaceTreesDetector` wraps ``river.anomaly.HalfSpaceTrees``, which needs every
  feature in ``[0, 1]``: values are scaled by the range of a trailing window into the middle
  of ``[0, 1]`` (a running min-max over everything seen would squash the data after the first
  outlier), so values beyond the recent range land in the sparse margins.
- :class:`IsolationForestDetector` refits ``sklearn.ensemble.IsolationForest`` every
  ``refit_every`` values on the trailing ``window`` shingles (a batch model used in a stream).
  Its state is that trailing buffer and a few numbers: the model is rebuilt from it (fixed
  seed), so the state stays small and restores exactly.

Both report the raw model score through an anomaly likelihood
(:mod:`auditstream.detectors.likelihood`), as the default detector does, so that one
threshold works across series whose raw scores have different levels and spreads.

>>> from auditstream.detectors.ml import IsolationForestDetector
>>> det = IsolationForestDetector(window=200, refit_every=100, n_estimators=20)
>>> s = det.score_many([float(i % 10) for i in range(400)])
>>> float(s[:100].max())  # no model before the first fit
0.0
>>> 0.0 < det.score_one(500.0) <= 1.0
True
"""

from __future__ import annotations

import itertools
import math
import pickle
from collections import deque
from typing import Any

import numpy as np

from .base import Detector, StateError, register
from .likelihood import AnomalyLikelihood

__all__ = ["HalfSpaceTreesDetector", "IsolationForestDetector", "PredictiveDetector"]


class _RiverModelState:
    """State of a detector that keeps a river model and an anomaly likelihood: the model is
    pickled into the state (trusted: only bytes this service wrote are ever restored)."""

    name: str
    _model: Any
    _lik: AnomalyLikelihood
    _cache: Any

    def _get_state(self) -> dict[str, Any]:
        state = super()._get_state()  # type: ignore[misc]
        state["likelihood"] = self._lik.dump()
        state["model"] = pickle.dumps(self._model, protocol=pickle.HIGHEST_PROTOCOL)
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)  # type: ignore[misc]
        if not isinstance(state.get("model"), bytes) or "likelihood" not in state:
            raise StateError(f"{self.name} state lacks its model or likelihood")
        self._lik.load(state["likelihood"])
        self._cache = None
        self._model = pickle.loads(state["model"])  # trusted: written by to_bytes()


@register
class HalfSpaceTreesDetector(_RiverModelState, Detector):
    """river ``HalfSpaceTrees`` on a robustly window-scaled shingle, through an anomaly likelihood.

    Scaling: every ``scale_step`` values, ``lo``/``hi`` are the ``scale_quantile`` and
    ``1 - scale_quantile`` quantiles of the last ``scale_window`` values; a value maps to
    ``margin + (1 - 2·margin)·(v - lo)/(hi - lo)``, clipped to ``[0, 1]``. The recent range sits
    in the middle of river's ``[0, 1]`` work space, values beyond it land in the sparse margins
    (instead of being squashed against a range that only ever grows), and an old spike leaves
    the scale once it leaves the window. The raw tree score then goes through
    :class:`~auditstream.detectors.likelihood.AnomalyLikelihood`, so one threshold fits all
    series.

    The river model is kept as a pickle inside the state: restore only bytes this service
    wrote (its own faust changelog), never bytes from outside.

    >>> det = HalfSpaceTreesDetector(window_size=50, seed=1)
    >>> _ = det.score_many([1.0, 2.0, 1.5] * 100)
    >>> 0.0 <= det.score_one(1.5) <= 1.0
    True
    """

    name = "half_space_trees"
    max_state_bytes = 512 * 1024
    _state_fields = ("_window", "_lo", "_hi", "_since", "_n")

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        shingle: int = 4,
        seed: int = 42,
        scale_window: int = 3000,
        scale_step: int = 10,
        scale_quantile: float = 0.0,
        margin: float = 0.4,
        short: int = 5,
        likelihood_horizon: int = 1000,
        min_std: float = 0.01,
    ) -> None:
        from river.anomaly import HalfSpaceTrees

        if shingle < 1 or not shingle <= scale_window <= 8000 or scale_step < 1:
            raise ValueError("need shingle >= 1, shingle <= scale_window <= 8000, scale_step >= 1")
        if not 0.0 <= scale_quantile < 0.5 or not 0.0 <= margin < 0.5:
            raise ValueError("need 0 <= scale_quantile < 0.5 and 0 <= margin < 0.5")
        self._keep_params(
            n_trees=n_trees,
            height=height,
            window_size=window_size,
            shingle=shingle,
            seed=seed,
            scale_window=scale_window,
            scale_step=scale_step,
            scale_quantile=scale_quantile,
            margin=margin,
            short=short,
            likelihood_horizon=likelihood_horizon,
            min_std=min_std,
        )
        self.shingle, self.scale_step, self.scale_quantile = shingle, scale_step, scale_quantile
        self.margin = margin
        self._model = HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._lik = AnomalyLikelihood(short, likelihood_horizon, min_std)
        self._window: deque[float] = deque(maxlen=scale_window)
        self._lo = 0.0
        self._hi = 0.0
        self._since = 0
        self._n = 0
        self._cache: tuple[int, float, float] | None = None  # (n, x, raw) shared score→learn

    def _features(self, x: float) -> dict[str, float]:
        lo, hi, m = self._lo, self._hi, self.margin
        span = hi - lo
        if span <= 0.0:
            span = max(abs(hi) * 0.01, 1e-9)
        k = self.shingle
        recent = list(itertools.islice(reversed(self._window), k - 1))[::-1] if k > 1 else []
        vals = [x] * (k - 1 - len(recent)) + recent + [x]  # pad the first few shingles
        a, b = lo, (1.0 - 2.0 * m) / span
        return {f"x{i}": min(1.0, max(0.0, m + (v - a) * b)) for i, v in enumerate(vals)}

    def _raw(self, x: float) -> float | None:
        if not self._window or self._model._first_window:
            return None
        cache = self._cache
        if cache is not None and cache[0] == self._n and cache[1] == x:
            return cache[2]
        raw = float(self._model.score_one(self._features(x)))
        self._cache = (self._n, x, raw)
        return raw

    def _score(self, x: float, t: float | None) -> float:
        raw = self._raw(x)
        return 0.0 if raw is None else self._lik.score(raw)

    def _learn(self, x: float, t: float | None) -> None:
        raw = self._raw(x)
        if raw is not None:
            self._lik.update(raw)
        if self._window:
            self._model.learn_one(self._features(x))
        self._window.append(x)
        self._n += 1
        self._cache = None
        self._since += 1
        if self._since >= self.scale_step or len(self._window) <= self.scale_step:
            self._since = 0
            if self.scale_quantile > 0.0:
                arr = np.fromiter(self._window, dtype=np.float64)
                lo, hi = np.quantile(arr, [self.scale_quantile, 1.0 - self.scale_quantile])
                self._lo, self._hi = float(lo), float(hi)
            else:
                self._lo, self._hi = min(self._window), max(self._window)

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._window = deque(self._window, maxlen=self._params["scale_window"])


@register
class PredictiveDetector(_RiverModelState, Detector):
    """Prediction error of a river ``SNARIMAX`` forecaster, through an anomaly likelihood.

    The forecaster (autoregressive terms of order ``p``, differencing ``d``, moving-average
    terms ``q``; an SGD linear regression) predicts each standardised value one step
    ahead. Raw score = ``|x - forecast|`` over the root of an exponentially weighted mean of
    past squared errors (half-life ``error_half_life`` values), and
    :class:`~auditstream.detectors.likelihood.AnomalyLikelihood` turns that into the reported
    score, as for the other model-based detectors. The forecasting view of the NAB entries that
    learn what comes next: a value is unusual when it was not expected *here*. (river's own
    ``PredictiveAnomalyDetection`` updates its error statistics while scoring, which would break
    the protocol's "scoring does not learn", so the error is tracked here.)

    The river model is kept as a pickle inside the state: restore only bytes this service
    wrote, never bytes from outside.

    >>> det = PredictiveDetector(warmup=20)
    >>> import math
    >>> _ = det.score_many([math.sin(i / 5) for i in range(400)])
    >>> det.score_one(5.0) > det.score_one(math.sin(400 / 5))
    True
    """

    name = "river_predictive"
    max_state_bytes = 64 * 1024
    _state_fields = ("_n", "_mse", "_mean", "_var")

    def __init__(
        self,
        p: int = 6,
        d: int = 0,
        q: int = 2,
        warmup: int = 100,
        error_half_life: float = 200.0,
        short: int = 5,
        likelihood_horizon: int = 1000,
        min_std: float = 0.01,
    ) -> None:
        from river import linear_model, optim, time_series

        if not (0 <= p <= 32 and 0 <= d <= 2 and 0 <= q <= 32 and p + q >= 1):
            raise ValueError("need 0 <= p, q <= 32 (p + q >= 1) and 0 <= d <= 2")
        if error_half_life <= 0 or warmup < 0:
            raise ValueError("need error_half_life > 0 and warmup >= 0")
        self._keep_params(
            p=p,
            d=d,
            q=q,
            warmup=warmup,
            error_half_life=error_half_life,
            short=short,
            likelihood_horizon=likelihood_horizon,
            min_std=min_std,
        )

        # Values are standardised here (slow EW mean/variance) rather than by a river
        # StandardScaler pipeline, whose pickle does not round-trip byte for byte.
        def new_model() -> Any:
            regressor = linear_model.LinearRegression(
                optimizer=optim.SGD(0.005), intercept_lr=0.005
            )
            return time_series.SNARIMAX(p=p, d=d, q=q, regressor=regressor)

        self._new_model = new_model
        self._model = new_model()
        self._alpha = 1.0 - 0.5 ** (1.0 / error_half_life)
        self._scale_alpha = 1.0 - 0.5 ** (1.0 / 1000.0)
        self._mean: float | None = None
        self._var = 0.0
        self._lik = AnomalyLikelihood(short, likelihood_horizon, min_std)
        self._n = 0
        self._mse: float | None = None
        self._cache: tuple[int, float, float] | None = None  # (n, x, error) shared score→learn

    def _error(self, x: float) -> float:
        cache = self._cache
        if cache is not None and cache[0] == self._n and cache[1] == x:
            return cache[2]
        forecast = float(self._model.forecast(1)[0])
        if not abs(forecast) <= 1e3:  # diverged (or NaN): say nothing until _learn resets it
            forecast = self._standard(x)
        err = self._standard(x) - forecast
        self._cache = (self._n, x, err)
        return err

    def _raw(self, x: float) -> float:
        mse = self._mse or 0.0
        return min(abs(self._error(x)) / math.sqrt(mse + 1e-12), 1e6)

    def _score(self, x: float, t: float | None) -> float:
        if self._n <= self._params["warmup"] or self._mse is None:
            return 0.0
        return min(1.0, max(0.0, self._lik.score(self._raw(x))))

    def _learn(self, x: float, t: float | None) -> None:
        if self._n >= 2:
            if self._n > self._params["warmup"] and self._mse is not None:
                self._lik.update(self._raw(x))
            err2 = self._error(x) ** 2
            self._mse = err2 if self._mse is None else self._mse + self._alpha * (err2 - self._mse)
        if not abs(float(self._model.forecast(1)[0])) <= 1e3:
            self._model = self._new_model()  # SGD diverged: start the forecaster afresh
        self._model.learn_one(y=self._standard(x))
        if self._mean is None:
            self._mean = x
        else:
            a, delta = self._scale_alpha, x - self._mean
            self._mean += a * delta
            self._var = (1.0 - a) * (self._var + a * delta * delta)
        self._n += 1
        self._cache = None

    def _standard(self, x: float) -> float:
        if self._mean is None:
            return 0.0
        std = math.sqrt(self._var) or max(abs(self._mean) * 0.01, 1e-9)
        # Clipped: one wild value must not blow up the SGD weights (its error still counts).
        return max(-10.0, min(10.0, (x - self._mean) / std))


@register
class IsolationForestDetector(Detector):
    """scikit-learn ``IsolationForest`` refit periodically on a trailing window of shingles.

    Raw score: ``-score_samples`` (the paper's ``2^(-E[h]/c(n))``, in ``(0, 1]``, ~0.5 is
    normal). Its level and spread differ per series and shift at every refit, so it goes
    through :class:`~auditstream.detectors.likelihood.AnomalyLikelihood` (recent mean raw score
    against its own running Gaussian, log tail) before it is reported: one threshold then fits
    all series. The batch form scores all values between two refits with one vectorised call.
    """

    name = "isolation_forest"
    max_state_bytes = 9 * 8192 + 4096
    _state_fields = ("_buf", "_since_fit", "_fitted", "_n")

    def __init__(
        self,
        window: int = 1000,
        refit_every: int = 250,
        shingle: int = 2,
        n_estimators: int = 50,
        seed: int = 42,
        short: int = 5,
        likelihood_horizon: int = 1000,
        min_std: float = 0.01,
    ) -> None:
        if shingle < 1 or window < 10 or refit_every < 1 or window + refit_every > 8000:
            raise ValueError("need shingle >= 1, window >= 10, window + refit_every <= 8000")
        self._keep_params(
            window=window,
            refit_every=refit_every,
            shingle=shingle,
            n_estimators=n_estimators,
            seed=seed,
            short=short,
            likelihood_horizon=likelihood_horizon,
            min_std=min_std,
        )
        self.window, self.refit_every, self.shingle = window, refit_every, shingle
        self.n_estimators, self.seed = n_estimators, seed
        # The buffer holds the training window as of the last fit plus what came since.
        self._buf: deque[float] = deque(maxlen=window + refit_every + shingle)
        self._since_fit = 0
        self._fitted = False
        self._n = 0
        self._model: Any = None
        self._lik = AnomalyLikelihood(short, likelihood_horizon, min_std)
        self._cache: tuple[int, float, float] | None = None  # (n, x, raw) shared score→learn

    def _shingles(self, values: np.ndarray) -> np.ndarray:
        k = self.shingle
        if len(values) < k:
            return np.empty((0, k))
        return np.lib.stride_tricks.sliding_window_view(values, k)

    def _fit(self) -> None:
        from sklearn.ensemble import IsolationForest

        vals = np.fromiter(self._buf, dtype=np.float64)
        vals = vals[: len(vals) - self._since_fit][-(self.window + self.shingle - 1) :]
        self._model = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.seed, n_jobs=1
        ).fit(self._shingles(vals))

    def _raw(self, x: float) -> float | None:
        if not self._fitted:
            return None
        cache = self._cache
        if cache is not None and cache[0] == self._n and cache[1] == x:
            return cache[2]
        if self._model is None:
            self._fit()  # restored from bytes: rebuild the same model
        recent = list(self._buf)[-(self.shingle - 1) :] if self.shingle > 1 else []
        row = np.array([[x] * (self.shingle - 1 - len(recent)) + recent + [x]])
        raw = float(-self._model.score_samples(row)[0])
        self._cache = (self._n, x, raw)
        return raw

    def _score(self, x: float, t: float | None) -> float:
        raw = self._raw(x)
        return 0.0 if raw is None else self._lik.score(raw)

    def _learn(self, x: float, t: float | None) -> None:
        raw = self._raw(x)
        if raw is not None:
            self._lik.update(raw)
        self._push(x)

    def _push(self, x: float) -> None:
        self._buf.append(x)
        self._n += 1
        self._cache = None
        self._since_fit += 1
        if self._since_fit >= self.refit_every and len(self._buf) >= min(self.window, 100):
            self._since_fit = 0
            self._fitted = True
            self._fit()

    def _score_many(self, values: list[float], times: Any) -> np.ndarray:
        out = np.zeros(len(values))
        lik = self._lik
        i = 0
        while i < len(values):
            if not self._fitted:
                # Learn one by one until the first fit.
                out[i] = 0.0
                self._push(values[i])
                i += 1
                continue
            if self._model is None:
                self._fit()
            n = min(self.refit_every - self._since_fit, len(values) - i)
            prev = list(self._buf)[-(self.shingle - 1) :] if self.shingle > 1 else []
            prev = [values[i]] * (self.shingle - 1 - len(prev)) + prev
            chunk = np.array(prev + values[i : i + n])
            raws = (-self._model.score_samples(self._shingles(chunk))).tolist()
            for k, (v, raw) in enumerate(zip(values[i : i + n], raws, strict=True)):
                out[i + k] = lik.score(raw)
                lik.update(raw)
                self._push(v)
            i += n
        return out

    def _get_state(self) -> dict[str, Any]:
        state = super()._get_state()
        state["likelihood"] = self._lik.dump()
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        if "likelihood" not in state:
            raise StateError("isolation_forest state lacks its likelihood")
        self._lik.load(state["likelihood"])
        self._model = None
        self._cache = None
