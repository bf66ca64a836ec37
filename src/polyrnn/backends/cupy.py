"""CuPy: per step one cuBLAS product and ONE fused CUDA kernel for all gate arithmetic.

The input projection of all steps is one GEMM; the loop then launches, per step, the
recurrent GEMM (``cupy.matmul(..., out=)``) and a single :class:`cupy.ElementwiseKernel`
that computes every gate, the new state and the output row, writing straight into the
preallocated ``hs``.  (The GRU with ``reset_after=False`` needs the reset gate before its
second product, so it takes two GEMMs and two kernels.)  ``lengths`` are a per-step mask
read inside the kernel; ``reverse`` walks the steps backwards.  float16 and bfloat16 fall
back to the Array-API reference.
"""

from __future__ import annotations

from typing import Any

import cupy

from .._cell import Cell
from .._compat import Array
from .._recurrence import initial, project
from ..cells import builtin, fused_bias
from ._base import Adapter

_PREAMBLE = """
template <typename T> __device__ T sigm(T x) { return T(1) / (T(1) + exp(-x)); }
"""

# Each kernel runs over (N, H): n = i / H is the row, j = i % H the unit; gate blocks are
# columns [0, H), [H, 2H), ... of the raw (N, G*H) arrays.  `m[n]` says whether the step
# is valid for row n; where it is not, the state is kept and the output is zero.
_TAIL = """
    bool keep = m[n];
    h_out = keep ? v : hp;
    y = keep ? v : T(0);
"""

_GRU_AFTER = cupy.ElementwiseKernel(
    "raw T gx, raw T gh, raw T bn, raw T h, raw bool m, int32 H",
    "T h_out, T y",
    """
    int n = i / H, j = i % H, b = 3 * n * H;
    T hp = h[i];
    T r = sigm(gx[b + j] + gh[b + j]);
    T z = sigm(gx[b + H + j] + gh[b + H + j]);
    T c = tanh(gx[b + 2 * H + j] + r * (gh[b + 2 * H + j] + bn[j]));
    T v = c + z * (hp - c);
    """
    + _TAIL,
    "polyrnn_gru_reset_after",
    preamble=_PREAMBLE,
)

_GRU_BEFORE_GATES = cupy.ElementwiseKernel(
    "raw T gx, raw T gh, raw T h, int32 H",
    "T rh, T z",
    """
    int n = i / H, j = i % H, b = 3 * n * H, b2 = 2 * n * H;
    rh = sigm(gx[b + j] + gh[b2 + j]) * h[i];
    z = sigm(gx[b + H + j] + gh[b2 + H + j]);
    """,
    "polyrnn_gru_gates",
    preamble=_PREAMBLE,
)

_GRU_BEFORE_STATE = cupy.ElementwiseKernel(
    "raw T gx, raw T a, raw T z, raw T h, raw bool m, int32 H",
    "T h_out, T y",
    """
    int n = i / H, j = i % H, b = 3 * n * H;
    T hp = h[i];
    T c = tanh(gx[b + 2 * H + j] + a[i]);
    T v = c + z[i] * (hp - c);
    """
    + _TAIL,
    "polyrnn_gru_state",
    preamble=_PREAMBLE,
)

_LSTM = cupy.ElementwiseKernel(
    "raw T gx, raw T gh, raw T h, raw T c, raw bool m, int32 H",
    "T h_out, T c_out, T y",
    """
    int n = i / H, j = i % H, b = 4 * n * H;
    T hp = h[i], cp = c[i];
    T ig = sigm(gx[b + j] + gh[b + j]);
    T fg = sigm(gx[b + H + j] + gh[b + H + j]);
    T gg = tanh(gx[b + 2 * H + j] + gh[b + 2 * H + j]);
    T og = sigm(gx[b + 3 * H + j] + gh[b + 3 * H + j]);
    T cn = fg * cp + ig * gg;
    T v = og * tanh(cn);
    bool keep = m[n];
    h_out = keep ? v : hp;
    c_out = keep ? cn : cp;
    y = keep ? v : T(0);
    """,
    "polyrnn_lstm",
    preamble=_PREAMBLE,
)

