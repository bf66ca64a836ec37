"""Array libraries by name, as the language model uses them.

A :class:`Backend` bundles what training needs to know about one library: its Array API
namespace, the floating dtype of the parameters, how arrays come back to the host, how
gradients are taken (``"jax"``: :func:`jax.value_and_grad`; ``"torch"``: autograd;
``None``: the hand-written backpropagation of :func:`polyrnn.lm.loss_and_grad`) and
how a step function is compiled (:func:`jax.jit` on JAX, nothing elsewhere).

The libraries are looked up by name in one table, and a library is imported only when
its backend is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from .._compat import Array, Namespace, array_namespace
from .errors import BackendUnavailableError

__all__ = ["BACKENDS", "DTYPES", "Backend", "get_backend"]

F = TypeVar("F", bound=Callable[..., Any])

DTYPES = ("float32", "float64")
"""The parameter dtypes a language model can be trained in."""


def _identity(fn: F) -> F:
    return fn


def _jax_jit(fn: F) -> F:
    import jax

    return jax.jit(fn)  # type: ignore[return-value]


def _jax_setup(dtype: str) -> None:
    if dtype == "float64":  # JAX silently computes in float32 unless x64 is on
        importlib.import_module("jax").config.update("jax_enable_x64", True)


def _cupy_setup(dtype: str) -> None:
    if not importlib.import_module("cupy").is_available():
        raise BackendUnavailableError(
            "backend 'cupy' needs a usable CUDA device; cupy is installed but finds none"
        )


def _torch_to_numpy(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy()  # type: ignore[no-any-return]


def _cupy_to_numpy(a: Any) -> np.ndarray:
    return a.get()  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Library:
    module: str
    """The module whose arrays this backend uses."""
    install: str
    """What to ``pip install`` to get it."""
    autodiff: str | None = None
    to_numpy: Callable[[Any], np.ndarray] = np.asarray
    compile: Callable[[Any], Any] = _identity
    setup: Callable[[str], None] | None = None


BACKENDS: dict[str, _Library] = {
    "numpy": _Library("numpy", "numpy"),
    "jax": _Library(
        "jax.numpy", '"polyrnn[jax]"', autodiff="jax", compile=_jax_jit, setup=_jax_setup
    ),
    "torch": _Library("torch", '"polyrnn[torch]"', autodiff="torch", to_numpy=_torch_to_numpy),
    "cupy": _Library("cupy", '"polyrnn[cupy]"', to_numpy=_cupy_to_numpy, setup=_cupy_setup),
    "array_api_strict": _Library("array_api_strict", "array-api-strict"),
}
"""Backend name -> how to load and use its library."""


@dataclass(frozen=True)
class Backend:
    """One array library and parameter dtype, as training and inference use them.

    Build it with :func:`get_backend`.
    """

    name: str
    """Key of :data:`BACKENDS`."""
    xp: Namespace
    """The Array API namespace (through ``array_api_compat``)."""
    dtype: Any
    """Floating dtype of parameters and activations, an ``xp`` dtype."""
    dtype_name: str
    """``"float32"`` or ``"float64"``."""
    autodiff: str | None
    """``"jax"``, ``"torch"``, or ``None`` for hand-written gradients."""
    _library: _Library = field(repr=False)

    def asarray(self, a: np.ndarray) -> Array:
        """A host array on this backend: floats in :attr:`dtype`, integers in the index dtype,
        booleans as booleans."""
        if np.issubdtype(a.dtype, np.floating):
            return self.xp.asarray(self.xp.asarray(a), dtype=self.dtype)
        if a.dtype == np.bool_:
            return self.xp.asarray(a)
        index = self.xp.__array_namespace_info__().default_dtypes()["indexing"]
        return self.xp.asarray(a.astype(np.int64), dtype=index)

    def to_numpy(self, a: Array) -> np.ndarray:
        """``a`` as a NumPy array on the host."""
        return self._library.to_numpy(a)

    def jit(self, fn: F) -> F:
        """``fn`` compiled for this library where it compiles (:func:`jax.jit`), else ``fn``."""
        return self._library.compile(fn)  # type: ignore[no-any-return]


def get_backend(name: str, dtype: str = "float32") -> Backend:
    """The :class:`Backend` named ``name``, computing in ``dtype``.

    Parameters
    ----------
    name : {"numpy", "jax", "torch", "cupy", "array_api_strict"}
        The array library.  JAX and PyTorch differentiate automatically; the others use
        polyrnn's hand-written backpropagation through time.
    dtype : {"float32", "float64"}
        Parameter dtype.  Asking JAX for float64 turns on ``jax_enable_x64``.

    Returns
    -------
    Backend

    Raises
    ------
    BackendUnavailableError
        For an unknown name, or a library that is not installed (the message says what to
        install) or cannot run (CuPy without a CUDA device).
    ValueError
        For a dtype other than float32 and float64.

    Examples
    --------
    >>> b = polyrnn.lm.get_backend("numpy", "float64")
    >>> b.autodiff is None, b.asarray(np.arange(3.0)).dtype
    (True, dtype('float64'))
    """
    if name not in BACKENDS:
        raise BackendUnavailableError(
            f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}"
        )
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    lib = BACKENDS[name]
    try:
        module = importlib.import_module(lib.module)
    except ImportError as e:
        raise BackendUnavailableError(
            f"backend {name!r} needs {lib.module.split('.')[0]}, which is not installed "
            f"({e}); install it with: pip install {lib.install}"
        ) from None
    if lib.setup is not None:
        lib.setup(dtype)
    xp = array_namespace(module.asarray(0.0))
    return Backend(name, xp, getattr(xp, dtype), dtype, lib.autodiff, lib)
