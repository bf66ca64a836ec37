"""The one module that imports :mod:`array_api_compat`.

Everything else in polyrnn asks this module for an array's namespace and device,
so the rest of the code never depends on how compatibility is obtained.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace as _array_namespace
from array_api_compat import device, is_array_api_obj, to_device

__all__ = ["Array", "Namespace", "array_namespace", "device", "is_array_api_obj", "to_device"]

Array = Any
"""An array of any Array-API-compatible library (NumPy, JAX, PyTorch, CuPy, ...)."""

Namespace = Any
"""An Array API namespace, as returned by :func:`array_namespace`."""


def array_namespace(*arrays: Array) -> Namespace:
    """The Array API namespace shared by ``arrays`` (``None`` entries are skipped)."""
    return _array_namespace(*(a for a in arrays if a is not None))
