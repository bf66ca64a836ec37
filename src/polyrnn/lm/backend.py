"""Array libraries by name, as the language model uses them.

A :class:`Backend` is one library's adapter (:func:`polyrnn.backends.load_library`, which
knows how the library's arrays come back to the host, how it compiles and how it
differentiates: ``"jax"``, :func:`jax.value_and_grad`; ``"torch"``, autograd; ``None``,
the hand-written backpropagation of :func:`polyrnn.lm.loss_and_grad`) and the floating
dtype of the parameters.  A library is imported only when its backend is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from .._compat import Array, Namespace
from ..backends import LIBRARIES, Adapter, LibraryUnavailableError, load_library
from .errors import BackendUnavailableError

__all__ = ["BACKENDS", "DTYPES", "Backend", "get_backend"]

F = TypeVar("F", bound=Callable[..., Any])

DTYPES = ("float32", "float64")
"""The parameter dtypes a language model can be trained in."""

BACKENDS = tuple(LIBRARIES)
"""The backend names: those of :data:`polyrnn.backends.LIBRARIES`."""


@dataclass(frozen=True)
class Backend:
    """One array library and parameter dtype, as training and inference use them.

    Build it with :func:`get_backend`.
    """

    name: str
    """Key of :data:`polyrnn.backends.LIBRARIES`."""
    xp: Namespace
    """The Array API namespace (through ``array_api_compat``)."""
    dtype: Any
    """Floating dtype of parameters and activations, an ``xp`` dtype."""
    dtype_name: str
    """``"float32"`` or ``"float64"``."""
    adapter: Adapter = field(repr=False)
    """The library's adapter: its facts and fast paths."""

    @property
    def autodiff(self) -> str | None:
        """``"jax"``, ``"torch"``, or ``None`` for hand-written gradients."""
        return self.adapter.autodiff

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
        return self.adapter.to_numpy(a)

    def jit(self, fn: F) -> F:
        """``fn`` compiled for this library where it compiles (:func:`jax.jit`), else ``fn``."""
        return self.adapter.jit(fn)


def get_backend(name: str, dtype: str = "float32") -> Backend:
    """The :class:`Backend` named ``name``, computing in ``dtype``.

    Parameters
    ----------
    name : {"numpy", "jax", "torch", "cupy", "array_api_strict"}
        The array library.  JAX and PyTorch can differentiate automatically; every
        library can run polyrnn's hand-written backpropagation through time.
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
    if name not in LIBRARIES:
        raise BackendUnavailableError(
            f"unknown backend {name!r}; choose one of {', '.join(LIBRARIES)}"
        )
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    try:
        adapter = load_library(name, dtype)
    except LibraryUnavailableError as e:
        raise BackendUnavailableError(f"backend {name!r} {e.reason}") from None
    xp = adapter.xp
    return Backend(name, xp, getattr(xp, dtype), dtype, adapter)
