"""`auditstream bench nab` end to end on a small NAB-layout folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditstream.cli import app
from auditstream.detectors.nab import load_corpus, load_results, score_corpus

FILES = [
    "artificialWithAnomaly/art_daily_jumpsup.csv",
    "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
]


@pytest.fixture()
def small_nab(nab_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "nab"
    labels = json.loads((nab_dir / "labels" / "combined_windows.json").read_text())
    for key in FILES:
        (root / "data" / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(nab_dir / "data" / key, root / "data" / key)
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(
        json.dumps({k: labels[k] for k in FILES})
    )
    return root


def test_bench_nab_prints_table_and_json_and_writes_results(
    small_nab: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    res = CliRunner().invoke(
        app,
        [
            "bench",
            "nab",
            "--data",
            str(small_nab),
            "--detector",
            "default",
            "--detector",
            "ewma_zscore",
            "--results-dir",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert "2 series" in lines[0]
    payload = json.loads(lines[-1])
    assert set(payload) == {"default", "ewma_zscore"}
    for row in payload.values():
        assert {"standard", "reward_low_FP_rate", "reward_low_FN_rate"} <= set(row)
        assert row["points_per_second"] > 0 and row["state_bytes"] > 0
    # The written files are NAB-format and score the same when read back.
    corpus = load_corpus(small_nab)
    header = (
        out / "default" / "artificialWithAnomaly" / "default_art_daily_jumpsup.csv"
    ).read_text()
    assert header.splitlines()[0] == "timestamp,value,anomaly_score,label"
    rescored = score_corpus(corpus, load_results(out, "default", corpus))
    assert rescored["standard"] == pytest.approx(payload["default"]["standard"], abs=0.01)


def test_bench_nab_rejects_a_folder_that_is_not_nab(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "nab", "--data", str(tmp_path)])
    assert res.exit_code == 2
    assert "not a NAB folder" in res.output


def test_bench_nab_rejects_an_unknown_detector(small_nab: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "nab", "--data", str(small_nab), "--detector", "nope"])
    assert res.exit_code == 2
    assert "unknown detector" in res.output
