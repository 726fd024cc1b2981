"""The streaming detector protocol shared by every detector in ``auditstream.detectors``.

A detector sees one value at a time, in event order, and answers how anomalous it is:

- ``score_one(x, t)`` returns a score in ``[0, 1]`` using only what was learnt *before* ``x``
  (strictly causal: it never changes state);
- ``learn_one(x, t)`` updates the state with ``x``;
- ``score_learn_one(x, t)`` does both (score first, then learn) and ``score_many(xs, ts)`` is its
  batch form, which detectors may override for speed but which must give the same numbers;
- ``to_bytes()`` / :func:`load_detector` (or ``Cls.from_bytes``) serialise the whole state, so a
  faust table or changelog can hold one detector per key, and a restored detector scores exactly
  like the original; ``max_state_bytes`` bounds that size however long the stream runs;
- ``t`` is the *event* time in seconds (e.g. a Unix timestamp) or ``None``; no detector ever
  reads the wall clock, so replaying a topic gives the same scores.

Bad input (NaN, infinities, non-numbers) raises :class:`DetectorInputError` (a ``ValueError``)
before any state changes, so a caller can dead-letter the record and carry on.

Example with the simplest detector, a running z-score:

>>> from auditstream.detectors import make_detector, load_detector
>>> det = make_detector("ewma_zscore", alpha=0.1)
>>> scores = [det.score_learn_one(x) for x in [10.0, 10.5, 9.5, 10.2, 9.8] * 10]
>>> det.score_one(10.1) < 0.5 < det.score_one(60.0)
True
>>> clone = load_detector(det.to_bytes())
>>> clone.score_one(60.0) == det.score_one(60.0)
True
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Self

import msgspec
import numpy as np

__all__ = [
    "DETECTORS",
    "Detector",
    "DetectorInputError",
    "StateError",
    "check_time",
    "check_value",
    "load_detector",
    "make_detector",
    "register",
]

# Version of the byte envelope; bump when a detector's state layout changes incompatibly.
STATE_FORMAT = 1

DETECTORS: dict[str, type[Detector]] = {}


class DetectorInputError(ValueError):
    """A value a detector cannot score (NaN, infinite, not a number)."""


class StateError(ValueError):
    """Bytes that are not a valid detector state (corrupt, foreign, or from a newer format)."""


def check_value(x: object) -> float:
    """Return ``x`` as a finite float or raise :class:`DetectorInputError`.

    >>> check_value(3)
    3.0
    >>> check_value(float("nan"))
    Traceback (most recent call last):
    ...
    auditstream.detectors.base.DetectorInputError: value must be finite, got nan
    """
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DetectorInputError(f"value must be a number, got {type(x).__name__}") from None
    if not math.isfinite(v):
        raise DetectorInputError(f"value must be finite, got {v}")
    return v


def check_time(t: object) -> float | None:
    """Return event time ``t`` (seconds) as a finite float, ``None`` stays ``None``.

    >>> check_time(None) is None, check_time(1700000000)
    (True, 1700000000.0)
    """
    if t is None:
        return None
    try:
        v = float(t)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DetectorInputError(f"event time must be a number, got {type(t).__name__}") from None
    if not math.isfinite(v):
        raise DetectorInputError(f"event time must be finite, got {v}")
    return v


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make a detector constructible by name and restorable from bytes."""
    if cls.name in DETECTORS and DETECTORS[cls.name] is not cls:
        raise ValueError(f"detector name {cls.name!r} registered twice")
    DETECTORS[cls.name] = cls
    return cls


def make_detector(name: str, **params: Any) -> Detector:
    """Build a registered detector by name (``"default"`` is the default univariate one).

    >>> make_detector("windowed_gaussian").name
    'windowed_gaussian'
    """
    from . import DEFAULT_DETECTOR  # late import: the registry fills as modules load

    key = DEFAULT_DETECTOR if name == "default" else name
    if key not in DETECTORS:
        known = ", ".join(sorted(DETECTORS))
        raise KeyError(f"unknown detector {name!r}; known: default, {known}")
    return DETECTORS[key](**params)


def load_detector(data: bytes) -> Detector:
    """Restore any registered detector from :meth:`Detector.to_bytes` output."""
    name = _decode_envelope(data)["name"]
    if name not in DETECTORS:
        raise StateError(f"state is for unknown detector {name!r}")
    return DETECTORS[name].from_bytes(data)


class _Envelope(msgspec.Struct, array_like=True):
    format: int
    name: str
    params: dict[str, Any]
    state: dict[str, Any]


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Envelope)


def _decode_envelope(data: bytes) -> dict[str, Any]:
    try:
        env = _DECODER.decode(data)
    except (msgspec.DecodeError, TypeError) as exc:
        raise StateError(f"not a detector state: {exc}") from None
    if env.format != STATE_FORMAT:
        raise StateError(f"state format {env.format} not supported (expected {STATE_FORMAT})")
    return {"name": env.name, "params": env.params, "state": env.state}


