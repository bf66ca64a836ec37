r"""Linear recurrences in parallel: :func:`~polyrnn.linear_scan`, :func:`~polyrnn.associative_scan`, and the VJP.

A linear recurrence ``h_t = a_t ⊙ h_{t-1} + b_t`` composes affine maps, and composition
is associative, so all ``T`` states can be computed in ``O(log T)`` vectorised rounds
(a *parallel* or associative scan) instead of ``T`` dependent steps.  Both algorithms
are available everywhere (``method="sequential"`` / ``"parallel"``) and give the same
numbers to rounding; ``method="auto"`` asks the backend adapter which is faster for the
arrays' device and shape (see :meth:`polyrnn.backends.Adapter.linear_method`).

minGRU and minLSTM, the cells built on this, live in :mod:`polyrnn.minrnn`.

**What each backend runs:**

============ ======================================== =====================================
backend      ``"sequential"``                         ``"parallel"``
============ ======================================== =====================================
NumPy        in-place loop, two ufuncs per step       Array-API odd-even associative scan
JAX          :func:`jax.lax.scan`, jitted             :func:`jax.lax.associative_scan`, jitted
PyTorch      CPU: the NumPy loop on the tensors'      Array-API associative scan in torch
             memory in an autograd Function (its      ops (autograd through it)
             backward is the same loop reversed);
             elsewhere one ``addcmul`` per step
CuPy         one ``ElementwiseKernel`` launch: each   Array-API associative scan in CuPy ops
             thread walks time for one lane
others       :meth:`~polyrnn.backends.Adapter.scan`   Array-API associative scan
============ ======================================== =====================================

``"auto"`` is sequential on CPUs and parallel on accelerators (CuPy: the one-launch kernel
when there are at least 2**16 lanes or at most 64 steps).  On a CPU the parallel form's
``2 log2 T`` passes over arrays that outgrow the caches cost 2.4-9x more than the loop at
every T measured (256 to 65536, float32, B = 8, H = 128; ``benchmarks/linear_bench.py``,
results in ``docs/linear_results``); the GPU rules are reasoned, not yet measured.  The
log-space formulation (``cumsum`` and ``logcumsumexp`` of ``log a``, Heinsen 2023) was
measured on PyTorch and rejected: 20-40x slower than the loop on a CPU, and in float32 its
error grows with T (2e-4 of the largest state at T = 4096, 4e-3 at 65536), beyond the 1e-5
the other forms keep.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from . import _linear, _tree, _validate
from ._compat import Array, Namespace, device
from ._prologue import check_method, cotangent, resolve_method
from ._recurrence import move_time
from .backends import Adapter, get_adapter

__all__ = ["associative_scan", "linear_scan", "linear_scan_vjp"]


def associative_scan(
    fn: Callable[[Any, Any], Any], elems: Any, *, reverse: bool = False, axis: int = 0
) -> Any:
    r"""Inclusive scan of ``elems`` under an associative ``fn``: ``jax.lax.associative_scan``.

    .. math::
        \mathrm{out}_k = e_0 \bullet e_1 \bullet \dots \bullet e_k, \qquad
        x \bullet y = \mathtt{fn}(x, y),

    computed by the odd-even recursion of Blelloch (1990): ``2 log2 T`` rounds of
    vectorised calls of ``fn`` on slices, ``O(T)`` work.  On JAX this is
    :func:`jax.lax.associative_scan` itself; elsewhere the same algorithm written once
    against the Array API (slicing, ``stack``, ``concat``; no in-place writes).

    Parameters
    ----------
    fn : callable ``(x, y) -> z``
        An associative operation on trees of the structure of ``elems``, *batched*: it
        receives trees whose leaves are slices of ``elems``' leaves along ``axis`` (of
        equal lengths) and must return a tree of the same structure and leaf shapes.
        ``x`` holds the earlier elements.  It need not be commutative.
    elems : array or pytree of arrays
        Nested tuples, lists and dicts of arrays of one library, all of the same length
        ``T`` along ``axis``.
    reverse : bool
        Scan from the end: ``out_k = e_{T-1} • e_{T-2} • ... • e_k``.
    axis : int
        The axis to scan along (negative values count from the end of the first leaf).

    Returns
    -------
    pytree of arrays
        The structure, shapes and library of ``elems``.

    Raises
    ------
    TypeError
        ``fn`` not callable, a leaf that is not an array, leaves of two libraries.
    ValueError
        No leaves, ``axis`` out of range, leaves of different lengths along ``axis``, or
        ``fn`` returning a tree of another structure.

    Examples
    --------
    Running sums, and running products of 2 x 2 matrices (not commutative):

    >>> polyrnn.associative_scan(lambda x, y: x + y, np.arange(1, 6))
    array([ 1,  3,  6, 10, 15])
    >>> m = np.array([[[1, 1], [0, 1]], [[2, 0], [0, 1]], [[1, 0], [3, 1]]])
    >>> polyrnn.associative_scan(np.matmul, m)[-1]  # m[0] @ m[1] @ m[2]
    array([[5, 1],
           [3, 1]])
    >>> polyrnn.associative_scan(lambda x, y: x + y, np.arange(1, 6), reverse=True)
    array([15, 14, 12,  9,  5])
    """
    _validate.flags("associative_scan", reverse=reverse)
    fn_name = "associative_scan"
    if not callable(fn):
        raise TypeError(f"{fn_name}: fn must be callable, got {type(fn).__name__}")
    leaves = _tree.flatten(elems)[0]
    if not leaves:
        raise ValueError(f"{fn_name}: elems must hold at least one array")
    xp = _validate.namespace(fn_name, {f"leaf {i}": a for i, a in enumerate(leaves)})
    ndim = leaves[0].ndim
    if isinstance(axis, bool) or not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise ValueError(
            f"{fn_name}: axis must be an integer in [{-ndim}, {ndim}) for leaves of rank "
            f"{ndim}, got {axis!r}"
        )
    axis %= ndim
    steps = leaves[0].shape[axis]
    for i, leaf in enumerate(leaves):
        if leaf.ndim <= axis or leaf.shape[axis] != steps:
            raise ValueError(
                f"{fn_name}: every leaf must have length {steps} along axis {axis} (that of "
                f"leaf 0), but leaf {i} has shape {tuple(leaf.shape)}"
            )

    def checked(x: Any, y: Any) -> Any:
        out = fn(x, y)
        given, returned = _tree.kinds(x), _tree.kinds(out)
        if len(returned) != len(given):
            raise ValueError(
                f"{fn_name}: fn must return a tree with the {len(given)} leaves of elems, "
                f"got {len(returned)}"
            )
        if returned != given:
            raise ValueError(
                f"{fn_name}: fn must return leaves of the shapes and dtypes of its "
                f"arguments: given {_tree.describe(given)}, returned {_tree.describe(returned)}"
            )
        return out

    return get_adapter(xp).associative_scan(checked, elems, reverse=bool(reverse), axis=axis)


class _Layout(NamedTuple):
    """Validated coefficients of a linear scan: namespace, steps, batch shape, hidden size."""

    xp: Namespace
    steps: int
    batch: tuple[int, ...]
    hidden: int


def _coefficients(
    fn: str, a: Any, b: Any, h0: Any, time_major: bool, method: Any
) -> tuple[_Layout, Adapter]:
    check_method(fn, method)
    xp = _validate.namespace(fn, {"a": a, "b": b, "h0": h0})
    _validate.floating(fn, "a", a, xp)
    _validate.floating(fn, "b", b, xp, a.dtype, dtype_of="a")
    layout = "(T, ..., H)" if time_major else "(..., T, H)"
    if a.ndim < 2:
        raise ValueError(f"{fn}: a must have shape {layout}, got {tuple(a.shape)}")
    _validate.shape(fn, "b", b, tuple(a.shape), "the shape of a")
    if time_major:
        steps, batch = a.shape[0], tuple(a.shape[1:-1])
    else:
        steps, batch = a.shape[-2], tuple(a.shape[:-2])
    hidden = a.shape[-1]
    if h0 is not None:
        _validate.floating(fn, "h0", h0, xp, a.dtype, dtype_of="a")
        _validate.shape(fn, "h0", h0, (*batch, hidden), f"batch shape {batch} of a, then H")
    return _Layout(xp, steps, batch, hidden), get_adapter(xp)


def _run(
    fn: str, a: Any, b: Any, h0: Any, time_major: bool, reverse: bool, method: Any
) -> tuple[_Layout, Adapter, str, Array, Array, Array]:
    """Validate, move to time-major, fill ``h0``, resolve ``method``."""
    lay, adapter = _coefficients(fn, a, b, h0, time_major, method)
    xp, nb = lay.xp, len(lay.batch)
    if h0 is None:
        h0 = xp.zeros((*lay.batch, lay.hidden), dtype=a.dtype, device=device(a))
    a_tm = move_time(xp, a, nb, time_major, inverse=False)
    b_tm = move_time(xp, b, nb, time_major, inverse=False)
    width = lay.hidden * math.prod(lay.batch)
    method = resolve_method(adapter, method, a, lay.steps, width)
    return lay, adapter, method, a_tm, b_tm, h0


def linear_scan(
    a: Array,
    b: Array,
    h0: Array | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    method: str = "auto",
) -> tuple[Array, Array]:
    r"""Solve the linear recurrence ``h_t = a_t ⊙ h_{t-1} + b_t`` for all ``t``.

    .. math::
        h_t = a_t \odot h_{t-1} + b_t, \quad t = 0, \dots, T-1, \qquad h_{-1} = h_0

    (with ``reverse``: ``h_t = a_t ⊙ h_{t+1} + b_t`` from ``t = T-1`` down, ``h_T = h_0``).

    ``method="parallel"`` is an associative scan of the affine maps ``(a_t, b_t)`` under
    ``(a, b) • (a', b') = (a' a, a' b + b')`` (see :func:`associative_scan`): ``O(log T)``
    rounds, the fast form on a GPU.  ``"sequential"`` steps through time (an in-place
    loop on NumPy, :func:`jax.lax.scan` on JAX), the fast form on a CPU.  ``"auto"`` lets
    the backend adapter choose by device and shape (sequential on CPUs, parallel on
    GPUs).  Both give the same numbers to rounding; the parallel form multiplies ``a``'s
    over spans of up to ``T`` steps, so it may overflow where the sequential one does not
    when ``|a| > 1``.

    Parameters
    ----------
    a, b : array, shape ``(..., T, H)``, or ``(T, ..., H)`` with ``time_major``
        The coefficients, of one real floating dtype; any batch shape (none for ``(T, H)``).
    h0 : array, shape ``(..., H)``, optional
        The initial state; zeros by default.
    time_major : bool
        Whether time is the leading axis of ``a``, ``b`` and ``hs``.
    reverse : bool
        Run from the last step to the first; ``hs`` keeps the original time order.
    method : {"auto", "sequential", "parallel"}
        The algorithm, see above.

    Returns
    -------
    hs : array, shape of ``a``
        ``hs[..., t, :]`` is ``h_t``.
    h_last : array, shape ``(..., H)``
        The state after the last processed step (``h_{T-1}``; ``h_0`` of the output, i.e.
        ``hs[..., 0, :]``, with ``reverse``; ``h0`` when ``T = 0``).

    Both are arrays of the library, dtype and device of ``a``.  Gradients: JAX and
    PyTorch differentiate through it; elsewhere use :func:`linear_scan_vjp`.

    Raises
    ------
    TypeError
        Non-floating or mixed dtypes, arrays of two libraries, a non-array.
    ValueError
        ``a`` of rank below 2, ``b`` or ``h0`` of the wrong shape, an unknown ``method``,
        arrays on two devices.

    Examples
    --------
    An exponential moving average, ``h_t = 0.5 h_{t-1} + 0.5 x_t``:

    >>> x = np.array([[2.0], [4.0], [0.0], [8.0]])            # (T, H) = (4, 1)
    >>> hs, h = polyrnn.linear_scan(np.full_like(x, 0.5), 0.5 * x)
    >>> hs.ravel(), h
    (array([1.   , 2.5  , 1.25 , 4.625]), array([4.625]))
    >>> hs_p, _ = polyrnn.linear_scan(np.full_like(x, 0.5), 0.5 * x, method="parallel")
    >>> bool(np.allclose(hs_p, hs))
    True
    """
    _validate.flags("linear_scan", time_major=time_major, reverse=reverse)
    lay, adapter, method, a_tm, b_tm, h0 = _run(
        "linear_scan", a, b, h0, time_major, reverse, method
    )
    hs, h_last = adapter.linear_scan(a_tm, b_tm, h0, reverse=bool(reverse), method=method)
    return move_time(lay.xp, hs, len(lay.batch), time_major, inverse=True), h_last


def linear_scan_vjp(
    a: Array,
    b: Array,
    h0: Array | None = None,
    *,
    time_major: bool = False,
    reverse: bool = False,
    method: str = "auto",
) -> tuple[tuple[Array, Array], Callable[..., tuple[Array, Array, Array]]]:
    r""":func:`linear_scan` and its vector-Jacobian product, for libraries without autodiff.

    Takes exactly the arguments of :func:`linear_scan`.  The backward pass is one more
    linear scan, run the other way (by the same ``method``): the cotangent of the state
    obeys

    .. math::
        g_t = \bar h_t + a_{t+1} \odot g_{t+1}, \qquad g_{T-1} = \bar h_{T-1} + \bar h_{last},

    and then ``d_b_t = g_t``, ``d_a_t = g_t ⊙ h_{t-1}`` and ``d_h0 = a_0 ⊙ g_0``.

    Returns
    -------
    outputs : (hs, h_last)
        What :func:`linear_scan` returns.
    backward : callable ``(d_hs=None, d_h_last=None) -> (d_a, d_b, d_h0)``
        Maps cotangents of the outputs (arrays of their shapes and of the dtype of ``a``;
        ``None`` means zeros) to those of ``a``, ``b`` (their shape and layout) and
        ``h0`` (``(..., H)``, also when ``h0`` is ``None``).  May be called many times.

    Raises
    ------
    TypeError, ValueError
        As :func:`linear_scan`; ``backward`` raises :class:`ValueError` for a cotangent
        of the wrong shape and :class:`TypeError` for one of another dtype or library.

    Examples
    --------
    >>> a, b = np.array([[0.5], [0.5]]), np.array([[1.0], [2.0]])
    >>> (hs, h), backward = polyrnn.linear_scan_vjp(a, b, np.array([4.0]))
    >>> hs.ravel()                       # h_0 = 0.5*4 + 1, h_1 = 0.5*3 + 2
    array([3. , 3.5])
    >>> d_a, d_b, d_h0 = backward(None, np.ones(1))    # gradient of h_last
    >>> d_a.ravel(), d_b.ravel(), d_h0                 # dh1/da0 = a1 h0, dh1/da1 = h_0
    (array([2., 3.]), array([0.5, 1. ]), array([0.25]))
    """
    _validate.flags("linear_scan_vjp", time_major=time_major, reverse=reverse)
    fn = "linear_scan_vjp"
    lay, adapter, method, a_tm, b_tm, h0 = _run(fn, a, b, h0, time_major, reverse, method)
    xp, nb = lay.xp, len(lay.batch)
    reverse = bool(reverse)
    hs_tm, h_last = adapter.linear_scan(a_tm, b_tm, h0, reverse=reverse, method=method)
    hs = move_time(xp, hs_tm, nb, time_major, inverse=True)
    hs_shape = tuple(hs.shape)
    state = (*lay.batch, lay.hidden)
    why = f"batch shape {lay.batch} of a, then H={lay.hidden}"

    def backward(d_hs: Array | None = None, d_h_last: Array | None = None) -> Any:
        d_hs = cotangent(fn, "d_hs", d_hs, xs=a, expected=hs_shape, why="the shape of hs")
        d_h_last = cotangent(fn, "d_h_last", d_h_last, xs=a, expected=state, why=why)
        dy = move_time(xp, d_hs, nb, time_major, inverse=False)
        d_a, d_b, d_h0 = _linear.linear_backward(
            adapter, a_tm, hs_tm, h0, dy, d_h_last, reverse=reverse, method=method
        )
        return (
            move_time(xp, d_a, nb, time_major, inverse=True),
            move_time(xp, d_b, nb, time_major, inverse=True),
            d_h0,
        )

    return (hs, h_last), backward
