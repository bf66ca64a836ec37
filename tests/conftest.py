"""Fixtures: ``backend`` over the selected array libraries; Hypothesis profiles.

Profiles (``HYPOTHESIS_PROFILE``; ``ci`` where ``CI`` is set, else ``dev``):

- ``ci``: 25 examples a test from a **fresh seed each run**, printed in the header
  (``hypothesis seed: N``); ``pytest --hypothesis-seed=N`` replays that run exactly.  A
  fixed set would test the same 25 inputs forever; ``@example`` cases pin the edges.
- ``quick``: the same 25 examples every time (derandomised), for quick local runs.
- ``dev``: 100 examples from a fresh seed.
"""

from __future__ import annotations

import os
import secrets

import pytest
from array_libs import Backend, selected
from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.differing_executors]
settings.register_profile(
    "ci",
    derandomize=False,  # Hypothesis's own CI defaults (the parent here when CI is set) fix it
    max_examples=25,
    deadline=None,
    print_blob=True,
    database=None,  # a run depends on its seed alone
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "quick",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=_QUIET,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

BACKENDS = selected()


def pytest_configure(config: pytest.Config) -> None:
    """Under the ``ci`` profile, draw the run's seed (unless ``--hypothesis-seed`` gave one)."""
    if settings.get_current_profile_name() != "ci":
        return
    if config.getoption("hypothesis_seed", default=None) is None:
        from hypothesis import core

        seed = secrets.randbelow(2**32)
        config.option.hypothesis_seed = str(seed)
        core.global_force_seed = seed  # what the plugin does for --hypothesis-seed


def pytest_report_header(config: pytest.Config) -> str | None:
    seed = config.getoption("hypothesis_seed", default=None)
    if seed is None:
        return None
    return f"hypothesis seed: {seed} (replay this run with --hypothesis-seed={seed})"


@pytest.fixture(scope="session", params=BACKENDS, ids=str)
def backend(request: pytest.FixtureRequest) -> Backend:
    b: Backend = request.param
    if b.skip_reason:
        pytest.skip(b.skip_reason)
    return b