_ACTIVATIONS = {"tanh": "tanh(s)", "sigmoid": "sigm(s)", "relu": "(s > T(0) ? s : T(0))"}
_RNN = {
    name: cupy.ElementwiseKernel(
        "raw T gx, raw T gh, raw T h, raw bool m, int32 H",
        "T h_out, T y",
        f"""
        int n = i / H;
        T hp = h[i];
        T s = gx[i] + gh[i];
        T v = {expr};
        """
        + _TAIL,
        f"polyrnn_rnn_{name}",
        preamble=_PREAMBLE,
    )
    for name, expr in _ACTIVATIONS.items()
}


# The linear recurrence h_t = a_t h_{t-1} + b_t: thread i owns lane i of the (T, width)
# arrays and walks time itself, one launch for the whole sequence.  Consecutive threads
# read consecutive addresses at every step (coalesced).
_LINEAR = cupy.ElementwiseKernel(
    "raw T a, raw T b, T h0, int64 steps, int64 width, int32 rev",
    "raw T hs, T h_last",
    """
    T h = h0;
    for (long long k = 0; k < steps; ++k) {
        const long long j = (rev ? steps - 1 - k : k) * width + i;
        h = a[j] * h + b[j];
        hs[j] = h;
    }
    h_last = h;
    """,
    "polyrnn_linear_scan",
)


