r"""Hand-written backpropagation through time for the RNN, GRU and LSTM scans.

For array libraries without automatic differentiation (NumPy, CuPy, array-api-strict),
each ``*_scan_vjp`` runs the forward scan once, keeps what the backward pass needs
(the state before each step and the gates), and returns the scan's outputs together
with a ``backward`` function, as :func:`jax.vjp` does::

    (hs, h_last), backward = gru_scan_vjp(xs, params, h0)
    d_xs, d_params, d_h0 = backward(d_hs, d_h_last)

Everything is written once against the Array API standard, without in-place writes,
so it runs unchanged on NumPy, CuPy, array-api-strict, JAX and PyTorch.  The loops over
time (forward, then backward in reverse) are the adapter's
:meth:`~polyrnn.backends.Adapter.scan`: a Python loop in the reference, one :func:`jax.lax.scan` on JAX.

The forward pass is the reference recurrence of ``polyrnn._recurrence`` (same
hoisted projection, bias folding, masking and ``reverse``), so the outputs are the
numbers :func:`~polyrnn.gru_scan` gives.  The backward pass keeps the hoisting: the
per-step work is only the recurrent product ``dh @ w_h.T`` and the gate derivatives;
the gradients of ``xs``, ``w_x``, ``w_h`` and the biases are each one matrix product
or sum over all steps at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _bptt, _validate
from ._cell import Carry, Cell
from ._compat import Array
from ._prologue import one_state
from .cells import ACTIVATIONS, GRU, LSTM, RNN
from .params import GRUParams, LSTMParams, RNNParams

__all__ = ["gru_scan_vjp", "lstm_scan_vjp", "rnn_scan_vjp"]


def cell_scan_vjp(
    cell: Cell,
    xs: Array,
    params: Any,
    state0: Any = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
    recurrent_mask: Array | None = None,
    **options: Any,
) -> tuple[tuple[Array, Carry], Callable[..., tuple[Array, Any, Carry]]]:
    """:func:`~polyrnn.scans.cell_scan` of any :class:`~polyrnn._cell.Cell` and its
    vector-Jacobian product, from the cell's own backward step.

    Returns ``(hs, last carry), backward`` with ``backward(d_hs=None, d_last=None) ->
    (d_xs, d_params, d_carry0)``; ``d_last`` is a tuple like the carry (``None`` entries,
    or ``None`` for all, are zeros).
    """
    fn = "cell_scan_vjp"
    hs, last, bwd = _bptt.scan_vjp(
        fn, cell, xs, params, state0, time_major, reverse, lengths, options, recurrent_mask
    )

    def backward(d_hs: Array | None = None, d_last: Any = None) -> tuple[Array, Any, Carry]:
        if d_last is None:
            d_last = (None,) * len(cell.states)
        elif not (isinstance(d_last, tuple | list) and len(d_last) == len(cell.states)):
            raise TypeError(
                f"{fn}: d_last must be a tuple of {len(cell.states)} arrays or None, got "
                f"{type(d_last).__name__}"
            )
        return bwd(d_hs, tuple(d_last))

    return (hs, last), backward


# --- public functions ---


def rnn_scan_vjp(
    xs: Array,
    params: RNNParams,
    h0: Array | None = None,
    *,
    activation: str = "tanh",
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, RNNParams, Array]]]:
    """:func:`~polyrnn.rnn_scan` and its vector-Jacobian product, by backpropagation through time.

    Takes exactly the arguments of :func:`~polyrnn.rnn_scan`.

    Returns
    -------
    outputs : (hs, h_last)
        What :func:`~polyrnn.rnn_scan` returns: ``hs`` of shape ``(..., T, H)``
        (``(T, ..., H)`` with ``time_major``) and ``h_last`` of shape ``(..., H)``.
    backward : callable ``(d_hs=None, d_h_last=None) -> (d_xs, d_params, d_h0)``
        Maps cotangents of the outputs (arrays of their shapes and of the dtype of
        ``xs``; ``None`` means zeros) to the cotangents of the inputs: ``d_xs`` of the
        shape and layout of ``xs``, ``d_params`` an :class:`~polyrnn.RNNParams` of the
        shapes of ``params``, and ``d_h0`` of shape ``(..., H)`` (also when ``h0`` is
        ``None``: the gradient with respect to the zero initial state).  It may be
        called any number of times.

    Raises
    ------
    TypeError, ValueError
        As :func:`~polyrnn.rnn_scan`; ``backward`` raises :class:`ValueError` for a
        cotangent of the wrong shape and :class:`TypeError` for one of another dtype
        or library.

    Examples
    --------
    The gradient of ``sum(hs)`` agrees with a finite difference:

    >>> p = polyrnn.init_rnn(3, 2)
    >>> xs = np.linspace(-1.0, 1.0, 12).reshape(4, 3)
    >>> (hs, h), backward = polyrnn.vjp.rnn_scan_vjp(xs, p, activation="sigmoid")
    >>> d_xs, d_p, d_h0 = backward(np.ones_like(hs), None)
    >>> d_xs.shape, d_p.w_h.shape, d_h0.shape
    ((4, 3), (2, 2), (2,))
    >>> eps = 1e-6
    >>> bumped = p._replace(b_x=p.b_x + np.array([eps, 0.0]))
    >>> fd = (polyrnn.rnn_scan(xs, bumped, activation="sigmoid")[0].sum() - hs.sum()) / eps
    >>> bool(abs(fd - d_p.b_x[0]) < 1e-5)
    True
    """
    _validate.flags("rnn_scan_vjp", time_major=time_major, reverse=reverse)
    fn = "rnn_scan_vjp"
    _validate.choice("rnn_scan_vjp", "activation", activation, ACTIVATIONS)
    options = {"activation": activation}
    return one_state(
        *_bptt.scan_vjp(fn, RNN, xs, params, h0, time_major, reverse, lengths, options)
    )


def gru_scan_vjp(
    xs: Array,
    params: GRUParams,
    h0: Array | None = None,
    *,
    reset_after: bool = False,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, GRUParams, Array]]]:
    """:func:`~polyrnn.gru_scan` and its vector-Jacobian product, by backpropagation through time.

    Takes exactly the arguments of :func:`~polyrnn.gru_scan` (both ``reset_after`` variants).

    Returns
    -------
    outputs : (hs, h_last)
        What :func:`~polyrnn.gru_scan` returns: ``hs`` of shape ``(..., T, H)``
        (``(T, ..., H)`` with ``time_major``) and ``h_last`` of shape ``(..., H)``.
    backward : callable ``(d_hs=None, d_h_last=None) -> (d_xs, d_params, d_h0)``
        Maps cotangents of the outputs (``None`` means zeros) to the cotangents of
        the inputs: ``d_xs`` of the shape and layout of ``xs``, ``d_params`` a
        :class:`~polyrnn.GRUParams` of the shapes of ``params``, ``d_h0 (..., H)``
        (also when ``h0`` is ``None``).

    Raises
    ------
    TypeError, ValueError
        As :func:`~polyrnn.gru_scan`; ``backward`` raises :class:`ValueError` for a
        cotangent of the wrong shape and :class:`TypeError` for one of another dtype
        or library.

    See Also
    --------
    rnn_scan_vjp : the same for the vanilla RNN, with a finite-difference example.

    Examples
    --------
    Steps past each sequence's length do not influence anything:

    >>> p = polyrnn.init_gru(3, 2)
    >>> xs = np.ones((2, 5, 3))
    >>> (hs, h), backward = polyrnn.vjp.gru_scan_vjp(xs, p, lengths=np.array([5, 2]))
    >>> d_xs, d_p, d_h0 = backward(np.ones_like(hs), None)   # gradient of hs.sum()
    >>> d_xs.shape, d_p.w_h.shape, d_h0.shape
    ((2, 5, 3), (2, 6), (2, 2))
    >>> float(abs(d_xs[1, 2:]).max())
    0.0
    >>> d_xs, d_p, d_h0 = backward(None, np.ones_like(h))   # gradient of h_last.sum()
    >>> d_xs.round(4)[1]
    array([[ 0.1407, -0.0601, -0.0226],
           [ 0.4025, -0.3176,  0.0516],
           [ 0.    ,  0.    ,  0.    ],
           [ 0.    ,  0.    ,  0.    ],
           [ 0.    ,  0.    ,  0.    ]])
    """
    _validate.flags("gru_scan_vjp", reset_after=reset_after, time_major=time_major, reverse=reverse)
    fn = "gru_scan_vjp"
    options = {"reset_after": bool(reset_after)}
    return one_state(
        *_bptt.scan_vjp(fn, GRU, xs, params, h0, time_major, reverse, lengths, options)
    )


def lstm_scan_vjp(
    xs: Array,
    params: LSTMParams,
    state0: tuple[Array, Array] | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[
    tuple[Array, tuple[Array, Array]],
    Callable[..., tuple[Array, LSTMParams, tuple[Array, Array]]],
]:
    """:func:`~polyrnn.lstm_scan` and its vector-Jacobian product, by backpropagation through time.

    Takes exactly the arguments of :func:`~polyrnn.lstm_scan`.

    Returns
    -------
    outputs : (hs, (h_last, c_last))
        What :func:`~polyrnn.lstm_scan` returns: ``hs`` of shape ``(..., T, H)``
        (``(T, ..., H)`` with ``time_major``), ``h_last`` and ``c_last`` of shape ``(..., H)``.
    backward : callable ``(d_hs=None, d_last=None) -> (d_xs, d_params, (d_h0, d_c0))``
        ``d_last`` is ``(d_h_last, d_c_last)`` or ``None``; any of the cotangents may
        be ``None``, meaning zeros.  Returns ``d_xs`` of the shape and layout of ``xs``,
        an :class:`~polyrnn.LSTMParams` of the shapes of ``params``, and the cotangents
        of the initial state, ``(..., H)`` each (also when ``state0`` is ``None``).

    Raises
    ------
    TypeError, ValueError
        As :func:`~polyrnn.lstm_scan`; ``backward`` raises :class:`ValueError` for a
        cotangent of the wrong shape and :class:`TypeError` for one of another dtype
        or library, or a ``d_last`` that is not a pair.

    Examples
    --------
    >>> p = polyrnn.init_lstm(3, 2)
    >>> (hs, (h, c)), backward = polyrnn.vjp.lstm_scan_vjp(np.ones((4, 3)), p)
    >>> d_xs, d_p, (d_h0, d_c0) = backward(None, (None, np.ones_like(c)))  # d sum(c_last)
    >>> d_xs.shape, d_p.w_x.shape, d_c0.round(4)
    ((4, 3), (3, 8), array([ 0.1423, -0.0004]))
    """
    _validate.flags("lstm_scan_vjp", time_major=time_major, reverse=reverse)
    fn = "lstm_scan_vjp"
    hs, (h_last, c_last), bwd = _bptt.scan_vjp(
        fn, LSTM, xs, params, state0, time_major, reverse, lengths, {}
    )

    def backward(d_hs: Array | None = None, d_last: Any = None) -> Any:
        if d_last is None:
            d_last = (None, None)
        elif not (isinstance(d_last, tuple | list) and len(d_last) == 2):
            raise TypeError(
                f"{fn}: d_last must be a pair (d_h_last, d_c_last) or None, "
                f"got {type(d_last).__name__}"
            )
        d_xs, d_p, (d_h0, d_c0) = bwd(d_hs, tuple(d_last))
        return d_xs, d_p, (d_h0, d_c0)

    return (hs, (h_last, c_last)), backward
