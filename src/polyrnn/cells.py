r"""One step of each recurrent cell, written once against the Array API.

The gate arithmetic lives in the ``*_step`` functions, which take the input already
projected (``gx = x w_x + b``, see ``fused_bias``): a scan projects all time steps
with one matrix product and then calls the step once per time step, and the public
cells call the same step for a single ``x``.  One home for each equation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _validate
from ._cell import (
    Back,
    Carry,
    Cell,
    Coefficients,
    Finish,
    Logistic,
    Primitives,
    ResidualStep,
    Step,
)
from ._compat import Array, Namespace
from ._recurrence import flat2d, outer
from .params import GRUParams, LSTMParams, MinGRUParams, MinLSTMParams, RNNParams

__all__ = ["gru_cell", "lstm_cell", "rnn_cell"]


def sigmoid(xp: Namespace, x: Array) -> Array:
    """Logistic function, exact in both tails: ``e = exp(-|x|)``, no overflow."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(xp: Namespace, x: Array) -> Array:
    """``log(1 + e^x)``, exact in both tails."""
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


ACTIVATIONS: dict[str, Callable[[Namespace, Array], Array]] = {
    "tanh": lambda xp, x: xp.tanh(x),
    "sigmoid": sigmoid,
    "relu": lambda xp, x: xp.maximum(x, xp.zeros_like(x)),
}
"""Activations of :func:`rnn_cell` by name."""


def fused_bias(xp: Namespace, params: Any, reset_after: bool = False) -> Array:
    """The bias added to the hoisted input projection: ``b_x`` plus every part of ``b_h``
    that sits outside a reset gate (all of it, except ``b_hn`` of a ``reset_after`` GRU)."""
    if isinstance(params, GRUParams) and reset_after:
        h = params.b_h.shape[-1] // 3
        zeros = xp.zeros_like(params.b_h[2 * h :])
        return params.b_x + xp.concat([params.b_h[: 2 * h], zeros])
    return params.b_x + params.b_h


def rnn_step(
    xp: Namespace, h: Array, gx: Array, w_h: Array, activation: str, logistic: Logistic = sigmoid
) -> Array:
    """``act(gx + h w_h)``, with ``gx = x w_x + b_x + b_h``."""
    act = logistic if activation == "sigmoid" else ACTIVATIONS[activation]
    return act(xp, gx + h @ w_h)


def gru_gates(
    xp: Namespace,
    h: Array,
    gx: Array,
    w_h: Array,
    b_hn: Array,
    reset_after: bool,
    logistic: Logistic = sigmoid,
) -> tuple[Array, Array, Array, Array]:
    """The GRU's gates ``(r, z, n, q)`` from the projected input ``gx = x w_x + fused_bias``.

    ``q`` is what the reset gate multiplies: ``h w_hn + b_hn`` with ``reset_after``, else
    ``h`` itself (then ``n = tanh(gx_n + (r*h) w_hn)``).  Backpropagation keeps all four.
    """
    n_h = h.shape[-1]
    if reset_after:
        gh = h @ w_h
        r = logistic(xp, gx[..., :n_h] + gh[..., :n_h])
        z = logistic(xp, gx[..., n_h : 2 * n_h] + gh[..., n_h : 2 * n_h])
        q = gh[..., 2 * n_h :] + b_hn
        n = xp.tanh(gx[..., 2 * n_h :] + r * q)
    else:
        gh = h @ w_h[:, : 2 * n_h]
        r = logistic(xp, gx[..., :n_h] + gh[..., :n_h])
        z = logistic(xp, gx[..., n_h : 2 * n_h] + gh[..., n_h:])
        q = r * h
        n = xp.tanh(gx[..., 2 * n_h :] + q @ w_h[:, 2 * n_h :])
    return r, z, n, q


def gru_step(
    xp: Namespace,
    h: Array,
    gx: Array,
    w_h: Array,
    b_hn: Array,
    reset_after: bool,
    logistic: Logistic = sigmoid,
) -> Array:
    """One GRU update ``h' = n + z (h - n)`` from the projected input ``gx``, ``(..., 3H)``."""
    _, z, n, _ = gru_gates(xp, h, gx, w_h, b_hn, reset_after, logistic)
    return n + z * (h - n)


