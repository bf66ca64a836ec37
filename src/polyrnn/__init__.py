"""polyrnn: recurrent networks written once against the Python Array API.

Pass NumPy, JAX, PyTorch or CuPy arrays; get the same library's arrays back.
"""

from . import backends, interop, metrics
from .cells import gru_cell, lstm_cell, rnn_cell
from .metrics import cross_entropy, log_perplexity, log_softmax, logsumexp, perplexity
from .params import GRUParams, LSTMParams, RNNParams, init_gru, init_lstm, init_rnn
from .scan import gru_scan, lstm_scan, rnn_scan, scan
from .vjp import gru_scan_vjp, lstm_scan_vjp, rnn_scan_vjp

__version__ = "0.1.0"

__all__ = [
    "GRUParams",
    "LSTMParams",
    "RNNParams",
    "backends",
    "cross_entropy",
    "gru_cell",
    "gru_scan",
    "gru_scan_vjp",
    "init_gru",
    "init_lstm",
    "init_rnn",
    "interop",
    "log_perplexity",
    "log_softmax",
    "logsumexp",
    "lstm_cell",
    "lstm_scan",
    "lstm_scan_vjp",
    "metrics",
    "perplexity",
    "rnn_cell",
    "rnn_scan",
    "rnn_scan_vjp",
    "scan",
]
