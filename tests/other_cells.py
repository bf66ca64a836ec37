"""polyrnn's cells beyond the frameworks' own, as the tests of the framework modules
(``polyrnn.nn.torch``, ``.keras``, ``.flax``) take them: the layer class that offers
each, and polyrnn's single-layer scan, its VJP and its parameters, run on NumPy float64
as the reference."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import polyrnn


class Other(NamedTuple):
    kind: str
    """The layer class that offers the cell: ``"GRU"`` (state ``h``) or ``"LSTM"``."""
    scan: Callable[..., Any]
    vjp: Callable[..., Any]
    params: type


OTHERS = {
    "ln_gru": Other("GRU", polyrnn.ln_gru_scan, polyrnn.ln_gru_scan_vjp, polyrnn.LNGRUParams),
    "min_gru": Other("GRU", polyrnn.min_gru_scan, polyrnn.min_gru_scan_vjp, polyrnn.MinGRUParams),
    "min_lstm": Other(
        "GRU", polyrnn.min_lstm_scan, polyrnn.min_lstm_scan_vjp, polyrnn.MinLSTMParams
    ),
    "ln_lstm": Other("LSTM", polyrnn.ln_lstm_scan, polyrnn.ln_lstm_scan_vjp, polyrnn.LNLSTMParams),
}
OTHER_CELLS = [(other.kind, cell) for cell, other in OTHERS.items()]
"""``(kind, cell)`` pairs to parametrize over."""
OTHER_IDS = list(OTHERS)
