"""Fixtures for the detector tests: the NAB corpus lives beside the repository."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NAB_DIR = REPO_ROOT.parent / "shared" / "nab"


@pytest.fixture(scope="session")
def nab_dir() -> Path:
    # Fail, never skip: the benchmark is part of what this area promises.
    assert (NAB_DIR / "data").is_dir() and (NAB_DIR / "labels").is_dir(), (
        f"NAB data not found at {NAB_DIR} (expected ../shared/nab from the repo root)"
    )
    return NAB_DIR


@pytest.fixture(scope="session")
def nab_corpus(nab_dir: Path):
    from auditstream.detectors.nab import load_corpus

    return load_corpus(nab_dir)
