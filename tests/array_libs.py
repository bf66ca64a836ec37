"""The array libraries the tests run on, and a dtype-aware ``assert_close`` (tolerances:
``tolerances.py``).

Each test that takes the ``backend`` fixture runs once per library listed in the
``POLYRNN_TEST_BACKENDS`` environment variable (comma separated; every importable one
when unset).  ``nox -s "tests(backend='jax')"`` sets it, so each session tests its own
library and not NumPy again.  A library that is asked for but cannot run (CuPy without
a CUDA device) is skipped with the reason.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tolerances import tolerance

__all__ = ["ALL", "DEVICE", "Backend", "assert_close", "selected", "tolerance"]

ALL = ("numpy", "array_api_strict", "jax", "torch", "cupy")


@dataclass
class Backend:
    """One array library as the tests see it."""

    name: str
    xp: Any = None  # the library's own module (numpy, array_api_strict, jax.numpy, torch, cupy)
    skip_reason: str | None = None
    _to_numpy: Callable[[Any], np.ndarray] = field(default=np.asarray, repr=False)

    def asarray(self, a: Any, dtype: str | None = None) -> Any:
        """A NumPy array (or anything NumPy accepts) as an array of this library."""
        a = np.asarray(a)
        if dtype == "bfloat16":  # NumPy has no bfloat16: go through float32
            from array_api_compat import array_namespace

            out = self.asarray(a, "float32")
            return array_namespace(out).astype(out, self.xp.bfloat16)
        if dtype is not None:
            a = a.astype(dtype)
        if self.name == "torch":
            return self.xp.from_numpy(a.copy(order="C")).to(DEVICE.get("torch", "cpu"))
        return self.xp.asarray(a)

    def to_numpy(self, a: Any) -> np.ndarray:
        return self._to_numpy(a)

    def dtype(self, name: str) -> Any:
        return getattr(self.xp, name)

    def __str__(self) -> str:
        return self.name


DEVICE: dict[str, str] = {"torch": os.environ.get("POLYRNN_TEST_DEVICE", "cpu")}
"""Where torch tensors go: ``POLYRNN_TEST_DEVICE=cuda`` tests the CUDA paths (JAX and CuPy
use their default device)."""


def _load(name: str) -> Backend:
    try:
        if name == "numpy":
            return Backend(name, np)
        if name == "array_api_strict":
            mod = importlib.import_module("array_api_strict")
            return Backend(name, mod, _to_numpy=lambda a: np.asarray(a._array))
        if name == "jax":
            jax = importlib.import_module("jax")
            jax.config.update("jax_enable_x64", True)
            jax.config.update("jax_numpy_dtype_promotion", "strict")
            return Backend(name, importlib.import_module("jax.numpy"))
        if name == "torch":
            torch = importlib.import_module("torch")
            return Backend(name, torch, _to_numpy=lambda a: a.detach().cpu().numpy())
        if name == "cupy":
            cupy = importlib.import_module("cupy")
            if not cupy.is_available():
                return Backend(name, skip_reason="cupy is installed but no CUDA device is usable")
            return Backend(name, cupy, _to_numpy=cupy.asnumpy)
    except ImportError as e:
        return Backend(name, skip_reason=f"{name} is not installed ({e})")
    raise ValueError(f"unknown backend {name!r}; known: {ALL}")


def selected() -> list[Backend]:
    """The backends of this run: those named by POLYRNN_TEST_BACKENDS, else every importable one."""
    names = os.environ.get("POLYRNN_TEST_BACKENDS")
    if names:
        return [_load(n.strip()) for n in names.split(",") if n.strip()]
    loaded = [_load(n) for n in ALL]
    return [b for b in loaded if b.skip_reason is None or b.name == "cupy"]


def assert_close(
    backend: Backend,
    actual: Any,
    expected: Any,
    *,
    dtype: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    long: bool = False,
) -> None:
    """``actual`` is an array of ``backend`` with ``expected``'s shape, ``dtype``, and close values.

    As scipy's ``xp_assert_close``: the namespace, then the dtype, then the shape, then
    the values.  ``expected`` is a NumPy reference (float64 for choice); ``dtype`` is the
    dtype ``actual`` must have (a name such as ``"float32"``).  The tolerances are
    ``tolerances.tolerance`` of ``actual``'s dtype (``long``: through a long scan), the
    absolute one scaled by the largest finite magnitude of ``expected``; a test that
    passes ``rtol``/``atol`` says why.
    """
    from array_api_compat import array_namespace

    expected = np.asarray(expected)
    if backend.name == "numpy":
        assert isinstance(actual, np.ndarray | np.generic), type(actual)
    else:
        assert array_namespace(actual) is array_namespace(backend.asarray(np.zeros(1))), type(
            actual
        )
    if dtype is not None:
        assert actual.dtype == backend.dtype(dtype), (actual.dtype, dtype)
    assert tuple(actual.shape) == expected.shape, (tuple(actual.shape), expected.shape)
    d_rtol, d_atol = tolerance(actual.dtype, long=long)
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0  # infinities must match exactly
    np.testing.assert_allclose(
        backend.to_numpy(actual).astype(np.float64),
        expected,
        rtol=d_rtol if rtol is None else rtol,
        atol=(d_atol if atol is None else atol) * scale,
    )
