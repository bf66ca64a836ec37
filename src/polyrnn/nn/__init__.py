"""Framework modules over polyrnn's layers: :mod:`polyrnn.nn.torch` (``torch.nn.Module``\\ s).

Each submodule imports its framework, so ``import polyrnn`` and ``import polyrnn.nn`` load
none: ``polyrnn.nn.torch`` imports PyTorch on first use (``import polyrnn.nn.torch``, or
the attribute ``polyrnn.nn.torch`` after ``import polyrnn``), and says which extra to
install where PyTorch is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SUBMODULES = ("torch",)
"""The framework modules, loaded on first use as attributes of the package."""

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    """``polyrnn.nn.torch`` imports :mod:`polyrnn.nn.torch` (and PyTorch) on first use."""
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})


if TYPE_CHECKING:
    from . import torch as torch
