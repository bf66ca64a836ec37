r"""Stacked and bidirectional RNN, GRU and LSTM layers with dropout: ``torch.nn.GRU``'s semantics.

:func:`~polyrnn.gru_layers` (and :func:`~polyrnn.rnn_layers`,
:func:`~polyrnn.lstm_layers`) runs ``L`` layers, each the scan of its cell, layer ``l > 0``
reading the output of layer ``l - 1``:

.. code-block:: python

    x = xs
    for l, p in enumerate(layers):
        if bidirectional:
            fwd, _ = gru_scan(x, p[0], h0[2 * l], lengths=lengths)
            bwd, _ = gru_scan(x, p[1], h0[2 * l + 1], lengths=lengths, reverse=True)
            x = concat([fwd, bwd], axis=-1)           # (..., T, 2H), torch's order
        else:
            x, _ = gru_scan(x, p, h0[l], lengths=lengths)
        if l < L - 1:
            x = x * mask[l] / (1 - dropout)           # mask[l]: True keeps
    return x, stack(last states)                      # (L * directions, ..., H)

So every backend runs its scans' fast path (aten's fused kernels on PyTorch,
``jax.lax.scan`` on JAX), and the frameworks differentiate through it.  The
``*_layers_vjp`` functions are the hand-written vector-Jacobian products, chained from
the scans' (:func:`polyrnn.gru_scan_vjp`), for libraries without autodiff.

Dropout masks come from one of two places:

- ``seed``: drawn on the host, ``rng = numpy.random.default_rng(seed)`` and, for
  ``l = 0, ..., L - 2`` in turn, ``keep = rng.random((*batch, T, W)) >= dropout`` (``W``
  the layer's output width, batch-first whatever ``time_major``), then moved to the
  library and device of ``xs``: the same seed gives the same masks on every backend.
- ``masks``: ``L - 1`` boolean arrays of the layout of the layers' outputs, made by the
  caller (e.g. with :func:`jax.random.bernoulli` inside :func:`jax.jit`, where a host
  draw would be a constant of the compiled function).

Recurrent dropout (``recurrent_dropout=q``; Gal & Ghahramani 2016, Keras'
``recurrent_dropout``) multiplies each layer and direction's ``h_{t-1}`` where it meets
``W_h`` by one mask per sequence, the same at every step (the cell's update reads
``h_{t-1}`` itself).  With ``seed``, the same generator then draws ``keep =
rng.random((L * directions, *batch, H)) >= q``, in ``h0``'s layout; or the caller passes
``recurrent_masks``, one boolean array of that shape.  A mask runs the reference engine
of the cell's steps (no fused kernel has one).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _bptt, _prologue, _validate
from ._cell import Cell
from ._compat import Array, Namespace, device
from ._prologue import cotangent
from .backends import Adapter, get_adapter
from .cells import ACTIVATIONS, GRU, LSTM, RNN
from .params import GATES, WIDTHS

__all__ = [
    "gru_layers",
    "gru_layers_vjp",
    "lstm_layers",
    "lstm_layers_vjp",
    "rnn_layers",
    "rnn_layers_vjp",
]


# --------------------------------------------------------------------------- validation


def _what(a: Any) -> str:
    """A short description of a received layer entry for messages."""
    if isinstance(a, tuple) and hasattr(a, "_fields"):
        return type(a).__name__
    if isinstance(a, tuple | list):
        inner = ", ".join(_what(e) for e in a[:3]) + (", ..." if len(a) > 3 else "")
        return f"a {type(a).__name__} of {len(a)} ({inner})"
    return _validate._describe(a)


def check_layers(
    fn: str,
    layers: Any,
    classes: tuple[type, ...],
    bidirectional: bool,
    *,
    n_in: int | None = None,
    dtype: Any = None,
    arrays: dict[str, Any] | None = None,
    gates: int | None = None,
) -> tuple[list[tuple[Any, ...]], type, int, int, Namespace]:
    """The layer list checked: each entry one params of a class of ``classes`` (the class of
    the first for every layer), or a ``(forward, backward)`` pair of them with
    ``bidirectional``; one library, floating dtypes (``dtype``, of ``xs``, when given), the
    ``H`` of the first layer everywhere, and layer ``l``'s input size ``n_in`` (``D`` of the
    input, read from the first ``w_x`` when ``None``) for ``l = 0``, else the previous
    layer's output width.  ``arrays`` (named) join the one-library check; ``gates`` is G
    of a class that is not a built-in container.

    Returns the entries as tuples of one or two params, the class, ``H``, ``D`` and the
    namespace.  Also used by :func:`polyrnn.interop.to_torch_layers`.
    """
    names = " or ".join(c.__name__ for c in classes)
    if isinstance(layers, tuple) and hasattr(layers, "_fields"):
        raise TypeError(
            f"{fn}: layers must be a list of {type(layers).__name__} (one per layer), got a "
            f"single {type(layers).__name__}; pass [params] for one layer"
        )
    if not isinstance(layers, Sequence) or isinstance(layers, str) or len(layers) == 0:
        raise TypeError(
            f"{fn}: layers must be a non-empty list of {names} (one per layer), got {_what(layers)}"
        )
    first = layers[0][0] if bidirectional and isinstance(layers[0], tuple | list) else layers[0]
    cls = type(first) if isinstance(first, classes) else classes[0]
    entries: list[tuple[Any, ...]] = []
    for i, entry in enumerate(layers):
        if bidirectional:
            ok = (
                isinstance(entry, tuple | list)
                and not hasattr(entry, "_fields")
                and len(entry) == 2
                and all(type(p) is cls for p in entry)
            )
            if not ok:
                raise TypeError(
                    f"{fn}: layers[{i}] must be a (forward, backward) pair of {cls.__name__} "
                    f"with bidirectional=True, got {_what(entry)}"
                )
            entries.append(tuple(entry))
        else:
            if type(entry) is not cls:
                hint = ""
                if isinstance(entry, tuple | list) and not hasattr(entry, "_fields"):
                    hint = " (pairs (forward, backward) need bidirectional=True)"
                raise TypeError(
                    f"{fn}: layers[{i}] must be {cls.__name__} with bidirectional=False, "
                    f"got {_what(entry)}{hint}"
                )
            entries.append((entry,))
    dirs = 2 if bidirectional else 1

    def label(i: int, d: int) -> str:
        return f"layers[{i}][{d}]" if bidirectional else f"layers[{i}]"

    named = dict(arrays or {})
    for i, entry in enumerate(entries):
        for d, p in enumerate(entry):
            named |= {f"{label(i, d)}.{f}": a for f, a in zip(p._fields, p, strict=True)}
    xp = _validate.namespace(fn, named)
    dtype_of = "xs" if dtype is not None else f"{label(0, 0)}.w_x"
    dtype = entries[0][0].w_x.dtype if dtype is None else dtype
    for i, entry in enumerate(entries):
        for d, p in enumerate(entry):
            for f, a in zip(p._fields, p, strict=True):
                _validate.floating(fn, f"{label(i, d)}.{f}", a, xp, dtype, dtype_of)
    g = gates or GATES[cls]
    if "w_h" in cls._fields:  # type: ignore[attr-defined]
        w_h0 = entries[0][0].w_h
        if w_h0.ndim != 2 or w_h0.shape[1] != g * w_h0.shape[0]:
            raise ValueError(
                f"{fn}: {label(0, 0)}.w_h must have shape (H, {g}*H), got {tuple(w_h0.shape)}"
            )
        n_h = int(w_h0.shape[0])
    else:  # a linear cell's (w_x, b_x)
        b_x0 = entries[0][0].b_x
        if b_x0.ndim != 1 or b_x0.shape[0] % g or b_x0.shape[0] == 0:
            raise ValueError(
                f"{fn}: {label(0, 0)}.b_x must have shape ({g}*H,), got {tuple(b_x0.shape)}"
            )
        n_h = int(b_x0.shape[0]) // g
    if n_in is None:
        w_x0 = entries[0][0].w_x
        if w_x0.ndim != 2:
            raise ValueError(
                f"{fn}: {label(0, 0)}.w_x must have shape (D, {g * n_h}), got {tuple(w_x0.shape)}"
            )
        n_in, from_where = int(w_x0.shape[0]), f"D={w_x0.shape[0]} from {label(0, 0)}.w_x"
    else:
        from_where = f"D={n_in} from xs"
    width = dirs * n_h
    for i, entry in enumerate(entries):
        d_in = n_in if i == 0 else width
        if i == 0:
            why_x = f"{from_where}, H={n_h}"
        else:
            wide = f"{dirs}H={width}" if bidirectional else f"H={n_h}"
            why_x = f"the output width of layers[{i - 1}], {wide}"
        for d, p in enumerate(entry):
            where = label(i, d)
            same_h = f"every layer has the H={n_h} of {label(0, 0)}"
            expected = {
                "w_h": ((n_h, g * n_h), same_h),
                "w_x": ((d_in, g * n_h), why_x),
                "b_x": ((g * n_h,), f"H={n_h}"),
                "b_h": ((g * n_h,), f"H={n_h}"),
                **{f: ((w * n_h,), f"H={n_h}") for f, w in WIDTHS.get(cls, {}).items()},
            }
            for field, (shape, why) in expected.items():
                if field in p._fields:  # a user's container: its four main fields
                    _validate.shape(fn, f"{where}.{field}", getattr(p, field), shape, why)
    return entries, cls, n_h, n_in, xp


def _dropout_rate(fn: str, name: str, dropout: Any) -> float:
    if (
        isinstance(dropout, bool | np.bool_)
        or not isinstance(dropout, int | float | np.integer | np.floating)
        or not 0.0 <= float(dropout) < 1.0
    ):
        raise ValueError(f"{fn}: {name} must be a number in [0, 1), got {dropout!r}")
    return float(dropout)


class _Plan(NamedTuple):
    """The checked call: what the engine runs."""

    xp: Namespace
    adapter: Adapter
    entries: list[tuple[Any, ...]]
    hidden: int
    batch: tuple[int, ...]
    states: tuple[Array | None, ...]  # (L * dirs, ..., H) each, or None for zeros
    lengths: Array | None
    masks: list[Array] | None  # L - 1 multipliers, 0 or 1/(1 - dropout), of xs' dtype
    recurrent: Array | None  # (L * dirs, ..., H) multipliers of h_{t-1}, or None


def _check(
    fn: str,
    cell: Cell,
    xs: Any,
    layers: Any,
    state0: Any,
    *,
    bidirectional: bool,
    dropout: Any,
    seed: Any,
    masks: Any,
    recurrent_dropout: Any,
    recurrent_masks: Any,
    time_major: bool,
    lengths: Any,
) -> _Plan:
    """The prologue of every layers function: every check, named after ``fn``'s arguments."""
    _validate.flags(fn, bidirectional=bidirectional, time_major=time_major)
    rate = _dropout_rate(fn, "dropout", dropout)
    r_rate = _dropout_rate(fn, "recurrent_dropout", recurrent_dropout)
    for name, rate_name, p, given, what in (
        ("masks", "dropout", rate, masks, "L - 1 boolean arrays, e.g. drawn with jax.random inside jax.jit"),
        ("recurrent_masks", "recurrent_dropout", r_rate, recurrent_masks, "a boolean array (L * directions, ..., H)"),
    ):  # fmt: skip
        if seed is not None and given is not None:
            raise ValueError(f"{fn}: give seed or {name}, not both")
        if given is not None and p == 0.0:
            raise ValueError(
                f"{fn}: {name} were given with {rate_name}=0; pass the probability they were "
                f"drawn with (kept values are scaled by 1/(1 - {rate_name}))"
            )
        if p > 0.0 and seed is None and given is None:
            raise ValueError(
                f"{fn}: {rate_name}={p} needs seed= (an int: masks drawn with NumPy on the "
                f"host) or {name}= ({what})"
            )
    if r_rate > 0.0 and not cell.recurrent_dropout:
        raise ValueError(
            f"{fn}: the {cell.name!r} cell has no recurrent dropout (a linear cell has no W_h)"
        )
    if seed is not None and (
        isinstance(seed, bool | np.bool_) or not isinstance(seed, int | np.integer) or seed < 0
    ):
        raise ValueError(f"{fn}: seed must be a non-negative integer, got {seed!r}")
    states = _prologue.state_names(fn, cell, state0)
    if masks is not None:
        if not isinstance(masks, Sequence) or isinstance(masks, str):
            raise TypeError(
                f"{fn}: masks must be a list of L - 1 boolean arrays, got {_what(masks)}"
            )
        masks = list(masks)
    named_masks = {} if masks is None else {f"masks[{i}]": m for i, m in enumerate(masks)}
    if recurrent_masks is not None:
        named_masks["recurrent_masks"] = recurrent_masks
    xp = _validate.namespace(fn, {"xs": xs, **states, **named_masks})
    steps, batch = _validate.sequence(fn, xs, xp, time_major)
    entries, _, n_h, _, _ = check_layers(
        fn,
        layers,
        (cell.params,),
        bidirectional,
        n_in=int(xs.shape[-1]),
        dtype=xs.dtype,
        arrays={"xs": xs, **states, **named_masks},
        gates=cell.gates,
    )
    dirs = 2 if bidirectional else 1
    n_layers = len(entries)
    expected = (n_layers * dirs, *batch, n_h)
    why = f"L * directions = {n_layers} * {dirs}, then the batch shape {batch} of xs, then H={n_h}"
    for name, s in states.items():
        if s is not None:
            _validate.floating(fn, name, s, xp, xs.dtype)
            _validate.shape(fn, name, s, expected, why)
    adapter = get_adapter(xp)
    if lengths is not None:
        layout = _validate.ScanLayout(xp, None, steps, batch, n_h)
        lengths = _validate.lengths(fn, lengths, layout, xs, adapter.concrete(xs))
    width = dirs * n_h
    out_shape = (steps, *batch, width) if time_major else (*batch, steps, width)
    mults: list[Array] | None = None
    if masks is not None:
        if len(masks) != n_layers - 1:
            raise ValueError(
                f"{fn}: masks must hold L - 1 = {n_layers - 1} arrays (dropout follows every "
                f"layer but the last), got {len(masks)}"
            )
        mults = []
        for i, m in enumerate(masks):
            if m.dtype != xp.bool:
                raise TypeError(
                    f"{fn}: masks[{i}] must be a boolean array (True keeps), got dtype {m.dtype}"
                )
            _validate.shape(fn, f"masks[{i}]", m, out_shape, f"the layout of layers[{i}]'s output")
            mults.append(xp.astype(m, xs.dtype) * (1.0 / (1.0 - rate)))
    rng = None if seed is None else np.random.default_rng(int(seed))
    if rng is not None and rate > 0.0:
        mults = [_host_mask(xp, xs, rng, rate, (*batch, steps, width)) for _ in range(n_layers - 1)]
        if time_major:
            mults = [xp.moveaxis(m, -2, 0) for m in mults]
    recurrent: Array | None = None
    if recurrent_masks is not None:
        if recurrent_masks.dtype != xp.bool:
            raise TypeError(
                f"{fn}: recurrent_masks must be a boolean array (True keeps), got dtype "
                f"{recurrent_masks.dtype}"
            )
        _validate.shape(fn, "recurrent_masks", recurrent_masks, expected, why)
        recurrent = xp.astype(recurrent_masks, xs.dtype) * (1.0 / (1.0 - r_rate))
    elif rng is not None and r_rate > 0.0:
        recurrent = _host_mask(xp, xs, rng, r_rate, expected)
    return _Plan(
        xp, adapter, entries, n_h, batch, tuple(states.values()), lengths, mults, recurrent
    )


