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
from .params import (
    GRUParams,
    LNGRUParams,
    LNLSTMParams,
    LSTMParams,
    MinGRUParams,
    MinLSTMParams,
    RNNParams,
)

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


def _masked(mask: Array | None) -> Callable[[Array], Array]:
    """``a -> a * mask`` (recurrent dropout), or the identity without a mask."""
    if mask is None:
        return lambda a: a
    return lambda a: a * mask


def _rnn_step(
    xp: Namespace, p: RNNParams, logistic: Logistic, *, activation: str, mask: Array | None = None
) -> Step:
    w_h, m = p.w_h, _masked(mask)
    return lambda c, g: (rnn_step(xp, m(c[0]), g, w_h, activation, logistic),)


def _gru_bias(xp: Namespace, p: GRUParams, *, reset_after: bool) -> Array:
    return fused_bias(xp, p, reset_after)


def _gru_step(
    xp: Namespace, p: GRUParams, logistic: Logistic, *, reset_after: bool, mask: Array | None = None
) -> Step:
    w_h, b_hn = p.w_h, p.b_h[2 * p.w_h.shape[0] :]
    if mask is None:
        return lambda c, g: (gru_step(xp, c[0], g, w_h, b_hn, reset_after, logistic),)

    def step(c: Carry, g: Array) -> Carry:
        _, z, n, _ = gru_gates(xp, c[0] * mask, g, w_h, b_hn, reset_after, logistic)
        return (n + z * (c[0] - n),)

    return step


def _lstm_step(
    xp: Namespace, p: LSTMParams, logistic: Logistic, *, mask: Array | None = None
) -> Step:
    w_h, m = p.w_h, _masked(mask)
    return lambda c, g: lstm_step(xp, (m(c[0]), c[1]), g, w_h, logistic)


def _rnn_vjp(
    xp: Namespace, p: RNNParams, logistic: Logistic, *, activation: str, mask: Array | None = None
) -> tuple[ResidualStep, Back, Finish]:
    w_h, w_h_t, m = p.w_h, p.w_h.T, _masked(mask)

    def step(c: Carry, g: Array) -> tuple[Carry, tuple[Array, ...]]:
        h_in = m(c[0])
        y = rnn_step(xp, h_in, g, w_h, activation, logistic)
        return (y,), (h_in, y)

    def back(r: tuple[Array, ...], d: Carry) -> tuple[Carry, tuple[Array, ...]]:
        _, y = r
        (dy,) = d
        if activation == "tanh":
            da = dy * (1.0 - y * y)
        elif activation == "sigmoid":
            da = dy * (y * (1.0 - y))
        else:  # relu: y > 0 exactly where the pre-activation is
            da = xp.where(y > 0, dy, xp.zeros_like(dy))
        return (m(da @ w_h_t),), (da,)

    def finish(res: tuple[Array, ...], grads: tuple[Array, ...], db: Array) -> dict[str, Array]:
        return {"w_h": outer(xp, res[0], grads[0]), "b_h": db}

    return step, back, finish


