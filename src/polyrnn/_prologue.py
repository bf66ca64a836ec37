"""The one prologue of every public scan and VJP: checks, adapter, method, cotangents.

Each public function is a docstring over a call into an engine; what happens at its door
is here, written once: the inputs checked (with messages naming the function, the
argument, the expected and the received value), the adapter of the arrays' namespace
found, a linear scan's ``method`` resolved, and a VJP's cotangents checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from . import _linear, _recurrence, _validate
from ._cell import Cell
from ._compat import Array, array_namespace, device, namespace_of
from .backends import Adapter, get_adapter


def check_method(fn: str, method: Any) -> None:
    """``method`` is one of ``"auto"``, ``"sequential"``, ``"parallel"``."""
    if not isinstance(method, str) or method not in _linear.METHODS:
        raise ValueError(f"{fn}: method must be one of {list(_linear.METHODS)}, got {method!r}")


def resolve_method(adapter: Adapter, method: str, x: Array, steps: int, width: int) -> str:
    """``method`` with ``"auto"`` replaced by the adapter's choice for ``x``'s device and shape."""
    if method == "auto":
        return adapter.linear_method(x, steps=steps, width=width)
    return method


def state_names(fn: str, cell: Cell, state0: Any) -> dict[str, Any]:
    """The initial states by the names messages give them: ``h0`` for a one-state cell,
    ``state0[i]`` for the parts of a tuple; ``None`` entries are zeros."""
    if len(cell.states) == 1:
        return {"h0": state0}
    if state0 is None:
        state0 = (None,) * len(cell.states)
    if not isinstance(state0, tuple | list) or len(state0) != len(cell.states):
        parts = ", ".join(f"{n}0" for n in cell.states)
        raise TypeError(
            f"{fn}: state0 must be a {'pair' if len(cell.states) == 2 else 'tuple'} "
            f"({parts}) or None, got {state0!r}"
        )
    return {f"state0[{i}]": a for i, a in enumerate(state0)}


def check(
    fn: str,
    xs: Any,
    params: Any,
    cell: Cell,
    states: dict[str, Any],
    time_major: bool,
    lengths: Any,
    options: dict[str, Any],
) -> tuple[Adapter, _validate.ScanLayout, Array | None, dict[str, Any]]:
    """The checks of a cell's scan or VJP: returns the adapter, the layout, ``lengths``
    (its values checked where they can be read) and the options, a linear cell's
    ``method`` resolved from ``"auto"``."""
    if cell.linear is not None:
        check_method(fn, options["method"])
    lay = _validate.scan_inputs(
        fn, xs, params, cell.params, states, time_major=time_major, gates=cell.gates
    )
    adapter = get_adapter(lay.xp)
    if lengths is not None:
        lengths = _validate.lengths(fn, lengths, lay, xs, adapter.concrete(xs))
    if cell.linear is not None:
        width = lay.hidden * math.prod(lay.batch)
        method = resolve_method(adapter, options["method"], xs, lay.steps, width)
        options = {**options, "method": method}
    return adapter, lay, lengths, options


def recurrent_mask(fn: str, cell: Cell, mask: Any, xs: Any, lay: _validate.ScanLayout) -> Any:
    """The recurrent-dropout multiplier ``mask`` checked: ``None``, or an array of ``xs``'s
    library, floating dtype and device, of shape ``(..., H)`` (the batch shape of ``xs``),
    for a cell whose record takes one."""
    if mask is None:
        return None
    if not cell.recurrent_dropout:
        raise ValueError(
            f"{fn}: the {cell.name!r} cell has no recurrent dropout (its record takes no mask: "
            "a linear cell has no W_h); pass recurrent_mask=None"
        )
    xp = _validate.namespace(fn, {"xs": xs, "recurrent_mask": mask})
    _validate.floating(fn, "recurrent_mask", mask, xp, xs.dtype)
    _validate.shape(
        fn, "recurrent_mask", mask, (*lay.batch, lay.hidden),
        f"the batch shape {lay.batch} of xs, then H={lay.hidden}",
    )  # fmt: skip
    return mask


def cotangent(
    fn: str, name: str, a: Any, *, xs: Array, expected: tuple[int, ...], why: str
) -> Array:
    """The cotangent ``a`` checked against its primal (zeros for ``None``)."""
    if a is None:
        xp = array_namespace(xs)
        return xp.zeros(expected, dtype=xs.dtype, device=device(xs))
    xp = _validate.namespace(fn, {"xs": xs, name: a})
    _validate.floating(fn, name, a, xp, xs.dtype)
    _validate.shape(fn, name, a, expected, why)
    return a


def one_state(
    hs: Array, last: tuple[Array], bwd: Callable[[Any, tuple[Any, ...]], tuple[Array, Any, Any]]
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, Any, Array]]]:
    """A one-state cell's VJP in its public form: ``(hs, h_last)`` and ``backward(d_hs=None,
    d_h_last=None) -> (d_xs, d_params, d_h0)``, from the engine's carry-tuple form."""

    def backward(d_hs: Array | None = None, d_h_last: Array | None = None) -> Any:
        d_xs, d_params, (d_h0,) = bwd(d_hs, (d_h_last,))
        return d_xs, d_params, d_h0

    return (hs, last[0]), backward


