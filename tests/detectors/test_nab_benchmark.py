"""Detectors on the NAB corpus: the default one on all 41 files, slow ones on a few."""

from __future__ import annotations

import numpy as np
import pytest

from auditstream.detectors import make_detector
from auditstream.detectors.nab import run_detector, score_corpus


@pytest.fixture(scope="module")
def default_run(nab_corpus):
    return run_detector("default", nab_corpus)


def test_default_detector_scores_at_least_55_standard_on_all_of_nab(
    nab_corpus, default_run
) -> None:
    run = default_run
    got = score_corpus(nab_corpus, run.scores)
    assert got["standard"] >= 55.0, got
    assert got["reward_low_FP_rate"] > 29.06  # above NAB's windowed Gaussian baseline
    assert got["reward_low_FN_rate"] > 35.80
    assert run.max_state_bytes <= 64 * 1024


def test_default_beats_the_simple_baselines(nab_corpus, default_run) -> None:
    default = score_corpus(nab_corpus, default_run.scores)
    gauss = score_corpus(nab_corpus, run_detector("windowed_gaussian", nab_corpus).scores)
    assert default["standard"] > gauss["standard"] + 15


@pytest.mark.parametrize("name", ["half_space_trees", "isolation_forest"])
def test_slow_detectors_run_on_a_few_files(nab_corpus, name: str) -> None:
    # Full-corpus figures come from `auditstream bench nab`; here: a few files, end to end.
    few = [s for s in nab_corpus if s.key.startswith("artificialWithAnomaly/")][:3]
    run = run_detector(name, few)
    assert [len(s) for s in run.scores] == [len(s.values) for s in few]
    assert all(np.all((s >= 0) & (s <= 1)) for s in run.scores)
    got = score_corpus(few, run.scores)
    assert set(got) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    assert -200.0 <= got["standard"] <= 100.0
    assert run.max_state_bytes <= type(make_detector(name)).max_state_bytes