def _host_mask(
    xp: Namespace, xs: Array, rng: np.random.Generator, rate: float, shape: tuple[int, ...]
) -> Array:
    """A dropout multiplier of ``shape``, ``0`` or ``1 / (1 - rate)``, drawn on the host."""
    host = np.where(rng.random(shape) >= rate, 1.0 / (1.0 - rate), 0.0)
    return xp.asarray(xp.asarray(host), dtype=xs.dtype, device=device(xs))


# --------------------------------------------------------------------------- the engine


def _run(
    fn: str,
    cell: Cell,
    plan: _Plan,
    xs: Array,
    options: dict[str, Any],
    *,
    time_major: bool,
    vjp: bool,
) -> tuple[Array, tuple[Array, ...], list[list[Any]]]:
    """The stack: ``(hs, last carry (L * dirs, ..., H) each, backward closures)``; each
    layer and direction is the cell's scan (checked once, by :func:`_check`) or its VJP
    engine (prologue and all)."""
    xp = plan.xp
    x = xs
    lasts: list[tuple[Array, ...]] = []
    backs: list[list[Any]] = []
    dirs = len(plan.entries[0])
    if cell.linear is not None and not vjp:  # the method of every layer's linear scan
        _prologue.check_method(fn, options["method"])
        steps = xs.shape[0 if time_major else len(plan.batch)]
        width = plan.hidden * math.prod(plan.batch)
        method = _prologue.resolve_method(plan.adapter, options["method"], xs, steps, width)
        options = {**options, "method": method}
    for i, entry in enumerate(plan.entries):
        outs, layer_backs = [], []
        for d, p in enumerate(entry):
            idx = i * dirs + d
            state = tuple(None if s is None else s[idx, ...] for s in plan.states)
            mask = None if plan.recurrent is None else plan.recurrent[idx, ...]
            if vjp:
                args = (fn, cell, x, p, state if len(state) > 1 else state[0], time_major, d == 1)
                hs, last, back = _bptt.scan_vjp(*args, plan.lengths, options, mask)
                layer_backs.append(back)
            else:
                hs, last = _prologue.run(
                    plan.adapter, cell, x, p, state, time_major=time_major,
                    batch_ndim=len(plan.batch), lengths=plan.lengths, reverse=d == 1,
                    mask=mask, options=options,
                )  # fmt: skip
            outs.append(hs)
            lasts.append(last)
        x = outs[0] if dirs == 1 else xp.concat(outs, axis=-1)
        if plan.masks is not None and i < len(plan.entries) - 1:
            x = x * plan.masks[i]
        backs.append(layer_backs)
    stacked = tuple(xp.stack(parts, axis=0) for parts in zip(*lasts, strict=True))
    return x, stacked, backs


