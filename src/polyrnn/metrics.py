r"""Language-model metrics, written once against the Array API.

Every function here takes arrays of any Array-API-compatible library and returns
arrays of that library, in the dtype of ``scores`` (or ``x``), differentiable wherever
the library differentiates (JAX, PyTorch).

The quantity behind all of them is the negative log-likelihood of each target token,

.. math::
    \ell_i = -\log P(w_i \mid w_{<i}) = \operatorname{logsumexp}(s_i) - s_{i, w_i},

computed from the scores ``s`` of a position without forming the probabilities, so that
it neither underflows nor overflows.  Perplexity is its exponentiated mean over the
``N`` kept tokens:

.. math::
    \mathrm{PP}(W) = \Bigl(\prod_{i=1}^{N} \frac{1}{P(w_i \mid w_{<i})}\Bigr)^{1/N}
                   = \exp\Bigl(-\frac{1}{N} \sum_{i=1}^{N} \log P(w_i \mid w_{<i})\Bigr).

Scores
    ``scores`` of shape ``(..., V)`` are unnormalised logits *or* log-probabilities:
    log-softmax is idempotent (``log_softmax(log_softmax(s)) == log_softmax(s)``), so
    both give the same value.  Probabilities are **not** accepted: ``log`` them first.
    Passing probabilities as scores is not an error that can be detected (any real
    vector is a valid set of logits), it silently gives a different, wrong metric.
Dropped tokens
    ``mask`` (bool, or 0/1 integers; ``False``/0 drops) and ``ignore_index`` (a target
    value that drops its position) remove tokens from both the sum and the count ``N``.
    A dropped position's score row and target are never read: they may hold padding,
    ``-inf``, NaN or out-of-range ids, and they get a zero gradient.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from . import _validate
from ._compat import Array, Namespace, device
from .backends import get_adapter

__all__ = ["cross_entropy", "log_perplexity", "log_softmax", "logsumexp", "perplexity"]

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------- logsumexp


def _axes(fn: str, x: Array, axis: Any) -> tuple[int, ...]:
    """``axis`` (an int or a tuple of ints) as a tuple of non-negative, distinct axes."""
    raw = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for item in raw:
        if isinstance(item, bool):
            raise TypeError(f"{fn}: axis must be an int or a tuple of ints, got {axis!r}")
        try:
            a = operator.index(item)
        except TypeError:
            raise TypeError(f"{fn}: axis must be an int or a tuple of ints, got {axis!r}") from None
        if not -x.ndim <= a < x.ndim:
            raise ValueError(f"{fn}: axis {a} is out of bounds for an array of {x.ndim} dimensions")
        out.append(a % x.ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{fn}: axis must not repeat an axis, got {axis!r}")
    return tuple(out)


def _shifted_logsumexp(
    xp: Namespace, x: Array, axes: tuple[int, ...]
) -> tuple[Array, Array, Array]:
    """``(m, log_s, has_mass)`` with kept dimensions, where ``m`` is the max over ``axes``
    (replaced by 0 where it is not finite), ``s = sum(exp(x - m))``, ``log_s = log(s)``
    where ``s > 0`` and 0 elsewhere, and ``has_mass = s > 0``.

    ``logsumexp(x) = m + log_s`` where ``has_mass``, ``-inf`` elsewhere.  Replacing a
    non-finite max by 0 (as scipy does) keeps a row of all ``-inf`` from becoming
    ``-inf - (-inf) = NaN``; taking ``log`` of ``s`` only where it is positive keeps
    ``log(0)`` (a warning in NumPy, an infinite gradient in JAX) out of the result.
    """
    if any(x.shape[a] == 0 for a in axes):
        kept = tuple(1 if i in axes else n for i, n in enumerate(x.shape))
        zeros = xp.zeros(kept, dtype=x.dtype, device=device(x))
        return zeros, zeros, xp.zeros(kept, dtype=xp.bool, device=device(x))
    m = xp.max(x, axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    s = xp.sum(xp.exp(x - m), axis=axes, keepdims=True)
    has_mass = (s > 0) | xp.isnan(s)  # a NaN in x stays NaN, as in scipy and torch
    log_s = xp.log(xp.where(has_mass, s, 1.0))
    return m, log_s, has_mass


def logsumexp(x: Array, *, axis: int | tuple[int, ...] = -1, keepdims: bool = False) -> Array:
    r"""Logarithm of the sum of exponentials, without overflow or underflow.

    .. math::
        \operatorname{logsumexp}(x) = m + \log \sum_j e^{x_j - m}, \qquad m = \max_j x_j

    Entries equal to ``-inf`` contribute nothing; a slice of all ``-inf`` gives ``-inf``
    (not NaN), and so does an empty slice (the log of an empty sum).  A ``+inf`` entry
    gives ``+inf``; a NaN gives NaN.

    Parameters
    ----------
    x : array, real floating
        Input of any shape.
    axis : int or tuple of int, default -1
        Axis or axes to reduce over.
    keepdims : bool, default False
        Keep the reduced axes with length 1, so the result broadcasts against ``x``.

    Returns
    -------
    array
        ``x``'s shape without ``axis`` (or with it set to 1 when ``keepdims``); the
        library, dtype and device of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array of a real floating dtype, or ``axis`` is not an int or a
        tuple of ints.
    ValueError
        If ``axis`` is out of bounds or repeats an axis.

    Examples
    --------
    >>> x = np.array([[0.0, np.log(3.0)], [-np.inf, -np.inf]])
    >>> polyrnn.metrics.logsumexp(x, axis=-1)
    array([1.38629436,       -inf])
    >>> float(polyrnn.metrics.logsumexp(np.array([1000.0, 1000.0])))
    1000.6931471805599
    """
    _validate.flags("logsumexp", keepdims=keepdims)
    fn = "logsumexp"
    xp = _validate.namespace(fn, {"x": x})
    _validate.floating(fn, "x", x, xp)
    axes = _axes(fn, x, axis)
    m, log_s, has_mass = _shifted_logsumexp(xp, x, axes)
    out = xp.where(has_mass, m + log_s, -math.inf)
    return out if keepdims else xp.squeeze(out, axis=axes)


def log_softmax(x: Array, *, axis: int | tuple[int, ...] = -1) -> Array:
    r"""Logarithm of the softmax along ``axis``: normalised log-probabilities.

    .. math::
        \operatorname{log\_softmax}(x)_j = x_j - \operatorname{logsumexp}(x)
                                         = (x_j - m) - \log \sum_k e^{x_k - m}

    It is idempotent: applied to log-probabilities it returns them unchanged (to
    rounding), which is why the metrics below accept logits and log-probabilities alike.
    A slice of all ``-inf`` (no probability mass anywhere) gives ``-inf`` everywhere,
    not NaN.

    Parameters
    ----------
    x : array, real floating
        Scores (logits) of any shape.
    axis : int or tuple of int, default -1
        The class axis (or axes, normalised jointly).

    Returns
    -------
    array
        Same shape, library, dtype and device as ``x``; ``exp`` of it sums to 1 along
        ``axis``.

    Raises
    ------
    TypeError
        If ``x`` is not an array of a real floating dtype, or ``axis`` is not an int or a
        tuple of ints.
    ValueError
        If ``axis`` is out of bounds or repeats an axis.

    Examples
    --------
    >>> polyrnn.metrics.log_softmax(np.array([0.0, np.log(3.0)])).round(6)
    array([-1.386294, -0.287682])
    """
    fn = "log_softmax"
    xp = _validate.namespace(fn, {"x": x})
    _validate.floating(fn, "x", x, xp)
    axes = _axes(fn, x, axis)
    m, log_s, _ = _shifted_logsumexp(xp, x, axes)
    return (x - m) - log_s


# ------------------------------------------------------------------ token log-likelihood


class _Tokens:
    """The per-token negative log-likelihoods of a validated call, and what was kept."""

    __slots__ = ("concrete", "keep", "nll", "xp")

    def __init__(self, xp: Namespace, nll: Array, keep: Array | None, concrete: bool) -> None:
        self.xp = xp
        self.nll = nll  # shape targets.shape, zero where dropped
        self.keep = keep  # bool of targets.shape, or None when every token is kept
        self.concrete = concrete  # whether values may be inspected (not a JIT tracer)

    def count(self) -> Array | int:
        """The number of kept tokens, as a Python int when it is known from shapes."""
        if self.keep is None:
            return math.prod(self.nll.shape)
        return self.xp.count_nonzero(self.keep)


def _value_range(xp: Namespace, a: Array, where: Array) -> tuple[int, int]:
    """The smallest and largest integer of ``a`` where ``where`` is true (some is)."""
    info = xp.iinfo(a.dtype)
    lo = xp.min(xp.where(where, a, info.max))
    hi = xp.max(xp.where(where, a, info.min))
    return int(lo), int(hi)


def _token_nll(
    fn: str, scores: Array, targets: Array, mask: Array | None, ignore_index: Any
) -> _Tokens:
    """Validate the common arguments and compute ``-log P(target)`` for every position."""
    xp = _validate.namespace(fn, {"scores": scores, "targets": targets, "mask": mask})
    _validate.floating(fn, "scores", scores, xp)
    if scores.ndim < 1:
        raise ValueError(f"{fn}: scores must have shape (..., V), class axis last, got ()")
    n_cls = scores.shape[-1]
    if n_cls == 0:
        raise ValueError(
            f"{fn}: scores must have at least one class (V >= 1), got shape {tuple(scores.shape)}"
        )
    if not xp.isdtype(targets.dtype, "integral"):
        raise TypeError(
            f"{fn}: targets must have an integer dtype (class ids), got {targets.dtype}"
        )
    why = "scores.shape[:-1], one class id per position"
    _validate.shape(fn, "targets", targets, scores.shape[:-1], why)
    if mask is not None:
        if not (xp.isdtype(mask.dtype, "bool") or xp.isdtype(mask.dtype, "integral")):
            raise TypeError(f"{fn}: mask must have a bool or integer (0/1) dtype, got {mask.dtype}")
        _validate.shape(fn, "mask", mask, scores.shape[:-1], "scores.shape[:-1], like targets")
    if ignore_index is not None:
        if isinstance(ignore_index, bool):
            raise TypeError(f"{fn}: ignore_index must be an int or None, got {ignore_index!r}")
        try:
            ignore_index = operator.index(ignore_index)
        except TypeError:
            raise TypeError(
                f"{fn}: ignore_index must be an int or None, got {type(ignore_index).__name__}"
            ) from None

    adapter = get_adapter(xp)
    concrete = adapter.concrete(targets) and (mask is None or adapter.concrete(mask))
    info = xp.iinfo(targets.dtype)

    keep = None
    if mask is not None:
        if xp.isdtype(mask.dtype, "bool"):
            keep = mask
        else:
            keep = mask != 0
            if concrete and math.prod(mask.shape):
                odd = keep & (mask != 1)
                if bool(xp.any(odd)):
                    lo, hi = _value_range(xp, mask, odd)
                    raise ValueError(
                        f"{fn}: an integer mask must hold only 0 and 1, got other values "
                        f"from {lo} to {hi}"
                    )
    if ignore_index is not None and info.min <= ignore_index <= info.max:
        not_ignored = targets != ignore_index
        keep = not_ignored if keep is None else keep & not_ignored

    if concrete and math.prod(targets.shape):
        below, above = info.min < 0, n_cls <= info.max
        if below or above:
            if below and above:
                bad = (targets < 0) | (targets >= n_cls)
            else:
                bad = targets < 0 if below else targets >= n_cls
            if keep is not None:
                bad = bad & keep
            if bool(xp.any(bad)):
                lo, hi = _value_range(xp, targets, bad)
                also = "" if ignore_index is None else f" or ignore_index={ignore_index}"
                raise ValueError(
                    f"{fn}: targets must be class ids in [0, V={n_cls}){also} where kept, "
                    f"got out-of-range values from {lo} to {hi}"
                )

    index_dtype = xp.__array_namespace_info__().default_dtypes()["indexing"]
    if keep is not None:
        # Never read a dropped position: it may hold padding, -inf or NaN.
        scores = xp.where(xp.expand_dims(keep, axis=-1), scores, 0.0)
        targets = xp.where(keep, targets, 0)
    if targets.dtype != index_dtype:
        targets = xp.astype(targets, index_dtype)
    idx = xp.expand_dims(targets, axis=-1)
    if hasattr(xp, "take_along_axis"):
        picked = xp.take_along_axis(scores, idx, axis=-1)
    else:  # a namespace older than the 2024.12 standard
        classes = xp.arange(n_cls, dtype=index_dtype, device=device(scores))
        picked = xp.sum(xp.where(idx == classes, scores, 0.0), axis=-1, keepdims=True)
    m, log_s, _ = _shifted_logsumexp(xp, scores, (scores.ndim - 1,))
    nll = xp.squeeze(log_s - (picked - m), axis=-1)
    if keep is not None:
        nll = xp.where(keep, nll, 0.0)
    return _Tokens(xp, nll, keep, concrete)


def _mean(fn: str, tok: _Tokens) -> Array:
    """The mean of ``tok.nll`` over kept tokens; an error when there are none."""
    xp = tok.xp
    count = tok.count()
    if isinstance(count, int):
        if count == 0:
            raise ValueError(
                f"{fn}: there are no tokens (targets has shape {tuple(tok.nll.shape)})"
            )
        return xp.sum(tok.nll) / count
    if tok.concrete and int(count) == 0:
        raise ValueError(
            f"{fn}: every token is dropped by mask/ignore_index, so the mean over kept "
            f"tokens is undefined (0 kept of {math.prod(tok.nll.shape)})"
        )
    return xp.sum(tok.nll) / xp.astype(count, tok.nll.dtype)


def _sequence_mean(fn: str, tok: _Tokens) -> Array:
    """The mean over sequences (last axis) with a kept token of each one's mean ``nll``."""
    xp = tok.xp
    nll = tok.nll
    if nll.ndim == 0:
        raise ValueError(
            f"{fn}: per_sequence=True needs targets of shape (..., T) with a sequence axis "
            f"last, got ()"
        )
    sums = xp.sum(nll, axis=-1)
    if tok.keep is None:
        if math.prod(nll.shape) == 0:
            raise ValueError(f"{fn}: there are no tokens (targets has shape {tuple(nll.shape)})")
        return xp.mean(sums) / nll.shape[-1]
    counts = xp.sum(xp.astype(tok.keep, nll.dtype), axis=-1)
    has = counts > 0
    n_seq = xp.count_nonzero(has)
    if tok.concrete and int(n_seq) == 0:
        raise ValueError(
            f"{fn}: every sequence has all its tokens dropped by mask/ignore_index, so the "
            f"mean over sequences is undefined (0 of {math.prod(has.shape)} sequences kept)"
        )
    means = sums / xp.where(has, counts, 1.0)  # 0 for an empty sequence
    return xp.sum(means) / xp.astype(n_seq, nll.dtype)


