"""Scans: :func:`~polyrnn.scan` with ``jax.lax.scan`` semantics, and the RNN, GRU and LSTM scans.

Each public scan validates its inputs once, moves them to the time-major layout, asks
the adapter of the arrays' namespace to run the recurrence, and restores the layout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _prologue, _tree, _validate
from ._cell import Cell
from ._compat import Array
from .backends import get_adapter
from .cells import ACTIVATIONS, GRU, LSTM, RNN
from .params import GRUParams, LSTMParams, RNNParams

__all__ = ["gru_scan", "lstm_scan", "rnn_scan", "scan"]


def scan(
    step: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, *, reverse: bool = False
) -> tuple[Any, Any]:
    """Loop ``step`` over the leading axis of ``xs``, carrying state: ``jax.lax.scan`` semantics.

    .. code-block:: python

        def scan(step, carry, xs):
            ys = []
            for x in xs:
                carry, y = step(carry, x)
                ys.append(y)
            return carry, stack(ys)

    Parameters
    ----------
    step : callable ``(carry, x) -> (carry, y)``
        ``carry`` and ``y`` may be arrays, ``None`` or nested tuples, lists and dicts of arrays.
    carry : pytree of arrays
        Initial carry.
    xs : pytree of arrays
        Stacked along axis 0; every leaf has the same leading length ``T >= 1``.
    reverse : bool
        Loop from ``t = T-1`` down to 0; ``ys`` keeps the original order.

    Returns
    -------
    carry, ys
        The last carry and the per-step outputs stacked along axis 0.  On JAX this is
        :func:`jax.lax.scan` itself (no Python loop, works under ``jit``).

    Examples
    --------
    >>> polyrnn.scan(lambda c, x: (c + x, c * x), np.asarray(0.0), np.arange(1.0, 4.0))
    (np.float64(6.0), array([0., 2., 9.]))
    """
    _validate.flags("scan", reverse=reverse)
    fn = "scan"
    if not callable(step):
        raise TypeError(f"{fn}: step must be a function (carry, x) -> (carry, y), got {step!r}")
    xs_leaves, carry_leaves = _tree.flatten(xs)[0], _tree.flatten(carry)[0]
    if not xs_leaves:
        raise ValueError(f"{fn}: xs must hold at least one array to scan over")
    xs_named = _leaf_names("xs", xs, xs_leaves)
    xp = _validate.namespace(fn, xs_named | _leaf_names("carry", carry, carry_leaves))
    for name, a in xs_named.items():
        if a.ndim == 0:
            raise ValueError(f"{fn}: {name} must be stacked along axis 0, got a 0-d array")

    def checked_step(c: Any, x: Any) -> tuple[Any, Any]:
        new, y = step(c, x)
        before, after = _tree.kinds(c), _tree.kinds(new)
        if before != after:
            raise ValueError(
                f"{fn}: step must return a carry of the structure, shapes and dtypes it was "
                f"given (as jax.lax.scan requires): given {_tree.describe(before)}, "
                f"returned {_tree.describe(after)}"
            )
        return new, y

    return get_adapter(xp).scan(checked_step, carry, xs, reverse=reverse)


def _leaf_names(what: str, tree: Any, leaves: list[Any]) -> dict[str, Any]:
    """The leaves by name: ``what`` for a tree that is one array, else ``what leaf i``."""
    if len(leaves) == 1 and leaves[0] is tree:
        return {what: tree}
    return {f"{what} leaf {i}": a for i, a in enumerate(leaves)}


def cell_scan(
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
) -> tuple[Array, tuple[Array, ...]]:
    """Run any :class:`~polyrnn._cell.Cell` over a sequence: ``(hs, last carry)``.

    The engine of :func:`rnn_scan`, :func:`gru_scan` and :func:`lstm_scan`, which take the
    same arguments; ``state0`` is ``h0`` for a one-state cell, else a tuple (or ``None``),
    and ``options`` are the cell's (e.g. ``reset_after``).  ``recurrent_mask (..., H)``
    multiplies ``h_{t-1}`` where it enters ``W_h`` at every step (recurrent dropout, for
    a record with ``recurrent_dropout``; the reference engine runs it, not a fused kernel).
    """
    return _prologue.scan(
        "cell_scan", cell, xs, params, state0, time_major, reverse, lengths, options,
        recurrent_mask,
    )  # fmt: skip


def rnn_scan(
    xs: Array,
    params: RNNParams,
    h0: Array | None = None,
    *,
    activation: str = "tanh",
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[Array, Array]:
    r"""Run a vanilla RNN over a sequence: :func:`rnn_cell` at every step.

    .. math::
        h_t = \mathrm{act}(x_t W_x + b_x + h_{t-1} W_h + b_h)

    The input projection ``xs @ w_x`` is one matrix product over all steps; each step
    then does one ``(..., H) @ (H, H)`` product and the activation.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence of any leading batch shape (none for ``(T, D)``).
    params : RNNParams
        ``w_x (D, H)``, ``w_h (H, H)``, ``b_x (H,)``, ``b_h (H,)``, of the dtype of ``xs``.
    h0 : array, shape ``(..., H)``, optional
        Initial state; zeros by default.
    activation : {"tanh", "sigmoid", "relu"}
        Nonlinearity.
    time_major : bool
        Whether time is the leading axis of ``xs`` and ``hs``.
    reverse : bool
        Read each sequence from its last (valid) step to its first; ``hs`` keeps the
        original time order.
    lengths : integer array, shape ``(...)``, optional
        Valid length of each sequence, in ``[0, T]``.  At ``t >= lengths`` the state is
        carried unchanged and ``hs`` is zero.  Under :func:`jax.jit` the values of a
        traced ``lengths`` cannot be read, so they are not checked: a length above ``T``
        acts as ``T`` and a negative one as 0 (every other check still runs).

    Returns
    -------
    hs : array, shape ``(..., T, H)`` (``(T, ..., H)`` with ``time_major``)
        Hidden state after each step.
    h_last : array, shape ``(..., H)``
        State after the last valid step.

    Both are arrays of the library, dtype and device of ``xs``.

    Raises
    ------
    TypeError
        Non-floating or mixed dtypes, arrays of two libraries, an option that is not a
        bool.
    ValueError
        Shape mismatches, ``lengths`` outside ``[0, T]`` (not under ``jit``), an unknown
        activation, arrays on two devices.

    Examples
    --------
    >>> p = polyrnn.init_rnn(3, 2)
    >>> hs, h = polyrnn.rnn_scan(np.ones((4, 3)), p)
    >>> hs.shape, bool((hs[-1] == h).all())
    ((4, 2), True)
    """
    _validate.flags("rnn_scan", time_major=time_major, reverse=reverse)
    _validate.choice("rnn_scan", "activation", activation, ACTIVATIONS)
    options = {"activation": activation}
    hs, (h,) = _prologue.scan(
        "rnn_scan", RNN, xs, params, h0, time_major, reverse, lengths, options
    )
    return hs, h


def gru_scan(
    xs: Array,
    params: GRUParams,
    h0: Array | None = None,
    *,
    reset_after: bool = False,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[Array, Array]:
    r"""Run a GRU over a sequence: :func:`gru_cell` at every step.

    The input projection ``xs @ w_x + b_x`` (and the parts of ``b_h`` outside the reset
    gate) is one matrix product over all steps; each step does the recurrent product and
    the gate arithmetic only.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence.
    params : GRUParams
        ``w_x (D, 3H)``, ``w_h (H, 3H)``, ``b_x (3H,)``, ``b_h (3H,)``, gates ``(r, z, n)``.
    h0 : array, shape ``(..., H)``, optional
        Initial state; zeros by default.
    reset_after : bool
        ``False``: ``n = tanh(x W_xn + b_xn + (r*h) W_hn + b_hn)`` (Cho et al., the seed
        notebook); ``True``: ``n = tanh(x W_xn + b_xn + r*(h W_hn + b_hn))`` (torch, cuDNN).
    time_major, reverse, lengths
        As in :func:`rnn_scan`.

    Returns
    -------
    hs : array, shape ``(..., T, H)`` (``(T, ..., H)`` with ``time_major``)
    h_last : array, shape ``(..., H)``

    Raises
    ------
    TypeError, ValueError
        As :func:`rnn_scan`.

    Examples
    --------
    >>> p = polyrnn.init_gru(3, 2)
    >>> hs, h = polyrnn.gru_scan(np.ones((2, 5, 3)), p, lengths=np.array([5, 2]))
    >>> hs.shape, bool((h[1] == hs[1, 1]).all()), float(abs(hs[1, 2:]).max())
    ((2, 5, 2), True, 0.0)
    """
    _validate.flags("gru_scan", reset_after=reset_after, time_major=time_major, reverse=reverse)
    options = {"reset_after": bool(reset_after)}
    hs, (h,) = _prologue.scan(
        "gru_scan", GRU, xs, params, h0, time_major, reverse, lengths, options
    )
    return hs, h


def lstm_scan(
    xs: Array,
    params: LSTMParams,
    state0: tuple[Array, Array] | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    lengths: Array | None = None,
) -> tuple[Array, tuple[Array, Array]]:
    """Run an LSTM over a sequence: :func:`lstm_cell` at every step.

    Parameters
    ----------
    xs : array, shape ``(..., T, D)``, or ``(T, ..., D)`` with ``time_major``
        Input sequence.
    params : LSTMParams
        ``w_x (D, 4H)``, ``w_h (H, 4H)``, ``b_x (4H,)``, ``b_h (4H,)``, gates ``(i, f, g, o)``.
    state0 : (array, array), each ``(..., H)``, optional
        Initial ``(h, c)``; zeros by default.
    time_major, reverse, lengths
        As in :func:`rnn_scan`.

    Returns
    -------
    hs : array, shape ``(..., T, H)`` (``(T, ..., H)`` with ``time_major``)
    (h_last, c_last) : arrays, shape ``(..., H)``

    Raises
    ------
    TypeError, ValueError
        As :func:`rnn_scan`.

    Examples
    --------
    >>> p = polyrnn.init_lstm(3, 2)
    >>> hs, (h, c) = polyrnn.lstm_scan(np.ones((4, 3)), p)
    >>> hs.shape, c.shape
    ((4, 2), (2,))
    """
    _validate.flags("lstm_scan", time_major=time_major, reverse=reverse)
    hs, (h, c) = _prologue.scan(
        "lstm_scan", LSTM, xs, params, state0, time_major, reverse, lengths, {}
    )
    return hs, (h, c)
