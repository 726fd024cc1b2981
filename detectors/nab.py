"""Numenta Anomaly Benchmark (NAB) scorer and harness, written from the published method.

Method: Lavin & Ahmad, "Evaluating Real-time Anomaly Detection Algorithms — the Numenta
Anomaly Benchmark" (2015); rules as summarised in ``../shared/nab/SCORING.md``. In short, per
file: the first ``min(floor(0.15·N), 750)`` rows are probationary (ignored); a detection inside
an anomaly window earns ``tp·f(y)/f(-1)`` for the window's *earliest* detection only (scaled
sigmoid, earlier is better); a detection outside windows costs ``fp`` (less just after a
window); a window without detection costs ``fn``. One threshold per detector and profile for
the whole corpus, chosen over every distinct score; the result is normalised so the null
detector scores 0 and the perfect one 100.

The threshold search is vectorised: each row becomes one (score, score-delta) event, so the
corpus score at *every* candidate threshold is one sort and one cumulative sum.

>>> import numpy as np
>>> s = Series("cat/f.csv", np.arange(100.0), np.zeros(100), [(60, 69)])
>>> probationary_rows(100)
15
>>> perfect = np.zeros(100); perfect[60] = 1.0
>>> round(score_corpus([s], [perfect])["standard"], 2)
100.0
>>> late = np.zeros(100); late[65] = 1.0; late[30] = 0.9  # a false alarm scores below the hit
>>> # θ = 1.0 keeps the hit (worth f(-0.5)/f(-1) = 0.8598) and drops the false alarm:
>>> {k: round(v, 2) for k, v in score_corpus([s], [late]).items()}
{'standard': 92.99, 'reward_low_FP_rate': 92.99, 'reward_low_FN_rate': 95.33}
>>> round(score_corpus([s], [np.zeros(100)])["standard"], 2)  # constant: the null detector
0.0
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "PROFILES",
    "Profile",
    "Series",
    "load_corpus",
    "load_profiles",
    "load_results",
    "probationary_rows",
    "row_weights",
    "run_detector",
    "score_corpus",
    "write_results",
]


@dataclass(frozen=True)
class Profile:
    """An application profile's cost matrix (tnWeight is never used by NAB)."""

    tp: float
    fp: float
    fn: float


#: NAB's three profiles (as in ``config/profiles.json``); :func:`load_profiles` reads a file.
PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}

NO_DETECTION_THRESHOLD = 1.1


@dataclass
class Series:
    """One NAB data file: ``key`` is ``<category>/<file>.csv``; windows are row ranges."""

    key: str
    timestamps: np.ndarray  # event time, seconds since the epoch (float64)
    values: np.ndarray
    windows: list[tuple[int, int]]  # inclusive row ranges [L, R]

    @property
    def category(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def filename(self) -> str:
        return self.key.split("/", 1)[1]


def probationary_rows(n: int) -> int:
    """Rows ignored at the start of a file with ``n`` rows."""
    return min(math.floor(0.15 * n), 750)


def _parse_times(raw: Sequence[str]) -> np.ndarray:
    # NAB timestamps are naive "YYYY-MM-DD HH:MM:SS[.ffffff]"; treat them as UTC.
    stamps = np.array([r.strip().replace(" ", "T") for r in raw], dtype="datetime64[us]")
    return stamps.astype(np.int64).astype(np.float64) / 1e6


def load_profiles(root: Path) -> dict[str, Profile]:
    """The profiles in ``<root>/config/profiles.json`` (NAB's format), or the built-in ones."""
    path = Path(root) / "config" / "profiles.json"
    if not path.exists():
        return dict(PROFILES)
    raw = json.loads(path.read_text())
    return {
        name: Profile(
            tp=float(p["CostMatrix"]["tpWeight"]),
            fp=float(p["CostMatrix"]["fpWeight"]),
            fn=float(p["CostMatrix"]["fnWeight"]),
        )
        for name, p in raw.items()
    }


def _read_csv(path: Path, columns: Sequence[str]) -> dict[str, list[str]]:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing} (has {header})")
        out: dict[str, list[str]] = {c: [] for c in columns}
        for row in reader:
            for c in columns:
                out[c].append(row[c])
    return out