def cell_layers(
    cell: Cell,
    xs: Array,
    layers: Sequence[Any],
    state0: Any = None,
    *,
    bidirectional: bool = False,
    dropout: float = 0.0,
    seed: int | None = None,
    masks: Sequence[Array] | None = None,
    recurrent_dropout: float = 0.0,
    recurrent_masks: Array | None = None,
    time_major: bool = False,
    lengths: Array | None = None,
    **options: Any,
) -> tuple[Array, tuple[Array, ...]]:
    """Stacked (and bidirectional) layers of any :class:`~polyrnn._cell.Cell`: ``(hs,
    last carry)``, each part of the carry ``(L * directions, ..., H)``.

    The engine of :func:`rnn_layers`, :func:`gru_layers` and :func:`lstm_layers`, which
    take the same arguments; ``state0`` is as the cell's scans take it, each part
    ``(L * directions, ..., H)``, and ``options`` are the cell's (e.g. ``reset_after``).
    """
    return _layers(
        "cell_layers", cell, xs, layers, state0, options, bidirectional=bidirectional,
        dropout=dropout, seed=seed, masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=time_major, lengths=lengths,
    )  # fmt: skip


def _layers(
    fn: str,
    cell: Cell,
    xs: Any,
    layers: Any,
    state0: Any,
    options: dict[str, Any],
    *,
    bidirectional: bool,
    dropout: Any,
    seed: Any,
    masks: Any,
    recurrent_dropout: Any,
    recurrent_masks: Any,
    time_major: bool,
    lengths: Any,
) -> tuple[Array, tuple[Array, ...]]:
    plan = _check(
        fn, cell, xs, layers, state0, bidirectional=bidirectional, dropout=dropout, seed=seed,
        masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=time_major, lengths=lengths,
    )  # fmt: skip
    hs, last, _ = _run(fn, cell, plan, xs, options, time_major=bool(time_major), vjp=False)
    return hs, last


