"""NumPy: the recurrences as tight loops of in-place ufuncs over preallocated buffers.

Per step a GRU does two BLAS products and about a dozen ufunc calls with ``out=``, and
allocates nothing.  The logistic function is ``σ(x) = 1/2 + tanh(x/2)/2``; the halving is
folded into the (copied) weights and projections of the sigmoid gates once, before the
loop, so each sigmoid costs one ``tanh`` and two in-place scalar operations (scaling by
1/2 is exact in binary floating point).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._cell import Cell
from .._compat import Array
from .._recurrence import initial, project, step_mask
from ..cells import MIN_GRU, builtin, fused_bias
from ._base import Adapter

Step = Callable[[np.ndarray, list[np.ndarray], list[np.ndarray]], None]
"""``step(gx_t, states, out)`` writes the new states into the buffers ``out``."""


def _sigmoid_from_half(a: np.ndarray) -> None:
    """``a <- σ(2a) = 1/2 + tanh(a)/2`` in place."""
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _run(
    gx: np.ndarray,
    states: list[np.ndarray],
    step: Step,
    lengths: np.ndarray | None,
    reverse: bool,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Loop ``step`` over time; ``hs[t]`` is the first state after step t (zero where masked)."""
    n_steps = gx.shape[0]
    mask = step_mask(np, lengths, n_steps)
    hs = (np.zeros if mask is not None else np.empty)((n_steps, *states[0].shape), gx.dtype)
    # Walking t backwards with each row's own mask reads every sequence from its last valid
    # step, which is what the reference does by flipping the time axis.
    order = range(n_steps - 1, -1, -1) if reverse else range(n_steps)
    states = [s.copy() for s in states]
    if mask is None:
        extra = [np.empty_like(s) for s in states[1:]]  # ping-pong buffers of the other states
        for t in order:
            out = [hs[t], *extra]
            step(gx[t], states, out)
            extra = states[1:]
            states = out
    else:
        new = [np.empty_like(s) for s in states]
        for t in order:
            step(gx[t], states, new)
            for s, n in zip(states, new, strict=True):
                np.copyto(s, n, where=mask[t])
            np.copyto(hs[t], new[0], where=mask[t])
    return hs, [s.copy() if s.base is hs else s for s in states]


