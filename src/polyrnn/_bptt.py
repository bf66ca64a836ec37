"""Backpropagation through time for any cell record: the engines of the VJPs.

:func:`scan_vjp` runs a cell's scan keeping what the backward pass needs and returns
``backward(d_hs, d_last) -> (d_xs, d_params, d_carry0)``: for a recurrent cell the forward
and reverse loops of its record's steps (:func:`_bptt`), for a linear cell its linear form
and one reverse linear scan (:func:`_linear_bptt`).  Both keep the hoisting: the
gradients of ``xs``, ``w_x`` and ``b_x`` are one matrix product or sum over all steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _linear, _prologue, _validate
from ._cell import Back, Carry, Cell, Finish, ResidualStep
from ._compat import Array, Namespace, device
from ._prologue import cotangent
from ._recurrence import flat2d, initial, masked, move_time, outer, project, step_mask


def _where_zero(xp: Namespace, m: Array, a: Array, keep: bool) -> Array:
    """``a`` where ``m`` is ``keep``, zero elsewhere."""
    zero = xp.zeros_like(a)
    return xp.where(m, a, zero) if keep else xp.where(m, zero, a)


def _forward(
    adapter: Any, step: ResidualStep, carry: Carry, gx: Array, mask: Array | None
) -> tuple[Array, Carry, tuple[Array, ...]]:
    """The masked recurrence of :func:`polyrnn._recurrence.recurrence`, in processing order,
    also returning the stacked residuals of each step."""
    xp = adapter.xp

    def body(c: Carry, inputs: Any) -> tuple[Carry, tuple[Array, tuple[Array, ...]]]:
        g, m = (inputs, None) if mask is None else inputs
        new, res = step(c, g)
        h = new[0]
        if m is not None:
            new = tuple(xp.where(m, n, o) for n, o in zip(new, c, strict=True))
            h = _where_zero(xp, m, h, keep=True)
        return new, (h, res)

    last, (hs, res) = adapter.scan(body, carry, gx if mask is None else (gx, mask))
    return hs, last, res


def _backward(
    adapter: Any,
    back: Back,
    d_last: Carry,
    d_hs: Array,
    *,
    res: tuple[Array, ...],
    mask: Array | None,
) -> tuple[Carry, tuple[Array, ...]]:
    """Reverse-mode of :func:`_forward`: a scan from the last processed step to the first."""
    xp = adapter.xp

    def body(d: Carry, inputs: Any) -> tuple[Carry, tuple[Array, ...]]:
        r, dy, m = inputs if mask is not None else (*inputs, None)
        d_new = (d[0] + dy, *d[1:])
        if m is None:
            return back(r, d_new)
        # new = where(m, step(c), c); y = where(m, step(c)[0], 0)
        d_new = tuple(_where_zero(xp, m, a, keep=True) for a in d_new)
        d_prev, grads = back(r, d_new)
        kept = tuple(a + _where_zero(xp, m, b, keep=False) for a, b in zip(d_prev, d, strict=True))
        return kept, grads

    inputs = (res, d_hs) if mask is None else (res, d_hs, mask)
    return adapter.scan(body, d_last, inputs, reverse=True)  # type: ignore[no-any-return]


def _projection_grads(
    xp: Namespace, xs_tm: Array, params: Any, dgx: Array, db_x: Array, others: dict[str, Array]
) -> tuple[Array, Any]:
    """``(d_xs, d_params)`` from the cotangent ``dgx (T, ..., G H)`` of the projection
    ``gx = xs w_x + b``, time-major and in original order: one matrix product each for
    ``d_xs`` and ``d_w_x``; ``others`` holds the gradients of the remaining fields (and of
    ``b_x`` where the cell does not add it to the projection)."""
    d_xs = project(xp, dgx, params.w_x.T, xp.zeros_like(params.w_x[:, 0]))
    return d_xs, type(params)(**{"w_x": outer(xp, xs_tm, dgx), "b_x": db_x, **others})


def _bptt(
    fn: str,
    adapter: Any,
    lay: _validate.ScanLayout,
    xs: Array,
    xs_tm: Array,
    *,
    lengths: Array | None,
    time_major: bool,
    reverse: bool,
    carry0: Carry,
    gx: Array,
    step: ResidualStep,
    back: Back,
    finish: Finish,
    names: tuple[str, ...],
) -> tuple[Array, Carry, Callable[[Any, tuple[Any, ...]], tuple[Array, Any, Carry]]]:
    """Forward pass and the ``backward`` closure shared by the three cells.

    ``gx`` is the hoisted projection in time-major, original order; ``names`` name the
    cotangents of the parts of the final carry in error messages.
    """
    xp = adapter.xp
    params = lay.params
    batch_nd = len(lay.batch)
    steps = lay.steps
    why_h = f"batch shape {lay.batch} of xs, then H={lay.hidden}"

    if steps == 0:
        h = carry0[0]
        hs_tm = xp.zeros((0, *h.shape), dtype=h.dtype, device=device(h))
        hs = move_time(xp, hs_tm, batch_nd, time_major, inverse=True)
        last = carry0
    else:
        mask = step_mask(xp, lengths, steps)
        if reverse:
            gx = xp.flip(gx, axis=0)
            mask = None if mask is None else xp.flip(mask, axis=0)
        hs_tm, last, res = _forward(adapter, step, carry0, gx, mask)
        if reverse:
            hs_tm = xp.flip(hs_tm, axis=0)
        hs = move_time(xp, hs_tm, batch_nd, time_major, inverse=True)
    hs_shape = tuple(hs.shape)
    state_shape = (*lay.batch, lay.hidden)

    def backward(d_hs: Any, d_last: tuple[Any, ...]) -> tuple[Array, Any, Carry]:
        d_hs = cotangent(fn, "d_hs", d_hs, xs=xs, expected=hs_shape, why="the shape of hs")
        d_carry = tuple(
            cotangent(fn, name, a, xs=xs, expected=state_shape, why=why_h)
            for name, a in zip(names, d_last, strict=True)
        )
        if steps == 0:
            zeros = type(params)(*(xp.zeros_like(a) for a in params))
            return xp.zeros_like(xs), zeros, d_carry
        dy = move_time(xp, d_hs, batch_nd, time_major, inverse=False)
        if reverse:
            dy = xp.flip(dy, axis=0)
        d_carry0, grads = _backward(adapter, back, d_carry, dy, res=res, mask=mask)
        dgx = grads[0]  # processing order, (T, ..., G*H)
        db_x = xp.sum(flat2d(xp, dgx), axis=0)
        others = finish(res, grads, db_x)
        if reverse:
            dgx = xp.flip(dgx, axis=0)
        d_xs, d_params = _projection_grads(xp, xs_tm, params, dgx, db_x, others)
        return move_time(xp, d_xs, batch_nd, time_major, inverse=True), d_params, d_carry0

    return hs, last, backward


def scan_vjp(
    fn: str,
    cell: Cell,
    xs: Any,
    params: Any,
    state0: Any,
    time_major: bool,
    reverse: bool,
    lengths: Any,
    options: dict[str, Any],
    mask: Any = None,
) -> tuple[Array, Carry, Callable[[Any, tuple[Any, ...]], tuple[Array, Any, Carry]]]:
    """The forward pass and the ``backward(d_hs, d_last)`` closure of any cell's scan;
    ``mask`` is the recurrent-dropout multiplier (``polyrnn._prologue.recurrent_mask``)."""
    states = _prologue.state_names(fn, cell, state0)
    adapter, lay, lengths, options = _prologue.check(
        fn, xs, params, cell, states, time_major, lengths, options
    )
    mask = _prologue.recurrent_mask(fn, cell, mask, xs, lay)
    xp, p = lay.xp, lay.params
    xs_tm = move_time(xp, xs, len(lay.batch), time_major, inverse=False)
    carry0 = tuple(initial(xp, xs_tm, lay.hidden, s) for s in states.values())
    own = {name: options[name] for name in cell.options}  # without a linear cell's method
    gx = project(xp, xs_tm, p.w_x, cell.bias(xp, p, **own))
    names = tuple(f"d_{name}_last" for name in cell.states)
    if cell.linear is not None:
        return _linear_bptt(
            fn, cell, adapter, lay, xs, xs_tm, gx, carry0[0], lengths=lengths,
            time_major=bool(time_major), reverse=bool(reverse), method=options["method"],
        )  # fmt: skip
    assert cell.vjp is not None
    step, back, finish = cell.vjp(xp, p, adapter.sigmoid, **own, **masked(mask))
    return _bptt(
        fn,
        adapter,
        lay,
        xs,
        xs_tm,
        lengths=lengths,
        time_major=bool(time_major),
        reverse=bool(reverse),
        carry0=carry0,
        gx=gx,
        step=step,
        back=back,
        finish=finish,
        names=names,
    )


def _linear_bptt(
    fn: str,
    cell: Cell,
    adapter: Any,
    lay: _validate.ScanLayout,
    xs: Array,
    xs_tm: Array,
    gx: Array,
    h0: Array,
    *,
    lengths: Array | None,
    time_major: bool,
    reverse: bool,
    method: str,
) -> tuple[Array, Carry, Callable[[Any, tuple[Any, ...]], tuple[Array, Any, Carry]]]:
    """:func:`_bptt` of a linear cell: the coefficients of all steps, one linear scan
    forward, and backwards the reverse linear scan of :func:`polyrnn._linear.linear_backward`,
    the coefficients' cotangents mapped to ``gx``'s for all steps at once."""
    xp, p, n_h, nb = lay.xp, lay.params, lay.hidden, len(lay.batch)
    assert cell.linear is not None
    a, b, back = cell.linear(xp, gx, n_h, (adapter.sigmoid, adapter.softplus))
    mask = step_mask(xp, lengths, lay.steps) if lay.steps else None
    a_m, b_m = _linear.mask_coefficients(xp, a, b, mask)
    hs_raw, h_last = adapter.linear_scan(a_m, b_m, h0, reverse=reverse, method=method)
    hs_tm = hs_raw if mask is None else xp.where(mask, hs_raw, xp.zeros_like(hs_raw))
    hs = move_time(xp, hs_tm, nb, time_major, inverse=True)
    hs_shape, state = tuple(hs.shape), (*lay.batch, n_h)
    why = f"batch shape {lay.batch} of xs, then H={n_h}"

    def backward(d_hs: Any, d_last: tuple[Any, ...]) -> tuple[Array, Any, Carry]:
        d_hs = cotangent(fn, "d_hs", d_hs, xs=xs, expected=hs_shape, why="the shape of hs")
        d_h_last = cotangent(fn, "d_h_last", d_last[0], xs=xs, expected=state, why=why)
        dy = move_time(xp, d_hs, nb, time_major, inverse=False)
        if mask is not None:
            dy = xp.where(mask, dy, xp.zeros_like(dy))
        d_a, d_b, d_h0 = _linear.linear_backward(
            adapter, a_m, hs_raw, h0, dy, d_h_last, reverse=reverse, method=method
        )
        if mask is not None:  # a = 1, b = 0 at masked steps: no gradient reaches the gates
            d_a = xp.where(mask, d_a, xp.zeros_like(d_a))
            d_b = xp.where(mask, d_b, xp.zeros_like(d_b))
        dgx = back(d_a, d_b)
        db_x = xp.sum(flat2d(xp, dgx), axis=0)
        d_xs, d_params = _projection_grads(xp, xs_tm, p, dgx, db_x, {})
        return move_time(xp, d_xs, nb, time_major, inverse=True), d_params, (d_h0,)

    return hs, (h_last,), backward
