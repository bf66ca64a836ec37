"""PyTorch: aten's fused RNN kernels where the cell matches them, a tight loop elsewhere.

``torch._VF.gru`` / ``lstm`` / ``rnn_tanh`` / ``rnn_relu`` are what :class:`torch.nn.GRU`
and friends call: cuDNN on CUDA, the native fused kernels on the CPU.  They compute
exactly polyrnn's GRU with ``reset_after=True``, its LSTM and its tanh/relu RNN.  Variable
lengths go through packed sequences (each sequence reversed in place for ``reverse``);
a zero length, which packing refuses, falls back to the loop.  The GRU with
``reset_after=False`` and the sigmoid RNN have no aten kernel: they run a loop over a
preallocated output, one ``addmm`` and a few fused-by-aten elementwise ops per step.
Autograd flows through every path.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable
from torch.nn.utils import rnn as rnn_utils

from .. import _linear
from .._cell import Cell
from .._compat import Array, array_namespace
from .._recurrence import initial, project, step_mask
from ..cells import GRU, builtin, fused_bias
from ._base import Adapter
from ._registry import get_adapter
from .numpy import linear_loop

_KERNELS: dict[str, Any] = {
    "gru": torch._VF.gru,
    "lstm": torch._VF.lstm,
    "tanh": torch._VF.rnn_tanh,
    "relu": torch._VF.rnn_relu,
}


def _reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``idx[t, n]``: ``L_n - 1 - t`` for ``t < L_n``, else ``t``; an involution on time."""
    t = torch.arange(steps, device=lengths.device)[:, None]
    return torch.where(t < lengths, lengths - 1 - t, t)


