r"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): RNNs that scan in parallel.

Both drop the recurrent weights from the gates, so the recurrence is *linear* in the state,
``h_t = a_t ⊙ h_{t-1} + b_t``, with ``a_t`` and ``b_t`` functions of ``x_t`` alone:

.. math::
    \text{minGRU:}\quad & z_t = \sigma(x_t W_z + b_z), \quad \tilde h_t = x_t W_h + b_h, \quad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t \\
    \text{minLSTM:}\quad & f_t, i_t = \sigma(x_t W_f + b_f), \sigma(x_t W_i + b_i), \quad
        f'_t, i'_t = \frac{f_t}{f_t + i_t}, \frac{i_t}{f_t + i_t}, \quad
        h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t

A scan therefore does one matrix product for all steps, the gate arithmetic for all
steps at once, and one :func:`polyrnn.linear_scan`: sequential or parallel over time.

Parameters are :class:`typing.NamedTuple` s with the gates stacked along the last axis,
row-vector convention ``x @ w_x + b_x`` as in :mod:`polyrnn.params`:

============== === ============ ========== ===============================
container       G  ``w_x``      ``b_x``    gates, in order
============== === ============ ========== ===============================
MinGRUParams    2  ``(D, 2H)``  ``(2H,)``  ``(z, h̃)``: update gate, candidate
MinLSTMParams   3  ``(D, 3H)``  ``(3H,)``  ``(f, i, h̃)``: forget, input, candidate
============== === ============ ========== ===============================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from . import _linear, _validate
from ._compat import Array, Namespace, device, is_array_api_obj
from ._recurrence import flat2d, move_time, outer, project, step_mask
from .backends import Adapter, get_adapter
from .cells import sigmoid
from .linear import check_method, resolve_method
from .params import init_uniform
from .vjp import _cotangent

__all__ = [
    "MinGRUParams",
    "MinLSTMParams",
    "init_min_gru",
    "init_min_lstm",
    "min_gru_cell",
    "min_gru_scan",
    "min_gru_scan_vjp",
    "min_lstm_cell",
    "min_lstm_scan",
    "min_lstm_scan_vjp",
]


class MinGRUParams(NamedTuple):
    """minGRU weights, gates ``(z, h̃)`` stacked along the last axis."""

    w_x: Array
    """Input weights, ``(D, 2H)``: columns ``[0, H)`` the update gate, ``[H, 2H)`` the candidate."""
    b_x: Array
    """Bias, ``(2H,)``, in the same order."""


class MinLSTMParams(NamedTuple):
    """minLSTM weights, gates ``(f, i, h̃)`` stacked along the last axis."""

    w_x: Array
    """Input weights, ``(D, 3H)``: forget gate, input gate, candidate, ``H`` columns each."""
    b_x: Array
    """Bias, ``(3H,)``, in the same order."""


GATES: dict[type, int] = {MinGRUParams: 2, MinLSTMParams: 3}
"""Number of gate blocks G of each container: ``w_x`` is ``(D, G*H)``."""


# --- initialisation -----------------------------------------------------------------------------