def scan(
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
) -> tuple[Array, tuple[Array, ...]]:
    """The scan of any cell behind a public function named ``fn``: ``(hs, last carry)``;
    ``mask`` is the recurrent-dropout multiplier (:func:`recurrent_mask`).

    Without ``lengths`` (whose values are checked where they can be read) the adapter runs
    the whole of it, checks included, by :meth:`~polyrnn.backends.Adapter.entry`: JAX
    compiles it as one function, so the checks run once per shape, when it is traced.
    """
    if cell.linear is not None:
        check_method(fn, options["method"])
    xp = namespace_of(xs)
    static = (cell, fn, bool(time_major), bool(reverse), tuple(options.items()))
    if xp is not None and lengths is None:
        return get_adapter(xp).entry(_checked_scan, static, xs, params, state0, mask)  # type: ignore[no-any-return]
    return _checked_scan(static, xs, params, state0, mask, lengths)


def _checked_scan(
    static: tuple[Any, ...], xs: Any, params: Any, state0: Any, mask: Any, lengths: Any = None
) -> tuple[Array, tuple[Array, ...]]:
    """:func:`scan` after its dispatch: ``static`` is ``(cell, fn, time_major, reverse,
    options as pairs)``.  With a recurrent-dropout ``mask``, the reference engine runs the
    record's steps (the adapters' fused kernels have no mask)."""
    cell, fn, time_major, reverse, pairs = static
    states = state_names(fn, cell, state0)
    adapter, lay, lengths, options = check(
        fn, xs, params, cell, states, time_major, lengths, dict(pairs)
    )
    mask = recurrent_mask(fn, cell, mask, xs, lay)
    return run(
        adapter, cell, xs, lay.params, tuple(states.values()), time_major=time_major,
        batch_ndim=len(lay.batch), lengths=lengths, reverse=reverse, mask=mask, options=options,
    )  # fmt: skip


def run(
    adapter: Adapter,
    cell: Cell,
    xs: Array,
    params: Any,
    state0: tuple[Array | None, ...],
    *,
    time_major: bool,
    batch_ndim: int,
    lengths: Array | None,
    reverse: bool,
    mask: Array | None,
    options: dict[str, Any],
) -> tuple[Array, tuple[Array, ...]]:
    """The computation of a checked scan (``options`` resolved, ``mask`` checked): the
    adapter's :meth:`~polyrnn.backends.Adapter.layout_scan`, or with a recurrent-dropout
    ``mask`` the reference engine of the record's steps (the fused kernels have no mask)."""
    if mask is None:
        hs, last = adapter.layout_scan(
            cell, xs, params, state0, time_major=time_major, batch_ndim=batch_ndim,
            lengths=lengths, reverse=reverse, **options,
        )  # fmt: skip
        return hs, tuple(last)
    xp = adapter.xp
    xs_tm = _recurrence.move_time(xp, xs, batch_ndim, time_major, inverse=False)
    hs_tm, last = _recurrence.run(
        cell, adapter, xs_tm, params, state0, lengths=lengths, reverse=reverse, mask=mask,
        **options,
    )  # fmt: skip
    return _recurrence.move_time(xp, hs_tm, batch_ndim, time_major, inverse=True), tuple(last)