# ------------------------------------------------------------------------ public metrics


def cross_entropy(
    scores: Array,
    targets: Array,
    *,
    mask: Array | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> Array:
    r"""Cross-entropy (negative log-likelihood) of integer targets under scores.

    .. math::
        \ell_i = -\log \operatorname{softmax}(s_i)_{w_i}
               = \operatorname{logsumexp}(s_i) - s_{i, w_i}, \qquad
        \text{mean} = \frac{1}{N} \sum_{i \text{ kept}} \ell_i

    ``N`` is the number of kept tokens: those with ``mask`` true (or 1) and a target other
    than ``ignore_index``.  The same value as :func:`torch.nn.functional.cross_entropy`
    with ``ignore_index`` (and ``optax.softmax_cross_entropy_with_integer_labels``,
    averaged), in the natural log.

    Parameters
    ----------
    scores : array, shape ``(..., V)``, real floating
        Logits or log-probabilities over ``V`` classes at each position (not
        probabilities: see the module notes).
    targets : array, shape ``scores.shape[:-1]``, integer
        The observed class of each position, in ``[0, V)`` unless the position is dropped.
    mask : array, shape ``scores.shape[:-1]``, bool or 0/1 integer, optional
        ``False``/0 drops a position (padding).
    ignore_index : int, optional
        Target value that drops its position (as in PyTorch; ``-100`` is common).  It may
        also be a real class id, which then is never scored.
    reduction : {"mean", "sum", "none"}, default "mean"
        ``"mean"``: the mean over kept tokens (per token, not per sequence);
        ``"sum"``: the sum over kept tokens (0 when none is kept);
        ``"none"``: every ``ℓ_i``, shape ``scores.shape[:-1]``, 0 at dropped positions.

    Returns
    -------
    array
        0-d for ``"mean"`` and ``"sum"`` (a NumPy scalar for NumPy inputs), else
        ``scores.shape[:-1]``; the library, dtype and device of ``scores``.

    Raises
    ------
    TypeError
        If an argument is not an array, the arrays come from different libraries,
        ``scores`` is not real floating, ``targets`` is not integer, ``mask`` is neither
        bool nor integer, or ``ignore_index`` is not an int.
    ValueError
        On a shape mismatch, ``V == 0``, an unknown ``reduction``, and, when the values
        are concrete (not JAX tracers inside ``jit``): a kept target outside ``[0, V)``,
        an integer mask holding other values than 0 and 1, and, for ``"mean"``, no kept
        token at all.  Under ``jit`` these are not checked: out-of-range targets give
        unspecified values and an empty mean gives NaN.

    See Also
    --------
    log_perplexity, perplexity

    Examples
    --------
    >>> scores = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    >>> targets = np.array([0, 1])
    >>> polyrnn.metrics.cross_entropy(scores, targets, reduction="none").round(6)
    array([0.693147, 0.223144])
    >>> round(float(polyrnn.metrics.cross_entropy(scores, targets)), 6)
    0.458145
    >>> round(float(polyrnn.metrics.cross_entropy(scores, np.array([0, -100]),
    ...                                            ignore_index=-100)), 6)
    0.693147
    """
    fn = "cross_entropy"
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    tok = _token_nll(fn, scores, targets, mask, ignore_index)
    if reduction == "none":
        return tok.nll
    if reduction == "sum":
        return tok.xp.sum(tok.nll)
    return _mean(fn, tok)


def _log_perplexity(
    fn: str,
    scores: Array,
    targets: Array,
    *,
    mask: Array | None,
    ignore_index: Any,
    per_sequence: Any,
) -> tuple[Namespace, Array]:
    tok = _token_nll(fn, scores, targets, mask, ignore_index)
    return tok.xp, _sequence_mean(fn, tok) if per_sequence else _mean(fn, tok)


def log_perplexity(
    scores: Array,
    targets: Array,
    *,
    mask: Array | None = None,
    ignore_index: int | None = None,
    per_sequence: bool = False,
) -> Array:
    r"""Logarithm of the perplexity: the mean negative log-likelihood per token.

    .. math::
        \log \mathrm{PP}(W) = -\frac{1}{N} \sum_{i=1}^{N} \log P(w_i \mid w_{<i})

    over the ``N`` kept tokens (the ``"mean"`` of :func:`cross_entropy`; in nats).

    With ``per_sequence=True`` the last axis of ``targets`` is the sequence axis: each
    sequence ``b`` gets its own mean over its ``N_b`` kept tokens, and the result is the
    plain mean of those over the ``B'`` sequences that have at least one kept token,

    .. math::
        \frac{1}{B'} \sum_{b:\,N_b > 0} \Bigl(-\frac{1}{N_b}
        \sum_{i \text{ kept in } b} \log P(w_{b,i} \mid w_{b,<i})\Bigr),

    so every sequence weighs the same whatever its length.  A sequence with no kept token
    has no perplexity and is left out (it is neither a 0 nor an error); if that leaves no
    sequence, it is an error.

    Parameters
    ----------
    scores : array, shape ``(..., V)``, real floating
        Logits or log-probabilities (see :func:`cross_entropy`).
    targets : array, shape ``scores.shape[:-1]``, integer
        Class ids; with ``per_sequence``, shape ``(..., T)`` with the sequence axis last.
    mask : array, shape ``scores.shape[:-1]``, bool or 0/1 integer, optional
        ``False``/0 drops a position.
    ignore_index : int, optional
        Target value that drops its position.
    per_sequence : bool, default False
        Average within each sequence first, then over sequences (see above), instead of
        over all tokens at once.

    Returns
    -------
    array, 0-d
        The library, dtype and device of ``scores`` (a NumPy scalar for NumPy inputs);
        ``inf`` where the perplexity exceeds the dtype's largest number (log-perplexity
        above about 88.7 in float32, 709.8 in float64), on every library alike and
        without NumPy's overflow warning.

    Raises
    ------
    TypeError, ValueError
        As :func:`cross_entropy`; also ``ValueError`` when no token (or, with
        ``per_sequence``, no sequence) is kept, and when ``per_sequence`` is asked of a
        0-d ``targets``.

    Examples
    --------
    >>> scores = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    >>> round(float(polyrnn.metrics.log_perplexity(scores, np.array([0, 1]))), 6)
    0.458145
    """
    _validate.flags("log_perplexity", per_sequence=per_sequence)
    return _log_perplexity(
        "log_perplexity",
        scores,
        targets,
        mask=mask,
        ignore_index=ignore_index,
        per_sequence=per_sequence,
    )[1]


def perplexity(
    scores: Array,
    targets: Array,
    *,
    mask: Array | None = None,
    ignore_index: int | None = None,
    per_sequence: bool = False,
) -> Array:
    r"""Perplexity of a language model on target tokens: ``exp(log_perplexity(...))``.

    .. math::
        \mathrm{PP}(W) = \Bigl(\prod_{i=1}^{N} \frac{1}{P(w_i \mid w_{<i})}\Bigr)^{1/N}
                       = \exp\Bigl(-\frac{1}{N} \sum_{i=1}^{N} \log P(w_i \mid w_{<i})\Bigr)

    computed in the log form, which cannot underflow.  It is at least 1, equal to 1 only
    when every kept target has probability 1, and equal to ``V`` for a uniform model over
    ``V`` classes.  This is :class:`torchmetrics.text.Perplexity` (corpus-level: one mean
    over every kept token of the batch).

    With ``per_sequence=True`` it is ``exp`` of the mean of per-sequence
    log-perplexities (see :func:`log_perplexity`), i.e. the *geometric* mean of the
    per-sequence perplexities -- not their arithmetic mean (the ``mean_perplexity`` of
    Hugging Face ``evaluate``).

    Parameters
    ----------
    scores : array, shape ``(..., V)``, real floating
        Logits or log-probabilities (see :func:`cross_entropy`).
    targets : array, shape ``scores.shape[:-1]``, integer
        Class ids; with ``per_sequence``, shape ``(..., T)`` with the sequence axis last.
    mask : array, shape ``scores.shape[:-1]``, bool or 0/1 integer, optional
        ``False``/0 drops a position.
    ignore_index : int, optional
        Target value that drops its position.
    per_sequence : bool, default False
        Average the log-likelihood within each sequence first, then over sequences.

    Returns
    -------
    array, 0-d
        The library, dtype and device of ``scores`` (a NumPy scalar for NumPy inputs).

    Raises
    ------
    TypeError, ValueError
        As :func:`log_perplexity`.

    Examples
    --------
    Two tokens predicted with probabilities 1/2 and 4/5: ``(2 * 5/4) ** (1/2)``.

    >>> scores = np.log(np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]))
    >>> round(float(polyrnn.metrics.perplexity(scores, np.array([0, 1]))), 6)
    1.581139

    A uniform model over ``V = 10`` classes has perplexity 10; logits need not be
    normalised.

    >>> round(float(polyrnn.metrics.perplexity(np.full((2, 5, 10), 3.0),
    ...                                        np.zeros((2, 5), dtype=int))), 12)
    10.0

    Padding is dropped with a mask (or ``ignore_index``): the kept targets have
    probabilities 1/2, 4/5 (first sequence) and 4/5 (second), so the perplexity is
    ``(2 * 5/4 * 5/4) ** (1/3)``, and per sequence ``exp((log(2 * 5/4) / 2 + log(5/4)) / 2)``.

    >>> targets = np.array([[0, 1], [2, 0]])
    >>> mask = np.array([[True, True], [True, False]])
    >>> scores = np.log(np.array([[[0.5, 0.4, 0.1], [0.1, 0.8, 0.1]],
    ...                           [[0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]]))
    >>> round(float(polyrnn.metrics.perplexity(scores, targets, mask=mask)), 6)
    1.462009
    >>> round(float(polyrnn.metrics.perplexity(scores, targets, mask=mask,
    ...                                        per_sequence=True)), 6)
    1.405853
    """
    _validate.flags("perplexity", per_sequence=per_sequence)
    xp, value = _log_perplexity(
        "perplexity",
        scores,
        targets,
        mask=mask,
        ignore_index=ignore_index,
        per_sequence=per_sequence,
    )
    # exp overflows to inf past log(max); NumPy would also warn (an error where warnings
    # are errors), so that part never reaches exp.
    too_big = value > math.log(float(xp.finfo(value.dtype).max))
    return xp.where(too_big, xp.asarray(math.inf, dtype=value.dtype, device=device(value)),
                    xp.exp(xp.where(too_big, xp.zeros_like(value), value)))  # fmt: skip