def _to_wire(value: Any) -> Any:
    """Plain msgpack types for the state values a detector keeps (exact for float64)."""
    if isinstance(value, np.ndarray):
        return {"__nd__": [value.dtype.str, list(value.shape), value.tobytes()]}
    if isinstance(value, deque):
        return {"__dq__": [list(value), value.maxlen]}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {"__map__": [[_to_wire(k), _to_wire(v)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return [_to_wire(v) for v in value]
    return value


def _from_wire(value: Any) -> Any:
    if isinstance(value, dict):
        if "__nd__" in value:
            dtype, shape, raw = value["__nd__"]
            return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
        if "__dq__" in value:
            items, maxlen = value["__dq__"]
            return deque(items, maxlen=maxlen)
        if "__map__" in value:
            return {_hashable(_from_wire(k)): _from_wire(v) for k, v in value["__map__"]}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    return value


def _hashable(key: Any) -> Any:
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


class Detector(ABC):
    """Base class of all streaming detectors (see the module docstring for the contract).

    Subclasses set ``name``, store their constructor arguments with :meth:`_keep_params`,
    list the attributes that make up their state in ``_state_fields`` and implement
    ``_score`` / ``_learn`` on an already validated float.
    """

    name: ClassVar[str]
    #: Upper bound of ``len(to_bytes())`` for any stream length (checked by the tests).
    max_state_bytes: ClassVar[int] = 64 * 1024
    #: Attributes serialised by :meth:`to_bytes` (everything else is derived or a parameter).
    _state_fields: ClassVar[tuple[str, ...]] = ()

    _params: dict[str, Any]

    def _keep_params(self, **params: Any) -> None:
        self._params = dict(params)

    @property
    def params(self) -> dict[str, Any]:
        """The constructor arguments (global hyperparameters), as given."""
        return dict(self._params)

    # -- the protocol -------------------------------------------------------------------------
    def score_one(self, x: float, t: float | None = None) -> float:
        """Score ``x`` (observed at event time ``t``) without learning it; in ``[0, 1]``."""
        return self._score(check_value(x), check_time(t))

    def learn_one(self, x: float, t: float | None = None) -> None:
        """Update the state with ``x`` observed at event time ``t``."""
        self._learn(check_value(x), check_time(t))

    def score_learn_one(self, x: float, t: float | None = None) -> float:
        """Score ``x`` with the state as it was, then learn it (the usual streaming step)."""
        v, when = check_value(x), check_time(t)
        s = self._score(v, when)
        self._learn(v, when)
        return s

    def score_many(
        self, xs: Sequence[float] | np.ndarray, ts: Sequence[float] | np.ndarray | None = None
    ) -> np.ndarray:
        """Batch form of :meth:`score_learn_one`: same scores, same final state."""
        try:
            values = np.asarray(xs, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DetectorInputError(f"values must be numbers: {exc}") from None
        if values.ndim != 1:
            raise DetectorInputError("values must be one-dimensional")
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise DetectorInputError(f"value must be finite, got {values[bad]} at index {bad}")
        times: Iterable[float | None]
        if ts is None:
            times = [None] * len(values)
        else:
            try:
                stamps = np.asarray(ts, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise DetectorInputError(f"times must be numbers: {exc}") from None
            if stamps.ndim != 1 or not np.isfinite(stamps).all():
                raise DetectorInputError("event times must be finite numbers")
            times = stamps.tolist()
            if len(times) != len(values):  # type: ignore[arg-type]
                raise DetectorInputError("values and times differ in length")
        return self._score_many(values.tolist(), times)

    def _score_many(self, values: list[float], times: Iterable[float | None]) -> np.ndarray:
        out = np.empty(len(values), dtype=np.float64)
        score, learn = self._score, self._learn
        for i, (v, t) in enumerate(zip(values, times, strict=False)):
            out[i] = score(v, t)
            learn(v, t)
        return out

    @abstractmethod
    def _score(self, x: float, t: float | None) -> float: ...

    @abstractmethod
    def _learn(self, x: float, t: float | None) -> None: ...

    # -- state --------------------------------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {f: _to_wire(getattr(self, f)) for f in self._state_fields}

    def _set_state(self, state: dict[str, Any]) -> None:
        missing = set(self._state_fields) - set(state)
        if missing:
            raise StateError(f"{self.name} state lacks {sorted(missing)}")
        for f in self._state_fields:
            setattr(self, f, _from_wire(state[f]))

    def to_bytes(self) -> bytes:
        """The whole detector (parameters and state) as compact bytes (msgpack)."""
        params = {k: _to_wire(v) for k, v in self._params.items()}
        env = _Envelope(STATE_FORMAT, self.name, params, self._get_state())
        return _ENCODER.encode(env)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        """Restore a detector of this class from :meth:`to_bytes` output."""
        env = _decode_envelope(data)
        if env["name"] != cls.name:
            raise StateError(f"state is for {env['name']!r}, not {cls.name!r}")
        params = {k: _from_wire(v) for k, v in env["params"].items()}
        det = cls(**params)
        det._set_state(env["state"])
        return det

    @property
    def state_bytes(self) -> int:
        """Current serialised size in bytes."""
        return len(self.to_bytes())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"