def lstm_gates(
    xp: Namespace,
    carry: tuple[Array, Array],
    gx: Array,
    w_h: Array,
    logistic: Logistic = sigmoid,
) -> tuple[Array, Array, Array, Array, Array, Array]:
    """The LSTM's gates ``(i, f, g, o)``, the new cell state and its ``tanh``."""
    h, c = carry
    n_h = h.shape[-1]
    a = gx + h @ w_h
    i = logistic(xp, a[..., :n_h])
    f = logistic(xp, a[..., n_h : 2 * n_h])
    g = xp.tanh(a[..., 2 * n_h : 3 * n_h])
    o = logistic(xp, a[..., 3 * n_h :])
    c_new = f * c + i * g
    return i, f, g, o, c_new, xp.tanh(c_new)


def lstm_step(
    xp: Namespace,
    carry: tuple[Array, Array],
    gx: Array,
    w_h: Array,
    logistic: Logistic = sigmoid,
) -> tuple[Array, Array]:
    """One LSTM update from the projected input ``gx = x w_x + b_x + b_h``, ``(..., 4H)``."""
    *_, o, c_new, tanh_c = lstm_gates(xp, carry, gx, w_h, logistic)
    return o * tanh_c, c_new


def rnn_cell(params: RNNParams, h: Array, x: Array, *, activation: str = "tanh") -> Array:
    r"""One step of a vanilla (Elman) RNN.

    .. math::
        h' = \mathrm{act}(x W_x + b_x + h W_h + b_h)

    Parameters
    ----------
    params : RNNParams
        ``w_x (D, H)``, ``w_h (H, H)``, ``b_x (H,)``, ``b_h (H,)``.
    h : array, shape ``(..., H)``
        Previous hidden state; any leading batch shape.
    x : array, shape ``(..., D)``
        Input of this step, with the same batch shape as ``h``.
    activation : {"tanh", "sigmoid", "relu"}
        Nonlinearity ``act``.

    Returns
    -------
    array, shape ``(..., H)``
        The new hidden state, of the library, dtype and device of ``x``.

    Raises
    ------
    TypeError, ValueError
        On a non-floating or mixed input, a shape mismatch or an unknown activation.

    Examples
    --------
    >>> p = polyrnn.init_rnn(3, 2)
    >>> polyrnn.rnn_cell(p, np.zeros(2), np.ones(3), activation="sigmoid").round(4)
    array([0.719 , 0.1433])
    """
    xp, _ = _validate.step_inputs("rnn_cell", params, RNNParams, x, h=h)
    _validate.choice("rnn_cell", "activation", activation, ACTIVATIONS)
    gx = x @ params.w_x + fused_bias(xp, params)
    return rnn_step(xp, h, gx, params.w_h, activation)


def gru_cell(params: GRUParams, h: Array, x: Array, *, reset_after: bool = False) -> Array:
    r"""One step of a GRU.

    .. math::
        r &= \sigma(x W_{xr} + b_{xr} + h W_{hr} + b_{hr}) \\
        z &= \sigma(x W_{xz} + b_{xz} + h W_{hz} + b_{hz}) \\
        n &= \tanh(x W_{xn} + b_{xn} + (r \odot h) W_{hn} + b_{hn})
             \quad\text{or, with reset\_after,}\quad
             \tanh(x W_{xn} + b_{xn} + r \odot (h W_{hn} + b_{hn})) \\
        h' &= (1 - z) \odot n + z \odot h

    ``reset_after=False`` is Cho et al. (2014), the seed notebook and trax;
    ``reset_after=True`` is :class:`torch.nn.GRU`, cuDNN, flax and Keras 3's default.

    Parameters
    ----------
    params : GRUParams
        ``w_x (D, 3H)``, ``w_h (H, 3H)``, ``b_x (3H,)``, ``b_h (3H,)``, gates ``(r, z, n)``.
    h : array, shape ``(..., H)``
        Previous hidden state.
    x : array, shape ``(..., D)``
        Input of this step.
    reset_after : bool
        Where the reset gate applies, see above.

    Returns
    -------
    array, shape ``(..., H)``
        The new hidden state, of the library, dtype and device of ``x``.

    Raises
    ------
    TypeError, ValueError
        On a non-floating or mixed input or a shape mismatch.

    Examples
    --------
    >>> p = polyrnn.init_gru(3, 2)
    >>> polyrnn.gru_cell(p, np.zeros(2), np.ones(3)).round(4)
    array([ 0.4936, -0.3153])
    """
    _validate.flags("gru_cell", reset_after=reset_after)
    xp, _ = _validate.step_inputs("gru_cell", params, GRUParams, x, h=h)
    gx = x @ params.w_x + fused_bias(xp, params, reset_after)
    n_h = h.shape[-1]
    return gru_step(xp, h, gx, params.w_h, params.b_h[2 * n_h :], reset_after)


