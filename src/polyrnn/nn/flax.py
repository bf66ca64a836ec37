r"""Flax NNX modules :class:`SimpleRNN`, :class:`GRU` and :class:`LSTM`: stacked and
bidirectional recurrent layers computed by polyrnn, and converters from and to
``flax.nnx.RNN`` over ``flax.nnx.SimpleCell``, ``GRUCell`` and ``LSTMCell``.

Each module holds, for every layer ``l`` and direction, an ``nnx.Param`` of each of

============================ ===================== ======================================
``layers[l].forward.``       shape                 meaning
============================ ===================== ======================================
``kernel``                   ``(D_l, G*H)``        input weights, gates side by side
``recurrent_kernel``         ``(H, G*H)``          recurrent weights (not the min cells)
``bias``                     ``(G*H,)``            the bias (``use_bias=True``)
``recurrent_bias``           ``(H,)``              ``b_hn``: the GRU with ``reset_after``,
                                                   and ``cell="ln_gru"``
``kernel_norm_scale``        ``(G*H,)``            ``cell="ln_gru"``, ``"ln_lstm"``: gains
``recurrent_norm_scale``     ``(G*H,)``            of the normalisations of ``x W`` and
                                                   ``h U`` (ones at first)
``cell_norm_scale``          ``(H,)``              ``cell="ln_lstm"``: gain of the cell
                                                   state's normalisation (ones at first)
``cell_norm_bias``           ``(H,)``              ``cell="ln_lstm"``: its shift (zeros)
============================ ===================== ======================================

(``layers[l].backward`` too with ``bidirectional``), ``G`` being 1, 2 ``(z, h~)`` for
minGRU, 3 ``(r, z, n)``, ``(f, i, h~)`` for minLSTM, or 4 ``(i, f, g, o)``, ``D_0`` the
input size and ``D_l = H`` (``2H`` bidirectional) above.
These are polyrnn's :class:`~polyrnn.GRUParams` (``w_x``, ``w_h``) with the biases
fused as polyrnn's scans fuse them, so no parameter is redundant: ``bias = b_x + b_h``
except ``b_hn``, which a ``reset_after`` GRU multiplies by ``r``.  The inputs are
batch-major ``(..., T, D)`` (``(T, ..., D)`` with ``time_major``), as ``nnx.RNN``'s.

:class:`GRU` and :class:`LSTM` also compute polyrnn's other cells, chosen by ``cell``:
``GRU(cell="ln_gru")``, ``"min_gru"``, ``"min_lstm"`` (one state ``h``, as the GRU) and
``LSTM(cell="ln_lstm")`` (carry ``(c, h)``): polyrnn's :class:`~polyrnn.LNGRUParams`,
:class:`~polyrnn.MinGRUParams`, :class:`~polyrnn.MinLSTMParams` and
:class:`~polyrnn.LNLSTMParams` with the biases fused likewise (``G`` 3, 2, 3 and 4; the
layer-normalised cells' shifts after the normalisations, so ``bias`` is ``b_x + b_h``
but for ``b_hn``).  flax has none of them: :func:`to_flax` refuses them and
:meth:`GRU.from_polyrnn` takes the default cells' parameters only.

Each call builds polyrnn's parameters from the module's and runs
:func:`polyrnn.gru_layers` (:func:`~polyrnn.rnn_layers`, :func:`~polyrnn.lstm_layers`,
``polyrnn.layers.cell_layers`` for the other cells; the min cells' linear recurrences as a
parallel scan on accelerators),
whose JAX path is :func:`jax.lax.scan`: :func:`flax.nnx.jit`, :func:`flax.nnx.grad` and
:func:`flax.nnx.vmap` see ordinary JAX operations.

Dropout (``dropout > 0``, ``num_layers > 1``) follows every layer but the last, as in
:class:`torch.nn.GRU`, unless ``deterministic`` (``model.eval()`` sets it, ``model.train()``
clears it, as for ``nnx.Dropout``): for each such layer in turn, a key from the
module's ``dropout`` stream and ``keep = jax.random.bernoulli(key, 1 - dropout, shape)``,
``shape`` that of the layer's output; kept values are scaled by ``1 / (1 - dropout)``.

:func:`from_flax` and :func:`to_flax` convert, exactly, the parameters of a stack of
``nnx.RNN`` / ``nnx.Bidirectional`` layers; :meth:`GRU.from_polyrnn` and
:meth:`GRU.polyrnn_layers` those of :func:`polyrnn.gru_layers`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

try:
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from flax.nnx.nn.dtypes import promote_dtype
except ImportError as _error:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"polyrnn.nn.flax needs Flax (flax.nnx), which is not installed ({_error}); install "
        'it with: pip install "polyrnn[flax]"'
    ) from _error

from .. import _validate, cells
from .._cell import Cell
from ..cells import ACTIVATIONS, fused_bias
from ..layers import cell_layers, gru_layers, lstm_layers, rnn_layers
from ..params import WIDTHS, GRUParams, LSTMParams, RNNParams
from . import choose_cell

__all__ = ["GRU", "LSTM", "SimpleRNN", "from_flax", "to_flax"]

_LSTM_GATES = ("i", "f", "g", "o")
"""polyrnn's LSTM gate order, which is flax's ``LSTMCell`` order (``ii, if_, ig, io``)."""

_FLAX_ACTIVATIONS: dict[Callable[..., Any], str] = {
    nnx.tanh: "tanh",
    nnx.relu: "relu",
    nnx.sigmoid: "sigmoid",
}
"""The activations of ``nnx.SimpleCell`` that polyrnn's RNN has, by name."""