class NumpyAdapter(Adapter):
    name = "numpy"
    specialisations = ("in-place ufuncs over preallocated buffers, no per-step allocation",)

    def cell_scan(self, cell: Cell, xs: Array, params: Any, state0: Any, **options: Any) -> Any:
        """The built-in RNN, GRU and LSTM by the in-place loops below; the rest by the
        reference."""
        kernel: Any = {"rnn": self._rnn, "gru": self._gru, "lstm": self._lstm}.get(cell.name)
        if xs.size == 0 or kernel is None or not builtin(cell):
            return super().cell_scan(cell, xs, params, state0, **options)
        state = tuple(initial(self.xp, xs, params.w_h.shape[0], s) for s in state0)
        return kernel(xs, params, state, **options)

    def linear_method(self, x: Array, *, steps: int, width: int) -> str:
        """Always sequential: NumPy runs on one core, where the loop of two in-place ufuncs per
        step beats the ``2 log2 T`` allocating passes of the parallel form at every T
        measured (``benchmarks/linear_bench.py``)."""
        return "sequential"

    def linear_scan(
        self, a: Array, b: Array, h0: Array, *, reverse: bool, method: str
    ) -> tuple[Array, Array]:
        """Sequential: :func:`linear_loop`; parallel: the Array-API associative scan."""
        if method == "parallel" or a.shape[0] == 0:
            return super().linear_scan(a, b, h0, reverse=reverse, method=method)
        hs = linear_loop(a, b, h0, reverse)
        return hs, (hs[0] if reverse else hs[-1]).copy()

    def coefficients(self, cell: Cell, gx: Array, n_h: int) -> tuple[Array, Array]:
        """minGRU's with six in-place ufuncs (:func:`min_gru_coefficients`)."""
        if cell is MIN_GRU:
            return min_gru_coefficients(gx, n_h)
        return super().coefficients(cell, gx, n_h)

    def _flat(self, xs: Array, params: Any, bias: Array, h0: Array) -> tuple[np.ndarray, int]:
        gx = project(self.xp, xs, params.w_x, bias)
        n = int(np.prod(h0.shape[:-1], dtype=np.int64))
        return np.ascontiguousarray(gx.reshape(xs.shape[0], n, -1)), n

    def _rnn(
        self, xs: Array, params: Any, state0: Any, *, lengths: Any, reverse: bool, activation: str
    ) -> Any:
        (h0,) = state0
        gx, n = self._flat(xs, params, fused_bias(self.xp, params), h0)
        w_h = params.w_h
        if activation == "sigmoid":
            gx *= 0.5
            w_h = 0.5 * w_h

        def step(g: np.ndarray, states: list[np.ndarray], out: list[np.ndarray]) -> None:
            h = out[0]
            np.matmul(states[0], w_h, out=h)
            h += g
            if activation == "tanh":
                np.tanh(h, out=h)
            elif activation == "relu":
                np.maximum(h, 0, out=h)
            else:
                _sigmoid_from_half(h)

        hs, (h,) = _run(gx, [h0.reshape(n, -1)], step, _flat_lengths(lengths), reverse)
        return hs.reshape(*xs.shape[:-1], -1), (h.reshape(h0.shape),)

    def _gru(
        self, xs: Array, params: Any, state0: Any, *, lengths: Any, reverse: bool, reset_after: bool
    ) -> Any:
        (h0,) = state0
        gx, n = self._flat(xs, params, fused_bias(self.xp, params, reset_after), h0)
        hid = h0.shape[-1]
        gx[..., : 2 * hid] *= 0.5
        w_h = np.array(params.w_h)  # a copy whose r, z columns are halved
        w_h[:, : 2 * hid] *= 0.5
        b_hn = params.b_h[2 * hid :]
        a = np.empty((n, 3 * hid), gx.dtype)
        tmp = np.empty((n, hid), gx.dtype)
        w_rz, w_n = np.ascontiguousarray(w_h[:, : 2 * hid]), np.ascontiguousarray(w_h[:, 2 * hid :])
        a_rz, a_n = a[:, : 2 * hid], a[:, 2 * hid :]
        r, z = a[:, :hid], a[:, hid : 2 * hid]

        def step(g: np.ndarray, states: list[np.ndarray], out: list[np.ndarray]) -> None:
            h, h_new = states[0], out[0]
            if reset_after:
                np.matmul(h, w_h, out=a)
                np.add(a_n, b_hn, out=a_n)
            else:
                np.matmul(h, w_rz, out=a_rz)
            np.add(a_rz, g[:, : 2 * hid], out=a_rz)
            _sigmoid_from_half(a_rz)
            if reset_after:
                np.multiply(a_n, r, out=a_n)
            else:
                np.multiply(r, h, out=tmp)
                np.matmul(tmp, w_n, out=a_n)
            np.add(a_n, g[:, 2 * hid :], out=a_n)
            np.tanh(a_n, out=a_n)
            np.subtract(h, a_n, out=tmp)  # h' = n + z * (h - n)
            np.multiply(tmp, z, out=tmp)
            np.add(a_n, tmp, out=h_new)

        hs, (h,) = _run(gx, [h0.reshape(n, -1)], step, _flat_lengths(lengths), reverse)
        return hs.reshape(*xs.shape[:-1], -1), (h.reshape(h0.shape),)

    def _lstm(self, xs: Array, params: Any, state0: Any, *, lengths: Any, reverse: bool) -> Any:
        h0, c0 = state0
        hid = h0.shape[-1]
        # Reorder the gates (i, f, g, o) -> (i, f, o, g) so the three sigmoids are contiguous.
        order = np.r_[0 : 2 * hid, 3 * hid : 4 * hid, 2 * hid : 3 * hid]
        w_x, w_h, bias = (
            params.w_x[:, order],
            params.w_h[:, order],
            fused_bias(self.xp, params)[order],
        )
        gx, n = self._flat(xs, params._replace(w_x=w_x), bias, h0)
        gx[..., : 3 * hid] *= 0.5
        w_h[:, : 3 * hid] *= 0.5
        a = np.empty((n, 4 * hid), gx.dtype)
        tmp = np.empty((n, hid), gx.dtype)
        sig, i, f, o, g_ = (
            a[:, : 3 * hid],
            a[:, :hid],
            a[:, hid : 2 * hid],
            a[:, 2 * hid : 3 * hid],
            a[:, 3 * hid :],
        )

        def step(g: np.ndarray, states: list[np.ndarray], out: list[np.ndarray]) -> None:
            (h, c), (h_new, c_new) = states, out
            np.matmul(h, w_h, out=a)
            np.add(a, g, out=a)
            np.tanh(a, out=a)
            np.multiply(sig, 0.5, out=sig)
            np.add(sig, 0.5, out=sig)
            np.multiply(f, c, out=c_new)
            np.multiply(i, g_, out=tmp)
            c_new += tmp
            np.tanh(c_new, out=tmp)
            np.multiply(o, tmp, out=h_new)

        states = [h0.reshape(n, -1), c0.reshape(n, -1)]
        hs, (h, c) = _run(gx, states, step, _flat_lengths(lengths), reverse)
        return hs.reshape(*xs.shape[:-1], -1), (h.reshape(h0.shape), c.reshape(c0.shape))


def _flat_lengths(lengths: Array | None) -> np.ndarray | None:
    return None if lengths is None else np.reshape(lengths, (-1,))


def linear_loop(a: np.ndarray, b: np.ndarray, h0: np.ndarray, reverse: bool) -> np.ndarray:
    """``hs`` of ``h_t = a_t h_{t-1} + b_t`` over time-major ``a, b (T, ..., H)``: two in-place
    ufuncs per step writing straight into the preallocated ``hs``, nothing else allocated."""
    hs = np.empty(np.broadcast_shapes(a.shape, b.shape), dtype=np.result_type(a, b, h0))
    h = h0
    for t in range(a.shape[0] - 1, -1, -1) if reverse else range(a.shape[0]):
        out = hs[t]
        np.multiply(a[t], h, out=out)
        np.add(out, b[t], out=out)
        h = out
    return hs


def min_gru_coefficients(gx: np.ndarray, n_h: int) -> tuple[np.ndarray, np.ndarray]:
    """``a = σ(-k)`` and ``b = σ(k) h̃`` from ``gx = (k, h̃)`` with six in-place ufuncs.

    ``σ(k) = 1 / (1 + e^{-k})`` and ``σ(-k) = 1 / (1 + 1 / e^{-k})`` are each accurate to a
    few ulp in relative terms in both tails (no ``1 - σ`` cancellation); ``e^{-k}``
    overflowing to ``inf`` or underflowing to 0 gives the right limits, 0 and 1.
    """
    with np.errstate(over="ignore", divide="ignore"):
        z = np.negative(gx[..., :n_h])
        np.exp(z, out=z)  # e^{-k}
        a = np.reciprocal(z)  # e^{k}
        np.add(z, 1, out=z)
        np.reciprocal(z, out=z)  # σ(k)
        np.add(a, 1, out=a)
        np.reciprocal(a, out=a)  # σ(-k)
    np.multiply(z, gx[..., n_h:], out=z)
    return a, z
