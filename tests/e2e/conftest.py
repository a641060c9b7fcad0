"""Wires the e2e fixtures together and marks every test here as `e2e`.

The fixtures live in tests/e2e/fixtures/ (one module per real component). The agreed wiring
was `pytest_plugins = [...]` here, but pytest refuses that in a conftest below the rootdir's
top level whenever the suite is collected from the repository root (`pytest`, `pytest tests`):
"Defining 'pytest_plugins' in a non-top-level conftest is no longer supported". Re-exporting
each module's public names (its fixtures and hooks) from this conftest has the same effect,
scoped to tests/e2e, and works however pytest is invoked.
"""

from __future__ import annotations

import importlib
import pathlib

import pytest

FIXTURE_MODULES = [
    "tests.e2e.fixtures.controlplane",
    "tests.e2e.fixtures.nodes",
    "tests.e2e.fixtures.s3",
    "tests.e2e.fixtures.gitserver",
    "tests.e2e.fixtures.prometheus",
    "tests.e2e.fixtures.operator",
    "tests.e2e.fixtures.killable_operator",
    "tests.e2e.fixtures.browser",
]


def _reexport(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    for name in names:
        # Never shadow this conftest's own names (pytest, pathlib, the hook below).
        globals().setdefault(name, getattr(module, name))


for _module_name in FIXTURE_MODULES:
    _reexport(_module_name)

_E2E_DIR = pathlib.Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the tests under tests/e2e, so `-m "not e2e"` runs only the unit tests."""
    for item in items:
        if _E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)
