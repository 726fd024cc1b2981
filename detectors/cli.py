"""``auditstream bench nab``: run detectors over a NAB-layout folder and print their scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["bench"].command("nab")(bench_nab)


def bench_nab(
    data: Annotated[
        Path, typer.Option("--data", help="NAB-layout folder (data/<category>/*.csv, labels/).")
    ],
    detector: Annotated[
        list[str] | None,
        typer.Option(
            "--detector",
            help="Detector name (repeatable); 'default' is the default univariate detector. "
            "Without it: every univariate detector.",
        ),
    ] = None,
    results_dir: Annotated[
        Path | None,
        typer.Option("--results-dir", help="Write NAB-format result files under this folder."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object as the last line.")
    ] = False,
) -> None:
    """Score detectors on NAB: three profile scores, points/s (CPU) and state bytes per series."""
    from . import UNIVARIATE_DETECTORS
    from .nab import load_corpus, load_profiles, run_detector, score_corpus, write_results

    try:
        corpus = load_corpus(data)
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    profiles = load_profiles(data)
    names = list(detector or UNIVARIATE_DETECTORS)
    rows: dict[str, dict[str, float]] = {}
    n_points = sum(len(s.values) for s in corpus)
    n_windows = sum(len(s.windows) for s in corpus)
    typer.echo(f"NAB corpus {data}: {len(corpus)} series, {n_points} rows, {n_windows} windows")
    header = f"{'detector':<22}" + "".join(f"{p:>20}" for p in profiles)
    header += f"{'points/s':>12}{'state bytes':>13}"
    typer.echo(header)
    for name in names:
        try:
            run = run_detector(name, corpus)
        except KeyError as exc:
            typer.echo(f"error: {exc.args[0]}", err=True)
            raise typer.Exit(2) from None
        result = score_corpus(corpus, run.scores, profiles)
        row: dict[str, float] = {p: round(v, 2) for p, v in result.items()}  # type: ignore[misc]
        row["points_per_second"] = round(run.points_per_second)
        row["state_bytes"] = run.max_state_bytes
        rows[name] = row
        line = f"{name:<22}" + "".join(f"{row[p]:>20.2f}" for p in profiles)
        typer.echo(line + f"{row['points_per_second']:>12.0f}{run.max_state_bytes:>13d}")
        if results_dir is not None:
            write_results(results_dir, name, corpus, run.scores)
    if as_json:
        typer.echo(json.dumps(rows, sort_keys=True))
