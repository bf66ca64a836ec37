r"""PyTorch modules :class:`RNN`, :class:`GRU` and :class:`LSTM`: drop-in :mod:`torch.nn`
recurrent layers computed by polyrnn.

Each takes :class:`torch.nn.GRU`'s constructor arguments, holds the same parameters under
the same names, shapes and order (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, then ``..._reverse``, layer by layer), initialised as torch does (uniform
in :math:`\pm 1/\sqrt{H}`, in that order, so ``torch.manual_seed`` gives torch's very
weights), and has torch's ``forward(input, hx=None) -> (output, h_n)``: batched or
unbatched tensors, ``batch_first``, :class:`~torch.nn.utils.rnn.PackedSequence` in and
out.  ``load_state_dict`` works both ways with :mod:`torch.nn`'s modules.

Each forward builds polyrnn's parameters from the module's (``w_x = weight_ih.T``, a
view) and calls :func:`polyrnn.gru_layers` (or :func:`~polyrnn.rnn_layers`,
:func:`~polyrnn.lstm_layers`) on the tensors: aten's fused kernels run where the cell has
one, and autograd, :func:`torch.compile` and ``DistributedDataParallel`` see ordinary
torch operations.

What polyrnn adds, as keywords: ``GRU(..., reset_after=False)``, the GRU of Cho et al.
(2014), which applies the reset gate before the recurrent product and which torch does
not have, and ``RNN(..., nonlinearity="sigmoid")``.  ``proj_size`` is not supported.

Dropout between layers (``dropout > 0``, ``num_layers > 1``) applies in training mode
only: before each forward, for every layer but the last in turn, ``keep = torch.rand(shape,
dtype=, device=) >= dropout`` from torch's default generator (``shape`` that of a layer's
output in the layout of ``input``), kept values scaled by ``1 / (1 - dropout)``.  So
``torch.manual_seed`` fixes the masks, though not to :class:`torch.nn.GRU`'s (whose
kernel draws its own).
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

from ..backends._registry import LIBRARIES

try:
    import torch
except ImportError as _error:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"polyrnn.nn.torch needs PyTorch, which is not installed ({_error}); install it "
        f"with: pip install {LIBRARIES['torch'].install}"
    ) from _error

from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells import ACTIVATIONS
from ..layers import gru_layers, lstm_layers, rnn_layers
from ..params import GRUParams, LSTMParams, RNNParams

__all__ = ["GRU", "LSTM", "RNN"]

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_PARAMS: dict[str, Any] = {"RNN": RNNParams, "GRU": GRUParams, "LSTM": LSTMParams}


class _RNNBase(nn.Module):
    """The parameters, checks and forward shared by :class:`RNN`, :class:`GRU` and
    :class:`LSTM` (``torch.nn.RNNBase``'s role)."""

    _kind = "RNN"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        rate: Any = dropout  # checked as torch checks it: any real number in [0, 1]
        real = isinstance(rate, numbers.Real) and not isinstance(rate, bool)
        if not real or not 0 <= float(rate) <= 1:
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of "
                f"an element being zeroed, got {dropout!r}"
            )
        if float(rate) == 1.0:
            raise ValueError(
                f"{name}: dropout=1 (every output zeroed) is not supported; polyrnn scales "
                "the kept values by 1 / (1 - dropout), so dropout must lie in [0, 1)"
            )
        flags: tuple[tuple[str, Any], ...] = (
            ("bias", bias),
            ("batch_first", batch_first),
            ("bidirectional", bidirectional),
        )
        for arg, flag in flags:
            if not isinstance(flag, bool):
                raise TypeError(f"{arg} should be of type bool, got: {type(flag).__name__}")
        sizes: tuple[tuple[str, Any], ...] = (
            ("input_size", input_size),
            ("hidden_size", hidden_size),
            ("num_layers", num_layers),
        )
        for arg, value in sizes:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{arg} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{arg} must be greater than zero, got {value}")
        if proj_size != 0:
            raise ValueError(
                f"{name}: proj_size is not supported by polyrnn.nn.torch (polyrnn's cells have "
                f"no projection of the state); got proj_size={proj_size!r}: use "
                "torch.nn.LSTM for an LSTM with projections"
            )
        if float(rate) > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=3,
            )
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(rate)
        self.bidirectional = bidirectional
        self.proj_size = 0
        gates = _GATES[self._kind] * hidden_size
        factory = {"device": device, "dtype": dtype}
        dirs = 2 if bidirectional else 1
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size * dirs
            for direction in range(dirs):
                suffix = "_reverse" if direction == 1 else ""
                shapes: dict[str, tuple[int, ...]] = {
                    f"weight_ih_l{layer}{suffix}": (gates, n_in),
                    f"weight_hh_l{layer}{suffix}": (gates, hidden_size),
                }
                if bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (gates,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (gates,)
                for pname, shape in shapes.items():
                    self.register_parameter(pname, nn.Parameter(torch.empty(shape, **factory)))
                self._all_weights.append(list(shapes))
        self._flat_weights_names = [n for names in self._all_weights for n in names]
        self.reset_parameters()

    # ------------------------------------------------------------------ torch's interface

    def reset_parameters(self) -> None:
        """Every parameter uniform in ``[-1/sqrt(H), 1/sqrt(H)]``, in registration order:
        torch's init, draw for draw."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def flatten_parameters(self) -> None:
        """Does nothing: the parameters are used as they are (kept for code written for
        ``torch.nn.GRU.flatten_parameters()``)."""

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """The parameters of each layer and direction, as ``torch.nn.GRU.all_weights``."""
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s + self._extra_options()

    def _extra_options(self) -> str:
        return ""

    # ------------------------------------------------------------------ the computation

    def _layer_params(self, layer: int, direction: int) -> Any:
        """polyrnn's parameters of one layer and direction: views of the module's."""
        suffix = "_reverse" if direction == 1 else ""
        w_ih = getattr(self, f"weight_ih_l{layer}{suffix}")
        w_hh = getattr(self, f"weight_hh_l{layer}{suffix}")
        if self.bias:
            b_ih = getattr(self, f"bias_ih_l{layer}{suffix}")
            b_hh = getattr(self, f"bias_hh_l{layer}{suffix}")
        else:  # torch has no bias parameters then: zeros, outside autograd
            b_ih = b_hh = w_ih.new_zeros(w_ih.shape[0])
        return _PARAMS[self._kind](w_ih.mT, w_hh.mT, b_ih, b_hh)

    def _layers(self) -> list[Any]:
        if self.bidirectional:
            return [
                (self._layer_params(i, 0), self._layer_params(i, 1)) for i in range(self.num_layers)
            ]
        return [self._layer_params(i, 0) for i in range(self.num_layers)]

    def _masks(self, xs: torch.Tensor) -> list[torch.Tensor] | None:
        """The dropout masks of this forward (``None`` outside training or without dropout)."""
        if not (self.training and self.dropout > 0 and self.num_layers > 1):
            return None
        dirs = 2 if self.bidirectional else 1
        shape = (*xs.shape[:-1], dirs * self.hidden_size)
        return [
            torch.rand(shape, dtype=xs.dtype, device=xs.device) >= self.dropout
            for _ in range(self.num_layers - 1)
        ]

    def _run(
        self,
        xs: torch.Tensor,
        state: Any,
        *,
        time_major: bool,
        lengths: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def _check_state(self, name: str, s: Any, xs: torch.Tensor, expected: tuple[int, ...]) -> None:
        cls = type(self).__name__
        if not isinstance(s, torch.Tensor):
            raise TypeError(f"{cls}: {name} must be a torch.Tensor, got {type(s).__name__}")
        if s.dim() != len(expected):
            what = "unbatched 2-D" if len(expected) == 2 else "batched 3-D"
            raise RuntimeError(
                f"{cls}: for {what} input, {name} should also be {len(expected)}-D, of shape "
                f"(num_layers * num_directions{', batch' if len(expected) == 3 else ''}, "
                f"hidden_size) = {expected}, but got a {s.dim()}-D tensor"
            )
        if tuple(s.shape) != expected:
            raise RuntimeError(
                f"{cls}: Expected {name} size {expected} (num_layers * num_directions = "
                f"{expected[0]}, then the batch size, then hidden_size), got {list(s.shape)}"
            )
        if s.dtype != xs.dtype:
            raise ValueError(
                f"{cls}: {name} dtype ({s.dtype}) does not match input dtype ({xs.dtype})"
            )
        if s.device != xs.device:
            raise RuntimeError(f"{cls}: {name} is on {s.device} but the input is on {xs.device}")

    def _state(self, hx: Any, xs: torch.Tensor, expected: tuple[int, ...]) -> Any:
        """``hx`` checked against torch's rules; ``None`` stays ``None`` (zeros)."""
        if hx is not None:
            self._check_state("hx", hx, xs, expected)
        return hx

    @torch.compiler.disable
    def forward(self, input: Any, hx: Any = None) -> tuple[Any, Any]:
        r"""``(output, h_n)`` as ``torch.nn.GRU``'s forward (the LSTM's ``h_n`` is the pair
        ``(h_n, c_n)``).

        ``input`` is ``(T, N, D)`` (``(N, T, D)`` with ``batch_first``), ``(T, D)``
        unbatched, or a :class:`~torch.nn.utils.rnn.PackedSequence`, and the output is of
        the same kind, with ``num_directions * hidden_size`` features; ``hx`` is ``(L *
        num_directions, N, H)`` (``(L * num_directions, H)`` unbatched), zeros when
        ``None``.

        Under :func:`torch.compile` the module runs eagerly (it is
        :func:`torch.compiler.disable`\ d): the graph breaks around it, as it does around
        :class:`torch.nn.GRU`, whose recurrence dynamo does not trace either.
        """
        cls = type(self).__name__
        weight = self.weight_ih_l0
        packed = input if isinstance(input, PackedSequence) else None
        lengths: torch.Tensor | None = None
        if packed is not None:
            xs, lengths = pad_packed_sequence(packed, batch_first=self.batch_first)
            lengths = lengths.to(xs.device)
        elif isinstance(input, torch.Tensor):
            xs = input
            if xs.dim() not in (2, 3):
                raise ValueError(
                    f"{cls}: Expected input to be 2-D (T, D) unbatched or 3-D "
                    f"({'N, T' if self.batch_first else 'T, N'}, D), got {xs.dim()}-D "
                    f"input of shape {tuple(xs.shape)} instead"
                )
        else:
            raise TypeError(
                f"{cls}: input must be a torch.Tensor or a PackedSequence, got "
                f"{type(input).__name__}"
            )
        if xs.dtype != weight.dtype:
            raise ValueError(
                f"{cls}: input dtype ({xs.dtype}) does not match weight dtype "
                f"({weight.dtype}). Convert input: input.to({weight.dtype}), or convert "
                f"model: model.to({xs.dtype})"
            )
        if xs.shape[-1] != self.input_size:
            raise RuntimeError(
                f"{cls}: input.size(-1) must be equal to input_size. Expected "
                f"{self.input_size}, got {xs.shape[-1]}"
            )
        if xs.device != weight.device:
            raise RuntimeError(
                f"{cls}: the input is on {xs.device} but the parameters are on {weight.device}"
            )
        batched = xs.dim() == 3
        batch = (xs.shape[0 if self.batch_first else 1],) if batched else ()
        dirs = 2 if self.bidirectional else 1
        expected = (self.num_layers * dirs, *batch, self.hidden_size)
        state = self._state(hx, xs, expected)
        time_major = batched and not self.batch_first
        output, last = self._run(xs, state, time_major=time_major, lengths=lengths)
        if packed is not None and lengths is not None:
            return _pack_like(output, lengths, packed, self.batch_first), last
        return output, last


def _pack_like(
    output: torch.Tensor, lengths: torch.Tensor, like: PackedSequence, batch_first: bool
) -> PackedSequence:
    """``output`` (padded, in the caller's batch order) packed as ``like``: its batch sizes
    and its sorted and unsorted indices, as :mod:`torch.nn`'s modules return it."""
    axis = 0 if batch_first else 1
    if like.sorted_indices is not None:
        output = output.index_select(axis, like.sorted_indices)
        lengths = lengths.index_select(0, like.sorted_indices)
    data = pack_padded_sequence(output, lengths.cpu(), batch_first=batch_first).data
    return like._replace(data=data)


class RNN(_RNNBase):
    r"""Elman RNN layers, drop-in for :class:`torch.nn.RNN`:
    :math:`h_t = \mathrm{act}(x_t W_{ih}^\top + b_{ih} + h_{t-1} W_{hh}^\top + b_{hh})`.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        As :class:`torch.nn.RNN`.
    nonlinearity : {"tanh", "relu", "sigmoid"}
        As :class:`torch.nn.RNN`, and ``"sigmoid"``, polyrnn's extra (computed by the
        reference loop: aten has tanh and relu kernels only).
    device, dtype
        Where and in which dtype the parameters are made, as in :mod:`torch.nn`.

    Examples
    --------
    >>> import torch, polyrnn.nn.torch
    >>> m = polyrnn.nn.torch.RNN(3, 4, num_layers=2)
    >>> out, h_n = m(torch.zeros(5, 2, 3))
    >>> tuple(out.shape), tuple(h_n.shape)
    ((5, 2, 4), (2, 2, 4))
    """

    _kind = "RNN"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        proj_size: int = 0,
    ) -> None:
        if nonlinearity not in ACTIVATIONS:
            raise ValueError(
                f"Unknown nonlinearity {nonlinearity!r}. Select from "
                + ", ".join(repr(a) for a in ACTIVATIONS)
            )
        self.nonlinearity = nonlinearity
        self.mode = f"RNN_{nonlinearity.upper()}"
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            proj_size, device, dtype,
        )  # fmt: skip

    def _extra_options(self) -> str:
        return "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"

    def _run(
        self, xs: torch.Tensor, state: Any, *, time_major: bool, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, Any]:
        masks = self._masks(xs)
        return rnn_layers(
            xs, self._layers(), state, activation=self.nonlinearity,
            bidirectional=self.bidirectional, dropout=self.dropout if masks else 0.0,
            masks=masks, time_major=time_major, lengths=lengths,
        )  # fmt: skip