class _Weights(nnx.Module):
    """One layer and direction's parameters (polyrnn's layout, biases fused)."""

    def __init__(
        self,
        n_in: int,
        n_h: int,
        gates: int,
        *,
        use_bias: bool,
        recurrent_bias: bool,
        recurrent: bool,
        norms: tuple[tuple[str, int], ...],
        inits: tuple[Any, Any, Any],
        param_dtype: Any,
        rngs: nnx.Rngs,
    ) -> None:
        kernel_init, recurrent_kernel_init, bias_init = inits
        # nnx.GRUCell's order of draws: its GRU(D, H, rngs=nnx.Rngs(s)) has the same weights
        self.kernel = nnx.Param(kernel_init(rngs.params(), (n_in, gates * n_h), param_dtype))
        bias = rec = None
        if use_bias:
            bias = nnx.Param(bias_init(rngs.params(), (gates * n_h,), param_dtype))
        self.bias = nnx.data(bias)
        kernel_h = None
        if recurrent:
            kernel_h = nnx.Param(
                recurrent_kernel_init(rngs.params(), (n_h, gates * n_h), param_dtype)
            )
        self.recurrent_kernel = nnx.data(kernel_h)
        if use_bias and recurrent_bias:
            rec = nnx.Param(bias_init(rngs.params(), (n_h,), param_dtype))
        self.recurrent_bias = nnx.data(rec)
        for name, width in norms:
            fill = jnp.zeros if name.endswith("bias") else jnp.ones
            setattr(self, name, nnx.Param(fill((width * n_h,), param_dtype)))


class _Layer(nnx.Module):
    """The ``forward`` (and ``backward``) weights of one layer."""

    def __init__(self, make: Callable[[], _Weights], bidirectional: bool) -> None:
        self.forward = make()
        self.backward = nnx.data(make() if bidirectional else None)


_NORM_NAMES = {
    "g_x": "kernel_norm_scale",
    "g_h": "recurrent_norm_scale",
    "g_c": "cell_norm_scale",
    "b_c": "cell_norm_bias",
}
"""The module's name of each layer-normalisation field of polyrnn's parameters: the
normalisations' gains (initialised to ones) and the cell state's shift (zeros)."""


def _norms(cell: Cell) -> tuple[tuple[str, int], ...]:
    """The layer-normalised cell's further parameters, in the order of its fields:
    ``(name, length in units of H)`` (params.WIDTHS); none for the other cells."""
    return tuple((_NORM_NAMES[f], width) for f, width in WIDTHS.get(cell.params, {}).items())


_LECUN_NORMAL = nnx.initializers.lecun_normal()
_ORTHOGONAL = nnx.initializers.orthogonal()
_ZEROS = nnx.initializers.zeros_init()
_PLACEHOLDER = _ZEROS
"""The initialiser of weights that converters overwrite (a random one costs a compile)."""


