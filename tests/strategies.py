"""Hypothesis strategies shared by the test modules: shapes, dtypes and inputs, as NumPy.

Every strategy here draws plain NumPy data -- ``float64`` for real numbers, ``int64``
for ids and lengths, ``bool`` for masks -- and never an array of a backend.  A test
converts what it drew once per library with ``backend.asarray(a, dtype)`` (see
``array_libs.Backend``) and computes its reference from the same NumPy data, rounded to
the dtype under test where that matters (:func:`rounded`).

Sizes stay small (a few positions, a handful of classes or units): a property test runs
100 examples on each of several backends, and these are about correctness, not speed.

Sections
--------
- Shapes and dtypes: :func:`float_dtypes`, :func:`batch_shapes`, :func:`axes`.
- Real arrays: :func:`real_arrays`.
- Language-model metrics: :class:`LMBatch`, :func:`lm_batches`, :func:`as_backend`.
- (Add new sections below, e.g. recurrent-network parameters and inputs.)
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

__all__ = [
    "FLOAT_DTYPES",
    "LMBatch",
    "as_backend",
    "axes",
    "batch_shapes",
    "float_dtypes",
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


# ---------------------------------------------------------------------------- real arrays


def real_arrays(
    shape: tuple[int, ...] | st.SearchStrategy[tuple[int, ...]],
    *,
    low: float = -8.0,
    high: float = 8.0,
) -> st.SearchStrategy[np.ndarray]:
    """``float64`` arrays of ``shape`` with finite values in ``[low, high]``.

    Keep ``|low|, |high|`` moderate: the float32 comparisons use relative tolerances
    near 1e-5, which assume values of order one to ten.
    """
    return hnp.arrays(
        np.float64,
        shape,
        elements=st.floats(low, high, allow_nan=False, allow_infinity=False, width=64),
    )


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


@st.composite
def lm_batches(
    draw: st.DrawFn,
    *,
    shape: st.SearchStrategy[tuple[int, ...]] | tuple[int, ...] | None = None,
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
        it; default 1 to 3 dimensions of 1 to 4.
    vocab
        The number of classes ``V``, or a strategy for it; default 1 to 8.
    low, high
        Range of the logits.
    mask
        ``True``: always draw a mask; ``False``: never; ``None``: either.
    min_kept
        At least ``min(min_kept, size)`` positions are kept by the mask.
    """
    if shape is None:
        shape = batch_shapes(min_dims=1, max_dims=3, max_side=4)
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    if vocab is None:
        vocab = st.integers(1, 8)
    n_cls = draw(vocab) if isinstance(vocab, st.SearchStrategy) else vocab
    scores = draw(real_arrays((*shape, n_cls), low=low, high=high))
    targets = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, n_cls - 1)))
    with_mask = draw(st.booleans()) if mask is None else mask
    keep = None
    if with_mask:
        flat = draw(hnp.arrays(np.bool_, shape, elements=st.booleans())).reshape(-1).copy()
        need = min(min_kept, flat.size) - int(flat.sum())
        if need > 0:
            chosen = draw(st.permutations(np.flatnonzero(~flat).tolist()))[:need]
            flat[chosen] = True
        keep = flat.reshape(shape)
    return LMBatch(scores, targets, keep)


def as_backend(backend: Any, batch: LMBatch, dtype: str) -> tuple[Any, Any, Any]:
    """``(scores, targets, mask)`` of ``batch`` as arrays of ``backend``, scores in ``dtype``."""
    mask = None if batch.mask is None else backend.asarray(batch.mask)
    return backend.asarray(batch.scores, dtype), backend.asarray(batch.targets), mask
