"""The reference recurrences: hoisted input projection, then a masked loop over time.

These are the Array-API implementations every backend falls back to and every
specialisation is tested against.  Inputs arrive validated and time-major:
``xs (T, ..., D)``, states ``(..., H)`` or ``None`` for zeros (:func:`initial`),
``lengths`` of the batch shape or ``None``; the gates' logistic function is the
adapter's :meth:`~polyrnn.backends.Adapter.sigmoid`.
The loop over time is the adapter's :meth:`~polyrnn.backends.Adapter.scan`, so a backend
with a compiled scan (``jax.lax.scan``) runs this same code without a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _tree
from ._cell import Carry, Cell
from ._compat import Array, Namespace, device

if TYPE_CHECKING:
    from .backends import Adapter


def flat2d(xp: Namespace, a: Array) -> Array:
    """``a (..., F)`` as ``(N, F)`` with ``N`` the product of the leading sizes.

    Spelled out rather than ``reshape(a, (-1, F))``, which no library can resolve when
    ``a`` is empty: with ``F = 0`` (no input features) or ``N = 0`` (a batch or a
    sequence of length 0) the ``-1`` could stand for any size.
    """
    return xp.reshape(a, (math.prod(a.shape[:-1]), a.shape[-1]))


def outer(xp: Namespace, a: Array, b: Array) -> Array:
    """``sum over steps and batch of a^T b``: ``(T, ..., M), (T, ..., N) -> (M, N)``, one GEMM."""
    return flat2d(xp, a).T @ flat2d(xp, b)


def project(xp: Namespace, xs: Array, w: Array, b: Array) -> Array:
    """``xs @ w + b`` for all steps at once, as one 2-D matrix product ``(T*B, D) @ (D, G*H)``.

    With ``D = 0`` the product is an empty sum: zeros, so every step sees the bias alone.
    """
    flat = flat2d(xp, xs) @ w + b
    return xp.reshape(flat, (*xs.shape[:-1], w.shape[-1]))


def move_time(xp: Namespace, a: Array, batch_ndim: int, time_major: bool, inverse: bool) -> Array:
    """Move the time axis between ``(..., T, F)`` and ``(T, ..., F)``."""
    if time_major or batch_ndim == 0:
        return a
    nd = a.ndim
    to_batch_first = (*range(1, nd - 1), 0, nd - 1)  # (T, ..., F) -> (..., T, F)
    to_time_major = (nd - 2, *range(nd - 2), nd - 1)  # (..., T, F) -> (T, ..., F)
    return xp.permute_dims(a, to_batch_first if inverse else to_time_major)


def initial(xp: Namespace, xs: Array, hidden: int, state: Array | None) -> Array:
    """``state``, or where it is ``None`` zeros ``(..., H)`` of the batch shape of time-major
    ``xs``, its dtype and device (built here so that a JIT-compiled scan builds them inside)."""
    if state is not None:
        return state
    return xp.zeros((*xs.shape[1:-1], hidden), dtype=xs.dtype, device=device(xs))


def step_mask(xp: Namespace, lengths: Array | None, steps: int) -> Array | None:
    """``mask[t, ..., 0] = t < lengths[...]``, shape ``(T, ..., 1)``; ``None`` without lengths."""
    if lengths is None:
        return None
    t = xp.arange(steps, device=device(lengths))
    t = xp.reshape(t, (steps, *([1] * lengths.ndim)))
    return xp.expand_dims(t < xp.astype(lengths, t.dtype), axis=-1)


def masked(mask: Array | None) -> dict[str, Array]:
    """The keywords of a record's ``step`` or ``vjp`` for the recurrent-dropout ``mask``:
    none without one, so records that take no mask still run."""
    return {} if mask is None else {"mask": mask}


def recurrence(
    adapter: Adapter,
    step: Callable[[Any, Array], Any],
    carry: Any,
    gx: Array,
    lengths: Array | None,
    reverse: bool,
    output: Callable[[Any], Array],
) -> tuple[Array, Any]:
    """Run ``carry = step(carry, gx[t])`` over ``t``; return ``(stack of output(carry), carry)``.

    With ``lengths``, steps ``t >= lengths`` keep the carry and output zeros.  With
    ``reverse``, each sequence is read backwards from its own last valid step: the
    time axis is flipped, so the padding comes first and holds the initial carry.
    """
    xp = adapter.xp
    if gx.shape[0] == 0:
        h = output(carry)
        return xp.zeros((0, *h.shape), dtype=h.dtype, device=device(h)), carry
    mask = step_mask(xp, lengths, gx.shape[0])
    if reverse:
        gx = xp.flip(gx, axis=0)
        mask = None if mask is None else xp.flip(mask, axis=0)

    if mask is None:

        def plain(c: Any, g: Array) -> tuple[Any, Array]:
            c = step(c, g)
            return c, output(c)

        carry, hs = adapter.scan(plain, carry, gx)
    else:

        def masked(c: Any, inputs: tuple[Array, Array]) -> tuple[Any, Array]:
            g, m = inputs
            new = step(c, g)
            h = output(new)
            kept = _tree.map_(lambda n, o: xp.where(m, n, o), new, c)
            return kept, xp.where(m, h, xp.zeros_like(h))

        carry, hs = adapter.scan(masked, carry, (gx, mask))
    if reverse:
        hs = xp.flip(hs, axis=0)
    return hs, carry


def run(
    cell: Cell,
    adapter: Adapter,
    xs: Array,
    params: Any,
    state0: tuple[Array | None, ...],
    *,
    lengths: Array | None,
    reverse: bool,
    mask: Array | None = None,
    **options: Any,
) -> tuple[Array, Carry]:
    """The reference scan of any :class:`~polyrnn._cell.Cell`: ``(hs, last carry)``.

    One projection ``xs @ w_x + cell.bias`` for all steps, then the cell's step in the
    adapter's loop, with the adapter's logistic function; ``mask`` is the record's
    recurrent-dropout multiplier (``Cell.recurrent_dropout``), passed only when given.
    """
    xp = adapter.xp
    carry = tuple(initial(xp, xs, params.w_h.shape[0], s) for s in state0)
    gx = project(xp, xs, params.w_x, cell.bias(xp, params, **options))
    step = cell.step(xp, params, adapter.sigmoid, **options, **masked(mask))
    return recurrence(adapter, step, carry, gx, lengths, reverse, lambda c: c[0])
