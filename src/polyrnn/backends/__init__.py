"""Backend adapters: the fast paths each array library allows, behind one registry.

See :mod:`polyrnn.backends._registry` for the rules (lazy, cached, explicit).
"""

from ._base import Adapter
from ._registry import (
    LIBRARIES,
    Library,
    LibraryUnavailableError,
    get_adapter,
    installed,
    load_library,
    register,
    registered,
    to_numpy,
    unregister,
)

__all__ = [
    "LIBRARIES",
    "Adapter",
    "Library",
    "LibraryUnavailableError",
    "get_adapter",
    "installed",
    "load_library",
    "register",
    "registered",
    "to_numpy",
    "unregister",
]