def lstm_cell(params: LSTMParams, carry: tuple[Array, Array], x: Array) -> tuple[Array, Array]:
    r"""One step of an LSTM.

    .. math::
        (i, f, g, o) &= (\sigma, \sigma, \tanh, \sigma)(x W_x + b_x + h W_h + b_h) \\
        c' &= f \odot c + i \odot g \\
        h' &= o \odot \tanh(c')

    Parameters
    ----------
    params : LSTMParams
        ``w_x (D, 4H)``, ``w_h (H, 4H)``, ``b_x (4H,)``, ``b_h (4H,)``, gates ``(i, f, g, o)``.
    carry : (array, array), each of shape ``(..., H)``
        Previous hidden and cell states ``(h, c)``.
    x : array, shape ``(..., D)``
        Input of this step.

    Returns
    -------
    (array, array)
        The new ``(h, c)``, of the library, dtype and device of ``x``.

    Raises
    ------
    TypeError, ValueError
        On a non-floating or mixed input or a shape mismatch.

    Examples
    --------
    >>> p = polyrnn.init_lstm(3, 2)
    >>> h, c = polyrnn.lstm_cell(p, (np.zeros(2), np.zeros(2)), np.ones(3))
    >>> h.round(4), c.round(4)
    (array([ 0.1671, -0.1581]), array([ 0.3299, -0.3772]))
    """
    if not isinstance(carry, tuple | list) or len(carry) != 2:
        raise TypeError(f"lstm_cell: carry must be a pair (h, c), got {type(carry).__name__}")
    h, c = carry
    xp, _ = _validate.step_inputs("lstm_cell", params, LSTMParams, x, h=h, c=c)
    gx = x @ params.w_x + fused_bias(xp, params)
    return lstm_step(xp, (h, c), gx, params.w_h)


# --- the records: each cell's forward step and backpropagation, for the generic engines ---


def _plain_bias(xp: Namespace, p: Any, **options: Any) -> Array:
    return p.b_x + p.b_h


def _rnn_step(xp: Namespace, p: RNNParams, logistic: Logistic, *, activation: str) -> Step:
    w_h = p.w_h
    return lambda c, g: (rnn_step(xp, c[0], g, w_h, activation, logistic),)


def _gru_bias(xp: Namespace, p: GRUParams, *, reset_after: bool) -> Array:
    return fused_bias(xp, p, reset_after)


def _gru_step(xp: Namespace, p: GRUParams, logistic: Logistic, *, reset_after: bool) -> Step:
    w_h, b_hn = p.w_h, p.b_h[2 * p.w_h.shape[0] :]
    return lambda c, g: (gru_step(xp, c[0], g, w_h, b_hn, reset_after, logistic),)


def _lstm_step(xp: Namespace, p: LSTMParams, logistic: Logistic) -> Step:
    w_h = p.w_h
    return lambda c, g: lstm_step(xp, c, g, w_h, logistic)


def _rnn_vjp(
    xp: Namespace, p: RNNParams, logistic: Logistic, *, activation: str
) -> tuple[ResidualStep, Back, Finish]:
    w_h, w_h_t = p.w_h, p.w_h.T

    def step(c: Carry, g: Array) -> tuple[Carry, tuple[Array, ...]]:
        (h,) = c
        y = rnn_step(xp, h, g, w_h, activation, logistic)
        return (y,), (h, y)

    def back(r: tuple[Array, ...], d: Carry) -> tuple[Carry, tuple[Array, ...]]:
        _, y = r
        (dy,) = d
        if activation == "tanh":
            da = dy * (1.0 - y * y)
        elif activation == "sigmoid":
            da = dy * (y * (1.0 - y))
        else:  # relu: y > 0 exactly where the pre-activation is
            da = xp.where(y > 0, dy, xp.zeros_like(dy))
        return (da @ w_h_t,), (da,)

    def finish(res: tuple[Array, ...], grads: tuple[Array, ...], db: Array) -> dict[str, Array]:
        return {"w_h": outer(xp, res[0], grads[0]), "b_h": db}

    return step, back, finish