def init_min_gru(
    input_size: int,
    hidden_size: int,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> MinGRUParams:
    """Random :class:`MinGRUParams`, uniform in ``±1/sqrt(input_size)``.

    That is the initialisation of ``torch.nn.Linear(D, 2H)``, which is what the paper's
    minGRU layer is.  The numbers are drawn on the host (``numpy.random.default_rng(seed)``,
    float64) and then cast and moved, so a seed gives the same weights on every backend.

    Parameters
    ----------
    input_size, hidden_size : int
        D and H.
    seed : int
        Seed of the host generator.
    xp : namespace, optional
        Array library of the result; NumPy by default.
    dtype : dtype or str, optional
        Floating dtype; the library's default floating dtype by default.
    device : optional
        Device of the result, in the library's own terms.

    Returns
    -------
    MinGRUParams
        ``w_x (D, 2H)``, ``b_x (2H,)``.

    Raises
    ------
    ValueError
        A size that is not a positive integer.
    TypeError
        ``xp`` not a namespace, ``dtype`` not a real floating dtype.

    Examples
    --------
    >>> p = polyrnn.init_min_gru(3, 4, dtype="float32")
    >>> p.w_x.shape, p.b_x.shape, p.w_x.dtype
    ((3, 8), (8,), dtype('float32'))
    """
    return init_uniform(  # type: ignore[no-any-return]
        "init_min_gru",
        MinGRUParams,
        GATES[MinGRUParams],
        input_size,
        hidden_size,
        seed,
        xp,
        dtype,
        device,
        recurrent=False,
    )


def init_min_lstm(
    input_size: int,
    hidden_size: int,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> MinLSTMParams:
    """Random :class:`MinLSTMParams`, uniform in ``±1/sqrt(input_size)`` like ``nn.Linear(D, 3H)``.

    Same arguments, reproducibility and errors as :func:`init_min_gru`.

    Examples
    --------
    >>> p = polyrnn.init_min_lstm(3, 4)
    >>> p.w_x.shape, p.b_x.shape
    ((3, 12), (12,))
    """
    return init_uniform(  # type: ignore[no-any-return]
        "init_min_lstm",
        MinLSTMParams,
        GATES[MinLSTMParams],
        input_size,
        hidden_size,
        seed,
        xp,
        dtype,
        device,
        recurrent=False,
    )


# --- validation ---------------------------------------------------------------------------------


def _named(p: Any) -> dict[str, Any]:
    if isinstance(p, tuple | list) and len(p) == 2:
        return {"params.w_x": p[0], "params.b_x": p[1]}
    return {}


def _params(fn: str, p: Any, cls: type, n_in: int, xp: Namespace, dtype: Any) -> tuple[Any, int]:
    """``p`` as a ``cls`` with consistent shapes; returns it and the hidden size H."""
    if isinstance(p, tuple) and type(p) is not tuple and not isinstance(p, cls):
        raise TypeError(f"{fn}: params must be {cls.__name__}, got {type(p).__name__}")
    if not isinstance(p, tuple | list) or len(p) != 2:
        raise TypeError(
            f"{fn}: params must be {cls.__name__}(w_x, b_x), got {type(p).__module__}."
            f"{type(p).__qualname__}"
        )
    p = cls(*p)
    g = GATES[cls]
    for name, a in zip(p._fields, p, strict=True):
        if not is_array_api_obj(a):
            raise TypeError(f"{fn}: params.{name} must be an array, got {type(a).__name__}")
        _validate.floating(fn, f"params.{name}", a, xp, dtype)
    w = p.w_x
    if w.ndim != 2 or w.shape[0] != n_in or w.shape[1] % g or w.shape[1] == 0:
        raise ValueError(
            f"{fn}: params.w_x must have shape (D, {g}*H) with D={n_in} from the input, "
            f"got {tuple(w.shape)}"
        )
    n_h = w.shape[1] // g
    _validate.shape(fn, "params.b_x", p.b_x, (g * n_h,), f"H={n_h}")
    return p, n_h


def _scan_inputs(
    fn: str, xs: Any, p: Any, cls: type, h0: Any, time_major: bool, method: Any, lengths: Any
) -> tuple[_validate.ScanLayout, Adapter, Any]:
    check_method(fn, method)
    xp = _validate.namespace(fn, {"xs": xs, "h0": h0, **_named(p)})
    steps, batch = _validate.sequence(fn, xs, xp, time_major)
    p, n_h = _params(fn, p, cls, xs.shape[-1], xp, xs.dtype)
    if h0 is not None:
        _validate.floating(fn, "h0", h0, xp, xs.dtype)
        _validate.shape(fn, "h0", h0, (*batch, n_h), f"batch shape {batch} of xs, then H={n_h}")
    lay = _validate.ScanLayout(xp, p, steps, batch, n_h)
    adapter = get_adapter(xp)
    if lengths is not None:
        lengths = _validate.lengths(fn, lengths, lay, xs, adapter.concrete(xs))
    return lay, adapter, lengths


def _prepare(
    fn: str,
    xs: Any,
    p: Any,
    cls: type,
    h0: Any,
    time_major: bool,
    method: Any,
    lengths: Any,
) -> tuple[_validate.ScanLayout, Adapter, Array, Array, Array | None, str]:
    """Validate; return the layout, adapter, time-major ``xs``, ``h0``, lengths and method."""
    lay, adapter, lengths = _scan_inputs(fn, xs, p, cls, h0, time_major, method, lengths)
    xp = lay.xp
    if h0 is None:
        h0 = xp.zeros((*lay.batch, lay.hidden), dtype=xs.dtype, device=device(xs))
    xs_tm = move_time(xp, xs, len(lay.batch), time_major, inverse=False)
    width = lay.hidden * math.prod(lay.batch)
    return lay, adapter, xs_tm, h0, lengths, resolve_method(adapter, method, xs, lay.steps, width)


def _step_inputs(fn: str, p: Any, cls: type, h: Any, x: Any) -> tuple[Namespace, Any, int]:
    xp = _validate.namespace(fn, {"x": x, "h": h, **_named(p)})
    _validate.floating(fn, "x", x, xp)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have shape (..., D), got a 0-d array")
    p, n_h = _params(fn, p, cls, x.shape[-1], xp, x.dtype)
    _validate.floating(fn, "h", h, xp, x.dtype, "x")
    _validate.shape(fn, "h", h, (*x.shape[:-1], n_h), "the batch shape of x, then H")
    return xp, p, n_h


# --- cells --------------------------------------------------------------------------------------


def min_gru_cell(params: MinGRUParams, h: Array, x: Array) -> Array:
    r"""One step of a minGRU.

    .. math::
        z &= \sigma(x W_z + b_z), \qquad \tilde h = x W_h + b_h \\
        h' &= (1 - z) \odot h + z \odot \tilde h

    The same arithmetic as each step of :func:`min_gru_scan`; use it to generate one
    step at a time.

    Parameters
    ----------
    params : MinGRUParams
        ``w_x (D, 2H)``, ``b_x (2H,)``, gates ``(z, h̃)``.
    h : array, shape ``(..., H)``
        Previous state; any leading batch shape.
    x : array, shape ``(..., D)``
        Input of this step, with the batch shape of ``h``.

    Returns
    -------
    array, shape ``(..., H)``
        The new state, of the library, dtype and device of ``x``.

    Raises
    ------
    TypeError, ValueError
        On a non-floating or mixed input, params of another cell or a shape mismatch.

    Examples
    --------
    >>> p = polyrnn.init_min_gru(3, 2)
    >>> polyrnn.min_gru_cell(p, np.zeros(2), np.ones(3)).round(4)
    array([ 0.1623, -0.6751])
    """
    xp, p, n_h = _step_inputs("min_gru_cell", params, MinGRUParams, h, x)
    a, b, _ = _linear.min_gru_gates(xp, x @ p.w_x + p.b_x, n_h)
    return a * h + b


def min_lstm_cell(params: MinLSTMParams, h: Array, x: Array) -> Array:
    r"""One step of a minLSTM.

    .. math::
        f &= \sigma(x W_f + b_f), \quad i = \sigma(x W_i + b_i), \quad \tilde h = x W_h + b_h \\
        h' &= \frac{f}{f + i} \odot h + \frac{i}{f + i} \odot \tilde h

    The normalised gates are computed as ``σ(±d)`` with ``d = log f - log i``, exact
    where both gates underflow.  The state is ``h`` alone: minLSTM has no cell state.

    Parameters
    ----------
    params : MinLSTMParams
        ``w_x (D, 3H)``, ``b_x (3H,)``, gates ``(f, i, h̃)``.
    h : array, shape ``(..., H)``
        Previous state.
    x : array, shape ``(..., D)``
        Input of this step.

    Returns
    -------
    array, shape ``(..., H)``
        The new state, of the library, dtype and device of ``x``.

    Raises
    ------
    TypeError, ValueError
        As :func:`min_gru_cell`.

    Examples
    --------
    >>> p = polyrnn.init_min_lstm(3, 2)
    >>> polyrnn.min_lstm_cell(p, np.ones(2), np.ones(3)).round(4)
    array([1.1172, 0.5952])
    """
    xp, p, n_h = _step_inputs("min_lstm_cell", params, MinLSTMParams, h, x)
    a, b = _linear.min_lstm_gates(xp, x @ p.w_x + p.b_x, n_h)[:2]
    return a * h + b


# --- scans --------------------------------------------------------------------------------------


def _scan(
    fn: str,
    cls: type,
    xs: Array,
    params: Any,
    h0: Array | None,
    time_major: bool,
    reverse: bool,
    lengths: Array | None,
    method: str,
) -> tuple[Array, Array]:
    lay, adapter, xs_tm, h0, lengths, method = _prepare(
        fn, xs, params, cls, h0, time_major, method, lengths
    )
    run = adapter.min_gru_scan if cls is MinGRUParams else adapter.min_lstm_scan
    hs, h_last = run(xs_tm, lay.params, h0, lengths=lengths, reverse=bool(reverse), method=method)
    return move_time(lay.xp, hs, len(lay.batch), time_major, inverse=True), h_last


def min_gru_scan(
    xs: Array,
    params: MinGRUParams,
    h0: Array | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
    method: str = "auto",
) -> tuple[Array, Array]:
    r"""Run a minGRU over a sequence: :func:`min_gru_cell` at every step, in parallel.

    .. math::
        h_t = a_t \odot h_{t-1} + b_t, \qquad a_t = 1 - z_t = \sigma(-k_t), \quad
        b_t = z_t \odot \tilde h_t, \qquad (k_t, \tilde h_t) = x_t W_x + b_x

    One matrix product projects every step, the gates of all steps are computed at once,
    and one :func:`~polyrnn.linear_scan` (by ``method``) solves the recurrence.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence of any leading batch shape (none for ``(T, D)``).
    params : MinGRUParams
        ``w_x (D, 2H)``, ``b_x (2H,)``, gates ``(z, h̃)``, of the dtype of ``xs``.
    h0 : array, shape ``(..., H)``, optional
        Initial state; zeros by default.
    time_major : bool
        Whether time is the leading axis of ``xs`` and ``hs``.
    reverse : bool
        Read each sequence from its last (valid) step to its first; ``hs`` keeps the
        original time order.
    lengths : integer array, shape ``(...)``, optional
        Valid length of each sequence, in ``[0, T]``.  At ``t >= lengths`` the state is
        carried (``a = 1``, ``b = 0``) and ``hs`` is zero.  Under :func:`jax.jit` the values of a
        traced ``lengths`` cannot be read, so they are not checked: a length above ``T``
        acts as ``T`` and a negative one as 0 (every other check still runs).
    method : {"auto", "sequential", "parallel"}
        The algorithm of the linear scan, see :func:`~polyrnn.linear_scan`; the numbers
        agree to rounding.

    Returns
    -------
    hs : array, shape ``(..., T, H)`` (``(T, ..., H)`` with ``time_major``)
        State after each step.
    h_last : array, shape ``(..., H)``
        State after the last valid step.

    Both are arrays of the library, dtype and device of ``xs``.  JAX and PyTorch
    differentiate through it; elsewhere use :func:`min_gru_scan_vjp`.

    Raises
    ------
    TypeError
        Non-floating or mixed dtypes, arrays of two libraries, params of another cell, an
        option that is not a bool.
    ValueError
        Shape mismatches, ``lengths`` outside ``[0, T]`` (not under ``jit``), an unknown
        ``method``, arrays on two devices.

    Examples
    --------
    >>> p = polyrnn.init_min_gru(3, 2)
    >>> hs, h = polyrnn.min_gru_scan(np.ones((2, 5, 3)), p, lengths=np.array([5, 2]))
    >>> hs.shape, bool((h[1] == hs[1, 1]).all()), float(abs(hs[1, 2:]).max())
    ((2, 5, 2), True, 0.0)
    >>> hs_p, _ = polyrnn.min_gru_scan(np.ones((2, 5, 3)), p, method="parallel")
    >>> bool(np.allclose(hs_p[0], hs[0]))
    True
    """
    _validate.flags("min_gru_scan", time_major=time_major, reverse=reverse)
    return _scan("min_gru_scan", MinGRUParams, xs, params, h0, time_major, reverse, lengths, method)


def min_lstm_scan(
    xs: Array,
    params: MinLSTMParams,
    h0: Array | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
    method: str = "auto",
) -> tuple[Array, Array]:
    r"""Run a minLSTM over a sequence: :func:`min_lstm_cell` at every step, in parallel.

    .. math::
        h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t, \qquad
        f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence.
    params : MinLSTMParams
        ``w_x (D, 3H)``, ``b_x (3H,)``, gates ``(f, i, h̃)``.
    h0 : array, shape ``(..., H)``, optional
        Initial state; zeros by default.  (minLSTM has no cell state.)
    time_major, reverse, lengths, method
        As in :func:`min_gru_scan`.

    Returns
    -------
    hs : array, shape ``(..., T, H)`` (``(T, ..., H)`` with ``time_major``)
    h_last : array, shape ``(..., H)``

    Raises
    ------
    TypeError, ValueError
        As :func:`min_gru_scan`.

    Examples
    --------
    >>> p = polyrnn.init_min_lstm(3, 2)
    >>> hs, h = polyrnn.min_lstm_scan(np.ones((4, 3)), p, reverse=True)
    >>> hs.shape, bool((hs[0] == h).all())
    ((4, 2), True)
    """
    _validate.flags("min_lstm_scan", time_major=time_major, reverse=reverse)
    return _scan(
        "min_lstm_scan", MinLSTMParams, xs, params, h0, time_major, reverse, lengths, method
    )


# --- hand-written gradients ---------------------------------------------------------------------


def _scan_vjp(
    fn: str,
    cls: type,
    xs: Array,
    params: Any,
    h0: Array | None,
    time_major: bool,
    reverse: bool,
    lengths: Array | None,
    method: str,
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, Any, Array]]]:
    lay, adapter, xs_tm, h0, lengths, method = _prepare(
        fn, xs, params, cls, h0, time_major, method, lengths
    )
    xp, p, n_h, nb = lay.xp, lay.params, lay.hidden, len(lay.batch)
    reverse = bool(reverse)
    gx = project(xp, xs_tm, p.w_x, p.b_x)  # (T, ..., G*H)
    if cls is MinGRUParams:
        a, b, z = _linear.min_gru_gates(xp, gx, n_h)
    else:
        a, b, f, i = _linear.min_lstm_gates(xp, gx, n_h)
    mask = step_mask(xp, lengths, lay.steps) if lay.steps else None
    a_m, b_m = _linear.mask_coefficients(xp, a, b, mask)
    hs_raw, h_last = adapter.linear_scan(a_m, b_m, h0, reverse=reverse, method=method)
    hs_tm = hs_raw if mask is None else xp.where(mask, hs_raw, xp.zeros_like(hs_raw))
    hs = move_time(xp, hs_tm, nb, time_major, inverse=True)
    hs_shape, state = tuple(hs.shape), (*lay.batch, n_h)
    why = f"batch shape {lay.batch} of xs, then H={n_h}"

    def backward(d_hs: Array | None = None, d_h_last: Array | None = None) -> Any:
        d_hs = _cotangent(fn, "d_hs", d_hs, xs=xs, expected=hs_shape, why="the shape of hs")
        d_h_last = _cotangent(fn, "d_h_last", d_h_last, xs=xs, expected=state, why=why)
        dy = move_time(xp, d_hs, nb, time_major, inverse=False)
        if mask is not None:
            dy = xp.where(mask, dy, xp.zeros_like(dy))
        d_a, d_b, d_h0 = _linear.linear_backward(
            adapter, a_m, hs_raw, h0, dy, d_h_last, reverse=reverse, method=method
        )
        if mask is not None:  # a = 1, b = 0 at masked steps: no gradient reaches the gates
            d_a = xp.where(mask, d_a, xp.zeros_like(d_a))
            d_b = xp.where(mask, d_b, xp.zeros_like(d_b))
        cand = gx[..., -n_h:]
        if cls is MinGRUParams:  # a = σ(-k), b = σ(k) h̃: da/dk = -z a, dz/dk = z a
            d_k = (d_b * cand - d_a) * (z * a)
            d_gx = xp.concat([d_k, d_b * z], axis=-1)
        else:  # a = σ(d), b = σ(-d) h̃, d = softplus(-k_i) - softplus(-k_f)
            d_d = (d_a - d_b * cand) * (f * i)
            d_kf = d_d * sigmoid(xp, -gx[..., :n_h])
            d_ki = -(d_d * sigmoid(xp, -gx[..., n_h : 2 * n_h]))
            d_gx = xp.concat([d_kf, d_ki, d_b * i], axis=-1)
        d_xs = project(xp, d_gx, p.w_x.T, xp.zeros_like(p.w_x[:, 0]))
        d_params = cls(outer(xp, xs_tm, d_gx), xp.sum(flat2d(xp, d_gx), axis=0))
        return move_time(xp, d_xs, nb, time_major, inverse=True), d_params, d_h0

    return (hs, h_last), backward