def _layers_vjp(
    fn: str,
    cell: Cell,
    xs: Any,
    layers: Any,
    state0: Any,
    options: dict[str, Any],
    *,
    bidirectional: bool,
    dropout: Any,
    seed: Any,
    masks: Any,
    recurrent_dropout: Any,
    recurrent_masks: Any,
    time_major: bool,
    lengths: Any,
) -> tuple[Array, tuple[Array, ...], Callable[[Any, tuple[Any, ...]], Any]]:
    """The forward pass and ``backward(d_hs, d_last parts) -> (d_xs, d_layers, d_state0
    parts)``, chained from the scans' VJPs in reverse layer order."""
    plan = _check(
        fn, cell, xs, layers, state0, bidirectional=bidirectional, dropout=dropout, seed=seed,
        masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=bool(time_major), lengths=lengths,
    )  # fmt: skip
    hs, last, backs = _run(fn, cell, plan, xs, options, time_major=bool(time_major), vjp=True)
    xp, n_h = plan.xp, plan.hidden
    dirs = len(plan.entries[0])
    hs_shape, state_shape = tuple(hs.shape), tuple(last[0].shape)
    why_state = f"(L * directions, ..., H) = {state_shape}, the shape of the final state"
    names = tuple(f"d_{name}_n" for name in cell.states)

    def backward(d_hs: Any, d_last: tuple[Any, ...]) -> Any:
        d_y = cotangent(fn, "d_hs", d_hs, xs=xs, expected=hs_shape, why="the shape of hs")
        d_states = [
            cotangent(fn, name, a, xs=xs, expected=state_shape, why=why_state)
            for name, a in zip(names, d_last, strict=True)
        ]
        d_layers: list[Any] = [None] * len(plan.entries)
        d_state0: list[list[Any]] = [[None] * int(last[0].shape[0]) for _ in names]
        for i in range(len(plan.entries) - 1, -1, -1):
            if plan.masks is not None and i < len(plan.entries) - 1:
                d_y = d_y * plan.masks[i]
            d_x, grads = None, []
            for d, back in enumerate(backs[i]):
                part = d_y if dirs == 1 else d_y[..., d * n_h : (d + 1) * n_h]
                d_in, d_p, d_s = back(part, tuple(s[i * dirs + d, ...] for s in d_states))
                d_x = d_in if d_x is None else d_x + d_in
                grads.append(d_p)
                for k, s in enumerate(d_s):
                    d_state0[k][i * dirs + d] = s
            d_layers[i] = grads[0] if dirs == 1 else tuple(grads)
            d_y = d_x
        return d_y, d_layers, tuple(xp.stack(parts, axis=0) for parts in d_state0)

    return hs, last, backward


