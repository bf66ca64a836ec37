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
from ._compat import Array, Namespace
from .params import GRUParams, LSTMParams, RNNParams

__all__ = ["gru_cell", "lstm_cell", "rnn_cell"]


def sigmoid(xp: Namespace, x: Array) -> Array:
    """Logistic function, exact in both tails: ``e = exp(-|x|)``, no overflow."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


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


Logistic = Callable[[Namespace, Array], Array]
"""A logistic function ``(xp, x) -> σ(x)``: :func:`sigmoid`, or a backend's own primitive
(:meth:`polyrnn.backends.Adapter.sigmoid`) passed to the steps below as ``logistic``."""


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
