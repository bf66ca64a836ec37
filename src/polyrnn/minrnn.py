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

from collections.abc import Callable
from typing import Any

from . import _bptt, _prologue, _validate
from ._compat import Array
from ._prologue import one_state
from .cells import MIN_GRU, MIN_LSTM, sigmoid
from .params import GATES, MinGRUParams, MinLSTMParams, init_uniform

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
    xp, p = _validate.step_inputs("min_gru_cell", params, MinGRUParams, x, h=h)
    return MIN_GRU.step(xp, p, sigmoid)((h,), x @ p.w_x + p.b_x)[0]


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
    xp, p = _validate.step_inputs("min_lstm_cell", params, MinLSTMParams, x, h=h)
    return MIN_LSTM.step(xp, p, sigmoid)((h,), x @ p.w_x + p.b_x)[0]


# --- scans --------------------------------------------------------------------------------------


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
    options = {"method": method}
    hs, (h,) = _prologue.scan(
        "min_gru_scan", MIN_GRU, xs, params, h0, time_major, reverse, lengths, options
    )
    return hs, h


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
    options = {"method": method}
    hs, (h,) = _prologue.scan(
        "min_lstm_scan", MIN_LSTM, xs, params, h0, time_major, reverse, lengths, options
    )
    return hs, h


# --- hand-written gradients ---------------------------------------------------------------------


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
    fn, options = "min_gru_scan_vjp", {"method": method}
    return one_state(
        *_bptt.scan_vjp(fn, MIN_GRU, xs, params, h0, time_major, reverse, lengths, options)
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
    fn, options = "min_lstm_scan_vjp", {"method": method}
    return one_state(
        *_bptt.scan_vjp(fn, MIN_LSTM, xs, params, h0, time_major, reverse, lengths, options)
    )
