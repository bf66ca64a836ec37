r"""How well a model predicts a text: cross-entropy in nats per character and perplexity.

.. math::
    \ell = -\frac{1}{N} \sum_{i=1}^{N} \log P(w_{i} \mid w_{<i}), \qquad
    \mathrm{PP} = e^{\ell}

over the ``N = len(text) - 1`` characters that have a predecessor.  The predictions are
cut into ``S`` contiguous streams of ``ceil(N / S)`` (the last one shorter), read in
parallel, each from the zero state, ``T`` characters at a time with the state carried;
the streams are padded to a whole number of chunks and the padding is masked out of
:func:`polyrnn.cross_entropy`, so every character is scored exactly once.  A uniform model over ``V``
characters has ``ℓ = log V`` and ``PP = V``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from .._compat import Array
from ..metrics import cross_entropy
from . import _checks, model
from .backend import Backend
from .errors import DataError

__all__ = ["Metrics", "evaluate", "evaluate_tokens"]


class Metrics(NamedTuple):
    """Cross-entropy of a model on a text."""

    loss: float
    """Mean negative log-likelihood, nats per character: the log-perplexity."""
    perplexity: float
    """``exp(loss)``: ``inf`` when that overflows a float (a loss above about 709.78)."""
    tokens: int
    """N, the number of characters scored."""

    @property
    def bits_per_char(self) -> float:
        """``loss / log 2``."""
        return self.loss / math.log(2.0)


def _chunk_nll(
    params: model.LMParams,
    tokens: Array,
    targets: Array,
    mask: Array,
    state: model.State,
    *,
    cell: str,
) -> tuple[Array, model.State]:
    log_probs, state = model.forward(params, tokens, state, cell=cell)
    return cross_entropy(log_probs, targets, mask=mask, reduction="sum"), state


@functools.lru_cache(maxsize=16)
def _compiled(backend: Backend, cell: str) -> Any:
    return backend.jit(functools.partial(_chunk_nll, cell=cell))


def evaluate_tokens(
    lm: model.LanguageModel, tokens: np.ndarray, *, streams: int = 64, seq_len: int = 256
) -> Metrics:
    """:class:`Metrics` of ``lm`` on an encoded text.

    Parameters
    ----------
    lm : LanguageModel
    tokens : int array, shape ``(N + 1,)``
        Character ids, at least two.
    streams : int
        S, the number of parallel streams (fewer when the text is short).
    seq_len : int
        T, the number of steps run per call.

    Returns
    -------
    Metrics

    Raises
    ------
    DataError
        If there are fewer than two tokens, or ids outside the vocabulary.
    TypeError, ValueError
        For tokens that are not a 1-d integer array, or ``streams`` and ``seq_len`` that
        are not positive integers.
    """
    nll, n = nll_sum(lm, tokens, streams=streams, seq_len=seq_len)
    return metrics(nll, n)


def metrics(nll: float, n: int) -> Metrics:
    """The :class:`Metrics` of a total negative log-likelihood ``nll`` over ``n`` characters."""
    loss = nll / n
    return Metrics(loss, _exp_or_inf(loss), n)


def nll_sum(
    lm: model.LanguageModel,
    tokens: np.ndarray,
    *,
    streams: int = 64,
    seq_len: int = 256,
    part: tuple[int, int] = (0, 1),
) -> tuple[float, int]:
    """The summed negative log-likelihood of part ``part = (i, k)`` of the ``S`` streams of
    :func:`evaluate_tokens` (the ``i``-th of ``k`` contiguous blocks of streams, as
    :func:`numpy.array_split` cuts them), and the number of characters it scores.

    Every stream is scored as in the whole evaluation, so the sums of the ``k`` parts are
    the whole's: ``sum(nll) / sum(count)`` is its loss.  The arguments are checked as by
    :func:`evaluate_tokens`.
    """
    streams = _checks.integer("streams", streams, 1)
    seq_len = _checks.integer("seq_len", seq_len, 1)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise TypeError(
            f"tokens must be a 1-d array of integer character ids, got shape "
            f"{tokens.shape} and dtype {tokens.dtype}"
        )
    if tokens.size and not 0 <= tokens.min() <= tokens.max() < len(lm.vocab):
        raise DataError(
            f"tokens must be ids in [0, {len(lm.vocab)}) of the model's vocabulary, got "
            f"values from {tokens.min()} to {tokens.max()}"
        )
    tokens = tokens.astype(np.int64)
    n = tokens.shape[0] - 1
    if n < 1:
        raise DataError(
            f"evaluation needs a text of at least 2 characters (one to predict from, one "
            f"to predict), got {tokens.shape[0]}"
        )
    s = min(streams, n)
    span = -(-n // s)  # stream i reads predictions [i * span, (i + 1) * span) of the n
    t = min(seq_len, span)
    chunks = -(-span // t)
    pos = np.arange(s)[:, None] * span + np.arange(chunks * t)[None, :]
    keep = (pos < np.arange(1, s + 1)[:, None] * span) & (pos < n)
    mine = np.array_split(np.arange(s), part[1])[part[0]]
    pos, keep = pos[mine], keep[mine]
    if not keep.any():
        return 0.0, 0
    pos = np.where(keep, pos, 0)
    inputs, targets = tokens[pos], tokens[pos + 1]
    b = lm.backend
    run = _compiled(b, lm.config.cell)
    state = model.zero_state(lm.config, b, len(mine))
    nll = 0.0
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged model: inf or NaN below
        for k in range(chunks):
            cols = slice(k * t, (k + 1) * t)
            value, state = run(
                lm.params,
                b.asarray(inputs[:, cols]),
                b.asarray(targets[:, cols]),
                b.asarray(keep[:, cols]),
                state,
            )
            nll += float(value)
    return nll, int(keep.sum())


def _exp_or_inf(x: float) -> float:
    """``math.exp(x)``, but ``inf`` where that overflows (``math.exp`` raises instead)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def evaluate(
    lm: model.LanguageModel, text: str, *, streams: int = 64, seq_len: int = 256
) -> Metrics:
    """:class:`Metrics` of ``lm`` on ``text``.

    Parameters
    ----------
    lm : LanguageModel
    text : str
        At least two characters, all in ``lm.vocab``.
    streams, seq_len
        As :func:`evaluate_tokens`.

    Returns
    -------
    Metrics

    Raises
    ------
    DataError
        If ``text`` holds characters outside the vocabulary or is shorter than two
        characters.
    """
    return evaluate_tokens(lm, lm.vocab.encode(text), streams=streams, seq_len=seq_len)
