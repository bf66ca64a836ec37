"""Hypothesis strategies shared by the test modules: shapes, dtypes and inputs, as NumPy.

Every strategy here draws plain NumPy data -- ``float64`` for real numbers, ``int64``
for ids and lengths, ``bool`` for masks -- and never an array of a backend.  A test
converts what it drew once per library with ``backend.asarray(a, dtype)`` (see
``array_libs.Backend``) and computes its reference from the same NumPy data, rounded to
the dtype under test where that matters (:func:`rounded`).

Sizes stay small (a few positions, a handful of classes or units) and shapes come from
short menus where a test may run on JAX, which compiles each operation once per shape: a
property test runs 100 examples on each of several backends, and these are about
correctness, not speed.

Sections
--------
- Shapes and dtypes: :func:`float_dtypes`, :func:`batch_shapes`, :func:`axes`.
- Real and boolean arrays: :func:`real_arrays`, :func:`bool_arrays`, :func:`int_arrays`.
- Language-model metrics: :class:`LMBatch`, :func:`lm_batches`, :func:`as_backend`.
- (Add new sections below, e.g. recurrent-network parameters and inputs.)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, TypeAlias

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

Shape: TypeAlias = "tuple[int, ...] | st.SearchStrategy[tuple[int, ...]]"

__all__ = [
    "FLOAT_DTYPES",
    "LM_SHAPES",
    "LM_VOCABS",
    "LMBatch",
    "as_backend",
    "axes",
    "batch_shapes",
    "bool_arrays",
    "float_dtypes",
    "int_arrays",
    "lm_batches",
    "real_arrays",
    "rounded",
]

# ---------------------------------------------------------------------- shapes and dtypes

FLOAT_DTYPES = ("float32", "float64")
"""The real floating dtypes every backend supports, by name (``backend.dtype(name)``)."""


def float_dtypes() -> st.SearchStrategy[str]:
    """A floating dtype name: ``"float32"`` or ``"float64"``."""
    return st.sampled_from(FLOAT_DTYPES)


def rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    """``a`` rounded to ``dtype`` and back to ``float64``: the exact values a backend sees,
    so that a float64 reference computed from it isolates the backend's own rounding."""
    return np.asarray(a).astype(dtype).astype(np.float64)


def batch_shapes(
    *, min_dims: int = 0, max_dims: int = 2, min_side: int = 1, max_side: int = 4
) -> st.SearchStrategy[tuple[int, ...]]:
    """A small shape, e.g. the leading batch dimensions of an input."""
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


@st.composite
def axes(draw: st.DrawFn, ndim: int, *, allow_tuple: bool = True) -> int | tuple[int, ...]:
    """An axis of an ``ndim``-dimensional array (negative half the time), or, when
    ``allow_tuple``, a non-empty tuple of distinct axes."""
    if ndim < 1:
        raise ValueError("axes needs ndim >= 1")
    if allow_tuple and draw(st.booleans()):
        chosen = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
        return tuple(a - ndim if draw(st.booleans()) else a for a in chosen)
    a = draw(st.integers(0, ndim - 1))
    return a - ndim if draw(st.booleans()) else a


# ------------------------------------------------------------------ real and boolean arrays
#
# Array *values* come from a NumPy generator seeded by Hypothesis, not element by element:
# drawing a few hundred floats one at a time costs ~10 ms an example, which, times 100
# examples, tests and backends, is most of a test run.  Hypothesis still chooses the
# shapes, the seed and the *kind* of values (spread out, tied, constant, sparse), which is
# where the edge cases of array code live; a failure replays from the printed seed.


_SEEDS = st.integers(0, 2**32 - 1)
_VALUE_KINDS = st.integers(0, 9)  # 0: constant, 1-2: integers (ties), else uniform
_DENSITIES = st.sampled_from((0.0, 0.1, 0.5, 0.9, 1.0))


def _rng(draw: st.DrawFn) -> np.random.Generator:
    return np.random.default_rng(draw(_SEEDS))


def _shape(draw: st.DrawFn, shape: Shape) -> tuple[int, ...]:
    return tuple(draw(shape)) if isinstance(shape, st.SearchStrategy) else tuple(shape)


def _reals(
    rng: np.random.Generator, kind: int, shape: tuple[int, ...], low: float, high: float
) -> np.ndarray:
    if kind == 0:
        return np.full(shape, rng.uniform(low, high))
    if kind <= 2:
        ints = rng.integers(math.ceil(low), math.floor(high), size=shape, endpoint=True)
        return ints.astype(np.float64)
    return rng.uniform(low, high, size=shape)


@st.composite
def real_arrays(
    draw: st.DrawFn, shape: Shape, *, low: float = -8.0, high: float = 8.0
) -> np.ndarray:
    """``float64`` arrays of ``shape`` (or drawn from a strategy of shapes) with finite
    values in ``[low, high]``: uniform most of the time, sometimes integers (many ties, so
    several entries share the maximum) and sometimes one constant.

    Keep ``|low|, |high|`` moderate: the float32 comparisons use relative tolerances
    near 1e-5, which assume values of order one to ten.
    """
    shape = _shape(draw, shape)
    return _reals(_rng(draw), draw(_VALUE_KINDS), shape, low, high)


