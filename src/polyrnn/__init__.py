"""polyrnn: recurrent networks written once against the Python Array API.

Pass NumPy, JAX, PyTorch or CuPy arrays; get the same library's arrays back.
The language model lives in :mod:`polyrnn.lm` (``import polyrnn.lm``), loaded on demand.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_NAMES: dict[str, str] = {
    "GRUParams": "params",
    "LNGRUParams": "params",
    "LNLSTMParams": "params",
    "LSTMParams": "params",
    "MinGRUParams": "params",
    "MinLSTMParams": "params",
    "RNNParams": "params",
    "associative_scan": "linear",
    "cross_entropy": "metrics",
    "gru_cell": "cells",
    "gru_layers": "layers",
    "gru_layers_vjp": "layers",
    "gru_scan": "scans",
    "gru_scan_vjp": "vjp",
    "init_gru": "params",
    "init_ln_gru": "lnrnn",
    "init_ln_lstm": "lnrnn",
    "init_lstm": "params",
    "init_min_gru": "minrnn",
    "init_min_lstm": "minrnn",
    "init_rnn": "params",
    "linear_scan": "linear",
    "linear_scan_vjp": "linear",
    "ln_gru_cell": "lnrnn",
    "ln_gru_scan": "lnrnn",
    "ln_gru_scan_vjp": "lnrnn",
    "ln_lstm_cell": "lnrnn",
    "ln_lstm_scan": "lnrnn",
    "ln_lstm_scan_vjp": "lnrnn",
    "log_perplexity": "metrics",
    "log_softmax": "metrics",
    "logsumexp": "metrics",
    "lstm_cell": "cells",
    "lstm_layers": "layers",
    "lstm_layers_vjp": "layers",
    "lstm_scan": "scans",
    "lstm_scan_vjp": "vjp",
    "min_gru_cell": "minrnn",
    "min_gru_scan": "minrnn",
    "min_gru_scan_vjp": "minrnn",
    "min_lstm_cell": "minrnn",
    "min_lstm_scan": "minrnn",
    "min_lstm_scan_vjp": "minrnn",
    "perplexity": "metrics",
    "rnn_cell": "cells",
    "rnn_layers": "layers",
    "rnn_layers_vjp": "layers",
    "rnn_scan": "scans",
    "rnn_scan_vjp": "vjp",
    "scan": "scans",
}
"""Each public function and class: the submodule that defines it (the literal table of
Scientific Python SPEC 1, lazy loading; the ``TYPE_CHECKING`` imports below repeat it for
type checkers, and a test holds the two equal)."""

_SUBMODULES = ("backends", "cli", "interop", "layers", "linear", "lm", "metrics", "nn", "vjp")
"""Public submodules, attributes of the package too: ``polyrnn.lm.Trainer`` works after
``import polyrnn`` alone.  ``__all__`` is the table's names and the submodules whose names
are not also functions of the package (``backends``, ``interop``, ``metrics``)."""

__all__ = [
    "GRUParams",
    "LNGRUParams",
    "LNLSTMParams",
    "LSTMParams",
    "MinGRUParams",
    "MinLSTMParams",
    "RNNParams",
    "associative_scan",
    "backends",
    "cross_entropy",
    "gru_cell",
    "gru_layers",
    "gru_layers_vjp",
    "gru_scan",
    "gru_scan_vjp",
    "init_gru",
    "init_ln_gru",
    "init_ln_lstm",
    "init_lstm",
    "init_min_gru",
    "init_min_lstm",
    "init_rnn",
    "interop",
    "linear_scan",
    "linear_scan_vjp",
    "ln_gru_cell",
    "ln_gru_scan",
    "ln_gru_scan_vjp",
    "ln_lstm_cell",
    "ln_lstm_scan",
    "ln_lstm_scan_vjp",
    "log_perplexity",
    "log_softmax",
    "logsumexp",
    "lstm_cell",
    "lstm_layers",
    "lstm_layers_vjp",
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
    "rnn_layers",
    "rnn_layers_vjp",
    "rnn_scan",
    "rnn_scan_vjp",
    "scan",
]


def __getattr__(name: str) -> Any:
    """Import on first use: ``import polyrnn`` loads nothing else; NumPy, array-api-compat
    and polyrnn's modules load with the first name a program uses."""
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES})


if TYPE_CHECKING:  # what __getattr__ provides, spelled out for type checkers
    from . import backends, interop, metrics
    from . import cli as cli  # submodules that are attributes but not in __all__
    from . import layers as layers
    from . import linear as linear
    from . import lm as lm
    from . import nn as nn
    from . import vjp as vjp
    from .cells import gru_cell, lstm_cell, rnn_cell
    from .layers import (
        gru_layers,
        gru_layers_vjp,
        lstm_layers,
        lstm_layers_vjp,
        rnn_layers,
        rnn_layers_vjp,
    )
    from .linear import associative_scan, linear_scan, linear_scan_vjp
    from .lnrnn import (
        init_ln_gru,
        init_ln_lstm,
        ln_gru_cell,
        ln_gru_scan,
        ln_gru_scan_vjp,
        ln_lstm_cell,
        ln_lstm_scan,
        ln_lstm_scan_vjp,
    )
    from .metrics import cross_entropy, log_perplexity, log_softmax, logsumexp, perplexity
    from .minrnn import (
        init_min_gru,
        init_min_lstm,
        min_gru_cell,
        min_gru_scan,
        min_gru_scan_vjp,
        min_lstm_cell,
        min_lstm_scan,
        min_lstm_scan_vjp,
    )
    from .params import (
        GRUParams,
        LNGRUParams,
        LNLSTMParams,
        LSTMParams,
        MinGRUParams,
        MinLSTMParams,
        RNNParams,
        init_gru,
        init_lstm,
        init_rnn,
    )
    from .scans import gru_scan, lstm_scan, rnn_scan, scan
    from .vjp import gru_scan_vjp, lstm_scan_vjp, rnn_scan_vjp