def _gru_vjp(
    xp: Namespace, p: GRUParams, logistic: Logistic, *, reset_after: bool
) -> tuple[ResidualStep, Back, Finish]:
    n_h = p.w_h.shape[0]
    w_h = p.w_h
    b_hn = p.b_h[2 * n_h :]
    w_rz, w_n = w_h[:, : 2 * n_h], w_h[:, 2 * n_h :]
    w_h_t, w_rz_t, w_n_t = w_h.T, w_rz.T, w_n.T

    def step(c: Carry, g: Array) -> tuple[Carry, tuple[Array, ...]]:
        (h,) = c
        r, z, n, q = gru_gates(xp, h, g, w_h, b_hn, reset_after, logistic)
        return (n + z * (h - n),), (h, r, z, n, q)

    def back(res: tuple[Array, ...], d: Carry) -> tuple[Carry, tuple[Array, ...]]:
        h, r, z, n, q = res
        (dh,) = d
        dz = dh * (h - n)
        dh_prev = dh * z
        da_n = (dh * (1.0 - z)) * (1.0 - n * n)
        if reset_after:  # n = tanh(gx_n + r * q), q = h w_hn + b_hn
            dr = da_n * q
            dq = da_n * r
        else:  # n = tanh(gx_n + q w_hn), q = r * h
            d_rh = da_n @ w_n_t
            dr = d_rh * h
            dh_prev = dh_prev + d_rh * r
        da_rz = xp.concat([dr * (r * (1.0 - r)), dz * (z * (1.0 - z))], axis=-1)
        dgx = xp.concat([da_rz, da_n], axis=-1)
        if reset_after:
            dgh = xp.concat([da_rz, dq], axis=-1)
            return (dh_prev + dgh @ w_h_t,), (dgx, dgh)
        return (dh_prev + da_rz @ w_rz_t,), (dgx,)

    def finish(res: tuple[Array, ...], grads: tuple[Array, ...], db: Array) -> dict[str, Array]:
        h, q = res[0], res[4]
        if reset_after:
            dgh = grads[1]
            db_h = xp.concat([db[: 2 * n_h], xp.sum(flat2d(xp, dgh[..., 2 * n_h :]), axis=0)])
            return {"w_h": outer(xp, h, dgh), "b_h": db_h}
        dgx = grads[0]
        dw_h = xp.concat(
            [outer(xp, h, dgx[..., : 2 * n_h]), outer(xp, q, dgx[..., 2 * n_h :])], axis=1
        )
        return {"w_h": dw_h, "b_h": db}

    return step, back, finish


def _lstm_vjp(
    xp: Namespace, p: LSTMParams, logistic: Logistic
) -> tuple[ResidualStep, Back, Finish]:
    w_h, w_h_t = p.w_h, p.w_h.T

    def step(c: Carry, g: Array) -> tuple[Carry, tuple[Array, ...]]:
        h, cc = c
        i, f, gg, o, c_new, tc = lstm_gates(xp, (h, cc), g, w_h, logistic)
        return (o * tc, c_new), (h, cc, i, f, gg, o, tc)

    def back(res: tuple[Array, ...], d: Carry) -> tuple[Carry, tuple[Array, ...]]:
        _, cc, i, f, gg, o, tc = res
        dh, dc = d
        dc = dc + dh * o * (1.0 - tc * tc)
        da = xp.concat(
            [
                (dc * gg) * (i * (1.0 - i)),
                (dc * cc) * (f * (1.0 - f)),
                (dc * i) * (1.0 - gg * gg),
                (dh * tc) * (o * (1.0 - o)),
            ],
            axis=-1,
        )
        return (da @ w_h_t, dc * f), (da,)

    def finish(res: tuple[Array, ...], grads: tuple[Array, ...], db: Array) -> dict[str, Array]:
        return {"w_h": outer(xp, res[0], grads[0]), "b_h": db}

    return step, back, finish


# --- the linear cells: minGRU and minLSTM (Feng et al. 2024), see polyrnn.minrnn ---