# --------------------------------------------------------------------------- public


def rnn_layers(
    xs: Array,
    layers: Sequence[Any],
    h0: Array | None = None,
    *,
    activation: str = "tanh",
    bidirectional: bool = False,
    dropout: float = 0.0,
    seed: int | None = None,
    masks: Sequence[Array] | None = None,
    recurrent_dropout: float = 0.0,
    recurrent_masks: Array | None = None,
    time_major: bool = False,
    lengths: Array | None = None,
) -> tuple[Array, Array]:
    """Stacked (and bidirectional) vanilla RNN layers: :class:`torch.nn.RNN` with ``num_layers``.

    Each layer is :func:`~polyrnn.rnn_scan` (with ``activation``) over the previous layer's
    output; see :mod:`polyrnn.layers` for the loop and the dropout masks.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence of any leading batch shape (none for ``(T, D)``).
    layers : list of RNNParams
        ``L >= 1`` layers; with ``bidirectional``, ``L`` pairs ``(forward, backward)``.
        Layer 0's ``w_x`` is ``(D, H)``; layer ``l > 0`` reads the previous layer's output,
        so its ``w_x`` is ``(H, H)``, or ``(2H, H)`` with ``bidirectional``.  Every layer has
        the same ``H``.
    h0 : array, shape ``(L * directions, ..., H)``, optional
        Initial state of each layer and direction in torch's order (layer-major, forward
        before backward); zeros by default.
    activation : {"tanh", "sigmoid", "relu"}
        Nonlinearity of every layer (``torch.nn.RNN``'s ``nonlinearity``).
    bidirectional : bool
        Also run each layer backwards over each sequence, from its last valid step (the
        scans' ``reverse``, which is what torch does for a packed sequence), and
        concatenate the two outputs on the last axis, forward first.
    dropout : float in ``[0, 1)``
        Probability of zeroing each output of every layer but the last (torch's rule); the
        kept values are scaled by ``1 / (1 - dropout)``.  Needs ``seed`` or ``masks``.
    seed : int, optional
        Seed of the host generator the masks are drawn from (:mod:`polyrnn.layers` says
        how): the same masks on every library.  Ignored when ``dropout`` is 0.
    masks : list of ``L - 1`` boolean arrays, optional
        The masks themselves (``True`` keeps), instead of ``seed``: each of the shape of a
        layer's output, ``(..., T, W)`` (``(T, ..., W)`` with ``time_major``), ``W`` being
        ``H`` or ``2H``; e.g. drawn with :func:`jax.random.bernoulli` inside
        :func:`jax.jit`.
    recurrent_dropout : float in ``[0, 1)``
        Probability of zeroing each entry of ``h_{t-1}`` where it meets ``W_h``, one mask
        per sequence, layer and direction for all steps (kept entries scaled by ``1 / (1 -
        recurrent_dropout)``).  Needs ``seed`` or ``recurrent_masks``.
    recurrent_masks : boolean array, shape ``(L * directions, ..., H)``, optional
        Those masks themselves (``True`` keeps), in ``h0``'s layout, instead of ``seed``.
    time_major : bool
        Whether time is the leading axis of ``xs`` and ``hs``.
    lengths : integer array, shape ``(...)``, optional
        Valid length of each sequence, in ``[0, T]``, as in :func:`~polyrnn.rnn_scan`:
        every layer's outputs past it are zero, and the final states are those after each
        sequence's last valid step (forward) or its first (backward).

    Returns
    -------
    hs : array, shape ``(..., T, H)``, or ``(..., T, 2H)`` with ``bidirectional``
        The last layer's output (``(T, ..., ·)`` with ``time_major``); forward then backward
        halves on the last axis.
    h_n : array, shape ``(L * directions, ..., H)``
        Each layer and direction's final state, in the order of ``h0``.

    Raises
    ------
    TypeError
        A layer that is not an :class:`~polyrnn.RNNParams` (or a pair of them with
        ``bidirectional``), arrays of two libraries, non-floating or mixed dtypes, masks
        that are not boolean.
    ValueError
        Shapes that do not chain, ``dropout`` or ``recurrent_dropout`` outside ``[0, 1)``
        or without ``seed`` or their masks, ``lengths`` outside ``[0, T]``.

    Examples
    --------
    Two layers of ``H = 4`` over ``D = 3`` inputs:

    >>> layers = [polyrnn.init_rnn(3, 4, seed=0), polyrnn.init_rnn(4, 4, seed=1)]
    >>> hs, h_n = polyrnn.rnn_layers(np.ones((2, 5, 3)), layers)
    >>> hs.shape, h_n.shape, bool((h_n[1] == hs[:, -1]).all())
    ((2, 5, 4), (2, 2, 4), True)
    """
    fn = "rnn_layers"
    _validate.choice(fn, "activation", activation, ACTIVATIONS)
    hs, (h_n,) = _layers(
        fn, RNN, xs, layers, h0, {"activation": activation}, bidirectional=bidirectional,
        dropout=dropout, seed=seed, masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=time_major, lengths=lengths,
    )  # fmt: skip
    return hs, h_n


