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
from ._compat import Array, Namespace, device
from .cells import fused_bias, gru_step, lstm_step, rnn_step
from .params import GRUParams, LSTMParams, RNNParams

if TYPE_CHECKING:
    from .backends import Adapter


def flat2d(xp: Namespace, a: Array) -> Array:
    """``a (..., F)`` as ``(N, F)`` with ``N`` the product of the leading sizes.

    Spelled out rather than ``reshape(a, (-1, F))``, which no library can resolve when
    ``a`` is empty: with ``F = 0`` (no input features) or ``N = 0`` (a batch or a
    sequence of length 0) the ``-1`` could stand for any size.
    """
    return xp.reshape(a, (math.prod(a.shape[:-1]), a.shape[-1]))


def project(xp: Namespace, xs: Array, w: Array, b: Array) -> Array:
    """``xs @ w + b`` for all steps at once, as one 2-D matrix product ``(T*B, D) @ (D, G*H)``.

    With ``D = 0`` the product is an empty sum: zeros, so every step sees the bias alone.
    """
    flat = flat2d(xp, xs) @ w + b
    return xp.reshape(flat, (*xs.shape[:-1], w.shape[-1]))


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


def rnn(
    adapter: Adapter,
    xs: Array,
    params: RNNParams,
    h0: Array | None,
    *,
    lengths: Array | None,
    reverse: bool,
    activation: str,
) -> tuple[Array, Array]:
    xp = adapter.xp
    h0 = initial(xp, xs, params.w_h.shape[0], h0)
    gx = project(xp, xs, params.w_x, fused_bias(xp, params))
    w_h = params.w_h

    def step(h: Array, g: Array) -> Array:
        return rnn_step(xp, h, g, w_h, activation, adapter.sigmoid)

    return recurrence(adapter, step, h0, gx, lengths, reverse, lambda h: h)


def gru(
    adapter: Adapter,
    xs: Array,
    params: GRUParams,
    h0: Array | None,
    *,
    lengths: Array | None,
    reverse: bool,
    reset_after: bool,
) -> tuple[Array, Array]:
    xp = adapter.xp
    h0 = initial(xp, xs, params.w_h.shape[0], h0)
    gx = project(xp, xs, params.w_x, fused_bias(xp, params, reset_after))
    w_h, b_hn = params.w_h, params.b_h[2 * h0.shape[-1] :]

    def step(h: Array, g: Array) -> Array:
        return gru_step(xp, h, g, w_h, b_hn, reset_after, adapter.sigmoid)

    return recurrence(adapter, step, h0, gx, lengths, reverse, lambda h: h)


def lstm(
    adapter: Adapter,
    xs: Array,
    params: LSTMParams,
    state0: tuple[Array | None, Array | None],
    *,
    lengths: Array | None,
    reverse: bool,
) -> tuple[Array, tuple[Array, Array]]:
    xp = adapter.xp
    state = tuple(initial(xp, xs, params.w_h.shape[0], s) for s in state0)
    gx = project(xp, xs, params.w_x, fused_bias(xp, params))
    w_h = params.w_h

    def step(carry: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
        return lstm_step(xp, carry, g, w_h, adapter.sigmoid)

    hs, (h, c) = recurrence(adapter, step, state, gx, lengths, reverse, lambda s: s[0])
    return hs, (h, c)
