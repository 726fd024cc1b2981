"""Score mappings: anomaly likelihood, HST window scaling, robust z-score without ties."""

from __future__ import annotations

import numpy as np
import pytest

from auditstream.detectors import StateError, make_detector
from auditstream.detectors.likelihood import AnomalyLikelihood
from auditstream.detectors.stats import _z_to_log_score


def test_likelihood_is_pure_and_restores_exactly() -> None:
    lik = AnomalyLikelihood(short=4, horizon=50)
    rng = np.random.default_rng(0)
    for r in rng.uniform(0.4, 0.6, 200):
        lik.update(float(r))
    before = lik.dump()
    high, low = lik.score(0.95), lik.score(0.5)
    assert lik.dump() == before  # score() does not learn
    assert low < 0.2 < 0.5 < high <= 1.0
    clone = AnomalyLikelihood(short=4, horizon=50)
    clone.load(before)
    assert clone.score(0.8) == lik.score(0.8)
    with pytest.raises(StateError):
        clone.load([0.0, 1.0, 3, [0.1] * 9])  # more recent raws than `short`
    with pytest.raises(StateError):
        clone.load("junk")


def test_robust_zscore_mapping_keeps_huge_deviations_ordered() -> None:
    zs = [0.0, 3.0, 10.0, 37.0, 40.0, 400.0, 4e4, 4e6]
    scores = [_z_to_log_score(z) for z in zs]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert scores[0] == 0.0 and scores[-1] < 1.0
    assert 0.0 <= _z_to_log_score(1e300) <= 1.0


def test_half_space_trees_scale_forgets_an_old_spike() -> None:
    # A running min-max over everything seen would keep the spike's range forever and squash
    # the ordinary values together; the trailing window lets it go.
    det = make_detector("half_space_trees", scale_window=200, window_size=50, scale_step=5)
    rng = np.random.default_rng(1)
    values = 10 + rng.normal(0, 1, 600)
    values[100] = 1000.0
    det.score_many(values)
    assert det._hi < 100.0  # the spike has left the scaling window
    assert det.score_one(30.0) > det.score_one(10.0)


def test_isolation_forest_likelihood_flags_a_burst_only() -> None:
    # The likelihood scores the mean raw score of the last 5 values: a short burst stands out.
    det = make_detector("isolation_forest", window=300, refit_every=100, n_estimators=20)
    rng = np.random.default_rng(2)
    quiet = det.score_many(10 + rng.normal(0, 1, 800))
    burst = det.score_many([60.0, 55.0, 62.0, 58.0, 61.0])
    assert quiet[400:].max() < 0.5 < burst.max()
