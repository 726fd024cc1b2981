"""The multivariate per-event scorer."""

from __future__ import annotations

import numpy as np
import pytest

from auditstream.detectors import DetectorInputError, load_detector
from auditstream.detectors.multivariate import MultivariateGaussian


def _events(n: int = 500, seed: int = 11) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    tokens = rng.uniform(100, 2000, n)
    return [
        {"output_tokens": float(k), "latency_ms": float(4 * k + rng.normal(0, 150))} for k in tokens
    ]


def test_an_unusual_combination_scores_high_though_each_value_is_ordinary() -> None:
    det = MultivariateGaussian(features=("output_tokens", "latency_ms"), log_features=False)
    scores = det.score_many(_events())
    assert np.all((scores >= 0) & (scores <= 1))
    ordinary = {"output_tokens": 1000.0, "latency_ms": 4000.0}
    odd = {"output_tokens": 1900.0, "latency_ms": 600.0}  # both in range, not together
    assert det.score_one(ordinary) < 0.9
    assert det.score_one(odd) > 0.999
    share = det.explain(odd)
    assert set(share) == {"output_tokens", "latency_ms"}


def test_missing_features_are_neutral_and_bad_values_rejected() -> None:
    det = MultivariateGaussian(features=("a", "b"))
    for e in _events(200):
        det.learn_one({"a": e["output_tokens"], "b": e["latency_ms"]})
    before = det.to_bytes()
    assert det.score_one({}) == 0.0
    det.learn_one({"other": 1.0})  # nothing known: not learnt
    assert det.to_bytes() == before
    with pytest.raises(DetectorInputError):
        det.score_one({"a": float("nan")})
    with pytest.raises(DetectorInputError):
        det.learn_one(3.0)  # a bare number only for a one-feature scorer


def test_round_trip_and_causality() -> None:
    events = _events(300)
    det = MultivariateGaussian(features=("output_tokens", "latency_ms"))
    first = det.score_many(events[:200])
    clone = load_detector(det.to_bytes())
    np.testing.assert_array_equal(clone.score_many(events[200:]), det.score_many(events[200:]))
    again = MultivariateGaussian(features=("output_tokens", "latency_ms")).score_many(events)
    np.testing.assert_array_equal(again[:200], first)
    assert len(det.to_bytes()) <= MultivariateGaussian.max_state_bytes


def test_feature_list_is_validated() -> None:
    with pytest.raises(ValueError):
        MultivariateGaussian(features=())
    with pytest.raises(ValueError):
        MultivariateGaussian(features=("a", "a"))


def test_min_std_keeps_a_near_constant_feature_from_flagging_small_changes() -> None:
    # Payload sizes that never vary by more than a few bytes: without a floor, 45 % smaller is
    # a huge Mahalanobis distance; with min_std (log space) only a change by multiples is.
    def trained(**kw: float) -> MultivariateGaussian:
        det = MultivariateGaussian(features=("payload_bytes",), warmup=20, **kw)
        for i in range(500):
            det.learn_one({"payload_bytes": 585.0 + (i % 9) - 4})
        return det

    bare, floored = trained(), trained(min_std=0.25)
    assert bare.score_one({"payload_bytes": 326.0}) > 0.99999
    assert floored.score_one({"payload_bytes": 326.0}) < 0.99
    assert floored.score_one({"payload_bytes": 585.0 * 20}) > 0.99999
    with pytest.raises(ValueError):
        MultivariateGaussian(min_std=-1.0)
