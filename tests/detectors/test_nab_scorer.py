"""The NAB scorer: hand-computed cases, then NAB's own published results (REFERENCE.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auditstream.detectors.nab import (
    PROFILES,
    Profile,
    Series,
    load_profiles,
    load_results,
    probationary_rows,
    row_weights,
    score_corpus,
)

STD = PROFILES["standard"]


def _f(y: float) -> float:
    """NAB's scaled sigmoid, written out independently of the implementation."""
    return -1.0 if y > 3 else 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def _series(n: int, windows: list[tuple[int, int]]) -> Series:
    return Series("cat/f.csv", np.arange(n, dtype=float), np.zeros(n), windows)


def _raw(series: Series, scores: np.ndarray, profile: Profile = STD) -> tuple[float, float]:
    res = score_corpus([series], [scores], {"p": profile}, details=True)["p"]
    return res["raw"], res["threshold"]


def test_probationary_period() -> None:
    assert probationary_rows(100) == 15
    assert probationary_rows(4032) == 604
    assert probationary_rows(22695) == 750


def test_row_weights_inside_and_around_a_window() -> None:
    w = row_weights(60, [(20, 29)], STD)
    assert w[20] == pytest.approx(1.0)  # the window's first row earns exactly tp
    assert w[25] == pytest.approx(_f(-0.5) / _f(-1.0))  # y = -(29-25+1)/10
    assert w[29] == pytest.approx(_f(-0.1) / _f(-1.0))
    assert w[10] == pytest.approx(-0.11)  # before any window
    assert w[30] == pytest.approx(0.11 * _f(1 / 9))  # just after: nearly free
    assert w[59] == pytest.approx(-0.11)  # 30 rows later: y > 3, full cost
    assert np.all(np.diff(w[20:30]) < 0)  # earlier is better


def test_one_reward_per_window_and_each_false_positive_costs() -> None:
    s = _series(100, [(60, 69)])
    scores = np.zeros(100)
    scores[[62, 65, 66]] = 1.0  # three detections in the window: only the earliest counts
    scores[40] = 1.0  # a false positive before the window
    raw, threshold = _raw(s, scores)
    assert threshold == 1.0
    assert raw == pytest.approx(_f(-(69 - 62 + 1) / 10) / _f(-1.0) - 0.11)


def test_probationary_detections_are_ignored() -> None:
    s = _series(100, [(60, 69)])
    scores = np.zeros(100)
    scores[[3, 60]] = 1.0  # row 3 < 15 is probationary: no false-positive cost
    raw, _ = _raw(s, scores)
    assert raw == pytest.approx(1.0)


def test_threshold_search_prefers_the_best_and_then_the_higher_threshold() -> None:
    s = _series(100, [(60, 69)])
    scores = np.full(100, 0.1)
    scores[61] = 0.7
    scores[30] = 0.9  # a false positive that scores higher than the hit
    raw, threshold = _raw(s, scores)
    # θ=0.9: -0.11 - 1 (miss); θ=0.7: hit at 61 - 0.11; θ=0.1: everything, far worse.
    assert threshold == 0.7
    assert raw == pytest.approx(_f(-0.9) / _f(-1.0) - 0.11)
    # Ties between thresholds: a file without windows and no scores above the others.
    quiet = _series(100, [])
    raw, threshold = _raw(quiet, np.zeros(100))
    assert (raw, threshold) == (0.0, 1.1)


def test_normalisation_null_perfect_and_profiles() -> None:
    s = _series(100, [(60, 69)])
    perfect = np.zeros(100)
    perfect[60] = 1.0
    assert score_corpus([s], [perfect]) == pytest.approx(
        {"standard": 100.0, "reward_low_FP_rate": 100.0, "reward_low_FN_rate": 100.0}
    )
    assert score_corpus([s], [np.full(100, 0.5)])["standard"] == pytest.approx(0.0)
    fp_and_hit = perfect.copy()
    fp_and_hit[40] = 1.0
    got = score_corpus([s], [fp_and_hit])
    assert got["standard"] == pytest.approx(100 * (1 - 0.11 + 1) / 2)
    assert got["reward_low_FP_rate"] == pytest.approx(100 * (1 - 0.22 + 1) / 2)
    assert got["reward_low_FN_rate"] == pytest.approx(100 * (1 - 0.11 + 2) / 3)


def test_mismatched_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="scores for"):
        score_corpus([_series(10, [])], [np.zeros(9)])


def test_profiles_file_matches_the_built_in_profiles(nab_dir) -> None:
    assert load_profiles(nab_dir) == PROFILES


def test_corpus_shape(nab_corpus) -> None:
    assert len(nab_corpus) == 41
    assert sum(len(s.values) for s in nab_corpus) == 191_263
    assert sum(len(s.windows) for s in nab_corpus) == 69


REFERENCE = {
    "numenta": (68.58, 62.21, 72.77),
    "windowedGaussian": (29.06, 14.79, 35.80),
    "random": (14.96, 3.68, 23.98),
}


@pytest.mark.parametrize("detector", sorted(REFERENCE))
def test_reproduces_nab_reference_scores(nab_dir, nab_corpus, detector: str) -> None:
    scores = load_results(nab_dir / "results", detector, nab_corpus)
    got = score_corpus(nab_corpus, scores, load_profiles(nab_dir))
    expected = dict(
        zip(
            ["standard", "reward_low_FP_rate", "reward_low_FN_rate"],
            REFERENCE[detector],
            strict=True,
        )
    )
    for profile, value in expected.items():
        assert got[profile] == pytest.approx(value, abs=0.5), profile


def test_null_detector_scores_zero(nab_corpus) -> None:
    got = score_corpus(nab_corpus, [np.full(len(s.values), 0.5) for s in nab_corpus])
    assert got == pytest.approx({p: 0.0 for p in PROFILES})