def _fused(
    kind: str,
    xs: torch.Tensor,
    params: Any,
    state: list[torch.Tensor],
    lengths: torch.Tensor | None,
    reverse: bool,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Run aten's kernel on time-major ``xs (T, N, D)`` and states ``(N, H)``."""
    weights = [params.w_x.mT.contiguous(), params.w_h.mT.contiguous(), params.b_x, params.b_h]
    hx: Any = [s[None] for s in state]
    hx = tuple(hx) if kind == "lstm" else hx[0]
    train = torch.is_grad_enabled() and any(t.requires_grad for t in (xs, *weights, *state))
    steps = xs.shape[0]
    with warnings.catch_warnings():
        # cuDNN asks for one contiguous weight buffer; ours are views of the user's params.
        warnings.filterwarnings("ignore", message=".*contiguous chunk of memory.*")
        if lengths is None:
            if reverse:
                xs = xs.flip(0)
            out = _KERNELS[kind](xs, hx, weights, True, 1, 0.0, train, False, False)
            hs = out[0].flip(0) if reverse else out[0]
        else:
            idx = _reverse_index(lengths, steps)[..., None] if reverse else None
            if idx is not None:
                xs = xs.gather(0, idx.expand(-1, -1, xs.shape[-1]))
            packed = rnn_utils.pack_padded_sequence(xs, lengths.cpu(), enforce_sorted=False)
            order = packed.sorted_indices
            hx_sorted = tuple(h[:, order] for h in hx) if kind == "lstm" else hx[:, order]
            out = _KERNELS[kind](
                packed.data, packed.batch_sizes, hx_sorted, weights, True, 1, 0.0, train, False
            )
            hs, _ = rnn_utils.pad_packed_sequence(packed._replace(data=out[0]), total_length=steps)
            if idx is not None:
                hs = hs.gather(0, idx.expand(-1, -1, hs.shape[-1]))
            out = (out[0], *(h[:, packed.unsorted_indices] for h in out[1:]))
    return hs, [h[0] for h in out[1:]]


def _gru_loop(
    xp: Any,
    xs: torch.Tensor,
    params: Any,
    h: torch.Tensor,
    lengths: torch.Tensor | None,
    reverse: bool,
    reset_after: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GRU over time-major ``xs (T, N, D)`` with one ``addmm`` per step."""
    hid = h.shape[-1]
    gx = project(xp, xs, params.w_x, fused_bias(xp, params, reset_after))
    mask = step_mask(xp, lengths, xs.shape[0])
    if reverse:
        gx = gx.flip(0)
        mask = None if mask is None else mask.flip(0)
    w_rz, w_n, b_hn = params.w_h[:, : 2 * hid], params.w_h[:, 2 * hid :], params.b_h[2 * hid :]
    hs = gx.new_zeros((gx.shape[0], *h.shape))
    for t in range(gx.shape[0]):
        g = gx[t]
        if reset_after:
            gh = h @ params.w_h
            rz = torch.sigmoid(g[:, : 2 * hid] + gh[:, : 2 * hid])
            r, z = rz[:, :hid], rz[:, hid:]
            n = torch.tanh(torch.addcmul(g[:, 2 * hid :], r, gh[:, 2 * hid :] + b_hn))
        else:
            rz = torch.sigmoid(torch.addmm(g[:, : 2 * hid], h, w_rz))
            r, z = rz[:, :hid], rz[:, hid:]
            n = torch.tanh(torch.addmm(g[:, 2 * hid :], r * h, w_n))
        new = torch.lerp(n, h, z)  # n + z * (h - n)
        if mask is None:
            h = new
            hs[t] = new
        else:
            h = torch.where(mask[t], new, h)
            hs[t] = torch.where(mask[t], new, 0.0)
    return (hs.flip(0) if reverse else hs), h


_HOST_DTYPES = (torch.float16, torch.float32, torch.float64)


def _host_loop_ok(*tensors: torch.Tensor) -> bool:
    """Whether the NumPy loop may run on these tensors' memory: plain CPU tensors of a dtype
    NumPy has, outside ``torch.compile`` and outside ``torch.func`` transforms."""
    if torch.compiler.is_compiling():
        return False
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    return all(
        t.device.type == "cpu"
        and t.dtype in _HOST_DTYPES
        and not (wrapped is not None and wrapped(t))
        for t in tensors
    )


def _host(t: torch.Tensor) -> Any:
    return t.detach().numpy(force=True)


class _HostLinearScan(torch.autograd.Function):
    """``hs`` of a linear scan by the NumPy in-place loop on the tensors' own memory, with its
    backward (one more linear scan, the other way) by the same loop.

    Once differentiable: the gradient is exact, but cannot itself be differentiated.
    """

    @staticmethod
    def forward(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, reverse: bool) -> Any:
        return torch.from_numpy(linear_loop(_host(a), _host(b), _host(h0), reverse))

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        a, _, h0, reverse = inputs
        ctx.reverse = reverse
        ctx.save_for_backward(a, h0, output)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, d_hs: torch.Tensor) -> Any:
        a, h0, hs = (_host(t) for t in ctx.saved_tensors)
        np_adapter = get_adapter(array_namespace(a))
        d = _linear.linear_backward(
            np_adapter,
            a,
            hs,
            h0,
            _host(d_hs),
            np.zeros_like(h0),
            reverse=ctx.reverse,
            method="sequential",
        )
        return (*(torch.from_numpy(np.ascontiguousarray(x)) for x in d), None)


def _torch_linear_loop(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, reverse: bool
) -> torch.Tensor:
    """``hs`` of a linear scan with one ``addcmul`` per step (any device and dtype, autograd)."""
    h, out = h0, []
    pairs = list(zip(a.unbind(0), b.unbind(0), strict=True))
    for a_t, b_t in reversed(pairs) if reverse else pairs:
        h = torch.addcmul(b_t, a_t, h)
        out.append(h)
    if reverse:
        out.reverse()
    return torch.stack(out)


class TorchAdapter(Adapter):
    name = "torch"
    specialisations = (
        "aten fused kernels (cuDNN on CUDA): GRU reset_after=True, LSTM, tanh/relu RNN",
        "packed sequences for lengths",
        "addmm loop for GRU reset_after=False",
    )
    autodiff = "torch"

    def to_numpy(self, a: Array) -> Any:
        return a.detach().cpu().numpy()

    @staticmethod
    def sigmoid(xp: Any, x: Array) -> Array:
        """:func:`torch.sigmoid` (one fused kernel, accurate in both tails), for the paths
        that fall back to the reference recurrences and for the linear cells."""
        return torch.sigmoid(x)

    @staticmethod
    def _packable(lengths: torch.Tensor | None) -> bool:
        return lengths is None or bool((lengths > 0).all())

    @staticmethod
    def _flat(xs: torch.Tensor, states: list[torch.Tensor], lengths: torch.Tensor | None) -> Any:
        n = states[0][..., 0].numel()
        return (
            xs.reshape(xs.shape[0], n, xs.shape[-1]),
            [s.reshape(n, s.shape[-1]) for s in states],
            None if lengths is None else lengths.reshape(n),
        )

    def cell_scan(
        self,
        cell: Cell,
        xs: Array,
        params: Any,
        state0: Any,
        *,
        lengths: Any,
        reverse: bool,
        **options: Any,
    ) -> Any:
        """aten's kernel of the built-in cell where it has one (the RNN's is named by its
        activation) and ``lengths`` can be packed; the GRU otherwise by :func:`_gru_loop`;
        the rest by the reference."""
        kind = options.get("activation", cell.name)
        packable = self._packable(lengths)
        loop = cell is GRU and not (options["reset_after"] and packable)
        fused = kind in _KERNELS and packable and not loop and builtin(cell)
        if xs.numel() == 0 or not (fused or loop):
            return super().cell_scan(
                cell, xs, params, state0, lengths=lengths, reverse=reverse, **options
            )
        state = [initial(self.xp, xs, params.w_h.shape[0], s) for s in state0]
        flat_xs, flat_states, flat_len = self._flat(xs, state, lengths)
        if loop:
            hs, h = _gru_loop(
                self.xp, flat_xs, params, flat_states[0], flat_len, reverse, options["reset_after"]
            )
            last = [h]
        else:
            hs, last = _fused(kind, flat_xs, params, flat_states, flat_len, reverse)
        return hs.reshape(*xs.shape[:-1], -1), tuple(s.reshape(state[0].shape) for s in last)

    def linear_method(self, x: Array, *, steps: int, width: int) -> str:
        """Sequential on the CPU (the NumPy loop below, measured 2.8-4.7x faster than the
        parallel form there), parallel on CUDA and other accelerators."""
        return "sequential" if x.device.type == "cpu" else "parallel"

    def linear_scan(
        self, a: Array, b: Array, h0: Array, *, reverse: bool, method: str
    ) -> tuple[Array, Array]:
        """Sequential on plain CPU tensors: the NumPy in-place loop on the tensors' memory,
        inside an autograd Function whose backward is the same loop run the other way
        (torch's own per-step ops cost several times more); elsewhere one ``addcmul`` per
        step.  Parallel: the Array-API associative scan, in torch ops."""
        if method == "parallel" or a.shape[0] == 0:
            return super().linear_scan(a, b, h0, reverse=reverse, method=method)
        if _host_loop_ok(a, b, h0):
            grad = torch.is_grad_enabled() and any(t.requires_grad for t in (a, b, h0))
            if grad:
                hs = _HostLinearScan.apply(a, b, h0, reverse)  # type: ignore[no-untyped-call]
            else:
                hs = torch.from_numpy(linear_loop(_host(a), _host(b), _host(h0), reverse))
        else:
            hs = _torch_linear_loop(a, b, h0, reverse)
        return hs, (hs[0] if reverse else hs[-1]).clone()

    @staticmethod
    def softplus(xp: Any, x: Array) -> Array:
        """:func:`torch.nn.functional.softplus` (one fused kernel)."""
        return torch.nn.functional.softplus(x)
