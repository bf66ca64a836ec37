"""Sessions: ``tests`` once per array library, ``lint`` and ``docs``.

Dependencies come from the dependency groups of ``pyproject.toml`` (one list, no copies
here).  Each test session installs only its own library and sets
``POLYRNN_TEST_BACKENDS`` so the suite runs on that library alone.  Pins for CI (torch's
CPU wheel) live in ``.ci/constraints.txt`` and reach pip through ``PIP_CONSTRAINT``.
"""

from __future__ import annotations

import os

import nox

nox.needs_version = ">=2024.10"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "doctests", "lint", "docs"]

PYPROJECT = nox.project.load_toml("pyproject.toml")
BACKENDS = ["numpy", "array_api_strict", "jax", "torch", "cupy"]


def _install(session: nox.Session, *groups: str) -> None:
    deps = [d for g in groups for d in nox.project.dependency_groups(PYPROJECT, g)]
    session.install("-e", ".", *deps)


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """Run the test suite on one array library (cupy needs a CUDA device, else it skips)."""
    if backend == "cupy" and not os.environ.get("POLYRNN_TEST_CUPY"):
        session.skip("cupy needs a CUDA device; set POLYRNN_TEST_CUPY=1 on a GPU machine")
    _install(session, f"test-{backend}")
    env = {"POLYRNN_TEST_BACKENDS": backend}
    if backend in ("jax", "torch"):  # Keras 3 is in both groups: polyrnn.nn.keras on each
        env["KERAS_BACKEND"] = backend
    session.run("pytest", *session.posargs, env=env)


@nox.session
def doctests(session: nox.Session) -> None:
    """Run the examples in the docstrings (NumPy only)."""
    _install(session, "test")
    session.run("pytest", "--doctest-modules", "src/polyrnn", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on everything, mypy (strict) on the library."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the HTML docs (warnings are errors, nitpicky), run the pages' doctests, then
    ``docs/tests``: the built pages in a headless browser with no network (skipped, with
    the reason, where no Chromium is installed), the README's figures against the results
    files, and every example a reader can copy, run from polyrnn's wheel in a virtual
    environment of its own (``docs/_build/examples-venv``, built once and reused).

    JAX, PyTorch, Flax and Keras (on JAX) are installed (CPU is enough), so the executed
    pages show every library agreeing with NumPy and the front page's framework examples
    are tested; CuPy needs a GPU and its rows say so.  Unpinned, pip may pick PyTorch's
    large CUDA build on Linux;
    CI pins the CPU wheel through ``PIP_CONSTRAINT`` (``.ci/constraints.txt``), and so can
    you, or point pip at ``https://download.pytorch.org/whl/cpu``.
    Options after ``--`` go to the HTML build, e.g. ``nox -s docs -- -E``.
    """
    _install(session, "docs")
    session.env["KERAS_BACKEND"] = "jax"  # the Keras page, its API reference and examples
    common = ["-W", "--keep-going", "-n", "-d", "docs/_build/doctrees"]
    session.run("sphinx-build", "-b", "html", *common, *session.posargs, "docs", "docs/_build/html")
    session.run("sphinx-build", "-b", "doctest", *common, "docs", "docs/_build/doctest")
    session.run("pytest", "-p", "no:cacheprovider", "docs/tests")
