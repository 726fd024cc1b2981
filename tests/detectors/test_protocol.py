"""The streaming protocol, for every univariate detector: causal, restorable, bounded, safe."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from auditstream.detectors import (
    DETECTORS,
    DetectorInputError,
    StateError,
    load_detector,
    make_detector,
)

# Small but non-trivial settings so every code path (warm-up over, refits, buffer compaction)
# runs within a short stream.
FAST: dict[str, dict[str, object]] = {
    "context_likelihood": {
        "memory": 60,
        "warmup": 40,
        "refractory": 10,
        "season_seconds": 3600.0,  # an hourly "season" so the seasonal channel runs too
        "season_slots": 12,
    },
    "windowed_gaussian": {"window": 100, "step": 10},
    "ewma_zscore": {"warmup": 10},
    "robust_zscore": {"window": 64, "step": 8},
    "half_space_trees": {
        "n_trees": 3,
        "height": 4,
        "window_size": 40,
        "shingle": 2,
        "scale_window": 100,
    },
    "isolation_forest": {"window": 100, "refit_every": 50, "n_estimators": 10},
    "river_predictive": {"p": 3, "q": 1, "warmup": 20, "likelihood_horizon": 200},
    "count_spike": {"bucket_seconds": 60.0, "half_life_buckets": 30.0, "min_count": 1},
}
UNIVARIATE = sorted(FAST)
CLOCKS = ("time", "monotonic", "perf_counter", "time_ns")


def _series(n: int = 600, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    values = 10 + 3 * np.sin(2 * np.pi * i / 48) + rng.normal(0, 0.4, n)
    values[n // 2] += 25  # one spike
    values[int(n * 0.8) :] += 6  # a level shift
    times = 1.7e9 + 60.0 * i
    return np.maximum(values, 0).round(), times  # non-negative integers suit count_spike too


def _make(name: str):
    return make_detector(name, **FAST[name])


def test_every_registered_detector_is_covered() -> None:
    assert set(DETECTORS) - {"multivariate_gaussian"} == set(FAST)


@pytest.mark.parametrize("name", UNIVARIATE)
def test_scores_are_in_unit_interval_and_batch_equals_stream(name: str) -> None:
    xs, ts = _series()
    batch = _make(name).score_many(xs, ts)
    one = _make(name)
    stream = np.array([one.score_learn_one(x, t) for x, t in zip(xs, ts, strict=True)])
    assert batch.shape == xs.shape
    assert np.all((batch >= 0.0) & (batch <= 1.0))
    np.testing.assert_array_equal(batch, stream)
    assert batch.max() > 0.0  # the spike or the shift is noticed by every detector


@pytest.mark.parametrize("name", UNIVARIATE)
def test_causality_future_points_never_change_past_scores(name: str) -> None:
    xs, ts = _series()
    cut = 350
    prefix = _make(name).score_many(xs[:cut], ts[:cut])
    full = _make(name).score_many(xs, ts)
    np.testing.assert_array_equal(prefix, full[:cut])


@pytest.mark.parametrize("name", UNIVARIATE)
def test_score_one_does_not_learn(name: str) -> None:
    xs, ts = _series(300)
    det = _make(name)
    det.score_many(xs, ts)
    before = det.to_bytes()
    for x in (0.0, 5.0, 1e6):
        det.score_one(x, ts[-1] + 60)
    assert det.to_bytes() == before


@pytest.mark.parametrize("name", UNIVARIATE)
@pytest.mark.parametrize("cut", [5, 55, 333])
def test_state_round_trip_scores_exactly_like_the_original(name: str, cut: int) -> None:
    xs, ts = _series()
    original = _make(name)
    original.score_many(xs[:cut], ts[:cut])
    restored = load_detector(original.to_bytes())
    assert type(restored) is type(original)
    assert restored.params == original.params
    np.testing.assert_array_equal(
        restored.score_many(xs[cut:], ts[cut:]), original.score_many(xs[cut:], ts[cut:])
    )
    assert restored.to_bytes() == original.to_bytes()


@pytest.mark.parametrize("name", UNIVARIATE)
def test_state_size_is_bounded(name: str) -> None:
    # Default parameters (what production runs), a stream long enough to fill every buffer.
    det = make_detector(name)
    cls = type(det)
    n = 3000 if name in ("half_space_trees", "isolation_forest") else 8000
    rng = np.random.default_rng(0)
    values = np.abs(rng.normal(50, 10, n)).round()
    det.score_many(values, 1.7e9 + 60.0 * np.arange(n))
    assert det.state_bytes <= cls.max_state_bytes


def test_default_detector_state_fits_64_kib_after_a_long_stream() -> None:
    det = make_detector("default")
    rng = np.random.default_rng(1)
    det.score_many(np.cumsum(rng.normal(size=20_000)))
    assert det.state_bytes <= 64 * 1024
    assert det.name == "context_likelihood"


@pytest.mark.parametrize("name", UNIVARIATE)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "x", None])
def test_bad_input_raises_a_clear_error_and_keeps_state(name: str, bad: object) -> None:
    xs, ts = _series(120)
    det = _make(name)
    det.score_many(xs, ts)
    before = det.to_bytes()
    with pytest.raises(DetectorInputError):
        det.learn_one(bad)  # type: ignore[arg-type]
    with pytest.raises(DetectorInputError):
        det.score_one(bad)  # type: ignore[arg-type]
    with pytest.raises(DetectorInputError):
        det.score_many([1.0, bad, 2.0])  # type: ignore[list-item]
    assert det.to_bytes() == before


@pytest.mark.parametrize("name", UNIVARIATE)
def test_no_wall_clock(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    xs, ts = _series(200)
    expected = _make(name).score_many(xs, ts)

    def forbidden() -> float:
        raise AssertionError("a detector read the wall clock")

    det = _make(name)
    # scikit-learn's joblib times its own workers with time.time(); the refit schedule of
    # isolation_forest depends on the value count only, so there the clock stays available.
    clocks = ("monotonic", "time_ns") if name == "isolation_forest" else CLOCKS
    for attr in clocks:
        monkeypatch.setattr(time, attr, forbidden)
    got = det.score_many(xs, ts)
    monkeypatch.undo()
    np.testing.assert_array_equal(got, expected)


def test_corrupt_or_foreign_state_is_rejected() -> None:
    with pytest.raises(StateError):
        load_detector(b"not msgpack at all")
    good = make_detector("ewma_zscore").to_bytes()
    with pytest.raises(StateError):
        make_detector("windowed_gaussian").from_bytes(good)
    with pytest.raises(StateError):
        load_detector(good.replace(b"ewma_zscore", b"ewma_zscorX"))


def test_unknown_detector_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="context_likelihood"):
        make_detector("nope")


def test_default_detector_flags_a_new_extreme_and_a_broken_pattern() -> None:
    det = make_detector("default")
    cycle = [math.sin(2 * math.pi * i / 40) for i in range(1200)]
    scores = det.score_many(cycle)
    assert scores[400:].max() < 0.5  # a learnt cycle stays quiet
    flat = det.score_many([0.9] * 30)  # the cycle stops at its top: inside the range
    assert flat.max() >= 0.99


def test_default_detector_uses_event_time_seasonality() -> None:
    # Five-minute data with a daily peak; on day 6 the peak does not come (values stay in the
    # usual range, so only the time-of-day channel can tell).
    day = 288
    i = np.arange(7 * day)
    values = np.where((i % day >= 100) & (i % day < 140), 10.0, 1.0)
    values = values + 0.05 * np.sin(i / 7.0)
    missing = (i >= 6 * day + 100) & (i < 6 * day + 140)
    values[missing] = 1.0 + 0.05 * np.sin(i[missing] / 7.0)
    times = 1.7e9 - (1.7e9 % 86400) + 300.0 * i
    with_season = make_detector("default").score_many(values, times)
    without = make_detector("default", season_seconds=0.0).score_many(values, times)
    assert with_season[missing].max() >= 0.99
    assert without[missing].max() < 0.99
    assert with_season[day * 3 : day * 6].max() < 0.99  # ordinary days stay quiet


@pytest.mark.parametrize("name", UNIVARIATE)
@pytest.mark.parametrize("bad_time", [float("nan"), float("inf"), "noon"])
def test_bad_event_time_raises_a_clear_error(name: str, bad_time: object) -> None:
    det = _make(name)
    det.score_many(*_series(100))
    before = det.to_bytes()
    with pytest.raises(DetectorInputError):
        det.score_learn_one(1.0, bad_time)  # type: ignore[arg-type]
    with pytest.raises(DetectorInputError):
        det.score_many([1.0, 2.0], [0.0, bad_time])  # type: ignore[list-item]
    assert det.to_bytes() == before


def test_default_detector_state_stays_under_64_kib_at_its_largest_settings() -> None:
    det = make_detector("default", memory=4990, context=10, season_slots=288, warmup=10)
    n = 12_000
    rng = np.random.default_rng(2)
    det.score_many(rng.normal(size=n) * 1e6, 1.7e9 + 300.0 * np.arange(n))
    assert det.state_bytes <= 64 * 1024
    with pytest.raises(ValueError):
        make_detector("default", memory=6000)