def _check_int(cls: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{cls}: {name} must be a positive int, got {value!r}")


class _Base(nnx.Module):
    """Construction, checks and the call shared by :class:`SimpleRNN`, :class:`GRU` and
    :class:`LSTM`."""

    _gates = 1
    _params: Any = RNNParams
    _kind = "rnn"
    """The kind of layer: its cells are ``polyrnn.nn.LAYER_CELLS[_kind]``, its own first."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        cell: str = "rnn",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        use_bias: bool = True,
        time_major: bool = False,
        return_carry: bool = False,
        deterministic: bool = False,
        kernel_init: Any = _LECUN_NORMAL,
        recurrent_kernel_init: Any = _ORTHOGONAL,
        bias_init: Any = _ZEROS,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
        rngs: nnx.Rngs,
    ) -> None:
        cls = type(self).__name__
        for name, value in (
            ("in_features", in_features),
            ("hidden_features", hidden_features),
            ("num_layers", num_layers),
        ):
            _check_int(cls, name, value)
        _validate.flags(
            cls, bidirectional=bidirectional, use_bias=use_bias, time_major=time_major,
            return_carry=return_carry, deterministic=deterministic,
        )  # fmt: skip
        real = isinstance(dropout, int | float) and not isinstance(dropout, bool)
        if not real or not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{cls}: dropout must be a number in [0, 1), got {dropout!r}")
        if not isinstance(rngs, nnx.Rngs):
            raise TypeError(f"{cls}: rngs must be an nnx.Rngs, got {type(rngs).__name__}")
        record = choose_cell(cls, self._kind, cell)
        self.cell = cell
        self.in_features = in_features
        self.hidden_features = hidden_features
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = float(dropout)
        self.use_bias = use_bias
        self.time_major = time_major
        self.return_carry = return_carry
        self.deterministic = deterministic
        self.dtype = dtype
        self.param_dtype = param_dtype
        dirs = 2 if bidirectional else 1
        inits = (kernel_init, recurrent_kernel_init, bias_init)
        layers = []
        for layer in range(num_layers):
            n_in = in_features if layer == 0 else dirs * hidden_features

            def make(n_in: int = n_in) -> _Weights:
                return _Weights(
                    n_in, hidden_features, record.gates, use_bias=use_bias,
                    recurrent_bias=self._recurrent_bias(), recurrent=record.linear is None,
                    norms=_norms(record), inits=inits, param_dtype=param_dtype,
                    rngs=rngs,
                )  # fmt: skip

            layers.append(_Layer(make, bidirectional))
        self.layers = nnx.List(layers)
        self.rngs = nnx.data(rngs.dropout.fork() if self.dropout > 0 and num_layers > 1 else None)

    def _recurrent_bias(self) -> bool:
        return False

    # ------------------------------------------------------------------ polyrnn's parameters

    def _to_polyrnn(self, w: _Weights, dtype: Any) -> Any:
        """One direction's weights as polyrnn's parameters, cast to ``dtype``."""
        n_h = self.hidden_features
        record = cells.BUILTIN[self.cell]
        g = record.gates * n_h
        w_x = w.kernel[...]
        b_x = jnp.zeros((g,), w_x.dtype) if w.bias is None else w.bias[...]
        if record.linear is not None:
            return record.params(*promote_dtype((w_x, b_x), dtype=dtype))
        b_h = jnp.zeros((g,), w_x.dtype)
        if w.recurrent_bias is not None:
            b_h = jnp.concatenate([b_h[: g - n_h], w.recurrent_bias[...]])
        norms = [getattr(w, name)[...] for name, _ in _norms(record)]
        assert w.recurrent_kernel is not None  # a cell that is not linear has one
        arrays = (w_x, w.recurrent_kernel[...], b_x, b_h, *norms)
        return record.params(*promote_dtype(arrays, dtype=dtype))

    def polyrnn_layers(self, dtype: Any = None) -> list[Any]:
        """The parameters as :func:`polyrnn.gru_layers` (and its siblings) take them: one
        params per layer, or a ``(forward, backward)`` pair with ``bidirectional``, each
        of ``dtype`` (the parameters' by default).  The module's call runs on these."""
        out = []
        for layer in self.layers:
            fwd = self._to_polyrnn(layer.forward, dtype)
            if layer.backward is None:
                out.append(fwd)
            else:
                out.append((fwd, self._to_polyrnn(layer.backward, dtype)))
        return out

    @classmethod
    def _from_layers(cls, layers: Sequence[Any], options: dict[str, Any], **kwargs: Any) -> Any:
        name = cls.__name__
        default = cls._kind
        if kwargs.get("cell", default) != default:
            raise ValueError(
                f"{name}.from_polyrnn: takes {cls._params.__name__} (cell={default!r}) only, "
                f"got cell={kwargs['cell']!r}; set that module's parameters directly"
            )
        if not isinstance(layers, Sequence) or isinstance(layers, str) or not layers:
            raise TypeError(
                f"{name}.from_polyrnn: layers must be a non-empty list of "
                f"{cls._params.__name__} (pairs with bidirectional), got {type(layers).__name__}"
            )
        bidirectional = isinstance(layers[0], tuple | list) and not hasattr(layers[0], "_fields")
        entries = [tuple(e) if bidirectional else (e,) for e in layers]
        for i, entry in enumerate(entries):
            if not all(isinstance(p, cls._params) for p in entry):
                raise TypeError(
                    f"{name}.from_polyrnn: layers[{i}] must be {cls._params.__name__}"
                    f"{' pairs' if bidirectional else ''}, got {entry!r:.80}"
                )
        first = entries[0][0]
        in_features, width = (int(n) for n in first.w_x.shape)
        kwargs.setdefault("param_dtype", first.w_x.dtype)
        kwargs.setdefault("rngs", nnx.Rngs(0))
        for init in ("kernel_init", "recurrent_kernel_init", "bias_init"):
            kwargs.setdefault(init, _PLACEHOLDER)  # overwritten below: no draw to compile
        module = cls(
            in_features, width // cls._gates, num_layers=len(entries),
            bidirectional=bidirectional, **options, **kwargs,
        )  # fmt: skip
        for i, (layer, entry) in enumerate(zip(module.layers, entries, strict=True)):
            sides: tuple[Any, ...] = (layer.forward, layer.backward)
            for d, (w, p) in enumerate(zip(sides, entry, strict=False)):
                module._assign(w, p, f"layers[{i}]" + (f"[{d}]" if bidirectional else ""))
        return module

    def _assign(self, w: _Weights, p: Any, where: str) -> None:
        """Set ``w`` from polyrnn's ``p`` (exactly: ``bias`` is polyrnn's fused bias)."""
        name = type(self).__name__
        assert w.recurrent_kernel is not None  # from_polyrnn builds the default cells only
        for field, param in (("w_x", w.kernel), ("w_h", w.recurrent_kernel)):
            a = jnp.asarray(getattr(p, field))
            if a.shape != param.shape:
                raise ValueError(
                    f"{name}.from_polyrnn: {where}.{field} must have shape {param.shape}, got "
                    f"{a.shape}"
                )
            param[...] = a
        bias = fused_bias(jnp, p, w.recurrent_bias is not None)
        if w.bias is not None:
            w.bias[...] = jnp.asarray(bias)
        elif bool(jnp.any(jnp.asarray(bias) != 0)):
            raise ValueError(f"{name}.from_polyrnn: {where} has non-zero biases but use_bias=False")
        if w.recurrent_bias is not None:
            w.recurrent_bias[...] = jnp.asarray(p.b_h)[-self.hidden_features :]

    # ------------------------------------------------------------------ the call

    def _layers_fn(self) -> Callable[..., Any]:
        raise NotImplementedError

    def _cell_layers(self) -> Callable[..., Any]:
        """``polyrnn.layers.cell_layers`` of the module's cell record (its ``cell`` other
        than the default)."""
        return functools.partial(cell_layers, cells.BUILTIN[self.cell])

    def _options(self) -> dict[str, Any]:
        return {}

    def _state_in(self, carry: Any) -> Any:
        return carry

    def _state_out(self, last: Any) -> Any:
        return last

    def _carry_parts(self, carry: Any) -> dict[str, Any]:
        return {"initial_carry": carry}

    def _masks(
        self, shape: tuple[int, ...], deterministic: bool | None, rngs: Any
    ) -> list[Any] | None:
        """The dropout masks of this call, or ``None``."""
        deterministic = self.deterministic if deterministic is None else deterministic
        if deterministic or self.dropout == 0.0 or self.num_layers == 1:
            return None
        stream = self.rngs if rngs is None else rngs
        if isinstance(stream, nnx.Rngs):
            stream = stream.dropout
        if stream is None:
            raise ValueError(
                f"{type(self).__name__}: dropout needs rngs (an nnx.Rngs with a dropout stream)"
            )
        keep = 1.0 - self.dropout
        return [jax.random.bernoulli(stream(), keep, shape) for _ in range(self.num_layers - 1)]

    def __call__(
        self,
        inputs: Any,
        *,
        initial_carry: Any = None,
        seq_lengths: Any = None,
        return_carry: bool | None = None,
        time_major: bool | None = None,
        deterministic: bool | None = None,
        rngs: Any = None,
    ) -> Any:
        """Run the layers over ``inputs``: ``outputs``, or ``(carry, outputs)`` with
        ``return_carry`` (as ``nnx.RNN``).

        ``inputs`` is ``(..., T, D)`` (``(T, ..., D)`` with ``time_major``); ``outputs``
        ``(..., T, dirs * H)``, forward then backward halves; the carry ``(L * dirs, ...,
        H)`` in torch's order (layer-major, forward before backward), ``(c, h)`` of two
        such arrays for the LSTM (flax's order); ``initial_carry`` likewise, zeros when
        ``None``.  ``seq_lengths`` ``(...)``: outputs past each length are zero and the
        carry is that at the last valid step (the first, backward).
        ``deterministic`` and ``rngs`` override the module's for dropout.
        """
        cls = type(self).__name__
        time_major = self.time_major if time_major is None else time_major
        return_carry = self.return_carry if return_carry is None else return_carry
        _validate.flags(cls, time_major=time_major, return_carry=return_carry)
        shape = tuple(getattr(inputs, "shape", ()))
        if len(shape) < 2 or shape[-1] != self.in_features:
            layout = "(T, ..., D)" if time_major else "(..., T, D)"
            raise ValueError(
                f"{cls}: inputs must have shape {layout} with D = in_features = "
                f"{self.in_features}, got shape {shape}"
            )
        params = self.polyrnn_layers()
        first = params[0][0] if self.bidirectional else params[0]
        dtype = jnp.result_type(inputs, first.w_x) if self.dtype is None else self.dtype
        (xs,) = promote_dtype((inputs,), dtype=dtype)
        if xs.dtype != first.w_x.dtype:
            params = self.polyrnn_layers(xs.dtype)
        batch = shape[1:-1] if time_major else shape[:-2]
        dirs = 2 if self.bidirectional else 1
        expected = (self.num_layers * dirs, *batch, self.hidden_features)
        for name, s in self._carry_parts(initial_carry).items():
            if s is not None and tuple(getattr(s, "shape", ())) != expected:
                raise ValueError(
                    f"{cls}: {name} must have shape (num_layers * directions, ..., H) = "
                    f"{expected}, got {tuple(getattr(s, 'shape', ()))}"
                )
        if seq_lengths is not None and tuple(getattr(seq_lengths, "shape", ())) != batch:
            raise ValueError(
                f"{cls}: seq_lengths must have the batch shape {batch} of inputs, got "
                f"{getattr(seq_lengths, 'shape', type(seq_lengths).__name__)}"
            )
        state = self._state_in(initial_carry)
        if state is not None:
            state = jax.tree.map(lambda s: s.astype(xs.dtype), state)
        out_shape = (*shape[:-1], dirs * self.hidden_features)
        masks = self._masks(out_shape, deterministic, rngs)
        outputs, last = self._layers_fn()(
            xs, params, state, bidirectional=self.bidirectional,
            dropout=self.dropout if masks else 0.0, masks=masks, time_major=time_major,
            lengths=seq_lengths, **self._options(),
        )  # fmt: skip
        return (self._state_out(last), outputs) if return_carry else outputs


class SimpleRNN(_Base):
    r"""Elman RNN layers: :math:`h_t = \mathrm{act}(x_t W + h_{t-1} U + b)`, each layer
    ``nnx.RNN(nnx.SimpleCell(...))``'s computation.

    Parameters
    ----------
    in_features, hidden_features : int
        ``D`` and ``H``.
    activation : {"tanh", "relu", "sigmoid"}
        The nonlinearity (``SimpleCell``'s ``activation_fn``).
    num_layers, bidirectional, dropout
        As :class:`torch.nn.RNN`: ``L`` stacked layers, both directions, dropout between
        layers (see :mod:`polyrnn.nn.flax`).
    use_bias : bool
        Whether the layers have a ``bias``.
    time_major, return_carry
        Defaults of the call, as ``nnx.RNN``'s.
    deterministic : bool
        No dropout when true (``model.eval()`` sets it); ``False`` by default, as for
        ``nnx.Dropout``.
    kernel_init, recurrent_kernel_init, bias_init
        Initialisers of ``kernel``, ``recurrent_kernel`` and the biases (``SimpleCell``'s
        defaults: LeCun normal, orthogonal, zeros).
    dtype, param_dtype
        The computation's dtype (that of the promoted inputs and parameters when
        ``None``) and the parameters'.
    rngs : nnx.Rngs
        ``params`` for the initialisers, ``dropout`` for the masks.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import polyrnn.nn.flax as pf
    >>> m = pf.SimpleRNN(3, 4, num_layers=2, rngs=nnx.Rngs(0))
    >>> carry, ys = m(jnp.zeros((2, 5, 3)), return_carry=True)
    >>> ys.shape, carry.shape
    ((2, 5, 4), (2, 2, 4))
    """

    _gates = 1
    _params = RNNParams

    def __init__(
        self, in_features: int, hidden_features: int, *, activation: str = "tanh", **kwargs: Any
    ) -> None:
        _validate.choice(type(self).__name__, "activation", activation, ACTIVATIONS)
        self.activation = activation
        super().__init__(in_features, hidden_features, **kwargs)

    @classmethod
    def from_polyrnn(cls, layers: Sequence[Any], **kwargs: Any) -> SimpleRNN:
        """A module holding ``layers`` (as :func:`polyrnn.rnn_layers` takes them: one
        :class:`~polyrnn.RNNParams` per layer, or pairs); ``kwargs`` go to the
        constructor (``activation``, ``dropout``, ``rngs``...)."""
        activation = kwargs.pop("activation", "tanh")
        module: SimpleRNN = cls._from_layers(layers, {"activation": activation}, **kwargs)
        return module

    def _layers_fn(self) -> Callable[..., Any]:
        return rnn_layers

    def _options(self) -> dict[str, Any]:
        return {"activation": self.activation}


class GRU(_Base):
    r"""GRU layers: ``nnx.RNN(nnx.GRUCell(...))``'s computation, and the GRU flax lacks.

    With gates :math:`(r, z, n)` side by side in ``kernel`` and ``recurrent_kernel``:

    .. math::

        r_t &= \sigma(x_t W_r + h_{t-1} U_r + b_r), \quad
        z_t = \sigma(x_t W_z + h_{t-1} U_z + b_z) \\
        n_t &= \tanh(x_t W_n + b_n + r_t \odot (h_{t-1} U_n + b_{hn}))
        \quad \text{(reset_after=True)} \\
        n_t &= \tanh(x_t W_n + b_n + (r_t \odot h_{t-1}) U_n)
        \quad \text{(reset_after=False, Cho et al.)} \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

    Parameters
    ----------
    in_features, hidden_features : int
        ``D`` and ``H``.
    reset_after : bool
        ``True`` (the default) is ``nnx.GRUCell``'s GRU, with ``recurrent_bias``
        :math:`b_{hn}` besides (torch's and Keras's ``reset_after`` GRU; zero it and it
        is flax's); ``False`` is the GRU of Cho et al. (2014), which flax does not have
        (``cell="gru"`` only).
    cell : {"gru", "ln_gru", "min_gru", "min_lstm"}, keyword-only
        ``"gru"``: the equations above.  ``"ln_gru"``: layer-normalised
        (:func:`polyrnn.ln_gru_scan`; with ``kernel_norm_scale`` and
        ``recurrent_norm_scale``).  ``"min_gru"``, ``"min_lstm"``: minGRU ``(z, h̃)`` and
        minLSTM ``(f, i, h̃)`` (:func:`polyrnn.min_gru_scan`,
        :func:`~polyrnn.min_lstm_scan`): no ``recurrent_kernel`` nor ``recurrent_bias``.
    num_layers, bidirectional, dropout, use_bias, time_major, return_carry, deterministic
        As :class:`SimpleRNN`.
    kernel_init, recurrent_kernel_init, bias_init, dtype, param_dtype, rngs
        As :class:`SimpleRNN`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import polyrnn.nn.flax as pf
    >>> m = pf.GRU(3, 4, bidirectional=True, reset_after=False, rngs=nnx.Rngs(0))
    >>> m(jnp.zeros((2, 5, 3))).shape
    (2, 5, 8)
    """

    _gates = 3
    _params = GRUParams
    _kind = "gru"

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        *,
        cell: str = "gru",
        reset_after: bool = True,
        **kwargs: Any,
    ) -> None:
        _validate.flags(type(self).__name__, reset_after=reset_after)
        choose_cell(type(self).__name__, "gru", cell, reset_after)
        self.reset_after = reset_after
        super().__init__(in_features, hidden_features, cell=cell, **kwargs)

    def _recurrent_bias(self) -> bool:
        return self.reset_after and self.cell in ("gru", "ln_gru")

    @classmethod
    def from_polyrnn(cls, layers: Sequence[Any], **kwargs: Any) -> GRU:
        """A module holding ``layers`` (as :func:`polyrnn.gru_layers` takes them: one
        :class:`~polyrnn.GRUParams` per layer, or pairs); ``kwargs`` go to the constructor
        (``reset_after``, ``dropout``, ``rngs``...).  The same function: ``bias`` is
        ``b_x + b_h`` but for ``b_hn`` (all of it with ``reset_after=False``)."""
        reset_after = kwargs.pop("reset_after", True)
        module: GRU = cls._from_layers(layers, {"reset_after": reset_after}, **kwargs)
        return module

    def _layers_fn(self) -> Callable[..., Any]:
        return gru_layers if self.cell == "gru" else self._cell_layers()

    def _options(self) -> dict[str, Any]:
        if cells.BUILTIN[self.cell].linear is not None:  # the adapter's choice of scan
            return {"method": "auto"}
        return {"reset_after": self.reset_after} if self.cell == "gru" else {}


class LSTM(_Base):
    r"""LSTM layers: ``nnx.RNN(nnx.LSTMCell(...))``'s computation.

    Gates :math:`(i, f, g, o)` side by side in ``kernel`` and ``recurrent_kernel``:
    :math:`c_t = f_t \odot c_{t-1} + i_t \odot g_t`, :math:`h_t = o_t \odot \tanh(c_t)`.
    The carry is ``(c, h)``, as ``nnx.LSTMCell``'s, each ``(L * dirs, ..., H)``.

    Parameters
    ----------
    in_features, hidden_features : int
        ``D`` and ``H``.
    cell : {"lstm", "ln_lstm"}, keyword-only
        ``"ln_lstm"``: layer-normalised (:func:`polyrnn.ln_lstm_scan`), with
        ``kernel_norm_scale``, ``recurrent_norm_scale``, ``cell_norm_scale`` and
        ``cell_norm_bias``.
    num_layers, bidirectional, dropout, use_bias, time_major, return_carry, deterministic
        As :class:`SimpleRNN`.
    kernel_init, recurrent_kernel_init, bias_init, dtype, param_dtype, rngs
        As :class:`SimpleRNN`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import polyrnn.nn.flax as pf
    >>> m = pf.LSTM(3, 4, num_layers=2, return_carry=True, rngs=nnx.Rngs(0))
    >>> (c, h), ys = m(jnp.zeros((2, 5, 3)))
    >>> ys.shape, c.shape, bool((h[-1] == ys[:, -1]).all())
    ((2, 5, 4), (2, 2, 4), True)
    """

    _gates = 4
    _params = LSTMParams
    _kind = "lstm"

    def __init__(
        self, in_features: int, hidden_features: int, *, cell: str = "lstm", **kwargs: Any
    ) -> None:
        super().__init__(in_features, hidden_features, cell=cell, **kwargs)

    @classmethod
    def from_polyrnn(cls, layers: Sequence[Any], **kwargs: Any) -> LSTM:
        """A module holding ``layers`` (as :func:`polyrnn.lstm_layers` takes them: one
        :class:`~polyrnn.LSTMParams` per layer, or pairs); ``kwargs`` go to the
        constructor."""
        module: LSTM = cls._from_layers(layers, {}, **kwargs)
        return module

    def _layers_fn(self) -> Callable[..., Any]:
        return lstm_layers if self.cell == "lstm" else self._cell_layers()

    def _carry_parts(self, carry: Any) -> dict[str, Any]:
        if carry is None:
            return {}
        if not (isinstance(carry, tuple | list) and len(carry) == 2):
            raise TypeError(
                f"LSTM: initial_carry must be a pair (c, h) of arrays, got {type(carry).__name__}"
            )
        return {"initial_carry[0] (c)": carry[0], "initial_carry[1] (h)": carry[1]}

    def _state_in(self, carry: Any) -> Any:
        return None if carry is None else (carry[1], carry[0])

    def _state_out(self, last: Any) -> Any:
        h, c = last
        return (c, h)


# --------------------------------------------------------------------------- flax's modules


def _cell_of(layer: Any, where: str) -> tuple[Any, ...]:
    """The cells of one flax layer: ``(cell,)`` or ``(forward, backward)``."""
    if isinstance(layer, nnx.Bidirectional):
        probe = layer.merge_fn(jnp.zeros((1, 1)), jnp.ones((1, 1)))
        if getattr(probe, "shape", None) != (1, 2) or not bool(probe[0, 1] == 1):
            raise ValueError(
                f"from_flax: {where} merges its directions with {layer.merge_fn!r}; polyrnn "
                "concatenates them, forward first (nnx.Bidirectional's default)"
            )
        cells = []
        for name in ("forward_rnn", "backward_rnn"):
            rnn: Any = getattr(layer, name)
            if not isinstance(rnn, nnx.RNN):
                raise TypeError(
                    f"from_flax: {where}.{name} must be an nnx.RNN, got {type(rnn).__name__}"
                )
            cells.append(rnn.cell)
        return tuple(cells)
    if isinstance(layer, nnx.RNN):
        if layer.reverse:
            raise ValueError(
                f"from_flax: {where} is an nnx.RNN with reverse=True; a backward direction "
                "goes in an nnx.Bidirectional"
            )
        return (layer.cell,)
    if isinstance(layer, nnx.RNNCellBase):
        return (layer,)
    raise TypeError(
        f"from_flax: {where} must be an nnx.RNN, nnx.Bidirectional or an nnx cell, got "
        f"{type(layer).__name__}"
    )


def _value(param: Any) -> Any:
    return param[...]


def _cell_params(cell: Any, where: str) -> tuple[type, Any, dict[str, Any]]:
    """``(our class, polyrnn params, options)`` of one flax cell."""
    gated = isinstance(cell, nnx.GRUCell | nnx.LSTMCell)
    if gated and (cell.gate_fn is not nnx.sigmoid or cell.activation_fn is not nnx.tanh):
        raise ValueError(
            f"from_flax: {where} has gate_fn={cell.gate_fn!r} and activation_fn="
            f"{cell.activation_fn!r}; polyrnn's cells use sigmoid and tanh"
        )
    if isinstance(cell, nnx.GRUCell):
        w_x, w_h = _value(cell.dense_i.kernel), _value(cell.dense_h.kernel)
        b_x = _value(cell.dense_i.bias)
        return GRU, GRUParams(w_x, w_h, b_x, jnp.zeros_like(b_x)), {"reset_after": True}
    if isinstance(cell, nnx.LSTMCell):
        w_x = jnp.concatenate(
            [_value(getattr(cell, f"i{g}" if g != "f" else "if_").kernel) for g in _LSTM_GATES],
            axis=1,
        )
        w_h = jnp.concatenate([_value(getattr(cell, f"h{g}").kernel) for g in _LSTM_GATES], axis=1)
        b_h = jnp.concatenate([_value(getattr(cell, f"h{g}").bias) for g in _LSTM_GATES])
        return LSTM, LSTMParams(w_x, w_h, jnp.zeros_like(b_h), b_h), {}
    if isinstance(cell, nnx.SimpleCell):
        activation = _FLAX_ACTIVATIONS.get(cell.activation_fn)
        if cell.residual or activation is None:
            raise ValueError(
                f"from_flax: {where} is a SimpleCell with residual={cell.residual} and "
                f"activation_fn={cell.activation_fn!r}; polyrnn's RNN has no residual and "
                f"the activations {sorted(_FLAX_ACTIVATIONS.values())}"
            )
        w_x, b_x = _value(cell.dense_i.kernel), _value(cell.dense_i.bias)
        params = RNNParams(w_x, _value(cell.dense_h.kernel), b_x, jnp.zeros_like(b_x))
        return SimpleRNN, params, {"activation": activation}
    raise TypeError(
        f"from_flax: {where} is a {type(cell).__name__}; polyrnn converts nnx.SimpleCell, "
        "nnx.GRUCell and nnx.LSTMCell"
    )


def from_flax(layers: Any, **kwargs: Any) -> SimpleRNN | GRU | LSTM:
    """The polyrnn module computing what a stack of flax recurrent layers computes.

    Parameters
    ----------
    layers : flax module or list of them
        One layer or a list (layer ``l`` reading layer ``l - 1``'s outputs), each an
        ``nnx.RNN`` over an ``nnx.SimpleCell``, ``nnx.GRUCell`` or ``nnx.LSTMCell``, an
        ``nnx.Bidirectional`` of two (concatenating, forward first, its default), or a
        bare cell; every layer of the same cell type and direction count.
    **kwargs
        For the constructor: ``dropout``, ``time_major``, ``return_carry``, ``rngs``...

    Returns
    -------
    SimpleRNN, GRU or LSTM
        With the layers' parameters (``GRU(reset_after=True)``, ``recurrent_bias`` zero,
        for ``GRUCell``; ``bias`` the recurrent biases for ``LSTMCell``, which has no
        input bias) and ``dtype``.

    Raises
    ------
    TypeError, ValueError
        Another module or cell, cells of several types, a custom ``gate_fn``,
        ``activation_fn`` (but relu and sigmoid of ``SimpleCell``) or ``merge_fn``, a
        residual ``SimpleCell``, an ``nnx.RNN`` with ``reverse=True``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import polyrnn.nn.flax as pf
    >>> theirs = nnx.RNN(nnx.GRUCell(3, 4, rngs=nnx.Rngs(0)))
    >>> ours = pf.from_flax(theirs)
    >>> x = jnp.ones((2, 5, 3))
    >>> bool(jnp.allclose(ours(x), theirs(x), atol=1e-6))
    True
    """
    listed = layers if isinstance(layers, Sequence) else [layers]
    if not listed:
        raise ValueError("from_flax: layers is empty")
    entries: list[tuple[Any, ...]] = []
    kind: Any = None
    options: dict[str, Any] = {}
    dtype = None
    for i, layer in enumerate(listed):
        where = f"layers[{i}]" if listed is layers else "layers"
        cells = _cell_of(layer, where)
        converted = [_cell_params(c, f"{where} cell") for c in cells]
        for cls, _, opts in converted:
            if kind is None:
                kind, options, dtype = cls, opts, cells[0].dtype
            elif (cls, opts) != (kind, options):
                raise ValueError(
                    f"from_flax: {where} is a {cls.__name__} {opts} layer after "
                    f"{kind.__name__} {options} ones; every layer must have the same cell"
                )
        if entries and len(cells) != len(entries[0]):
            raise ValueError(
                f"from_flax: {where} has {len(cells)} direction(s), layers[0] "
                f"{len(entries[0])}; mix nnx.RNN and nnx.Bidirectional layers in no stack"
            )
        entries.append(tuple(p for _, p, _ in converted))
    assert kind is not None
    stack = [e[0] if len(e) == 1 else e for e in entries]
    kwargs.setdefault("dtype", dtype)
    module: SimpleRNN | GRU | LSTM = kind.from_polyrnn(stack, **options, **kwargs)
    return module


def _set(param: Any, value: Any) -> None:
    param[...] = value.astype(param.dtype)


def _flax_cell(module: _Base, p: Any) -> Any:
    """An nnx cell with the weights ``p`` (one direction of ``module``, in polyrnn's form)."""
    d_in, n_h = int(p.w_x.shape[0]), module.hidden_features
    common = {"dtype": module.dtype, "param_dtype": p.w_x.dtype, "rngs": nnx.Rngs(0)}
    common |= dict.fromkeys(("kernel_init", "recurrent_kernel_init", "bias_init"), _PLACEHOLDER)
    b = fused_bias(jnp, p, isinstance(module, GRU) and module.reset_after)
    cell: Any
    if isinstance(module, GRU):
        cell = nnx.GRUCell(d_in, n_h, **common)
        _set(cell.dense_i.kernel, p.w_x)
        _set(cell.dense_h.kernel, p.w_h)
        _set(cell.dense_i.bias, b)
    elif isinstance(module, LSTM):
        cell = nnx.LSTMCell(d_in, n_h, **common)
        for k, g in enumerate(_LSTM_GATES):
            cols = slice(k * n_h, (k + 1) * n_h)
            _set(getattr(cell, f"i{g}" if g != "f" else "if_").kernel, p.w_x[:, cols])
            _set(getattr(cell, f"h{g}").kernel, p.w_h[:, cols])
            _set(getattr(cell, f"h{g}").bias, b[cols])
    else:
        assert isinstance(module, SimpleRNN)
        activation = {v: k for k, v in _FLAX_ACTIVATIONS.items()}[module.activation]
        cell = nnx.SimpleCell(d_in, n_h, activation_fn=activation, **common)
        _set(cell.dense_i.kernel, p.w_x)
        _set(cell.dense_h.kernel, p.w_h)
        _set(cell.dense_i.bias, b)
    return cell


def to_flax(module: SimpleRNN | GRU | LSTM) -> list[Any]:
    """``module``'s layers as flax's: the inverse of :func:`from_flax`.

    Parameters
    ----------
    module : SimpleRNN, GRU or LSTM
        A ``GRU`` must have ``reset_after=True`` and a zero ``recurrent_bias``:
        ``nnx.GRUCell`` has no :math:`b_{hn}`.

    Returns
    -------
    list
        One ``nnx.RNN(cell)`` per layer (``nnx.Bidirectional`` of two with
        ``bidirectional``), with the module's weights and ``dtype``; applied in turn, each
        to the previous one's outputs, they give the module's outputs (which ``from_flax``
        turns back into the module).

    Raises
    ------
    ValueError
        A ``reset_after=False`` GRU, a non-zero ``recurrent_bias``, or a ``cell`` other
        than the default: flax has no such cell.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> import polyrnn.nn.flax as pf
    >>> ours = pf.LSTM(3, 4, num_layers=2, rngs=nnx.Rngs(0))
    >>> theirs = pf.to_flax(ours)
    >>> x = jnp.ones((2, 5, 3))
    >>> y = theirs[1](theirs[0](x))
    >>> bool(jnp.allclose(ours(x), y, atol=1e-6))
    True
    """
    if not isinstance(module, _Base):
        raise TypeError(
            "to_flax: module must be a polyrnn.nn.flax SimpleRNN, GRU or LSTM, got "
            f"{type(module).__name__}"
        )
    default = module._kind
    if module.cell != default:
        raise ValueError(
            f"to_flax: flax has no {module.cell!r} cell (it has nnx.SimpleCell, GRUCell and "
            f"LSTMCell); this {type(module).__name__}(cell={module.cell!r}) has no flax "
            "equivalent"
        )
    if isinstance(module, GRU):
        if not module.reset_after:
            raise ValueError(
                "to_flax: flax has no reset_after=False GRU (the reset gate before the "
                "recurrent product); this module's GRU has no nnx.GRUCell equivalent"
            )
        for i, layer in enumerate(module.layers):
            for side in ("forward", "backward"):
                w = getattr(layer, side)
                rb = None if w is None else w.recurrent_bias
                if rb is not None and bool(jnp.any(rb[...] != 0)):
                    raise ValueError(
                        f"to_flax: layers[{i}].{side}.recurrent_bias (b_hn) is not zero, and "
                        "nnx.GRUCell has no b_hn; no flax GRU computes this module's function"
                    )
    out: list[Any] = []
    for p in module.polyrnn_layers():
        if isinstance(p, GRUParams | LSTMParams | RNNParams):
            out.append(nnx.RNN(_flax_cell(module, p)))
        else:
            fwd, bwd = (nnx.RNN(_flax_cell(module, q)) for q in p)
            out.append(nnx.Bidirectional(fwd, bwd))
    return out
