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

from .. import cells
from .._cell import Cell

_SUBMODULES = ("torch", "flax", "keras")
"""The framework modules, loaded on first use as attributes of the package."""

__all__: list[str] = []

LAYER_CELLS = {
    "rnn": ("rnn",),
    "gru": ("gru", "ln_gru", "min_gru", "min_lstm"),
    "lstm": ("lstm", "ln_lstm"),
}
"""The cells each kind of layer of the three frameworks offers, its own (the default)
first: those whose state is the layer's (``h``; ``h``; ``h`` and ``c``)."""


def choose_cell(layer: str, kind: str, cell: Any, reset_after: bool = True) -> Cell:
    """The record of ``cell`` for a ``kind`` layer (``"rnn"``, ``"gru"``, ``"lstm"``) of
    the class named ``layer``, checked: one of :data:`LAYER_CELLS` ``[kind]``, and
    ``reset_after=False`` with the plain GRU only.  The one check of the three
    frameworks' ``cell`` keyword."""
    allowed = LAYER_CELLS[kind]
    if not isinstance(cell, str) or cell not in allowed:
        hint = next(
            (
                f" ({cell!r} is a cell of the {other.upper()} layers, whose state is "
                f"{' and '.join(cells.BUILTIN[cell].states)})"
                for other, names in LAYER_CELLS.items()
                if isinstance(cell, str) and cell in names
            ),
            "",
        )
        raise ValueError(
            f"{layer}: cell must be one of {', '.join(map(repr, allowed))}, got {cell!r}{hint}"
        )
    if not reset_after and cell != "gru":
        why = "normalises h W_h whole, the reset-after form" if cell == "ln_gru" else "has no W_h"
        raise ValueError(
            f"{layer}: reset_after=False (the reset gate before the recurrent product) is "
            f"the plain GRU's option only, got it with cell={cell!r}, which {why}"
        )
    return cells.BUILTIN[cell]


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