def gru_layers(
    xs: Array,
    layers: Sequence[Any],
    h0: Array | None = None,
    *,
    reset_after: bool = False,
    bidirectional: bool = False,
    dropout: float = 0.0,
    seed: int | None = None,
    masks: Sequence[Array] | None = None,
    recurrent_dropout: float = 0.0,
    recurrent_masks: Array | None = None,
    time_major: bool = False,
    lengths: Array | None = None,
) -> tuple[Array, Array]:
    """Stacked (and bidirectional) GRU layers: :class:`torch.nn.GRU` with ``num_layers``.

    Each layer is :func:`~polyrnn.gru_scan` over the previous layer's output; see
    :mod:`polyrnn.layers` for the loop and the dropout masks.  ``torch.nn.GRU`` is the
    ``reset_after=True`` GRU.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence.
    layers : list of GRUParams
        ``L >= 1`` layers, or ``(forward, backward)`` pairs with ``bidirectional``:
        ``w_x (D, 3H)`` for layer 0, ``(H, 3H)`` (``(2H, 3H)`` bidirectional) after it.
    h0 : array, shape ``(L * directions, ..., H)``, optional
        Initial states, as in :func:`rnn_layers`.
    reset_after : bool
        The GRU variant of every layer, as in :func:`~polyrnn.gru_scan`.
    bidirectional, dropout, seed, masks, recurrent_dropout, recurrent_masks, time_major, lengths
        As in :func:`rnn_layers`.

    Returns
    -------
    hs : array, shape ``(..., T, H)``, or ``(..., T, 2H)`` with ``bidirectional``
        The last layer's output (``(T, ..., ·)`` with ``time_major``); forward then backward
        halves on the last axis.
    h_n : array, shape ``(L * directions, ..., H)``
        Each layer and direction's final state, in the order of ``h0``.

    Raises
    ------
    TypeError, ValueError
        As :func:`rnn_layers`.

    Examples
    --------
    Two bidirectional layers, dropout between them, and sequences of lengths 5 and 2:

    >>> D, H = 3, 4
    >>> layers = [(polyrnn.init_gru(D, H, seed=0), polyrnn.init_gru(D, H, seed=1)),
    ...           (polyrnn.init_gru(2 * H, H, seed=2), polyrnn.init_gru(2 * H, H, seed=3))]
    >>> xs = np.ones((2, 5, D))
    >>> hs, h_n = polyrnn.gru_layers(xs, layers, bidirectional=True, dropout=0.25, seed=7,
    ...                              lengths=np.array([5, 2]), reset_after=True)
    >>> hs.shape, h_n.shape
    ((2, 5, 8), (4, 2, 4))
    >>> float(abs(hs[1, 2:]).max())          # past the second sequence's length
    0.0
    >>> bool((h_n[3, 1] == hs[1, 0, H:]).all())  # backward direction ends at step 0
    True
    """
    fn = "gru_layers"
    _validate.flags(fn, reset_after=reset_after)
    hs, (h_n,) = _layers(
        fn, GRU, xs, layers, h0, {"reset_after": bool(reset_after)},
        bidirectional=bidirectional, dropout=dropout, seed=seed, masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=time_major, lengths=lengths,
    )  # fmt: skip
    return hs, h_n