class GRU(_RNNBase):
    r"""GRU layers, drop-in for :class:`torch.nn.GRU`, with the other GRU as an option.

    With gates :math:`(r, z, n)` stacked in the rows of ``weight_ih`` and ``weight_hh``
    as in torch:

    .. math::

        r_t &= \sigma(x_t W_{ir}^\top + b_{ir} + h_{t-1} W_{hr}^\top + b_{hr}) \\
        z_t &= \sigma(x_t W_{iz}^\top + b_{iz} + h_{t-1} W_{hz}^\top + b_{hz}) \\
        n_t &= \tanh(x_t W_{in}^\top + b_{in} + r_t \odot (h_{t-1} W_{hn}^\top + b_{hn}))
        \quad \text{(reset_after=True, torch's)} \\
        n_t &= \tanh(x_t W_{in}^\top + b_{in} + (r_t \odot h_{t-1}) W_{hn}^\top + b_{hn})
        \quad \text{(reset_after=False, Cho et al.)} \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        As :class:`torch.nn.GRU`.
    device, dtype
        Where and in which dtype the parameters are made, as in :mod:`torch.nn`.
    reset_after : bool, keyword-only
        ``True`` (the default) is :class:`torch.nn.GRU`'s cell, so its ``state_dict``
        gives the same numbers here; ``False`` is the GRU of Cho et al. (2014), with the
        reset gate applied to the state before the recurrent product (Keras's
        ``reset_after=False``), which torch does not offer: the same parameters, another
        function of them.

    Examples
    --------
    >>> import torch, polyrnn.nn.torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> ref = torch.nn.GRU(3, 4, batch_first=True)
    >>> m = polyrnn.nn.torch.GRU(3, 4, batch_first=True)
    >>> _ = m.load_state_dict(ref.state_dict())
    >>> x = torch.randn(2, 5, 3)
    >>> bool(torch.allclose(m(x)[0], ref(x)[0], atol=1e-6))
    True
    """

    _kind = "GRU"
    mode = "GRU"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        reset_after: bool = True,
        proj_size: int = 0,
    ) -> None:
        if not isinstance(reset_after, bool):
            raise TypeError(
                f"reset_after should be of type bool, got: {type(reset_after).__name__}"
            )
        self.reset_after = reset_after
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            proj_size, device, dtype,
        )  # fmt: skip

    def _extra_options(self) -> str:
        return "" if self.reset_after else ", reset_after=False"

    def _run(
        self, xs: torch.Tensor, state: Any, *, time_major: bool, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, Any]:
        masks = self._masks(xs)
        return gru_layers(
            xs, self._layers(), state, reset_after=self.reset_after,
            bidirectional=self.bidirectional, dropout=self.dropout if masks else 0.0,
            masks=masks, time_major=time_major, lengths=lengths,
        )  # fmt: skip


