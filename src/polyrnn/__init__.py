"""polyrnn: recurrent networks written once against the Python Array API.

Pass NumPy, JAX, PyTorch or CuPy arrays; get the same library's arrays back.
"""

from . import backends
from .cells import gru_cell, lstm_cell, rnn_cell
from .params import GRUParams, LSTMParams, RNNParams, init_gru, init_lstm, init_rnn
from .scan import gru_scan, lstm_scan, rnn_scan, scan

__version__ = "0.1.0"

__all__ = [
    "GRUParams",
    "LSTMParams",
    "RNNParams",
    "backends",
    "gru_cell",
    "gru_scan",
    "init_gru",
    "init_lstm",
    "init_rnn",
    "lstm_cell",
    "lstm_scan",
    "rnn_cell",
    "rnn_scan",
    "scan",
]
