"""The one module that imports :mod:`array_api_compat`.

Everything else in polyrnn asks this module for an array's namespace and device,
so the rest of the code never depends on how compatibility is obtained.
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace as _array_namespace
from array_api_compat import device, is_array_api_obj, to_device

__all__ = [
    "Array",
    "Namespace",
    "array_namespace",
    "device",
    "is_array_api_obj",
    "namespace_of",
    "to_device",
]

Array = Any
"""An array of any Array-API-compatible library (NumPy, JAX, PyTorch, CuPy, ...)."""

Namespace = Any
"""An Array API namespace, as returned by :func:`array_namespace`."""


_BY_TYPE: dict[type, Namespace] = {}


def namespace_of(a: Any) -> Namespace | None:
    """The Array API namespace of one array, ``None`` if ``a`` is not an array.

    Cached by type: every library's namespace is a function of its array type, and
    :func:`array_api_compat.array_namespace` costs microseconds a call, which add up at
    the door of a scan that runs in a fraction of a millisecond.
    """
    kind = type(a)
    xp = _BY_TYPE.get(kind)
    if xp is None and is_array_api_obj(a):
        xp = _BY_TYPE[kind] = _array_namespace(a)
    return xp


def array_namespace(*arrays: Array) -> Namespace:
    """The Array API namespace shared by ``arrays`` (``None`` entries are skipped)."""
    present = [a for a in arrays if a is not None]
    spaces = [namespace_of(a) for a in present]
    if spaces and spaces[0] is not None and all(xp is spaces[0] for xp in spaces):
        return spaces[0]
    return _array_namespace(*present)  # raises its own error for mixed or non-arrays