def lstm_layers(
    xs: Array,
    layers: Sequence[Any],
    state0: tuple[Array | None, Array | None] | None = None,
    *,
    bidirectional: bool = False,
    dropout: float = 0.0,
    seed: int | None = None,
    masks: Sequence[Array] | None = None,
    recurrent_dropout: float = 0.0,
    recurrent_masks: Array | None = None,
    time_major: bool = False,
    lengths: Array | None = None,
) -> tuple[Array, tuple[Array, Array]]:
    """Stacked (and bidirectional) LSTM layers: :class:`torch.nn.LSTM` with ``num_layers``.

    Each layer is :func:`~polyrnn.lstm_scan` over the previous layer's output; see
    :mod:`polyrnn.layers` for the loop and the dropout masks.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence.
    layers : list of LSTMParams
        ``L >= 1`` layers, or ``(forward, backward)`` pairs with ``bidirectional``:
        ``w_x (D, 4H)`` for layer 0, ``(H, 4H)`` (``(2H, 4H)`` bidirectional) after it.
    state0 : (array, array), each ``(L * directions, ..., H)``, optional
        Initial ``(h0, c0)`` in torch's order (as ``h0`` in :func:`rnn_layers`); zeros by
        default, and either may be ``None``.
    bidirectional, dropout, seed, masks, recurrent_dropout, recurrent_masks, time_major, lengths
        As in :func:`rnn_layers`.

    Returns
    -------
    hs : array, shape ``(..., T, H)``, or ``(..., T, 2H)`` with ``bidirectional``
        The last layer's output (``(T, ..., ·)`` with ``time_major``).
    (h_n, c_n) : arrays, shape ``(L * directions, ..., H)``
        Each layer and direction's final state, in the order of ``state0``.

    Raises
    ------
    TypeError, ValueError
        As :func:`rnn_layers`; ``state0`` that is not a pair.

    Examples
    --------
    >>> layers = [polyrnn.init_lstm(3, 2, seed=0), polyrnn.init_lstm(2, 2, seed=1)]
    >>> hs, (h_n, c_n) = polyrnn.lstm_layers(np.ones((6, 3)), layers)
    >>> hs.shape, h_n.shape, c_n.shape
    ((6, 2), (2, 2), (2, 2))
    """
    fn = "lstm_layers"
    hs, (h_n, c_n) = _layers(
        fn, LSTM, xs, layers, state0, {}, bidirectional=bidirectional, dropout=dropout,
        seed=seed, masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=time_major, lengths=lengths,
    )  # fmt: skip
    return hs, (h_n, c_n)


def rnn_layers_vjp(
    xs: Array,
    layers: Sequence[Any],
    h0: Array | None = None,
    *,
    activation: str = "tanh",
    bidirectional: bool = False,
    dropout: float = 0.0,
    seed: int | None = None,
    masks: Sequence[Array] | None = None,
    recurrent_dropout: float = 0.0,
    recurrent_masks: Array | None = None,
    time_major: bool = False,
    lengths: Array | None = None,
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, list[Any], Array]]]:
    """:func:`~polyrnn.rnn_layers` and its vector-Jacobian product, by backpropagation
    through every layer's scan (:func:`~polyrnn.rnn_scan_vjp`).

    Takes exactly the arguments of :func:`~polyrnn.rnn_layers`; ``backward`` reuses the
    forward pass's dropout masks.

    Returns
    -------
    outputs : (hs, h_n)
        What :func:`~polyrnn.rnn_layers` returns.
    backward : callable ``(d_hs=None, d_h_n=None) -> (d_xs, d_layers, d_h0)``
        Maps cotangents of the outputs (arrays of their shapes and of the dtype of ``xs``;
        ``None`` means zeros) to those of the inputs: ``d_xs`` of the shape and layout of
        ``xs``, ``d_layers`` a list of the structure of ``layers`` (a
        :class:`~polyrnn.RNNParams` per layer, or a pair of them), and ``d_h0`` of shape
        ``(L * directions, ..., H)`` (also when the initial state was ``None``).  It may
        be called any number of times.

    Raises
    ------
    TypeError, ValueError
        As :func:`~polyrnn.rnn_layers`; ``backward`` raises :class:`ValueError` for a
        cotangent of the wrong shape and :class:`TypeError` for one of another dtype or
        library.

    Examples
    --------
    The gradient of ``sum(hs)`` with respect to an input agrees with a finite difference:

    >>> layers = [polyrnn.init_rnn(3, 2, seed=0), polyrnn.init_rnn(2, 2, seed=1)]
    >>> xs = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    >>> (hs, h_n), backward = polyrnn.rnn_layers_vjp(xs, layers)
    >>> d_xs, d_layers, d_h0 = backward(np.ones_like(hs), None)
    >>> d_xs.shape, len(d_layers), d_layers[1].w_x.shape, d_h0.shape
    ((4, 3), 2, (2, 2), (2, 2))
    >>> eps = 1e-6
    >>> bumped = xs.copy()
    >>> bumped[0, 0] += eps
    >>> fd = (polyrnn.rnn_layers(bumped, layers)[0].sum() - hs.sum()) / eps
    >>> bool(abs(fd - d_xs[0, 0]) < 1e-5)
    True
    """
    fn = "rnn_layers_vjp"
    _validate.choice(fn, "activation", activation, ACTIVATIONS)
    hs, (h_n,), bwd = _layers_vjp(
        fn, RNN, xs, layers, h0, {"activation": activation}, bidirectional=bidirectional,
        dropout=dropout, seed=seed, masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=time_major, lengths=lengths,
    )  # fmt: skip

    def backward(d_hs: Array | None = None, d_h_n: Array | None = None) -> Any:
        d_xs, d_layers, (d_h0,) = bwd(d_hs, (d_h_n,))
        return d_xs, d_layers, d_h0

    return (hs, h_n), backward


