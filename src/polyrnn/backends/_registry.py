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
import importlib.util
import threading
from dataclasses import dataclass

import numpy as np

from .._compat import Array, Namespace, array_namespace, namespace_of
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


@dataclass(frozen=True)
class Library:
    """An array library by the name users give it (``polyrnn train --backend NAME``)."""

    name: str
    module: str
    """The module whose ``asarray`` makes the library's arrays."""
    namespace: str
    """The name of its Array API namespace, the registry's key."""
    install: str
    """What to ``pip install`` to get it."""


LIBRARIES: dict[str, Library] = {
    lib.name: lib
    for lib in (
        Library("numpy", "numpy", "array_api_compat.numpy", "numpy"),
        Library("jax", "jax.numpy", "jax.numpy", '"polyrnn[jax]"'),
        Library("torch", "torch", "array_api_compat.torch", '"polyrnn[torch]"'),
        Library("cupy", "cupy", "array_api_compat.cupy", '"polyrnn[cupy]"'),
        Library("array_api_strict", "array_api_strict", "array_api_strict", "array-api-strict"),
    )
}
"""The libraries polyrnn knows by name; any other Array API library works through its
arrays, without a name."""


class LibraryUnavailableError(ImportError):
    """A library that is not installed, or cannot run here (CuPy without a CUDA device)."""

    def __init__(self, library: str, reason: str) -> None:
        super().__init__(f"library {library!r} {reason}")
        self.library = library
        self.reason = reason
        """What is missing and how to get it, e.g. "needs torch, which is not installed
        (...); install it with: pip install ..."."""


def load_library(name: str, dtype: str = "float32") -> Adapter:
    """The adapter of the library called ``name`` (a key of :data:`LIBRARIES`), imported
    and made ready to compute in ``dtype`` (see :meth:`Adapter.prepare`).

    Raises
    ------
    KeyError
        For a name not in :data:`LIBRARIES`.
    LibraryUnavailableError
        If the library is not installed or cannot run here.
    """
    lib = LIBRARIES[name]
    try:
        module = importlib.import_module(lib.module)
    except ImportError as e:
        raise LibraryUnavailableError(
            name,
            f"needs {lib.module.split('.')[0]}, which is not installed ({e}); install it "
            f"with: pip install {lib.install}",
        ) from None
    spec = _registry.get(lib.namespace)
    try:
        (load(spec) if spec else Adapter).prepare(dtype)
    except RuntimeError as e:
        raise LibraryUnavailableError(name, f"cannot run here: {e}") from None
    return get_adapter(array_namespace(module.asarray(0.0)))


def to_numpy(a: Array) -> np.ndarray:
    """Any library's array as a NumPy array on the host, through its adapter."""
    xp = namespace_of(a)
    if xp is None:
        raise TypeError(f"expected an array, got {type(a).__module__}.{type(a).__qualname__}")
    return get_adapter(xp).to_numpy(a)


def installed(dtype: str = "float32") -> dict[str, Adapter]:
    """The adapters of the libraries of :data:`LIBRARIES` that are installed and can run
    here, ready for ``dtype``."""
    found = {}
    for name, lib in LIBRARIES.items():
        if importlib.util.find_spec(lib.module.split(".")[0]) is None:
            continue
        try:
            found[name] = load_library(name, dtype)
        except (ImportError, RuntimeError):  # not usable here, or a broken install
            continue
    return found