def min_gru_scan_vjp(
    xs: Array,
    params: MinGRUParams,
    h0: Array | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
    method: str = "auto",
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, MinGRUParams, Array]]]:
    r""":func:`min_gru_scan` and its vector-Jacobian product, for libraries without autodiff.

    Takes exactly the arguments of :func:`min_gru_scan`.  The backward pass is the reverse
    linear scan of :func:`~polyrnn.linear_scan_vjp` for ``(d_a, d_b)``, then the gate
    derivatives for all steps at once, and one matrix product each for ``d_xs`` and
    ``d_w_x``:

    .. math::
        \bar k_t = (\bar b_t \odot \tilde h_t - \bar a_t) \odot z_t (1 - z_t), \qquad
        \bar{\tilde h}_t = \bar b_t \odot z_t

    Returns
    -------
    outputs : (hs, h_last)
        What :func:`min_gru_scan` returns.
    backward : callable ``(d_hs=None, d_h_last=None) -> (d_xs, d_params, d_h0)``
        Maps cotangents of the outputs (``None`` means zeros) to those of ``xs`` (its
        shape and layout), the params (a :class:`MinGRUParams`) and ``h0`` (``(..., H)``,
        also when ``h0`` is ``None``).  May be called many times.

    Raises
    ------
    TypeError, ValueError
        As :func:`min_gru_scan`; ``backward`` raises :class:`ValueError` for a cotangent
        of the wrong shape and :class:`TypeError` for one of another dtype or library.

    Examples
    --------
    The gradient agrees with a finite difference:

    >>> p = polyrnn.init_min_gru(3, 2)
    >>> xs = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    >>> (hs, h), backward = polyrnn.min_gru_scan_vjp(xs, p)
    >>> d_xs, d_p, d_h0 = backward(np.ones_like(hs), None)      # gradient of hs.sum()
    >>> d_xs.shape, d_p.w_x.shape, d_h0.shape
    ((4, 3), (3, 4), (2,))
    >>> eps = 1e-6
    >>> bumped = p._replace(b_x=p.b_x + np.array([eps, 0.0, 0.0, 0.0]))
    >>> fd = (polyrnn.min_gru_scan(xs, bumped)[0].sum() - hs.sum()) / eps
    >>> bool(abs(fd - d_p.b_x[0]) < 1e-5)
    True
    """
    _validate.flags("min_gru_scan_vjp", time_major=time_major, reverse=reverse)
    return _scan_vjp(
        "min_gru_scan_vjp", MinGRUParams, xs, params, h0, time_major, reverse, lengths, method
    )


