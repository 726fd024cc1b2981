"""Fixtures of the alert-path tests: a real Alertmanager started on loopback per module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .alertmanager import BINARY, Alertmanager, run_alertmanager


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    if not os.access(BINARY, os.X_OK):
        pytest.skip("prometheus-alertmanager is not installed (deploy/setup.sh installs it)")
    with run_alertmanager(Path(tmp_path_factory.mktemp("alertmanager"))) as am:
        yield am