def _gru_vjp(
    xp: Namespace, p: GRUParams, logistic: Logistic, *, reset_after: bool, mask: Array | None = None
) -> tuple[ResidualStep, Back, Finish]:
    n_h = p.w_h.shape[0]
    w_h = p.w_h
    b_hn = p.b_h[2 * n_h :]
    w_rz, w_n = w_h[:, : 2 * n_h], w_h[:, 2 * n_h :]
    w_h_t, w_rz_t, w_n_t = w_h.T, w_rz.T, w_n.T
    m = _masked(mask)
    k_in = 0 if mask is None else 5  # where the residuals hold h_in = h * mask

    def step(c: Carry, g: Array) -> tuple[Carry, tuple[Array, ...]]:
        (h,) = c
        h_in = m(h)
        r, z, n, q = gru_gates(xp, h_in, g, w_h, b_hn, reset_after, logistic)
        return (n + z * (h - n),), (h, r, z, n, q) if mask is None else (h, r, z, n, q, h_in)

    def back(res: tuple[Array, ...], d: Carry) -> tuple[Carry, tuple[Array, ...]]:
        h, r, z, n, q = res[:5]
        (dh,) = d
        dz = dh * (h - n)
        dh_prev = dh * z
        da_n = (dh * (1.0 - z)) * (1.0 - n * n)
        if reset_after:  # n = tanh(gx_n + r * q), q = h_in w_hn + b_hn
            dr = da_n * q
            dq = da_n * r
        else:  # n = tanh(gx_n + q w_hn), q = r * h_in
            d_rh = da_n @ w_n_t
            dr = d_rh * res[k_in]
            dh_prev = dh_prev + m(d_rh * r)
        da_rz = xp.concat([dr * (r * (1.0 - r)), dz * (z * (1.0 - z))], axis=-1)
        dgx = xp.concat([da_rz, da_n], axis=-1)
        if reset_after:
            dgh = xp.concat([da_rz, dq], axis=-1)
            return (dh_prev + m(dgh @ w_h_t),), (dgx, dgh)
        return (dh_prev + m(da_rz @ w_rz_t),), (dgx,)

    def finish(res: tuple[Array, ...], grads: tuple[Array, ...], db: Array) -> dict[str, Array]:
        h, q = res[k_in], res[4]
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


def _lstm_gate_grads(
    xp: Namespace,
    dh: Array,
    dc: Array,
    c: Array,
    i: Array,
    f: Array,
    g: Array,
    o: Array,
    t: Array,
) -> Array:
    """The cotangent of an LSTM's gate pre-activations ``(i, f, g, o)`` from those of ``h' =
    o t`` and (all paths summed) of ``c' = f c + i g``; ``t`` is what ``o`` multiplies."""
    return xp.concat(
        [
            (dc * g) * (i * (1.0 - i)),
            (dc * c) * (f * (1.0 - f)),
            (dc * i) * (1.0 - g * g),
            (dh * t) * (o * (1.0 - o)),
        ],
        axis=-1,
    )


def _lstm_vjp(
    xp: Namespace, p: LSTMParams, logistic: Logistic, *, mask: Array | None = None
) -> tuple[ResidualStep, Back, Finish]:
    w_h, w_h_t, m = p.w_h, p.w_h.T, _masked(mask)

    def step(c: Carry, g: Array) -> tuple[Carry, tuple[Array, ...]]:
        h_in, cc = m(c[0]), c[1]
        i, f, gg, o, c_new, tc = lstm_gates(xp, (h_in, cc), g, w_h, logistic)
        return (o * tc, c_new), (h_in, cc, i, f, gg, o, tc)

    def back(res: tuple[Array, ...], d: Carry) -> tuple[Carry, tuple[Array, ...]]:
        _, cc, i, f, gg, o, tc = res
        dh, dc = d
        dc = dc + dh * o * (1.0 - tc * tc)
        da = _lstm_gate_grads(xp, dh, dc, cc, i, f, gg, o, tc)
        return (m(da @ w_h_t), dc * f), (da,)

    def finish(res: tuple[Array, ...], grads: tuple[Array, ...], db: Array) -> dict[str, Array]:
        return {"w_h": outer(xp, res[0], grads[0]), "b_h": db}

    return step, back, finish


# --- the layer-normalised cells (Ba, Kiros & Hinton 2016), see polyrnn.lnrnn ---

LN_EPS = 1e-5
"""The ε of every layer normalisation, ``(a - μ) / sqrt(σ² + ε)``: that of
:class:`torch.nn.LayerNorm`."""