def min_lstm_scan_vjp(
    xs: Array,
    params: MinLSTMParams,
    h0: Array | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
    method: str = "auto",
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, MinLSTMParams, Array]]]:
    r""":func:`min_lstm_scan` and its vector-Jacobian product, for libraries without autodiff.

    Takes exactly the arguments of :func:`min_lstm_scan`; returns as :func:`min_gru_scan_vjp`
    (with a :class:`MinLSTMParams` of cotangents).  With ``d = log f - log i``,
    ``f' = σ(d)`` and ``i' = σ(-d)``:

    .. math::
        \bar d_t = (\bar a_t - \bar b_t \odot \tilde h_t) \odot f'_t i'_t, \quad
        \bar k_{f,t} = \bar d_t \odot (1 - f_t), \quad
        \bar k_{i,t} = -\bar d_t \odot (1 - i_t), \quad
        \bar{\tilde h}_t = \bar b_t \odot i'_t

    Raises
    ------
    TypeError, ValueError
        As :func:`min_gru_scan_vjp`.

    Examples
    --------
    >>> p = polyrnn.init_min_lstm(3, 2)
    >>> (hs, h), backward = polyrnn.min_lstm_scan_vjp(np.ones((2, 4, 3)), p)
    >>> d_xs, d_p, d_h0 = backward(None, np.ones_like(h))     # gradient of h_last.sum()
    >>> d_xs.shape, d_p.b_x.shape, d_h0.shape
    ((2, 4, 3), (6,), (2, 2))
    """
    _validate.flags("min_lstm_scan_vjp", time_major=time_major, reverse=reverse)
    return _scan_vjp(
        "min_lstm_scan_vjp", MinLSTMParams, xs, params, h0, time_major, reverse, lengths, method
    )
