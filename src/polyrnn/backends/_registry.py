"""Which adapter serves which array library.

Rules, in order of importance:

1. Never import a framework the caller has not already loaded.  The registry is keyed
   by the *name* of an Array API namespace (``"jax.numpy"``, ``"array_api_compat.torch"``)
   and maps it to a ``"module:Class"`` string; the module is imported only when an array
   of that namespace reaches :func:`~polyrnn.backends.get_adapter`, which proves the framework is loaded.
2. One lookup per namespace: the adapter is built once and cached.
3. A namespace with no entry gets the Array-API reference :class:`~polyrnn.backends.Adapter`,
   so any compliant library works, only without a specialisation.
"""

from __future__ import annotations

import importlib
import threading

from .._compat import Namespace
from ._base import Adapter

_BUILTIN = {
    "array_api_compat.numpy": "polyrnn.backends.numpy:NumpyAdapter",
    "numpy": "polyrnn.backends.numpy:NumpyAdapter",
    "jax.numpy": "polyrnn.backends.jax:JaxAdapter",
    "array_api_compat.torch": "polyrnn.backends.torch:TorchAdapter",
    "array_api_compat.cupy": "polyrnn.backends.cupy:CupyAdapter",
}

_registry: dict[str, str] = dict(_BUILTIN)
_cache: dict[str, Adapter] = {}
_lock = threading.Lock()


def register(namespace: str, spec: str) -> None:
    """Serve arrays of the namespace named ``namespace`` with the adapter ``spec``.

    Parameters
    ----------
    namespace : str
        ``__name__`` of the Array API namespace, as :func:`array_api_compat.array_namespace`
        returns it for the library's arrays (e.g. ``"array_api_strict"``).
    spec : str
        ``"package.module:ClassName"`` of an :class:`Adapter` subclass; imported lazily,
        when the first array of that namespace arrives.

    Examples
    --------
    >>> polyrnn.backends.register("array_api_strict", "polyrnn.backends:Adapter")
    >>> polyrnn.backends.unregister("array_api_strict")
    """
    if ":" not in spec:
        raise ValueError(f"spec must look like 'package.module:ClassName', got {spec!r}")
    with _lock:
        _registry[namespace] = spec
        _cache.pop(namespace, None)


def unregister(namespace: str) -> None:
    """Forget a registration made with :func:`register`; the built-in one comes back if any."""
    with _lock:
        _registry.pop(namespace, None)
        if namespace in _BUILTIN:
            _registry[namespace] = _BUILTIN[namespace]
        _cache.pop(namespace, None)


def registered() -> dict[str, str]:
    """A copy of the registry: namespace name to ``"module:Class"``."""
    return dict(_registry)


def load(spec: str) -> type[Adapter]:
    """The adapter class named by a ``"module:Class"`` spec (imports its module)."""
    module, _, name = spec.partition(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"{spec} is not a subclass of polyrnn.backends.Adapter")
    return cls


def get_adapter(xp: Namespace) -> Adapter:
    """The cached adapter serving the namespace ``xp``."""
    name = xp.__name__
    adapter = _cache.get(name)
    if adapter is None:
        with _lock:
            spec = _registry.get(name)
            adapter = (load(spec) if spec else Adapter)(xp)
            _cache[name] = adapter
    return adapter