@st.composite
def bool_arrays(draw: st.DrawFn, shape: Shape) -> np.ndarray:
    """``bool`` arrays of ``shape`` whose fraction of ``True`` is drawn from 0 to 1
    (all ``False`` and all ``True`` included)."""
    shape = _shape(draw, shape)
    density = draw(_DENSITIES)
    return _rng(draw).random(size=shape) < density


@st.composite
def int_arrays(draw: st.DrawFn, shape: Shape, low: int, high: int) -> np.ndarray:
    """``int64`` arrays of ``shape`` with values in ``[low, high]`` (both included)."""
    return _rng(draw).integers(low, high, size=_shape(draw, shape), endpoint=True)


# ------------------------------------------------------------------ language-model metrics


class LMBatch(NamedTuple):
    """Inputs of the language-model metrics, as NumPy.

    ``scores (..., V)`` float64 logits; ``targets (...)`` int64 class ids in ``[0, V)``;
    ``mask (...)`` bool (``True`` keeps a position) or ``None`` (all kept).
    """

    scores: np.ndarray
    targets: np.ndarray
    mask: np.ndarray | None

    @property
    def vocab(self) -> int:
        return int(self.scores.shape[-1])

    @property
    def keep(self) -> np.ndarray:
        """The mask, or all ``True`` when there is none."""
        if self.mask is None:
            return np.ones(self.targets.shape, dtype=bool)
        return self.mask

    def tokens(self) -> LMBatch:
        """The same tokens flattened to one axis: ``scores (N, V)``, ``targets (N,)``."""
        return LMBatch(
            self.scores.reshape(-1, self.vocab),
            self.targets.reshape(-1),
            None if self.mask is None else self.mask.reshape(-1),
        )


LM_SHAPES = ((6,), (2, 3), (1, 2, 3), (3, 1))
"""The shapes of ``targets`` that :func:`lm_batches` draws from by default.

A short menu rather than any small shape: eager JAX compiles every operation once per
shape and dtype (0.02 to 0.2 s a compile on 2 busy cores), so a test on JAX runs quickly
only when its examples share a few shapes.  These cover one to three axes, length-1 axes
and sequence axes of length 1, 3 and 6, and flatten to only two token counts (6 and 3).
"""
LM_VOCABS = (1, 5)
"""The numbers of classes ``V`` that :func:`lm_batches` draws from by default."""

_LM_SHAPES = st.sampled_from(LM_SHAPES)
_LM_VOCAB = st.sampled_from(LM_VOCABS)


@st.composite
def lm_batches(
    draw: st.DrawFn,
    *,
    shape: Shape | None = None,
    vocab: st.SearchStrategy[int] | int | None = None,
    low: float = -8.0,
    high: float = 8.0,
    mask: bool | None = None,
    min_kept: int = 1,
) -> LMBatch:
    """A :class:`LMBatch` of logits, targets and (maybe) a mask.

    Parameters
    ----------
    shape
        The shape of ``targets`` (the last axis is the sequence axis), or a strategy for
        it; default one of :data:`LM_SHAPES`.
    vocab
        The number of classes ``V``, or a strategy for it; default one of
        :data:`LM_VOCABS`.
    low, high
        Range of the logits.
    mask
        ``True``: always draw a mask; ``False``: never; ``None``: either.
    min_kept
        At least ``min(min_kept, size)`` positions are kept by the mask.
    """
    shape = _shape(draw, _LM_SHAPES if shape is None else shape)
    if vocab is None:
        vocab = _LM_VOCAB
    n_cls = draw(vocab) if isinstance(vocab, st.SearchStrategy) else vocab
    kind = draw(_VALUE_KINDS)
    with_mask = draw(st.booleans()) if mask is None else mask
    density = draw(_DENSITIES) if with_mask else 1.0
    rng = _rng(draw)
    scores = _reals(rng, kind, (*shape, n_cls), low, high)
    targets = rng.integers(0, n_cls, size=shape)
    keep = None
    if with_mask:
        flat = rng.random(size=math.prod(shape)) < density
        need = min(min_kept, flat.size) - int(flat.sum())
        if need > 0:
            flat[rng.choice(np.flatnonzero(~flat), size=need, replace=False)] = True
        keep = flat.reshape(shape)
    return LMBatch(scores, targets, keep)


def as_backend(backend: Any, batch: LMBatch, dtype: str) -> tuple[Any, Any, Any]:
    """``(scores, targets, mask)`` of ``batch`` as arrays of ``backend``, scores in ``dtype``."""
    mask = None if batch.mask is None else backend.asarray(batch.mask)
    return backend.asarray(batch.scores, dtype), backend.asarray(batch.targets), mask
