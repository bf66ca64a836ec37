"""polyrnn: recurrent networks written once against the Python Array API.

Pass NumPy, JAX, PyTorch or CuPy arrays; get the same library's arrays back.
The language model lives in :mod:`polyrnn.lm` (``import polyrnn.lm``), loaded on demand.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "GRUParams",
    "LSTMParams",
    "MinGRUParams",
    "MinLSTMParams",
    "RNNParams",
    "associative_scan",
    "backends",
    "cross_entropy",
    "gru_cell",
    "gru_scan",
    "gru_scan_vjp",
    "init_gru",
    "init_lstm",
    "init_min_gru",
    "init_min_lstm",
    "init_rnn",
    "interop",
    "linear_scan",
    "linear_scan_vjp",
    "log_perplexity",
    "log_softmax",
    "logsumexp",
    "lstm_cell",
    "lstm_scan",
    "lstm_scan_vjp",
    "metrics",
    "min_gru_cell",
    "min_gru_scan",
    "min_gru_scan_vjp",
    "min_lstm_cell",
    "min_lstm_scan",
    "min_lstm_scan_vjp",
    "perplexity",
    "rnn_cell",
    "rnn_scan",
    "rnn_scan_vjp",
    "scan",
]

_homes: dict[str, tuple[str, str | None]] = {}
"""Each name of ``__all__``: the module that defines it and the attribute there (``None``
when the name is that module itself)."""


def _read_homes() -> dict[str, tuple[str, str | None]]:
    """The imports under ``if TYPE_CHECKING:`` at the end of this file, read with :mod:`ast`
    (through the module's loader, so a zipped install works too): one list of names serves
    type checkers and :func:`__getattr__`."""
    import ast

    source = __spec__.loader.get_source(__name__)  # type: ignore[union-attr]
    tree = ast.parse(source)
    block = next(
        s for s in tree.body if isinstance(s, ast.If) and ast.unparse(s.test) == "TYPE_CHECKING"
    )
    homes: dict[str, tuple[str, str | None]] = {}
    for stmt in block.body:
        if isinstance(stmt, ast.ImportFrom):
            for alias in stmt.names:
                if stmt.module is None:  # from . import backends: the submodule itself
                    homes[alias.name] = (f"{__name__}.{alias.name}", None)
                else:
                    homes[alias.name] = (f"{__name__}.{stmt.module}", alias.name)
    return homes


def __getattr__(name: str) -> Any:
    """Import on first use (Scientific Python SPEC 1, lazy loading): ``import polyrnn``
    loads nothing else; NumPy, array-api-compat and polyrnn's modules load with the first
    name a program uses."""
    if not _homes:
        _homes.update(_read_homes())
    if name not in _homes:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _homes[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)


if TYPE_CHECKING:  # what __getattr__ provides, spelled out for type checkers
    from . import backends, interop, metrics
    from .cells import gru_cell, lstm_cell, rnn_cell
    from .linear import associative_scan, linear_scan, linear_scan_vjp
    from .metrics import cross_entropy, log_perplexity, log_softmax, logsumexp, perplexity
    from .minrnn import (
        MinGRUParams,
        MinLSTMParams,
        init_min_gru,
        init_min_lstm,
        min_gru_cell,
        min_gru_scan,
        min_gru_scan_vjp,
        min_lstm_cell,
        min_lstm_scan,
        min_lstm_scan_vjp,
    )
    from .params import GRUParams, LSTMParams, RNNParams, init_gru, init_lstm, init_rnn
    from .scans import gru_scan, lstm_scan, rnn_scan, scan
    from .vjp import gru_scan_vjp, lstm_scan_vjp, rnn_scan_vjp