class CupyAdapter(Adapter):
    name = "cupy"
    specialisations = ("one cuBLAS GEMM + one fused ElementwiseKernel per step",)

    @classmethod
    def prepare(cls, dtype: str) -> None:
        if not cupy.is_available():
            raise RuntimeError("cupy is installed but finds no usable CUDA device")

    def to_numpy(self, a: Array) -> Any:
        return a.get()

    def _supported(self, xs: Array) -> bool:
        return xs.size > 0 and xs.dtype in (cupy.float32, cupy.float64)

    def _setup(
        self, xs: Array, params: Any, bias: Array, states: list[Any], lengths: Array | None
    ) -> tuple[Any, ...]:
        """The projection ``gx (T, N, G*H)``, the step mask ``(T, N)``, the output buffer
        ``hs (T, N, H)``, contiguous copies of the states ``(N, H)`` (zeros for ``None``), N."""
        states = [initial(self.xp, xs, params.w_h.shape[0], s) for s in states]
        steps = xs.shape[0]
        n = states[0][..., 0].size
        gx = project(self.xp, xs, params.w_x, bias).reshape(steps, n, -1)
        gx = cupy.ascontiguousarray(gx)
        if lengths is None:
            mask = cupy.ones((steps, n), dtype=cupy.bool_)
        else:
            mask = cupy.arange(steps)[:, None] < lengths.reshape(1, n)
        hs = cupy.empty((steps, n, states[0].shape[-1]), dtype=xs.dtype)
        flat = [cupy.array(s.reshape(n, -1), order="C") for s in states]  # state buffers
        return gx, mask, hs, flat, n

    def cell_scan(self, cell: Cell, xs: Array, params: Any, state0: Any, **options: Any) -> Any:
        """The built-in RNN, GRU and LSTM by the fused kernels below (float32 and float64);
        the rest by the reference."""
        kernel: Any = {"rnn": self._rnn, "gru": self._gru, "lstm": self._lstm}.get(cell.name)
        if not self._supported(xs) or kernel is None or not builtin(cell):
            return super().cell_scan(cell, xs, params, state0, **options)
        return kernel(xs, params, state0, **options)

    def _rnn(
        self, xs: Array, params: Any, state0: Any, *, lengths: Any, reverse: bool, activation: str
    ) -> Any:
        bias = fused_bias(self.xp, params)
        gx, mask, hs, (h,), n = self._setup(xs, params, bias, list(state0), lengths)
        hid = params.w_h.shape[0]
        gh = cupy.empty((n, hid), xs.dtype)
        w_h = cupy.ascontiguousarray(params.w_h)
        kernel = _RNN[activation]
        for t in _order(xs.shape[0], reverse):
            cupy.matmul(h, w_h, out=gh)
            kernel(gx[t], gh, h, mask[t], hid, h, hs[t])
        return hs.reshape(*xs.shape[:-1], hid), (h.reshape(*xs.shape[1:-1], hid),)

    def _gru(
        self, xs: Array, params: Any, state0: Any, *, lengths: Any, reverse: bool, reset_after: bool
    ) -> Any:
        bias = fused_bias(self.xp, params, reset_after)
        gx, mask, hs, (h,), n = self._setup(xs, params, bias, list(state0), lengths)
        hid = params.w_h.shape[0]
        w_h = cupy.ascontiguousarray(params.w_h)
        b_hn = cupy.ascontiguousarray(params.b_h[2 * hid :])
        if reset_after:
            gh = cupy.empty((n, 3 * hid), xs.dtype)
            for t in _order(xs.shape[0], reverse):
                cupy.matmul(h, w_h, out=gh)
                _GRU_AFTER(gx[t], gh, b_hn, h, mask[t], hid, h, hs[t])
        else:
            w_rz = cupy.ascontiguousarray(w_h[:, : 2 * hid])
            w_n = cupy.ascontiguousarray(w_h[:, 2 * hid :])
            gh = cupy.empty((n, 2 * hid), xs.dtype)
            rh, z, a = (cupy.empty((n, hid), xs.dtype) for _ in range(3))
            for t in _order(xs.shape[0], reverse):
                cupy.matmul(h, w_rz, out=gh)
                _GRU_BEFORE_GATES(gx[t], gh, h, hid, rh, z)
                cupy.matmul(rh, w_n, out=a)
                _GRU_BEFORE_STATE(gx[t], a, z, h, mask[t], hid, h, hs[t])
        return hs.reshape(*xs.shape[:-1], hid), (h.reshape(*xs.shape[1:-1], hid),)

    def _lstm(self, xs: Array, params: Any, state0: Any, *, lengths: Any, reverse: bool) -> Any:
        bias = fused_bias(self.xp, params)
        gx, mask, hs, (h, c), n = self._setup(xs, params, bias, list(state0), lengths)
        hid = h.shape[-1]
        gh = cupy.empty((n, 4 * hid), xs.dtype)
        w_h = cupy.ascontiguousarray(params.w_h)
        for t in _order(xs.shape[0], reverse):
            cupy.matmul(h, w_h, out=gh)
            _LSTM(gx[t], gh, h, c, mask[t], hid, h, c, hs[t])
        shape = (*xs.shape[1:-1], hid)
        return hs.reshape(*xs.shape[:-1], hid), (h.reshape(shape), c.reshape(shape))

    def linear_method(self, x: Array, *, steps: int, width: int) -> str:
        """The one-launch sequential kernel when it has enough lanes to fill a GPU (width of
        at least 2**16) or few steps (at most 64); the parallel form otherwise.  A rule from
        counting launches and passes over memory, not yet measured on a GPU."""
        return "sequential" if width >= 1 << 16 or steps <= 64 else "parallel"

    def linear_scan(
        self, a: Array, b: Array, h0: Array, *, reverse: bool, method: str
    ) -> tuple[Array, Array]:
        """Sequential: :data:`_LINEAR`, one kernel launch, parallel over batch and H.
        Parallel, and float16/bfloat16: the Array-API associative scan in CuPy ops."""
        if method == "parallel" or not self._supported(a):
            return super().linear_scan(a, b, h0, reverse=reverse, method=method)
        steps, width = a.shape[0], h0.size
        dtype = a.dtype
        hs = cupy.empty(a.shape, dtype=dtype)
        h_last = cupy.empty(h0.shape, dtype=dtype)
        _LINEAR(
            cupy.ascontiguousarray(a).reshape(-1),
            cupy.ascontiguousarray(b).reshape(-1),
            cupy.ascontiguousarray(h0).reshape(-1),
            steps,
            width,
            int(reverse),
            hs.reshape(-1),
            h_last.reshape(-1),
        )
        return hs, h_last


def _order(steps: int, reverse: bool) -> range:
    """Reading backwards step by step with each row's own mask is exactly what the reference
    does by flipping time: sequence n's valid steps t < L_n are visited from L_n - 1 down."""
    return range(steps - 1, -1, -1) if reverse else range(steps)
