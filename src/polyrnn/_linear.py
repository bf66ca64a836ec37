r"""Linear recurrences ``h_t = a_t ⊙ h_{t-1} + b_t``, written once against the Array API.

These are the reference implementations every backend falls back to and every
specialisation is tested against.  Inputs arrive validated and time-major: coefficients
``a, b (T, ..., H)``, state ``h0 (..., H)``.

Two algorithms give the same numbers (to rounding):

* **sequential** -- the recurrence step by step, through the adapter's
  :meth:`~polyrnn.backends.Adapter.scan` (a Python loop here, :func:`jax.lax.scan` on JAX).
* **parallel** -- an associative scan of the pairs ``(a_t, b_t)`` under

  .. math:: (a, b) \bullet (a', b') = (a' a,\; a' b + b'),

  the composition of the affine maps ``h -> a h + b`` and ``h -> a' h + b'``.  The scan
  is the odd-even recursion of :func:`jax.lax.associative_scan` (Blelloch 1990): combine
  neighbouring pairs, scan the half-length sequence recursively, then fill in the even
  positions; ``2 log2 T`` vectorised levels, ``O(T)`` work, no in-place writes (only
  slicing, ``stack`` and ``concat``), so it runs on NumPy, JAX, PyTorch, CuPy and
  array-api-strict alike.  ``h0`` is folded into the first processed ``b``.

A linear cell (minGRU, minLSTM: Feng et al. 2024, "Were RNNs All We Needed?") is a linear
recurrence whose coefficients depend on the input only: one matrix product projects all
steps, the cell's linear form gives ``a`` and ``b`` for all steps at once, and one linear
scan finishes the job (:func:`run`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _tree
from ._cell import Cell
from ._compat import Array, Namespace, device
from ._recurrence import initial, project, step_mask

if TYPE_CHECKING:
    from .backends import Adapter

METHODS = ("auto", "sequential", "parallel")
"""The values of the ``method`` option of the linear scans."""


# --- the associative scan ---------------------------------------------------------------------


def _take(a: Array, axis: int, index: slice) -> Array:
    """``a[..., index, ...]`` with ``index`` on ``axis``."""
    return a[(slice(None),) * axis + (index, ...)]


def _interleave(xp: Namespace, even: Array, odd: Array, axis: int) -> Array:
    """``even[0], odd[0], even[1], odd[1], ...`` along ``axis``; ``even`` may be one longer."""
    m = odd.shape[axis]
    pairs = xp.stack([_take(even, axis, slice(0, m)), odd], axis=axis + 1)
    shape = (*odd.shape[:axis], 2 * m, *odd.shape[axis + 1 :])
    out = xp.reshape(pairs, shape)
    if even.shape[axis] > m:
        out = xp.concat([out, _take(even, axis, slice(m, None))], axis=axis)
    return out


def associative_scan(
    xp: Namespace,
    fn: Callable[[Any, Any], Any],
    elems: Any,
    *,
    reverse: bool = False,
    axis: int = 0,
) -> Any:
    """Inclusive scan of the pytree ``elems`` along ``axis`` under the associative ``fn``.

    ``jax.lax.associative_scan`` semantics: ``out[k] = fn(...fn(fn(e[0], e[1]), e[2])..., e[k])``
    (with ``reverse``, the same from the end: ``out[k]`` combines ``e[T-1], ..., e[k]`` in
    that order).  ``axis`` is non-negative and valid for every leaf; the leaves share
    their length along it.
    """
    leaves, rebuild = _tree.flatten(elems)

    def combine(x: list[Array], y: list[Array]) -> list[Array]:
        return _tree.flatten(fn(rebuild(x), rebuild(y)))[0]

    def scan(e: list[Array]) -> list[Array]:
        n = e[0].shape[axis]
        if n < 2:
            return e
        reduced = combine(
            [_take(x, axis, slice(0, n - 1, 2)) for x in e],
            [_take(x, axis, slice(1, None, 2)) for x in e],
        )
        odd = scan(reduced)  # odd[k] = out[2k + 1]
        rest = [_take(x, axis, slice(2, None, 2)) for x in e]  # e[2], e[4], ...
        if n % 2 == 0:
            odd_head = [_take(x, axis, slice(0, odd[0].shape[axis] - 1)) for x in odd]
            even = combine(odd_head, rest)
        else:
            even = combine(odd, rest)
        even = [
            xp.concat([_take(x, axis, slice(0, 1)), v], axis=axis)
            for x, v in zip(e, even, strict=True)
        ]
        return [_interleave(xp, v, o, axis) for v, o in zip(even, odd, strict=True)]

    if reverse:
        leaves = [xp.flip(x, axis=axis) for x in leaves]
    out = scan(leaves)
    if reverse:
        out = [xp.flip(x, axis=axis) for x in out]
    return rebuild(out)


# --- the linear recurrence ----------------------------------------------------------------------


def affine_compose(first: tuple[Array, Array], second: tuple[Array, Array]) -> tuple[Array, Array]:
    """``(a, b) • (a', b') = (a' a, a' b + b')``: ``h -> a h + b`` followed by ``h -> a' h + b'``."""
    a1, b1 = first
    a2, b2 = second
    return a2 * a1, a2 * b1 + b2


def sequential(
    adapter: Adapter, a: Array, b: Array, h0: Array, *, reverse: bool
) -> tuple[Array, Array]:
    """The recurrence step by step through :meth:`Adapter.scan`; ``T >= 1``."""

    def step(h: Array, ab: tuple[Array, Array]) -> tuple[Array, Array]:
        h = ab[0] * h + ab[1]
        return h, h

    h_last, hs = adapter.scan(step, h0, (a, b), reverse=reverse)
    return hs, h_last


def parallel(
    adapter: Adapter, a: Array, b: Array, h0: Array, *, reverse: bool
) -> tuple[Array, Array]:
    """The recurrence as an associative scan of ``(a_t, b_t)``; ``T >= 1``."""
    xp = adapter.xp
    # Fold h0 into the first processed step: h = a h0 + b there.
    if reverse:
        b = xp.concat([b[:-1, ...], a[-1:, ...] * h0 + b[-1:, ...]], axis=0)
    else:
        b = xp.concat([a[:1, ...] * h0 + b[:1, ...], b[1:, ...]], axis=0)
    _, hs = adapter.associative_scan(affine_compose, (a, b), reverse=reverse, axis=0)
    return hs, (hs[0, ...] if reverse else hs[-1, ...])


def linear(
    adapter: Adapter, a: Array, b: Array, h0: Array, *, reverse: bool, method: str
) -> tuple[Array, Array]:
    """``(hs, h_last)`` of ``h_t = a_t h_{t-1} + b_t`` by ``method`` ("sequential" or "parallel")."""
    if a.shape[0] == 0:
        return adapter.xp.zeros_like(b), h0
    run = parallel if method == "parallel" else sequential
    return run(adapter, a, b, h0, reverse=reverse)


# --- linear cells (minGRU, minLSTM) -------------------------------------------------------------


def mask_coefficients(xp: Namespace, a: Array, b: Array, mask: Array | None) -> tuple[Array, Array]:
    """Steps outside ``mask`` carry the state: ``a = 1``, ``b = 0`` there."""
    if mask is None:
        return a, b
    return xp.where(mask, a, xp.ones_like(a)), xp.where(mask, b, xp.zeros_like(b))


def run(
    cell: Cell,
    adapter: Adapter,
    xs: Array,
    params: Any,
    state0: tuple[Array | None],
    *,
    lengths: Array | None,
    reverse: bool,
    method: str,
) -> tuple[Array, tuple[Array]]:
    """The scan of a linear cell over time-major ``xs (T, ..., D)``: ``(hs, (h_last,))``.

    One projection, the coefficients of all steps (:meth:`Adapter.coefficients`), one
    linear scan by ``method``.  Masked steps have ``a = 1, b = 0``, so the state is carried
    through them; a reverse scan meets a sequence's padding first (keeping ``h0``) and then
    its valid steps from the last one down, which is how ``polyrnn._recurrence`` reads it
    by flipping.
    """
    xp = adapter.xp
    n_h = params.b_x.shape[-1] // cell.gates
    h0 = initial(xp, xs, n_h, state0[0])
    if xs.shape[0] == 0:
        return xp.zeros((0, *h0.shape), dtype=h0.dtype, device=device(h0)), (h0,)
    a, b = adapter.coefficients(cell, project(xp, xs, params.w_x, cell.bias(xp, params)), n_h)
    mask = step_mask(xp, lengths, xs.shape[0])
    a, b = mask_coefficients(xp, a, b, mask)
    hs, h_last = adapter.linear_scan(a, b, h0, reverse=reverse, method=method)
    if mask is not None:
        hs = xp.where(mask, hs, xp.zeros_like(hs))
    return hs, (h_last,)


# --- reverse mode -------------------------------------------------------------------------------


def linear_backward(
    adapter: Adapter,
    a: Array,
    hs: Array,
    h0: Array,
    d_hs: Array,
    d_h_last: Array,
    *,
    reverse: bool,
    method: str,
) -> tuple[Array, Array, Array]:
    r"""Cotangents ``(d_a, d_b, d_h0)`` of :func:`linear` at ``a`` (time-major), its output
    ``hs`` and ``h0``, from the cotangents of ``hs`` and ``h_last``.

    The cotangent ``g_t`` of the state ``h_t`` obeys a linear recurrence run the other way:

    .. math::
        g_t = \bar h_t + a_{t+1} g_{t+1}, \qquad g_{T-1} = \bar h_{T-1} + \bar h_{last},

    and then ``d_b_t = g_t``, ``d_a_t = g_t h_{t-1}`` (``h_{-1} = h_0``) and
    ``d_h0 = a_0 g_0``.  (With ``reverse`` the roles of ``t - 1`` and ``t + 1`` swap.)
    So the backward pass is one more linear scan, by the same ``method``.
    """
    xp = adapter.xp
    if a.shape[0] == 0:
        return xp.zeros_like(a), xp.zeros_like(a), d_h_last
    one = xp.ones_like(a[:1, ...])
    if reverse:  # processed from T-1 down: g_t = dh_t + a_{t-1} g_{t-1}, h_prev_t = h_{t+1}
        a_next = xp.concat([one, a[:-1, ...]], axis=0)
        h_prev = xp.concat([hs[1:, ...], h0[None, ...]], axis=0)
        first = -1
    else:
        a_next = xp.concat([a[1:, ...], one], axis=0)
        h_prev = xp.concat([h0[None, ...], hs[:-1, ...]], axis=0)
        first = 0
    g, _ = adapter.linear_scan(a_next, d_hs, d_h_last, reverse=not reverse, method=method)
    return g * h_prev, g, a[first, ...] * g[first, ...]
