"""Every docstring example in auditstream.detectors runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import auditstream.detectors as pkg

MODULES = sorted(
    ["auditstream.detectors"]
    + [f"auditstream.detectors.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]
)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
    if name != "auditstream.detectors.cli":
        assert result.attempted > 0, f"{name} has no runnable example"
