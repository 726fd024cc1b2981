"""Machine-learning detectors behind the protocol: river HalfSpaceTrees, sklearn IsolationForest.

Both see a *shingle* (the current value and the ``shingle - 1`` before it), so they can notice
a change in shape, not only an unusual level.

- :class:`HalfSpaceTreesDetector` wraps ``river.anomaly.HalfSpaceTrees``, which needs every
  feature in ``[0, 1]``: values are min-max scaled by the running range seen so far (values
  beyond it are clipped, which is itself what makes them stand out).
- :class:`IsolationForestDetector` refits ``sklearn.ensemble.IsolationForest`` every
  ``refit_every`` values on the trailing ``window`` shingles (a batch model used in a stream).
  Its state is only that trailing buffer: the model is rebuilt from it (fixed seed), so the
  state stays small and restores exactly.

>>> from auditstream.detectors.ml import IsolationForestDetector
>>> det = IsolationForestDetector(window=200, refit_every=100, n_estimators=20)
>>> s = det.score_many([float(i % 10) for i in range(400)])
>>> float(s[:100].max())  # no model before the first fit
0.0
>>> 0.0 < det.score_one(500.0) <= 1.0
True
"""

from __future__ import annotations

import pickle
from collections import deque
from typing import Any

import numpy as np

from .base import Detector, StateError, register

__all__ = ["HalfSpaceTreesDetector", "IsolationForestDetector"]


@register
class HalfSpaceTreesDetector(Detector):
    """river ``HalfSpaceTrees`` on a min-max scaled shingle.

    The river model is kept as a pickle inside the state: restore only bytes this service
    wrote (its own faust changelog), never bytes from outside.

    >>> det = HalfSpaceTreesDetector(window_size=50, seed=1)
    >>> _ = det.score_many([1.0, 2.0, 1.5] * 100)
    >>> 0.0 <= det.score_one(1.5) <= 1.0
    True
    """

    name = "half_space_trees"
    max_state_bytes = 512 * 1024
    _state_fields = ("_lo", "_hi", "_recent")

    def __init__(
        self,
        n_trees: int = 10,
        height: int = 8,
        window_size: int = 250,
        shingle: int = 1,
        seed: int = 42,
    ) -> None:
        from river.anomaly import HalfSpaceTrees

        if shingle < 1:
            raise ValueError("shingle must be >= 1")
        self._keep_params(
            n_trees=n_trees, height=height, window_size=window_size, shingle=shingle, seed=seed
        )
        self.shingle = shingle
        self._model = HalfSpaceTrees(
            n_trees=n_trees, height=height, window_size=window_size, seed=seed
        )
        self._lo: float | None = None
        self._hi: float | None = None
        self._recent: deque[float] = deque(maxlen=max(shingle - 1, 1))

    def _features(self, x: float) -> dict[str, float]:
        lo, hi = self._lo, self._hi
        span = (hi - lo) if lo is not None and hi is not None and hi > lo else 1.0
        base = lo if lo is not None else x
        vals = [*list(self._recent)[-(self.shingle - 1) :], x] if self.shingle > 1 else [x]
        vals = [x] * (self.shingle - len(vals)) + vals  # pad the first few shingles
        return {f"x{i}": min(1.0, max(0.0, (v - base) / span)) for i, v in enumerate(vals)}

    def _score(self, x: float, t: float | None) -> float:
        if self._lo is None:
            return 0.0
        return float(self._model.score_one(self._features(x)))

    def _learn(self, x: float, t: float | None) -> None:
        self._model.learn_one(self._features(x))
        self._lo = x if self._lo is None else min(self._lo, x)
        self._hi = x if self._hi is None else max(self._hi, x)
        self._recent.append(x)

    def _get_state(self) -> dict[str, Any]:
        state = super()._get_state()
        state["model"] = pickle.dumps(self._model, protocol=pickle.HIGHEST_PROTOCOL)
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        if not isinstance(state.get("model"), bytes):
            raise StateError("half_space_trees state lacks its model")
        self._model = pickle.loads(state["model"])  # trusted: written by to_bytes()


@register
class IsolationForestDetector(Detector):
    """scikit-learn ``IsolationForest`` refit periodically on a trailing window of shingles.

    Score: ``-score_samples`` (the paper's ``2^(-E[h]/c(n))``), in ``(0, 1]``; ~0.5 is normal.
    The batch form scores all values between two refits with one vectorised call.
    """

    name = "isolation_forest"
    max_state_bytes = 9 * 8192 + 4096
    _state_fields = ("_buf", "_since_fit", "_fitted")

    def __init__(
        self,
        window: int = 1000,
        refit_every: int = 250,
        shingle: int = 4,
        n_estimators: int = 50,
        seed: int = 42,
    ) -> None:
        if shingle < 1 or window < 10 or refit_every < 1 or window + refit_every > 8000:
            raise ValueError("need shingle >= 1, window >= 10, window + refit_every <= 8000")
        self._keep_params(
            window=window,
            refit_every=refit_every,
            shingle=shingle,
            n_estimators=n_estimators,
            seed=seed,
        )
        self.window, self.refit_every, self.shingle = window, refit_every, shingle
        self.n_estimators, self.seed = n_estimators, seed
        # The buffer holds the training window as of the last fit plus what came since.
        self._buf: deque[float] = deque(maxlen=window + refit_every + shingle)
        self._since_fit = 0
        self._fitted = False
        self._model: Any = None

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

    def _score(self, x: float, t: float | None) -> float:
        if not self._fitted:
            return 0.0
        if self._model is None:
            self._fit()  # restored from bytes: rebuild the same model
        recent = list(self._buf)[-(self.shingle - 1) :] if self.shingle > 1 else []
        row = np.array([[x] * (self.shingle - 1 - len(recent)) + recent + [x]])
        return float(-self._model.score_samples(row)[0])

    def _learn(self, x: float, t: float | None) -> None:
        self._buf.append(x)
        self._since_fit += 1
        if self._since_fit >= self.refit_every and len(self._buf) >= min(self.window, 100):
            self._since_fit = 0
            self._fitted = True
            self._fit()

    def _score_many(self, values: list[float], times: Any) -> np.ndarray:
        out = np.zeros(len(values))
        i = 0
        while i < len(values):
            if not self._fitted:
                # Learn one by one until the first fit.
                out[i] = 0.0
                self._learn(values[i], None)
                i += 1
                continue
            if self._model is None:
                self._fit()
            n = min(self.refit_every - self._since_fit, len(values) - i)
            prev = list(self._buf)[-(self.shingle - 1) :] if self.shingle > 1 else []
            prev = [values[i]] * (self.shingle - 1 - len(prev)) + prev
            chunk = np.array(prev + values[i : i + n])
            out[i : i + n] = -self._model.score_samples(self._shingles(chunk))
            for v in values[i : i + n]:
                self._learn(v, None)
            i += n
        return out