def load_corpus(root: Path | str) -> list[Series]:
    """Read every ``data/<category>/<file>.csv`` under ``root`` with its labelled windows.

    Raises ``FileNotFoundError`` when ``root`` is not in NAB's layout, and ``ValueError`` when a
    window bound is not one of the file's timestamps.
    """
    root = Path(root)
    labels_path = root / "labels" / "combined_windows.json"
    data_dir = root / "data"
    if not data_dir.is_dir() or not labels_path.is_file():
        raise FileNotFoundError(
            f"{root} is not a NAB folder (needs data/<category>/*.csv and "
            "labels/combined_windows.json)"
        )
    labels: dict[str, list[list[str]]] = json.loads(labels_path.read_text())
    corpus = []
    for path in sorted(data_dir.glob("*/*.csv")):
        key = f"{path.parent.name}/{path.name}"
        cols = _read_csv(path, ["timestamp", "value"])
        ts = _parse_times(cols["timestamp"])
        values = np.array([float(v) for v in cols["value"]], dtype=np.float64)
        windows = []
        for start, end in labels.get(key, []):
            lo, hi = _parse_times([start, end])
            left = int(np.searchsorted(ts, lo, side="left"))
            right = int(np.searchsorted(ts, hi, side="right")) - 1
            if left >= len(ts) or right < left:
                raise ValueError(f"{key}: window {start}..{end} matches no rows")
            windows.append((left, right))
        corpus.append(Series(key, ts, values, windows))
    if not corpus:
        raise FileNotFoundError(f"no data/<category>/*.csv files under {root}")
    return corpus


def _shape(y: np.ndarray) -> np.ndarray:
    """NAB's scaled sigmoid f(y) = 2σ(−5y) − 1, and −1 beyond y = 3."""
    return np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0)


_F_MINUS_ONE = float(_shape(np.array([-1.0]))[0])


def row_weights(n: int, windows: Sequence[tuple[int, int]], profile: Profile) -> np.ndarray:
    """What a detection at each row would add (before the one-per-window rule)."""
    idx = np.arange(n, dtype=np.float64)
    w = np.full(n, -profile.fp)
    for left, right in sorted(windows):
        width = right - left + 1
        inside = idx[left : right + 1]
        w[left : right + 1] = profile.tp * _shape(-(right - inside + 1) / width) / _F_MINUS_ONE
        # After the window and until the next one starts, the false-positive cost ramps up.
        nxt = min((lo for lo, _ in windows if lo > right), default=n)
        after = idx[right + 1 : nxt]
        if len(after):
            y = (after - right) / max(width - 1, 1)
            w[right + 1 : nxt] = profile.fp * _shape(y)
    return w


def _events(series: Series, scores: np.ndarray, profile: Profile) -> tuple[np.ndarray, ...]:
    """(score, delta) per non-probationary row, and the number of counted windows."""
    n = len(series.values)
    p = probationary_rows(n)
    w = row_weights(n, series.windows, profile)
    in_window = np.full(n, -1)
    for k, (left, right) in enumerate(series.windows):
        in_window[left : right + 1] = k
    keep = np.arange(n) >= p
    outside = keep & (in_window < 0)
    ev_scores = [scores[outside]]
    ev_deltas = [w[outside]]
    counted = 0
    for left, right in series.windows:
        rows = np.arange(max(left, p), right + 1)
        if len(rows) == 0:
            continue
        counted += 1
        # Rows by decreasing score (stable: earlier row first on ties); the window's value at a
        # threshold is the best weight among its detected rows, so each row adds the increase
        # of the running maximum it causes, starting from the miss cost −fn.
        order = np.argsort(-scores[rows], kind="stable")
        s_sorted = scores[rows][order]
        best = np.maximum.accumulate(w[rows][order])
        prev = np.concatenate(([-profile.fn], best[:-1]))
        ev_scores.append(s_sorted)
        ev_deltas.append(best - np.maximum(prev, -profile.fn))
    return np.concatenate(ev_scores), np.concatenate(ev_deltas), np.array(counted)


