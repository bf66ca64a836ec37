"""Framework modules over polyrnn's layers: :mod:`polyrnn.nn.torch` (``torch.nn.Module``\\ s),
:mod:`polyrnn.nn.flax` (``flax.nnx.Module``\\ s) and :mod:`polyrnn.nn.keras` (Keras 3
layers).

Each submodule imports its framework, so ``import polyrnn`` and ``import polyrnn.nn`` load
none: ``polyrnn.nn.torch`` imports PyTorch on first use (``import polyrnn.nn.torch``, or
the attribute ``polyrnn.nn.torch`` after ``import polyrnn``), ``polyrnn.nn.flax`` Flax,
``polyrnn.nn.keras`` Keras, and each says which extra to install where its framework is
missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_SUBMODULES = ("torch", "flax", "keras")
"""The framework modules, loaded on first use as attributes of the package."""

__all__: list[str] = []


def __getattr__(name: str) -> Any:
    """``polyrnn.nn.torch`` imports :mod:`polyrnn.nn.torch` (and PyTorch) on first use,
    ``polyrnn.nn.flax`` :mod:`polyrnn.nn.flax` (and Flax), ``polyrnn.nn.keras``
    :mod:`polyrnn.nn.keras` (and Keras)."""
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})


if TYPE_CHECKING:
    from . import flax as flax
    from . import keras as keras
    from . import torch as torch
