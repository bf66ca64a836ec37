"""Backend adapters: the fast paths each array library allows, behind one registry.

See :mod:`polyrnn.backends._registry` for the rules (lazy, cached, explicit).
"""

from ._base import Adapter
from ._registry import get_adapter, register, registered, unregister

__all__ = ["Adapter", "get_adapter", "register", "registered", "unregister"]
