r"""Layer-normalised GRU and LSTM (Ba, Kiros & Hinton 2016, "Layer Normalization").

Layer normalisation of a vector ``a`` of ``H`` entries, with a gain ``γ`` and a shift ``β``:

.. math::
    \mathrm{LN}(a; \gamma, \beta) = \gamma \odot \frac{a - \mu}{\sqrt{\sigma^2 + \epsilon}}
        + \beta, \qquad \mu = \frac1H \sum_j a_j, \quad
        \sigma^2 = \frac1H \sum_j (a_j - \mu)^2, \quad \epsilon = 10^{-5}

(the biased variance and the ε of :class:`torch.nn.LayerNorm`).  Both cells follow Ba et
al.'s LN-LSTM, eq. (20)-(22): the input contribution ``x W_x`` and the recurrent
contribution ``h W_h`` are normalised **separately**, each with its own gain and shift,
and the LSTM's cell state is normalised before the output ``tanh``.  One choice differs
from the paper's notation: the statistics are taken **per gate** (over each gate's ``H``
pre-activations), not over the ``G H`` stacked pre-activations of all gates, as in
TensorFlow's ``LayerNormBasicLSTMCell`` (which, unlike polyrnn, normalises the sum of the
two contributions).  Each gate then reaches its nonlinearity with
zero mean and unit variance before its own gain and shift, so a gate's operating point
(a forget gate's shift of 1, say) is set by its own parameters and not moved by the
spread of the other gates' pre-activations.

LN-LSTM, gates ``(i, f, g, o)`` in :class:`torch.nn.LSTM`'s order:

.. math::
    (a_i, a_f, a_g, a_o) &= \mathrm{LN}(x_t W_x; \gamma_x, \beta_x)
        + \mathrm{LN}(h_{t-1} W_h; \gamma_h, \beta_h) \quad\text{(each gate apart)} \\
    c_t &= \sigma(a_f) \odot c_{t-1} + \sigma(a_i) \odot \tanh(a_g) \\
    h_t &= \sigma(a_o) \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c))

LN-GRU, gates ``(r, z, n)`` in :class:`torch.nn.GRU`'s order, with the reset gate applied
after the recurrent product (``reset_after=True`` of :func:`~polyrnn.gru_scan`, torch's
and cuDNN's GRU):

.. math::
    (u_r, u_z, u_n) &= \mathrm{LN}(x_t W_x; \gamma_x, \beta_x), \qquad
    (v_r, v_z, v_n) = \mathrm{LN}(h_{t-1} W_h; \gamma_h, \beta_h) \\
    r_t &= \sigma(u_r + v_r), \quad z_t = \sigma(u_z + v_z), \quad
    n_t = \tanh(u_n + r_t \odot v_n) \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

The GRU has no ``reset_after`` option: normalising ``h W_h`` needs the recurrent product
of all three gates before ``r_t`` is known, which is the reset-after form; the other
(``(r ⊙ h) W_hn``) would take a second matrix product and a second normalisation per
step, after the gates, and no reference implementation we know of uses it.

The ``β`` of the input and recurrent normalisations are the ``b_x`` and ``b_h`` of
:class:`~polyrnn.LNGRUParams` and :class:`~polyrnn.LNLSTMParams` (the fields of the plain GRU and LSTM,
which they replace: a bias added before a normalisation would be removed by it, and
one added after it is a shift).  Like the plain LSTM's two biases, the LSTM's ``b_x``
and ``b_h`` are only ever added together; the GRU's ``b_hn`` is multiplied by ``r``.

The scans project every step's input with one matrix product and normalise it in the
step, then run the record's step in the adapter's loop (``jax.lax.scan`` under ``jit``
on JAX); no library has a fused kernel for these cells.  The ``*_scan_vjp`` functions
backpropagate by hand, for NumPy, CuPy and array-api-strict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _bptt, _prologue, _validate
from ._compat import Array, array_namespace
from ._prologue import one_state
from .cells import LN_GRU, LN_LSTM, sigmoid
from .params import GATES, GRUParams, LNGRUParams, LNLSTMParams, LSTMParams, init_uniform

__all__ = [
    "LNGRUParams",
    "LNLSTMParams",
    "init_ln_gru",
    "init_ln_lstm",
    "ln_gru_cell",
    "ln_gru_scan",
    "ln_gru_scan_vjp",
    "ln_lstm_cell",
    "ln_lstm_scan",
    "ln_lstm_scan_vjp",
]


# --- initialisation -----------------------------------------------------------------------------


def _init(
    fn: str, cls: type, input_size: int, hidden_size: int, seed: int, xp: Any, dtype: Any,
    device: Any,
) -> Any:  # fmt: skip
    """``w_x, w_h`` as the plain cell's initialiser draws them (the same seed gives the
    same weights as :func:`~polyrnn.init_gru` or :func:`~polyrnn.init_lstm`), every shift 0
    and every gain 1."""
    base = GRUParams if cls is LNGRUParams else LSTMParams
    p = init_uniform(fn, base, GATES[cls], input_size, hidden_size, seed, xp, dtype, device)
    space = array_namespace(p.w_x)
    zeros, ones = space.zeros_like(p.b_x), space.ones_like(p.b_x)
    if cls is LNGRUParams:
        return LNGRUParams(p.w_x, p.w_h, zeros, zeros, ones, ones)
    cell = p.b_x[:hidden_size]
    return LNLSTMParams(
        p.w_x, p.w_h, zeros, zeros, ones, ones, space.ones_like(cell), space.zeros_like(cell)
    )


def init_ln_gru(
    input_size: int,
    hidden_size: int,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> LNGRUParams:
    """:class:`~polyrnn.LNGRUParams`: gains 1, shifts 0, weights uniform in ``±1/sqrt(hidden_size)``.

    The weights are those of :class:`torch.nn.GRU`'s initialisation, drawn on the host
    (``numpy.random.default_rng(seed)``, float64) and then cast and moved: the same
    ``seed`` gives the same ``w_x`` and ``w_h`` as :func:`~polyrnn.init_gru`, on every
    backend.  With gains 1 and shifts 0 each normalisation starts as the identity on
    standardised pre-activations.

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
    LNGRUParams
        ``w_x (D, 3H)``, ``w_h (H, 3H)``, ``b_x, b_h, g_x, g_h (3H,)``.

    Raises
    ------
    ValueError
        A size that is not a positive integer.
    TypeError
        ``xp`` not a namespace, ``dtype`` not a real floating dtype.

    Examples
    --------
    >>> p = polyrnn.init_ln_gru(3, 4)
    >>> p.w_x.shape, p.g_h.shape, float(p.g_x.min()), float(abs(p.b_h).max())
    ((3, 12), (12,), 1.0, 0.0)
    >>> bool((p.w_h == polyrnn.init_gru(3, 4).w_h).all())  # same seed, same weights
    True
    """
    return _init(  # type: ignore[no-any-return]
        "init_ln_gru", LNGRUParams, input_size, hidden_size, seed, xp, dtype, device
    )


def init_ln_lstm(
    input_size: int,
    hidden_size: int,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> LNLSTMParams:
    """:class:`~polyrnn.LNLSTMParams`: gains 1, shifts 0, weights uniform in ``±1/sqrt(hidden_size)``
    like :class:`torch.nn.LSTM`'s (the same ``seed`` gives :func:`~polyrnn.init_lstm`'s
    ``w_x`` and ``w_h``).

    Same arguments, reproducibility and errors as :func:`init_ln_gru`.

    Returns
    -------
    LNLSTMParams
        ``w_x (D, 4H)``, ``w_h (H, 4H)``, ``b_x, b_h, g_x, g_h (4H,)``, ``g_c, b_c (H,)``.

    Examples
    --------
    >>> p = polyrnn.init_ln_lstm(3, 4, dtype="float32")
    >>> p.w_x.shape, p.g_c.shape, p.b_c.dtype
    ((3, 16), (4,), dtype('float32'))
    """
    return _init(  # type: ignore[no-any-return]
        "init_ln_lstm", LNLSTMParams, input_size, hidden_size, seed, xp, dtype, device
    )


# --- cells --------------------------------------------------------------------------------------


def ln_gru_cell(params: LNGRUParams, h: Array, x: Array) -> Array:
    r"""One step of a layer-normalised GRU (the module's equations, per-gate statistics).

    .. math::
        (u_r, u_z, u_n) &= \mathrm{LN}(x W_x; \gamma_x, \beta_x), \qquad
        (v_r, v_z, v_n) = \mathrm{LN}(h W_h; \gamma_h, \beta_h) \\
        r &= \sigma(u_r + v_r), \quad z = \sigma(u_z + v_z), \quad
        n = \tanh(u_n + r \odot v_n) \\
        h' &= (1 - z) \odot n + z \odot h

    with :math:`\mathrm{LN}` each gate's ``H`` entries standardised (biased variance,
    ``ε = 1e-5``), times the gain, plus the shift.

    Parameters
    ----------
    params : LNGRUParams
        ``w_x (D, 3H)``, ``w_h (H, 3H)``, shifts ``b_x, b_h (3H,)``, gains ``g_x, g_h
        (3H,)``, gates ``(r, z, n)``.
    h : array, shape ``(..., H)``
        Previous hidden state; any leading batch shape.
    x : array, shape ``(..., D)``
        Input of this step, with the batch shape of ``h``.

    Returns
    -------
    array, shape ``(..., H)``
        The new hidden state, of the library, dtype and device of ``x``.

    Raises
    ------
    TypeError, ValueError
        On a non-floating or mixed input, params of another cell or a shape mismatch.

    Examples
    --------
    >>> p = polyrnn.init_ln_gru(3, 3)
    >>> polyrnn.ln_gru_cell(p, np.zeros(3), np.array([1.0, 2.0, 3.0])).round(4)
    array([-0.6186, -0.052 ,  0.1794])
    """
    xp, p = _validate.step_inputs("ln_gru_cell", params, LNGRUParams, x, h=h)
    return LN_GRU.step(xp, p, sigmoid)((h,), x @ p.w_x)[0]


def ln_lstm_cell(params: LNLSTMParams, carry: tuple[Array, Array], x: Array) -> tuple[Array, Array]:
    r"""One step of a layer-normalised LSTM (Ba et al. 2016, eq. (20)-(22), per-gate
    statistics).

    .. math::
        (a_i, a_f, a_g, a_o) &= \mathrm{LN}(x W_x; \gamma_x, \beta_x)
            + \mathrm{LN}(h W_h; \gamma_h, \beta_h) \\
        c' &= \sigma(a_f) \odot c + \sigma(a_i) \odot \tanh(a_g) \\
        h' &= \sigma(a_o) \odot \tanh(\mathrm{LN}(c'; \gamma_c, \beta_c))

    The carried cell state is ``c'`` itself; its normalisation only feeds ``h'``.

    Parameters
    ----------
    params : LNLSTMParams
        ``w_x (D, 4H)``, ``w_h (H, 4H)``, shifts ``b_x, b_h (4H,)``, gains ``g_x, g_h
        (4H,)``, the cell state's gain and shift ``g_c, b_c (H,)``; gates ``(i, f, g, o)``.
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
        As :func:`ln_gru_cell`, and a ``carry`` that is not a pair.

    Examples
    --------
    >>> p = polyrnn.init_ln_lstm(3, 3)
    >>> h, c = polyrnn.ln_lstm_cell(p, (np.zeros(3), np.zeros(3)), np.array([1.0, 2.0, 3.0]))
    >>> h.round(4), c.round(4)
    (array([ 0.4774,  0.1509, -0.1753]), array([ 0.4806,  0.0772, -0.61  ]))
    """
    if not isinstance(carry, tuple | list) or len(carry) != 2:
        raise TypeError(f"ln_lstm_cell: carry must be a pair (h, c), got {type(carry).__name__}")
    h, c = carry
    xp, p = _validate.step_inputs("ln_lstm_cell", params, LNLSTMParams, x, h=h, c=c)
    h_new, c_new = LN_LSTM.step(xp, p, sigmoid)((h, c), x @ p.w_x)
    return h_new, c_new


# --- scans --------------------------------------------------------------------------------------


def ln_gru_scan(
    xs: Array,
    params: LNGRUParams,
    h0: Array | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[Array, Array]:
    r"""Run a layer-normalised GRU over a sequence: :func:`ln_gru_cell` at every step.

    .. math::
        h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}, \qquad
        n_t = \tanh(u_{n,t} + r_t \odot v_{n,t})

    with ``u_t = LN(x_t W_x; g_x, b_x)`` and ``v_t = LN(h_{t-1} W_h; g_h, b_h)`` per gate,
    see :mod:`polyrnn.lnrnn`.  ``xs @ w_x`` is one matrix product over all steps; each
    step normalises it, does the recurrent product and its normalisation, and the gates.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence of any leading batch shape (none for ``(T, D)``).
    params : LNGRUParams
        ``w_x (D, 3H)``, ``w_h (H, 3H)``, ``b_x, b_h, g_x, g_h (3H,)``, of the dtype of
        ``xs``.
    h0 : array, shape ``(..., H)``, optional
        Initial state; zeros by default.
    time_major : bool
        Whether time is the leading axis of ``xs`` and ``hs``.
    reverse : bool
        Read each sequence from its last (valid) step to its first; ``hs`` keeps the
        original time order.
    lengths : integer array, shape ``(...)``, optional
        Valid length of each sequence, in ``[0, T]``.  At ``t >= lengths`` the state is
        carried unchanged and ``hs`` is zero.  Under :func:`jax.jit` the values of a traced
        ``lengths`` are not checked (a length above ``T`` acts as ``T``, a negative one
        as 0).

    Returns
    -------
    hs : array, shape ``(..., T, H)`` (``(T, ..., H)`` with ``time_major``)
        Hidden state after each step.
    h_last : array, shape ``(..., H)``
        State after the last valid step.

    Both are arrays of the library, dtype and device of ``xs``.  JAX and PyTorch
    differentiate through it; elsewhere use :func:`ln_gru_scan_vjp`.

    Raises
    ------
    TypeError
        Non-floating or mixed dtypes, arrays of two libraries, params of another cell, an
        option that is not a bool.
    ValueError
        Shape mismatches (each named, ``params.g_x`` included), ``lengths`` outside
        ``[0, T]`` (not under ``jit``), arrays on two devices.

    Examples
    --------
    >>> p = polyrnn.init_ln_gru(3, 2)
    >>> hs, h = polyrnn.ln_gru_scan(np.ones((2, 5, 3)), p, lengths=np.array([5, 2]))
    >>> hs.shape, bool((h[1] == hs[1, 1]).all()), float(abs(hs[1, 2:]).max())
    ((2, 5, 2), True, 0.0)
    """
    _validate.flags("ln_gru_scan", time_major=time_major, reverse=reverse)
    hs, (h,) = _prologue.scan(
        "ln_gru_scan", LN_GRU, xs, params, h0, time_major, reverse, lengths, {}
    )
    return hs, h


def ln_lstm_scan(
    xs: Array,
    params: LNLSTMParams,
    state0: tuple[Array, Array] | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[Array, tuple[Array, Array]]:
    r"""Run a layer-normalised LSTM over a sequence: :func:`ln_lstm_cell` at every step.

    .. math::
        c_t = \sigma(a_{f,t}) \odot c_{t-1} + \sigma(a_{i,t}) \odot \tanh(a_{g,t}), \qquad
        h_t = \sigma(a_{o,t}) \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c))

    with ``a_t = LN(x_t W_x; g_x, b_x) + LN(h_{t-1} W_h; g_h, b_h)`` per gate, see
    :mod:`polyrnn.lnrnn`.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence.
    params : LNLSTMParams
        ``w_x (D, 4H)``, ``w_h (H, 4H)``, ``b_x, b_h, g_x, g_h (4H,)``, ``g_c, b_c (H,)``.
    state0 : (array, array), each ``(..., H)``, optional
        Initial ``(h, c)``; zeros by default.
    time_major, reverse, lengths
        As in :func:`ln_gru_scan`.

    Returns
    -------
    hs : array, shape ``(..., T, H)`` (``(T, ..., H)`` with ``time_major``)
    (h_last, c_last) : arrays, shape ``(..., H)``

    Raises
    ------
    TypeError, ValueError
        As :func:`ln_gru_scan`.

    Examples
    --------
    >>> p = polyrnn.init_ln_lstm(3, 2)
    >>> hs, (h, c) = polyrnn.ln_lstm_scan(np.ones((4, 3)), p, reverse=True)
    >>> hs.shape, c.shape, bool((hs[0] == h).all())
    ((4, 2), (2,), True)
    """
    _validate.flags("ln_lstm_scan", time_major=time_major, reverse=reverse)
    hs, (h, c) = _prologue.scan(
        "ln_lstm_scan", LN_LSTM, xs, params, state0, time_major, reverse, lengths, {}
    )
    return hs, (h, c)


# --- hand-written gradients ---------------------------------------------------------------------


def ln_gru_scan_vjp(
    xs: Array,
    params: LNGRUParams,
    h0: Array | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, LNGRUParams, Array]]]:
    r""":func:`ln_gru_scan` and its vector-Jacobian product, for libraries without autodiff.

    Takes exactly the arguments of :func:`ln_gru_scan`.  The forward pass keeps each
    step's gates and normalised pre-activations; the backward pass runs the steps in
    reverse, each taking the cotangents through the gates and through the two
    normalisations,

    .. math::
        \bar a = \frac{1}{\sqrt{\sigma^2 + \epsilon}} \left(\bar d - \overline{\bar d}
            - \hat a \, \overline{\bar d \odot \hat a}\right), \qquad
        \bar d = \gamma \odot \bar y

    (``â`` the standardised pre-activations, the bars over ``d̄`` and ``d̄ ⊙ â`` their
    means over each gate), and ends with one matrix product each for ``d_xs``,
    ``d_w_x`` and ``d_w_h`` and one sum over all steps for each gain and shift.

    Returns
    -------
    outputs : (hs, h_last)
        What :func:`ln_gru_scan` returns.
    backward : callable ``(d_hs=None, d_h_last=None) -> (d_xs, d_params, d_h0)``
        Maps cotangents of the outputs (``None`` means zeros) to those of ``xs`` (its
        shape and layout), the params (an :class:`~polyrnn.LNGRUParams`) and ``h0`` (``(..., H)``,
        also when ``h0`` is ``None``).  May be called many times.

    Raises
    ------
    TypeError, ValueError
        As :func:`ln_gru_scan`; ``backward`` raises :class:`ValueError` for a cotangent
        of the wrong shape and :class:`TypeError` for one of another dtype or library.

    Examples
    --------
    The gradient of a gain agrees with a finite difference:

    >>> p = polyrnn.init_ln_gru(3, 2)
    >>> xs = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    >>> (hs, h), backward = polyrnn.ln_gru_scan_vjp(xs, p)
    >>> d_xs, d_p, d_h0 = backward(np.ones_like(hs), None)      # gradient of hs.sum()
    >>> d_xs.shape, d_p.g_x.shape, d_h0.shape
    ((4, 3), (6,), (2,))
    >>> eps = 1e-6
    >>> bumped = p._replace(g_x=p.g_x + np.eye(6)[4] * eps)
    >>> fd = (polyrnn.ln_gru_scan(xs, bumped)[0].sum() - hs.sum()) / eps
    >>> bool(abs(fd - d_p.g_x[4]) < 1e-5)
    True
    """
    _validate.flags("ln_gru_scan_vjp", time_major=time_major, reverse=reverse)
    return one_state(
        *_bptt.scan_vjp("ln_gru_scan_vjp", LN_GRU, xs, params, h0, time_major, reverse, lengths, {})
    )


def ln_lstm_scan_vjp(
    xs: Array,
    params: LNLSTMParams,
    state0: tuple[Array, Array] | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[
    tuple[Array, tuple[Array, Array]],
    Callable[..., tuple[Array, LNLSTMParams, tuple[Array, Array]]],
]:
    r""":func:`ln_lstm_scan` and its vector-Jacobian product, for libraries without autodiff.

    Takes exactly the arguments of :func:`ln_lstm_scan`; the backward pass is that of
    :func:`ln_gru_scan_vjp`, with the cell state's normalisation taken backwards before
    the gates.

    Returns
    -------
    outputs : (hs, (h_last, c_last))
        What :func:`ln_lstm_scan` returns.
    backward : callable ``(d_hs=None, d_last=None) -> (d_xs, d_params, (d_h0, d_c0))``
        ``d_last`` is ``(d_h_last, d_c_last)`` (either, or the pair, ``None`` for zeros);
        ``d_params`` an :class:`~polyrnn.LNLSTMParams`.

    Raises
    ------
    TypeError, ValueError
        As :func:`ln_gru_scan_vjp`, and a ``d_last`` that is not a pair.

    Examples
    --------
    >>> p = polyrnn.init_ln_lstm(3, 2)
    >>> (hs, (h, c)), backward = polyrnn.ln_lstm_scan_vjp(np.ones((2, 4, 3)), p)
    >>> d_xs, d_p, (d_h0, d_c0) = backward(None, (np.ones_like(h), None))  # of h_last.sum()
    >>> d_xs.shape, d_p.g_c.shape, d_c0.shape
    ((2, 4, 3), (2,), (2, 2))
    """
    fn = "ln_lstm_scan_vjp"
    _validate.flags(fn, time_major=time_major, reverse=reverse)
    hs, last, bwd = _bptt.scan_vjp(
        fn, LN_LSTM, xs, params, state0, time_major, reverse, lengths, {}
    )

    def backward(
        d_hs: Array | None = None, d_last: Any = None
    ) -> tuple[Array, LNLSTMParams, tuple[Array, Array]]:
        if d_last is None:
            d_last = (None, None)
        elif not (isinstance(d_last, tuple | list) and len(d_last) == 2):
            raise TypeError(
                f"{fn}: d_last must be a pair (d_h_last, d_c_last) or None, got "
                f"{type(d_last).__name__}"
            )
        d_xs, d_params, (d_h0, d_c0) = bwd(d_hs, tuple(d_last))
        return d_xs, d_params, (d_h0, d_c0)

    return (hs, (last[0], last[1])), backward