def score_corpus(
    corpus: Sequence[Series],
    scores: Sequence[np.ndarray],
    profiles: Mapping[str, Profile] | None = None,
    *,
    details: bool = False,
) -> dict[str, float] | dict[str, dict[str, float]]:
    """Normalised NAB score per profile for per-file ``scores`` (aligned with ``corpus``).

    With ``details=True`` each profile maps to ``{"score", "threshold", "raw"}``.
    """
    profiles = PROFILES if profiles is None else profiles
    if len(corpus) != len(scores):
        raise ValueError("one score array per series is needed")
    out: dict[str, dict[str, float]] = {}
    for name, prof in profiles.items():
        all_s, all_d, n_windows = [], [], 0
        for series, sc in zip(corpus, scores, strict=True):
            sc = np.asarray(sc, dtype=np.float64)
            if sc.shape != series.values.shape:
                raise ValueError(f"{series.key}: {len(sc)} scores for {len(series.values)} rows")
            s, d, c = _events(series, sc, prof)
            all_s.append(s)
            all_d.append(d)
            n_windows += int(c)
        s = np.concatenate(all_s)
        d = np.concatenate(all_d)
        base = -prof.fn * n_windows  # nothing detected (threshold 1.1)
        order = np.argsort(-s, kind="stable")
        s_sorted, total = s[order], base + np.cumsum(d[order])
        # The score at threshold θ includes every row with score ≥ θ: the last row of each
        # group of equal scores. On ties between thresholds the higher one wins.
        last_of_group = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
        cand_s = np.concatenate(([NO_DETECTION_THRESHOLD], s_sorted[last_of_group]))
        cand_v = np.concatenate(([base], total[last_of_group]))
        valid = cand_s <= NO_DETECTION_THRESHOLD
        cand_s, cand_v = cand_s[valid], cand_v[valid]
        best = int(np.argmax(cand_v))  # first maximum = highest threshold (descending order)
        raw = float(cand_v[best])
        perfect = prof.tp * n_windows
        norm = 100.0 * (raw - base) / (perfect - base) if perfect != base else 0.0
        out[name] = {"score": norm, "threshold": float(cand_s[best]), "raw": raw}
    if details:
        return out
    return {name: v["score"] for name, v in out.items()}


def load_results(root: Path | str, detector: str, corpus: Sequence[Series]) -> list[np.ndarray]:
    """Read NAB-format result files ``<root>/<detector>/<category>/<detector>_<file>``."""
    root = Path(root)
    out = []
    for series in corpus:
        path = root / detector / series.category / f"{detector}_{series.filename}"
        cols = _read_csv(path, ["timestamp", "anomaly_score"])
        ts = _parse_times(cols["timestamp"])
        if len(ts) != len(series.timestamps) or not np.array_equal(ts, series.timestamps):
            raise ValueError(f"{path}: timestamps differ from the data file")
        out.append(np.array([float(v) for v in cols["anomaly_score"]], dtype=np.float64))
    return out


def write_results(
    root: Path | str, detector: str, corpus: Sequence[Series], scores: Sequence[np.ndarray]
) -> list[Path]:
    """Write NAB-format result files (``timestamp,value,anomaly_score,label``)."""
    root = Path(root)
    written = []
    for series, sc in zip(corpus, scores, strict=True):
        path = root / detector / series.category / f"{detector}_{series.filename}"
        path.parent.mkdir(parents=True, exist_ok=True)
        label = np.zeros(len(series.values), dtype=int)
        for left, right in series.windows:
            label[left : right + 1] = 1
        stamps = series.timestamps.astype(np.int64) * 1_000_000
        text = np.datetime_as_string(stamps.astype("datetime64[us]"), unit="s")
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["timestamp", "value", "anomaly_score", "label"])
            for t, v, s, lab in zip(text, series.values, sc, label, strict=True):
                writer.writerow([str(t).replace("T", " "), repr(float(v)), repr(float(s)), lab])
        written.append(path)
    return written


@dataclass
class RunResult:
    """Scores of one detector over a corpus, with its speed and largest state."""

    detector: str
    scores: list[np.ndarray]
    seconds: float
    points: int
    max_state_bytes: int

    @property
    def points_per_second(self) -> float:
        return self.points / self.seconds if self.seconds > 0 else float("inf")


def run_detector(
    name: str, corpus: Iterable[Series], params: Mapping[str, object] | None = None
) -> RunResult:
    """Run a fresh detector per series (score, then learn each row; event time = timestamp).

    Only the timestamps and values reach the detector: labels never do.
    """
    from . import make_detector

    scores, seconds, points, state = [], 0.0, 0, 0
    for series in corpus:
        det = make_detector(name, **dict(params or {}))
        start = time.process_time()  # CPU time of this process: fair on a shared machine
        sc = det.score_many(series.values, series.timestamps)
        seconds += time.process_time() - start
        points += len(sc)
        state = max(state, det.state_bytes)
        scores.append(np.clip(sc, 0.0, 1.0))
    return RunResult(name, scores, seconds, points, state)
