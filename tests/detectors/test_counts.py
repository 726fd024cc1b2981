"""The count/rate spike detector for sparse, bursty counts (errors, complaints)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import nbinom

from auditstream.detectors import CountSpike, DetectorInputError, load_detector

MINUTE = 60.0


def _quiet(n: int = 600, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.poisson(0.3, n).astype(float)  # mostly zero, a few ones and twos


def test_zeros_and_small_counts_score_zero_a_burst_scores_high() -> None:
    det = CountSpike(min_count=3)
    counts = _quiet()
    times = MINUTE * np.arange(len(counts))
    scores = det.score_many(counts, times)
    assert scores[counts < 3].max() == 0.0
    t = times[-1] + MINUTE
    assert det.score_one(0, t) == 0.0
    assert det.score_one(2, t) == 0.0
    # Bigger bursts are more surprising, up to the cap (tail 1e-12 → 1.0).
    graded = [det.score_one(x, t) for x in (3, 4, 6, 8, 40)]
    assert graded == sorted(graded) and len(set(graded)) == 5
    assert graded[2] > 0.4 and graded[-1] == 1.0


def test_tail_probability_is_the_negative_binomial_predictive() -> None:
    det = CountSpike(prior_rate=0.5, prior_buckets=10.0)
    # Nothing learnt: the predictive is NB(r = 5, p = 10/11) from the Gamma(5, 10) prior.
    for x in (1, 3, 7):
        assert det.tail_probability(x) == pytest.approx(nbinom.sf(x - 1, 5.0, 10.0 / 11.0))


def test_missing_buckets_in_event_time_count_as_zeros() -> None:
    busy = CountSpike(half_life_buckets=60.0)
    for i in range(200):
        busy.learn_one(5, MINUTE * i)
    expected_now = busy.expected_count(MINUTE * 200)
    # Three hours without any report: silence is evidence of a lower rate.
    expected_later = busy.expected_count(MINUTE * (200 + 180))
    assert expected_now > 3.5
    assert expected_later < expected_now / 3
    assert busy.score_one(5, MINUTE * 380) > busy.score_one(5, MINUTE * 200)


def test_late_events_join_the_current_bucket_without_crashing() -> None:
    det = CountSpike()
    det.learn_one(1, 600.0)
    det.learn_one(1, 120.0)  # late: no decay, added to the newest bucket
    assert det.expected_count(600.0) > CountSpike().expected_count(600.0)


def test_a_new_normal_is_learnt_and_one_huge_burst_does_not_blind_it() -> None:
    det = CountSpike(half_life_buckets=30.0, min_count=1)
    for i in range(300):
        det.learn_one(0, MINUTE * i)
    det.learn_one(10_000, MINUTE * 300)  # clipped when learnt
    assert det.score_one(20, MINUTE * 301) > 0.3
    for i in range(302, 600):
        det.learn_one(20, MINUTE * i)
    assert det.score_one(20, MINUTE * 600) < 0.1  # 20 per minute is normal now


def test_negative_counts_are_rejected_and_state_round_trips() -> None:
    det = CountSpike()
    det.score_many(_quiet(100), MINUTE * np.arange(100))
    with pytest.raises(DetectorInputError):
        det.score_one(-1, 0.0)
    with pytest.raises(DetectorInputError):
        det.learn_one(-1, 0.0)
    clone = load_detector(det.to_bytes())
    t = MINUTE * 150
    assert clone.score_one(9, t) == det.score_one(9, t)
    assert len(det.to_bytes()) <= CountSpike.max_state_bytes
