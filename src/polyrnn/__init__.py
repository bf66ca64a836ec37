"""polyrnn: recurrent networks written once against the Python Array API.

Pass NumPy, JAX, PyTorch or CuPy arrays; get the same library's arrays back.
The language model lives in :mod:`polyrnn.lm` (``import polyrnn.lm``), loaded on demand.
"""

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
from .scan import gru_scan, lstm_scan, rnn_scan, scan
from .vjp import gru_scan_vjp, lstm_scan_vjp, rnn_scan_vjp

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
