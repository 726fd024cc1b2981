"""Online anomaly detectors behind one streaming protocol, and the NAB benchmark harness.

Every detector follows :class:`auditstream.detectors.base.Detector`: ``score_one`` (causal, in
``[0, 1]``), ``learn_one``, ``score_learn_one``, batch ``score_many``, ``to_bytes`` /
:func:`load_detector` with bounded state, event time only. Build one by name:

>>> from auditstream.detectors import make_detector, load_detector
>>> det = make_detector("default")
>>> s = det.score_many([1.0, 2.0, 3.0] * 100)
>>> float(s.min()) >= 0.0 and float(s.max()) <= 1.0
True
>>> load_detector(det.to_bytes()).score_one(2.0) == det.score_one(2.0)
True
"""

from __future__ import annotations

from . import counts, default, ml, multivariate, stats  # noqa: F401  (registers the detectors)
from .base import (
    DETECTORS,
    Detector,
    DetectorInputError,
    StateError,
    load_detector,
    make_detector,
)
from .counts import CountSpike

#: Name of the default univariate detector (what ``make_detector("default")`` builds).
DEFAULT_DETECTOR = "context_likelihood"

#: Detectors of one number per step, in the order ``bench nab`` runs them.
UNIVARIATE_DETECTORS: tuple[str, ...] = (
    "default",
    "windowed_gaussian",
    "ewma_zscore",
    "robust_zscore",
    "half_space_trees",
    "isolation_forest",
    "river_predictive",
)

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "UNIVARIATE_DETECTORS",
    "CountSpike",
    "Detector",
    "DetectorInputError",
    "StateError",
    "load_detector",
    "make_detector",
]