def layer_norm(
    xp: Namespace, a: Array, gain: Array, shift: Array, groups: int
) -> tuple[Array, Array, Array]:
    """``gain ⊙ â + shift`` with ``â`` each of the ``groups`` blocks of ``a (..., G H)``
    normalised over its ``H`` entries, ``â = (a - μ) / sqrt(σ² + ε)`` (biased variance);
    returns it, ``â`` and ``1 / sqrt(σ² + ε)`` (``(..., G, 1)``) for the backward pass."""
    shape = a.shape
    blocks = xp.reshape(a, (*shape[:-1], groups, shape[-1] // groups))
    centred = blocks - xp.mean(blocks, axis=-1, keepdims=True)
    rstd = 1.0 / xp.sqrt(xp.mean(centred * centred, axis=-1, keepdims=True) + LN_EPS)
    normed = xp.reshape(centred * rstd, shape)
    return normed * gain + shift, normed, rstd


def layer_norm_back(
    xp: Namespace, d_out: Array, normed: Array, rstd: Array, gain: Array, groups: int
) -> Array:
    """The cotangent of :func:`layer_norm`'s input ``a`` from that of its output:
    ``rstd (d - mean(d) - â mean(d ⊙ â))`` per block, with ``d = d_out ⊙ gain``."""
    shape = d_out.shape
    blocks = (*shape[:-1], groups, shape[-1] // groups)
    d = xp.reshape(d_out * gain, blocks)
    n = xp.reshape(normed, blocks)
    mean_d = xp.mean(d, axis=-1, keepdims=True)
    mean_dn = xp.mean(d * n, axis=-1, keepdims=True)
    return xp.reshape(rstd * (d - mean_d - n * mean_dn), shape)


def _column_sum(xp: Namespace, a: Array) -> Array:
    """The sum of ``a (T, ..., F)`` over all axes but the last: ``(F,)``."""
    return xp.sum(flat2d(xp, a), axis=0)


def _no_bias(xp: Namespace, p: Any) -> Array:
    """The layer-normalised cells add nothing to ``x W_x``: their shifts act after the
    normalisation, in the step."""
    return xp.zeros_like(p.b_x)


def ln_gru_update(
    xp: Namespace,
    h: Array,
    gx: Array,
    p: LNGRUParams,
    logistic: Logistic = sigmoid,
    h_in: Array | None = None,
) -> tuple[Array, tuple[Array, ...]]:
    """One layer-normalised GRU step from ``gx = x W_x``: ``(h', residuals)``.

    ``a_x = LN(x W_x; g_x, b_x)``, ``a_h = LN(h_in W_h; g_h, b_h)`` (per gate), ``r, z =
    σ(a_x + a_h)``, ``n = tanh(a_xn + r ⊙ a_hn)``, ``h' = n + z (h - n)``, where ``h_in``
    is ``h`` or, with recurrent dropout, ``h ⊙ mask``.  The residuals are what
    :func:`_ln_gru_vjp`'s backward step and finish read.
    """
    n_h = h.shape[-1]
    a_x, n_x, s_x = layer_norm(xp, gx, p.g_x, p.b_x, 3)
    a_h, n_hh, s_h = layer_norm(xp, (h if h_in is None else h_in) @ p.w_h, p.g_h, p.b_h, 3)
    r = logistic(xp, a_x[..., :n_h] + a_h[..., :n_h])
    z = logistic(xp, a_x[..., n_h : 2 * n_h] + a_h[..., n_h : 2 * n_h])
    q = a_h[..., 2 * n_h :]
    n = xp.tanh(a_x[..., 2 * n_h :] + r * q)
    return n + z * (h - n), (h, r, z, n, q, n_x, s_x, n_hh, s_h)


def _ln_gru_step(
    xp: Namespace, p: LNGRUParams, logistic: Logistic, *, mask: Array | None = None
) -> Step:
    m = _masked(mask)
    return lambda c, g: (ln_gru_update(xp, c[0], g, p, logistic, m(c[0]))[0],)


def _ln_gru_vjp(
    xp: Namespace, p: LNGRUParams, logistic: Logistic, *, mask: Array | None = None
) -> tuple[ResidualStep, Back, Finish]:
    w_h_t, m = p.w_h.T, _masked(mask)

    def step(c: Carry, g: Array) -> tuple[Carry, tuple[Array, ...]]:
        h_in = m(c[0])
        h_new, res = ln_gru_update(xp, c[0], g, p, logistic, h_in)
        return (h_new,), res if mask is None else (*res, h_in)

    def back(res: tuple[Array, ...], d: Carry) -> tuple[Carry, tuple[Array, ...]]:
        h, r, z, n, q, n_x, s_x, n_hh, s_h = res[:9]
        (dh,) = d
        da_n = (dh * (1.0 - z)) * (1.0 - n * n)
        da_r = (da_n * q) * (r * (1.0 - r))
        da_z = (dh * (h - n)) * (z * (1.0 - z))
        d_ax = xp.concat([da_r, da_z, da_n], axis=-1)  # cotangents of the normalised
        d_ah = xp.concat([da_r, da_z, da_n * r], axis=-1)  # input and recurrent parts
        dgx = layer_norm_back(xp, d_ax, n_x, s_x, p.g_x, 3)
        dgh = layer_norm_back(xp, d_ah, n_hh, s_h, p.g_h, 3)
        return (dh * z + m(dgh @ w_h_t),), (dgx, dgh, d_ax, d_ah)

    def finish(res: tuple[Array, ...], grads: tuple[Array, ...], db: Array) -> dict[str, Array]:
        h, n_x, n_hh = res[0 if mask is None else 9], res[5], res[7]  # h_in
        _, dgh, d_ax, d_ah = grads
        return {
            "w_h": outer(xp, h, dgh),
            "b_x": _column_sum(xp, d_ax),
            "b_h": _column_sum(xp, d_ah),
            "g_x": _column_sum(xp, d_ax * n_x),
            "g_h": _column_sum(xp, d_ah * n_hh),
        }

    return step, back, finish


def ln_lstm_update(
    xp: Namespace,
    carry: tuple[Array, Array],
    gx: Array,
    p: LNLSTMParams,
    logistic: Logistic = sigmoid,
) -> tuple[tuple[Array, Array], tuple[Array, ...]]:
    """One layer-normalised LSTM step from ``gx = x W_x``: ``((h', c'), residuals)``.

    ``(a_i, a_f, a_g, a_o) = LN(x W_x; g_x, b_x) + LN(h W_h; g_h, b_h)`` (per gate),
    ``c' = σ(a_f) c + σ(a_i) tanh(a_g)``, ``h' = σ(a_o) tanh(LN(c'; g_c, b_c))``.  The
    carry's ``h`` enters ``W_h`` alone, so recurrent dropout passes ``(h ⊙ mask, c)``.
    """
    h, c = carry
    n_h = h.shape[-1]
    a_x, n_x, s_x = layer_norm(xp, gx, p.g_x, p.b_x, 4)
    a_h, n_hh, s_h = layer_norm(xp, h @ p.w_h, p.g_h, p.b_h, 4)
    a = a_x + a_h
    i = logistic(xp, a[..., :n_h])
    f = logistic(xp, a[..., n_h : 2 * n_h])
    g = xp.tanh(a[..., 2 * n_h : 3 * n_h])
    o = logistic(xp, a[..., 3 * n_h :])
    c_new = f * c + i * g
    l_c, n_c, s_c = layer_norm(xp, c_new, p.g_c, p.b_c, 1)
    t = xp.tanh(l_c)
    return (o * t, c_new), (h, c, i, f, g, o, t, n_x, s_x, n_hh, s_h, n_c, s_c)


def _ln_lstm_step(
    xp: Namespace, p: LNLSTMParams, logistic: Logistic, *, mask: Array | None = None
) -> Step:
    m = _masked(mask)
    return lambda c, g: ln_lstm_update(xp, (m(c[0]), c[1]), g, p, logistic)[0]


def _ln_lstm_vjp(
    xp: Namespace, p: LNLSTMParams, logistic: Logistic, *, mask: Array | None = None
) -> tuple[ResidualStep, Back, Finish]:
    w_h_t, m = p.w_h.T, _masked(mask)

    def step(c: Carry, g: Array) -> tuple[Carry, tuple[Array, ...]]:
        return ln_lstm_update(xp, (m(c[0]), c[1]), g, p, logistic)

    def back(res: tuple[Array, ...], d: Carry) -> tuple[Carry, tuple[Array, ...]]:
        _, c, i, f, g, o, t, n_x, s_x, n_hh, s_h, n_c, s_c = res
        dh, dc = d
        d_lc = (dh * o) * (1.0 - t * t)  # cotangent of LN(c')
        dc = dc + layer_norm_back(xp, d_lc, n_c, s_c, p.g_c, 1)
        da = _lstm_gate_grads(xp, dh, dc, c, i, f, g, o, t)
        dgx = layer_norm_back(xp, da, n_x, s_x, p.g_x, 4)
        dgh = layer_norm_back(xp, da, n_hh, s_h, p.g_h, 4)
        return (m(dgh @ w_h_t), dc * f), (dgx, dgh, da, d_lc)

    def finish(res: tuple[Array, ...], grads: tuple[Array, ...], db: Array) -> dict[str, Array]:
        h, n_x, n_hh, n_c = res[0], res[7], res[9], res[11]
        _, dgh, da, d_lc = grads
        d_shift = _column_sum(xp, da)
        return {
            "w_h": outer(xp, h, dgh),
            "b_x": d_shift,
            "b_h": d_shift,
            "g_x": _column_sum(xp, da * n_x),
            "g_h": _column_sum(xp, da * n_hh),
            "g_c": _column_sum(xp, d_lc * n_c),
            "b_c": _column_sum(xp, d_lc),
        }

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


RNN = Cell(
    "rnn", RNNParams, 1, ("h",), _plain_bias, _rnn_step, _rnn_vjp, ("activation",),
    recurrent_dropout=True,
)  # fmt: skip
"""The vanilla RNN: :func:`rnn_scan`, :func:`~polyrnn.vjp.rnn_scan_vjp`."""
GRU = Cell(
    "gru", GRUParams, 3, ("h",), _gru_bias, _gru_step, _gru_vjp, ("reset_after",),
    recurrent_dropout=True,
)  # fmt: skip
"""The GRU: :func:`gru_scan`, :func:`~polyrnn.vjp.gru_scan_vjp`."""
LSTM = Cell(
    "lstm", LSTMParams, 4, ("h", "c"), _plain_bias, _lstm_step, _lstm_vjp,
    recurrent_dropout=True,
)  # fmt: skip
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
LN_GRU = Cell(
    "ln_gru", LNGRUParams, 3, ("h",), _no_bias, _ln_gru_step, _ln_gru_vjp,
    recurrent_dropout=True,
)  # fmt: skip
"""The layer-normalised GRU: :func:`~polyrnn.ln_gru_scan`, :func:`~polyrnn.ln_gru_scan_vjp`."""
LN_LSTM = Cell(
    "ln_lstm", LNLSTMParams, 4, ("h", "c"), _no_bias, _ln_lstm_step, _ln_lstm_vjp,
    recurrent_dropout=True,
)  # fmt: skip
"""The layer-normalised LSTM: :func:`~polyrnn.ln_lstm_scan`,
:func:`~polyrnn.ln_lstm_scan_vjp`."""
BUILTIN = {cell.name: cell for cell in (RNN, GRU, LSTM, MIN_GRU, MIN_LSTM, LN_GRU, LN_LSTM)}
"""The built-in cells by name: an adapter may hold a fused kernel for each."""


def builtin(cell: Cell) -> bool:
    """Whether ``cell`` is one of :data:`BUILTIN` (a user's record may reuse a name)."""
    return BUILTIN.get(cell.name) is cell