def gru_layers_vjp(
    xs: Array,
    layers: Sequence[Any],
    h0: Array | None = None,
    *,
    reset_after: bool = False,
    bidirectional: bool = False,
    dropout: float = 0.0,
    seed: int | None = None,
    masks: Sequence[Array] | None = None,
    recurrent_dropout: float = 0.0,
    recurrent_masks: Array | None = None,
    time_major: bool = False,
    lengths: Array | None = None,
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, list[Any], Array]]]:
    """:func:`~polyrnn.gru_layers` and its vector-Jacobian product, by backpropagation
    through every layer's scan (:func:`~polyrnn.gru_scan_vjp`).

    Takes exactly the arguments of :func:`~polyrnn.gru_layers`; returns and raises as
    :func:`rnn_layers_vjp` (with a :class:`~polyrnn.GRUParams`, or a pair of them, per
    layer in ``d_layers``).

    Examples
    --------
    >>> layers = [(polyrnn.init_gru(3, 2, seed=0), polyrnn.init_gru(3, 2, seed=1))]
    >>> (hs, h_n), backward = polyrnn.gru_layers_vjp(np.ones((5, 3)), layers,
    ...                                              bidirectional=True)
    >>> d_xs, d_layers, d_h0 = backward(None, np.ones_like(h_n))  # d sum(h_n)
    >>> hs.shape, d_xs.shape, d_layers[0][1].w_h.shape, d_h0.shape
    ((5, 4), (5, 3), (2, 6), (2, 2))
    """
    fn = "gru_layers_vjp"
    _validate.flags(fn, reset_after=reset_after)
    hs, (h_n,), bwd = _layers_vjp(
        fn, GRU, xs, layers, h0, {"reset_after": bool(reset_after)},
        bidirectional=bidirectional, dropout=dropout, seed=seed, masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=time_major, lengths=lengths,
    )  # fmt: skip

    def backward(d_hs: Array | None = None, d_h_n: Array | None = None) -> Any:
        d_xs, d_layers, (d_h0,) = bwd(d_hs, (d_h_n,))
        return d_xs, d_layers, d_h0

    return (hs, h_n), backward


def lstm_layers_vjp(
    xs: Array,
    layers: Sequence[Any],
    state0: tuple[Array | None, Array | None] | None = None,
    *,
    bidirectional: bool = False,
    dropout: float = 0.0,
    seed: int | None = None,
    masks: Sequence[Array] | None = None,
    recurrent_dropout: float = 0.0,
    recurrent_masks: Array | None = None,
    time_major: bool = False,
    lengths: Array | None = None,
) -> tuple[
    tuple[Array, tuple[Array, Array]],
    Callable[..., tuple[Array, list[Any], tuple[Array, Array]]],
]:
    """:func:`~polyrnn.lstm_layers` and its vector-Jacobian product, by backpropagation
    through every layer's scan (:func:`~polyrnn.lstm_scan_vjp`).

    Takes exactly the arguments of :func:`~polyrnn.lstm_layers`; returns and raises as
    :func:`rnn_layers_vjp`, with the pairs of the LSTM's state: ``outputs`` is ``(hs,
    (h_n, c_n))`` and ``backward(d_hs=None, d_last=None) -> (d_xs, d_layers, (d_h0,
    d_c0))``, ``d_last`` being ``(d_h_n, d_c_n)`` or ``None`` (it raises
    :class:`TypeError` for anything else).

    Examples
    --------
    >>> layers = [polyrnn.init_lstm(3, 2, seed=0), polyrnn.init_lstm(2, 2, seed=1)]
    >>> (hs, (h_n, c_n)), backward = polyrnn.lstm_layers_vjp(np.ones((4, 3)), layers)
    >>> d_xs, d_layers, (d_h0, d_c0) = backward(None, (None, np.ones_like(c_n)))
    >>> d_xs.shape, d_c0.shape
    ((4, 3), (2, 2))
    """
    fn = "lstm_layers_vjp"
    hs, (h_n, c_n), bwd = _layers_vjp(
        fn, LSTM, xs, layers, state0, {}, bidirectional=bidirectional, dropout=dropout,
        seed=seed, masks=masks,
        recurrent_dropout=recurrent_dropout, recurrent_masks=recurrent_masks,
        time_major=time_major, lengths=lengths,
    )  # fmt: skip

    def backward(d_hs: Array | None = None, d_last: Any = None) -> Any:
        if d_last is None:
            d_last = (None, None)
        elif not (isinstance(d_last, tuple | list) and len(d_last) == 2):
            raise TypeError(
                f"{fn}: d_last must be a pair (d_h_n, d_c_n) or None, got {type(d_last).__name__}"
            )
        d_xs, d_layers, (d_h0, d_c0) = bwd(d_hs, tuple(d_last))
        return d_xs, d_layers, (d_h0, d_c0)

    return (hs, (h_n, c_n)), backward