def _min_gru_linear(
    xp: Namespace, gx: Array, n_h: int, ops: Primitives
) -> tuple[Array, Array, Callable[[Array, Array], Array]]:
    """``a = 1 - z = σ(-k)`` (exact where ``z`` rounds to 1) and ``b = z h̃`` from
    ``gx = (k, h̃)``; backwards ``dk = (db h̃ - da) z a``, ``dh̃ = db z``."""
    sigmoid, _ = ops
    k, cand = gx[..., :n_h], gx[..., n_h:]
    z, a = sigmoid(xp, k), sigmoid(xp, -k)

    def back(d_a: Array, d_b: Array) -> Array:
        return xp.concat([(d_b * cand - d_a) * (z * a), d_b * z], axis=-1)

    return a, z * cand, back


def _min_lstm_linear(
    xp: Namespace, gx: Array, n_h: int, ops: Primitives
) -> tuple[Array, Array, Callable[[Array, Array], Array]]:
    """``a = f / (f + i) = σ(d)`` and ``b = σ(-d) h̃`` with ``d = log f - log i =
    softplus(-k_i) - softplus(-k_f)``, from ``gx = (k_f, k_i, h̃)``: no division, no
    ``0 / 0`` where both gates underflow.  Backwards ``dd = (da - db h̃) f' i'``,
    ``dk_f = dd σ(-k_f)``, ``dk_i = -dd σ(-k_i)``, ``dh̃ = db i'``."""
    sigmoid, softplus_ = ops
    k_f, k_i, cand = gx[..., :n_h], gx[..., n_h : 2 * n_h], gx[..., 2 * n_h :]
    d = softplus_(xp, -k_i) - softplus_(xp, -k_f)
    f, i = sigmoid(xp, d), sigmoid(xp, -d)

    def back(d_a: Array, d_b: Array) -> Array:
        d_d = (d_a - d_b * cand) * (f * i)
        return xp.concat([d_d * sigmoid(xp, -k_f), -(d_d * sigmoid(xp, -k_i)), d_b * i], axis=-1)

    return f, i * cand, back


def _linear_step(form: Coefficients, gates: int) -> Callable[..., Step]:
    """The step ``h' = a h + b`` of a linear cell, with the reference softplus."""

    def make(xp: Namespace, p: Any, logistic: Logistic) -> Step:
        n_h, ops = p.b_x.shape[-1] // gates, (logistic, softplus)

        def step(c: Carry, g: Array) -> Carry:
            a, b, _ = form(xp, g, n_h, ops)
            return (a * c[0] + b,)

        return step

    return make


def _input_bias(xp: Namespace, p: Any) -> Array:
    return p.b_x


RNN = Cell("rnn", RNNParams, 1, ("h",), _plain_bias, _rnn_step, _rnn_vjp, ("activation",))
"""The vanilla RNN: :func:`rnn_scan`, :func:`~polyrnn.vjp.rnn_scan_vjp`."""
GRU = Cell("gru", GRUParams, 3, ("h",), _gru_bias, _gru_step, _gru_vjp, ("reset_after",))
"""The GRU: :func:`gru_scan`, :func:`~polyrnn.vjp.gru_scan_vjp`."""
LSTM = Cell("lstm", LSTMParams, 4, ("h", "c"), _plain_bias, _lstm_step, _lstm_vjp)
"""The LSTM: :func:`lstm_scan`, :func:`~polyrnn.vjp.lstm_scan_vjp`."""
MIN_GRU = Cell(
    "min_gru", MinGRUParams, 2, ("h",), _input_bias, _linear_step(_min_gru_linear, 2), None,
    linear=_min_gru_linear,
)  # fmt: skip
"""minGRU: :func:`~polyrnn.min_gru_scan`, :func:`~polyrnn.min_gru_scan_vjp`."""
MIN_LSTM = Cell(
    "min_lstm", MinLSTMParams, 3, ("h",), _input_bias, _linear_step(_min_lstm_linear, 3), None,
    linear=_min_lstm_linear,
)  # fmt: skip
"""minLSTM: :func:`~polyrnn.min_lstm_scan`, :func:`~polyrnn.min_lstm_scan_vjp`."""
BUILTIN = {cell.name: cell for cell in (RNN, GRU, LSTM, MIN_GRU, MIN_LSTM)}
"""The built-in cells by name: an adapter may hold a fused kernel for each."""


def builtin(cell: Cell) -> bool:
    """Whether ``cell`` is one of :data:`BUILTIN` (a user's record may reuse a name)."""
    return BUILTIN.get(cell.name) is cell