class LSTM(_RNNBase):
    r"""LSTM layers, drop-in for :class:`torch.nn.LSTM` (without ``proj_size``).

    Gates :math:`(i, f, g, o)` in the rows of ``weight_ih`` and ``weight_hh``, as torch:
    :math:`c_t = f_t \odot c_{t-1} + i_t \odot g_t`, :math:`h_t = o_t \odot \tanh(c_t)`.
    ``forward(input, (h_0, c_0)=None)`` returns ``(output, (h_n, c_n))``.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        As :class:`torch.nn.LSTM`.
    device, dtype
        Where and in which dtype the parameters are made, as in :mod:`torch.nn`.
    proj_size : int
        Must be 0: :class:`ValueError` otherwise (polyrnn's LSTM has no projection).

    Examples
    --------
    >>> import torch, polyrnn.nn.torch
    >>> m = polyrnn.nn.torch.LSTM(3, 4, bidirectional=True, batch_first=True)
    >>> out, (h_n, c_n) = m(torch.zeros(2, 5, 3))
    >>> tuple(out.shape), tuple(h_n.shape), tuple(c_n.shape)
    ((2, 5, 8), (2, 2, 4), (2, 2, 4))
    """

    _kind = "LSTM"
    mode = "LSTM"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            proj_size, device, dtype,
        )  # fmt: skip

    def _state(self, hx: Any, xs: torch.Tensor, expected: tuple[int, ...]) -> Any:
        if hx is None:
            return None
        if not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise TypeError(
                f"LSTM: hx must be a pair (h_0, c_0) of tensors of shape {expected}, got "
                f"{type(hx).__name__}" + (f" of {len(hx)}" if isinstance(hx, tuple | list) else "")
            )
        for name, s in zip(("hx[0] (h_0)", "hx[1] (c_0)"), hx, strict=True):
            self._check_state(name, s, xs, expected)
        return tuple(hx)

    def _run(
        self, xs: torch.Tensor, state: Any, *, time_major: bool, lengths: torch.Tensor | None
    ) -> tuple[torch.Tensor, Any]:
        masks = self._masks(xs)
        return lstm_layers(
            xs, self._layers(), state, bidirectional=self.bidirectional,
            dropout=self.dropout if masks else 0.0, masks=masks, time_major=time_major,
            lengths=lengths,
        )  # fmt: skip
