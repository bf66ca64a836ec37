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
not have, ``RNN(..., nonlinearity="sigmoid")``, and polyrnn's other cells, chosen by the
keyword ``cell`` among those of the module's state (the class's own by default):
``GRU(..., cell="ln_gru" | "min_gru" | "min_lstm")``, whose state is ``h`` alone, and
``LSTM(..., cell="ln_lstm")``, whose state is ``(h, c)``; they run through
``polyrnn.layers.cell_layers``, minGRU and minLSTM as linear scans (sequential or
parallel, the adapter's choice).  Their parameters follow torch's names: ``weight_ih_l0``
``(G H, D)`` and ``bias_ih_l0`` for every cell, ``weight_hh_l0`` and ``bias_hh_l0`` where
the cell has them (not minGRU and minLSTM), and the layer normalisations' gains
``ln_weight_ih_l0``, ``ln_weight_hh_l0`` (and for the LSTM's cell state
``ln_weight_c_l0``, ``ln_bias_c_l0``), whose shifts are ``bias_ih_l0``, ``bias_hh_l0``
(and ``ln_bias_c_l0``, all left out with ``bias=False``).  ``proj_size`` is not
supported.

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

from .._cell import Cell
from ..cells import ACTIVATIONS, BUILTIN
from ..layers import cell_layers
from ..params import WIDTHS
from . import choose_cell

__all__ = ["GRU", "LSTM", "RNN"]

_NAMES = {
    "w_x": "weight_ih",
    "w_h": "weight_hh",
    "b_x": "bias_ih",
    "b_h": "bias_hh",
    "g_x": "ln_weight_ih",
    "g_h": "ln_weight_hh",
    "g_c": "ln_weight_c",
    "b_c": "ln_bias_c",
}
"""The torch-style name of each field of polyrnn's parameters (``_l{k}[_reverse]`` follows)."""
_SHIFTS = ("b_x", "b_h", "b_c")
"""The fields that exist only with ``bias=True`` (zeros, outside autograd, without)."""


class _RNNBase(nn.Module):
    """The parameters, checks and forward shared by :class:`RNN`, :class:`GRU` and
    :class:`LSTM` (``torch.nn.RNNBase``'s role)."""

    _kind = "rnn"
    """The kind of layer: its cells are ``polyrnn.nn.LAYER_CELLS[_kind]``, its own first."""

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
        cell: Any = "rnn",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        choose_cell(name, self._kind, cell)
        self.cell = cell
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
        record = self._record
        gates = record.gates * hidden_size
        factory = {"device": device, "dtype": dtype}
        dirs = 2 if bidirectional else 1
        self._fields: list[dict[str, str]] = []  # per layer and direction: field -> name
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size * dirs
            for direction in range(dirs):
                suffix = "_reverse" if direction == 1 else ""
                fields: dict[str, str] = {}
                for field in self._param_fields:
                    if field in _SHIFTS and not bias:
                        continue
                    pname = f"{_NAMES[field]}_l{layer}{suffix}"
                    shape = {"w_x": (gates, n_in), "w_h": (gates, hidden_size)}.get(
                        field, (self._width(field),)
                    )
                    self.register_parameter(pname, nn.Parameter(torch.empty(shape, **factory)))
                    fields[field] = pname
                self._fields.append(fields)
        self._all_weights = [list(fields.values()) for fields in self._fields]
        self._flat_weights_names = [n for names in self._all_weights for n in names]
        self.reset_parameters()

    @property
    def _record(self) -> Cell:
        """polyrnn's record of the module's cell."""
        return BUILTIN[self.cell]

    @property
    def _param_fields(self) -> tuple[str, ...]:
        """The fields of the cell's parameters in order (``w_x, w_h, b_x, b_h, ...``)."""
        fields: tuple[str, ...] = self._record.params._fields  # type: ignore[attr-defined]
        return fields

    def _width(self, field: str) -> int:
        """The length of a vector field of the cell's parameters: ``G H``, or ``H`` for the
        cell state's normalisation."""
        record = self._record
        return WIDTHS.get(record.params, {}).get(field, record.gates) * self.hidden_size

    # ------------------------------------------------------------------ torch's interface

    def reset_parameters(self) -> None:
        """Every weight and bias uniform in ``[-1/sqrt(H), 1/sqrt(H)]``, in registration
        order: torch's init, draw for draw.  The layer-normalised cells' gains are 1 and
        their shifts (``bias_ih``, ``bias_hh``, ``ln_bias_c``) 0, as
        :func:`polyrnn.init_ln_gru`; the linear cells' ``weight_ih`` and ``bias_ih`` are
        uniform in ``±1/sqrt(fan_in)``, ``torch.nn.Linear(fan_in, G H)``'s init, as
        :func:`polyrnn.init_min_gru` (``fan_in``: the layer's input width)."""
        record = self._record
        normalised = record.params in WIDTHS
        for fields in self._fields:
            fan_in = self.hidden_size
            if record.linear is not None:
                fan_in = getattr(self, fields["w_x"]).shape[1]
            bound = 1.0 / math.sqrt(fan_in)
            for field, pname in fields.items():
                weight = getattr(self, pname)
                if field.startswith("g_"):
                    nn.init.ones_(weight)
                elif normalised and field in _SHIFTS:
                    nn.init.zeros_(weight)
                else:
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
        if self.cell != self._kind:
            s += f", cell={self.cell!r}"
        return s + self._extra_options()

    def _extra_options(self) -> str:
        return ""

    # ------------------------------------------------------------------ the computation

    def _layer_params(self, fields: dict[str, str]) -> Any:
        """polyrnn's parameters of one layer and direction: views of the module's
        (``w_x = weight_ih.T``), zeros outside autograd for the shifts ``bias=False``
        leaves out."""
        record = self._record
        w_ih = getattr(self, fields["w_x"])
        values = []
        for field in self._param_fields:
            if field not in fields:
                values.append(w_ih.new_zeros(self._width(field)))
            elif field in ("w_x", "w_h"):
                values.append(getattr(self, fields[field]).mT)
            else:
                values.append(getattr(self, fields[field]))
        return record.params(*values)

    def _layers(self) -> list[Any]:
        entries = [self._layer_params(fields) for fields in self._fields]
        if self.bidirectional:
            return [(entries[2 * i], entries[2 * i + 1]) for i in range(self.num_layers)]
        return entries

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

    def _options(self) -> dict[str, Any]:
        """The cell's keywords for ``polyrnn.layers.cell_layers``: a linear cell's
        ``method`` (``"auto"``: the adapter's choice of sequential or parallel scan)."""
        return {"method": "auto"} if self._record.linear is not None else {}

    def _run(
        self,
        xs: torch.Tensor,
        state: Any,
        *,
        time_major: bool,
        lengths: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Any]:
        masks = self._masks(xs)
        hs, last = cell_layers(
            self._record, xs, self._layers(), state, bidirectional=self.bidirectional,
            dropout=self.dropout if masks else 0.0, masks=masks, time_major=time_major,
            lengths=lengths, **self._options(),
        )  # fmt: skip
        return hs, last if len(last) > 1 else last[0]

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
    cell : {"rnn"}, keyword-only
        The only cell with the RNN's parameters (the keyword exists for code that passes
        it to every class).
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

    _kind = "rnn"

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
        cell: str = "rnn",
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
            proj_size, device, dtype, cell,
        )  # fmt: skip

    def _extra_options(self) -> str:
        return "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"

    def _options(self) -> dict[str, Any]:
        return {"activation": self.nonlinearity}


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
    cell : {"gru", "ln_gru", "min_gru", "min_lstm"}, keyword-only
        The cell of every layer, each with ``forward``'s ``(output, h_n)``:

        - ``"gru"`` (the default): the equations above.
        - ``"ln_gru"``: the layer-normalised GRU of :func:`polyrnn.ln_gru_scan` (Ba et al.
          2016), gates ``(r, z, n)``: ``x W_ih^T`` and ``h W_hh^T`` each normalised per
          gate, with gains ``ln_weight_ih``, ``ln_weight_hh`` (``(3H,)``, init 1) and
          shifts ``bias_ih``, ``bias_hh`` (init 0); reset-after form.
        - ``"min_gru"``: minGRU (Feng et al. 2024, :func:`polyrnn.min_gru_scan`), gates
          ``(z, h̃)`` in ``weight_ih (2H, D)``, ``bias_ih (2H,)``: :math:`h_t = (1 - z_t)
          h_{t-1} + z_t \tilde h_t`, no ``weight_hh``; init ``torch.nn.Linear``'s,
          uniform in :math:`\pm 1/\sqrt{D}` (``D`` the layer's input width).
        - ``"min_lstm"``: minLSTM (:func:`polyrnn.min_lstm_scan`), gates ``(f, i, h̃)`` in
          ``weight_ih (3H, D)``, ``bias_ih (3H,)``, init as minGRU's.

        minGRU and minLSTM are linear in ``h``, so each layer is one linear scan
        (sequential or parallel over time).
    reset_after : bool, keyword-only
        ``True`` (the default) is :class:`torch.nn.GRU`'s cell, so its ``state_dict``
        gives the same numbers here; ``False`` is the GRU of Cho et al. (2014), with the
        reset gate applied to the state before the recurrent product (Keras's
        ``reset_after=False``), which torch does not offer: the same parameters, another
        function of them.  Only with ``cell="gru"`` (:class:`ValueError` otherwise).

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

    _kind = "gru"
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
        cell: str = "gru",
        reset_after: bool = True,
        proj_size: int = 0,
    ) -> None:
        if not isinstance(reset_after, bool):
            raise TypeError(
                f"reset_after should be of type bool, got: {type(reset_after).__name__}"
            )
        choose_cell("GRU", "gru", cell, reset_after)
        self.reset_after = reset_after
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            proj_size, device, dtype, cell,
        )  # fmt: skip

    def _extra_options(self) -> str:
        return "" if self.reset_after else ", reset_after=False"

    def _options(self) -> dict[str, Any]:
        return {"reset_after": self.reset_after} if self.cell == "gru" else super()._options()


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
    cell : {"lstm", "ln_lstm"}, keyword-only
        ``"lstm"`` (the default) is :class:`torch.nn.LSTM`'s cell; ``"ln_lstm"`` the
        layer-normalised LSTM of :func:`polyrnn.ln_lstm_scan` (Ba et al. 2016), gates
        ``(i, f, g, o)``: ``x W_ih^T`` and ``h W_hh^T`` each normalised per gate, with
        gains ``ln_weight_ih``, ``ln_weight_hh`` (``(4H,)``, init 1) and shifts
        ``bias_ih``, ``bias_hh`` (init 0), and the cell state normalised before the output
        ``tanh`` with ``ln_weight_c``, ``ln_bias_c`` (``(H,)``, init 1 and 0).

    Examples
    --------
    >>> import torch, polyrnn.nn.torch
    >>> m = polyrnn.nn.torch.LSTM(3, 4, bidirectional=True, batch_first=True)
    >>> out, (h_n, c_n) = m(torch.zeros(2, 5, 3))
    >>> tuple(out.shape), tuple(h_n.shape), tuple(c_n.shape)
    ((2, 5, 8), (2, 2, 4), (2, 2, 4))
    """

    _kind = "lstm"
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
        *,
        cell: str = "lstm",
    ) -> None:
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
            proj_size, device, dtype, cell,
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
