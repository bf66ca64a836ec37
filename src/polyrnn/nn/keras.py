r"""Keras 3 layers :class:`SimpleRNN`, :class:`GRU` and :class:`LSTM`: drop-in
``keras.layers`` recurrent layers computed by polyrnn.

Each takes the arguments of ``keras.layers.SimpleRNN``, ``GRU`` and ``LSTM`` (``units``,
``activation``, ``recurrent_activation``, ``use_bias``, the initializers, regularizers and
constraints, ``dropout``, ``return_sequences``, ``return_state``, ``go_backwards``,
``reset_after``, ``unit_forget_bias``), holds the same weights in the same order and
layout (``kernel (D, G*H)``, ``recurrent_kernel (H, G*H)``, ``bias``, gates in Keras's
order: ``(z, r, h)`` for the GRU, ``(i, f, c, o)`` for the LSTM; a ``reset_after=True``
GRU's bias is ``(2, 3H)``), so ``layer.set_weights(keras_layer.get_weights())`` gives the
same outputs, and is saved and loaded by ``model.save`` / ``keras.saving.load_model``.

Each call builds polyrnn's parameters from the layer's weights (the GRU's first two gate
blocks exchanged, as :func:`polyrnn.interop.from_keras_gru` does) and runs
:func:`polyrnn.gru_scan` (or :func:`~polyrnn.rnn_scan`, :func:`~polyrnn.lstm_scan`) on
the backend's own tensors: JAX arrays under ``KERAS_BACKEND=jax`` (``jax.lax.scan``,
traced by ``fit``'s ``jit``), torch tensors under ``KERAS_BACKEND=torch`` (aten's fused
kernels where the cell has one), NumPy arrays under ``KERAS_BACKEND=numpy`` (inference).

A Keras mask (``Masking``, ``Embedding(mask_zero=True)``) becomes the scan's ``lengths``,
the number of ``True`` steps of each row: only right-padded masks (each row a run of
``True`` then ``False``) are supported, checked where the mask's values can be read (not
inside a ``jit``-compiled ``fit``).  Masked steps output what Keras outputs there: the
carried state.

Dropout is drawn as Keras draws it, at every call from the layer's ``seed``: one input
mask ``(N, D)`` and one recurrent mask ``(N, H)`` (multiplying ``h_{t-1}`` where it meets
``recurrent_kernel``, Gal and Ghahramani's variational dropout), applied in training.
The SimpleRNN's are Keras's masks; Keras's GRU and LSTM with ``recurrent_dropout`` draw
one mask per gate instead, where these layers use one for all gates.

Not supported: ``stateful=True`` and Keras's TensorFlow backend; ``unroll`` and ``use_cudnn`` are accepted (so Keras's configs load)
and change nothing.  What polyrnn adds: the reset-before GRU of Cho et al.
(``reset_after=False``, the seed notebook's) computed by polyrnn's scan like the other
cells, the same weights giving the same numbers in polyrnn's functions on any array
library (:mod:`polyrnn.interop`), and polyrnn's other cells, chosen by the keyword
``cell``: ``GRU(cell="ln_gru")`` (:func:`polyrnn.ln_gru_scan`), ``"min_gru"`` and
``"min_lstm"`` (:func:`polyrnn.min_gru_scan`, :func:`~polyrnn.min_lstm_scan`: linear
recurrences, a parallel scan on accelerators), ``LSTM(cell="ln_lstm")``
(:func:`polyrnn.ln_lstm_scan`), each with the state, masks, ``go_backwards``, dropout and
saving of its layer (the minimal cells have no ``recurrent_kernel``, hence no recurrent
dropout).
"""

from __future__ import annotations

from typing import Any

try:
    import keras
except ImportError as _error:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        f"polyrnn.nn.keras needs Keras 3 on a backend polyrnn takes, which could not be "
        f"imported ({_error}); install Keras and a backend with: pip install "
        '"polyrnn[keras,jax]" (or "polyrnn[keras,torch]"), and set KERAS_BACKEND=jax '
        "(or torch) before importing Keras"
    ) from _error

from keras import ops

from .. import cells
from .._cell import Cell
from .._compat import array_namespace, device
from ..backends import get_adapter
from ..interop import _swap_first_two
from ..params import (
    WIDTHS,
    GRUParams,
    LNGRUParams,
    LNLSTMParams,
    LSTMParams,
    MinGRUParams,
    MinLSTMParams,
    RNNParams,
)
from ..scans import cell_scan
from . import choose_cell

__all__ = ["GRU", "LSTM", "SimpleRNN"]

_SERIALIZED = (
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
)
"""The arguments stored as Keras objects and written to the config by Keras's serializers."""

_NORM_NAMES = {
    "g_x": "ln_gamma_kernel",
    "g_h": "ln_gamma_recurrent",
    "g_c": "ln_gamma_cell",
    "b_c": "ln_beta_cell",
}
"""Keras's name of each layer-normalisation field of polyrnn's parameters: the gains of
``x K``, of ``h R`` and (LSTM) of the cell state, and the cell state's shift."""


def _norms(cell: Cell) -> list[tuple[str, int, str]]:
    """The layer-normalised cell's extra weights, in the order of its fields: ``(name,
    length in units of H (params.WIDTHS), initializer)``; none for the other cells."""
    return [
        (_NORM_NAMES[field], width, "ones" if field.startswith("g_") else "zeros")
        for field, width in WIDTHS.get(cell.params, {}).items()
    ]


def _activation_name(cls: str, arg: str, value: Any, allowed: tuple[str, ...]) -> str:
    """The name of the Keras activation ``value`` (a name or a ``keras.activations``
    function), or a ValueError naming ``arg`` and what polyrnn has."""
    try:
        name = keras.activations.serialize(keras.activations.get(value))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{cls}: unknown {arg} {value!r} ({e})") from None
    if name not in allowed:
        raise ValueError(
            f"{cls}: {arg} must be one of {', '.join(repr(a) for a in allowed)} (the cells "
            f"polyrnn computes), got {name!r}"
        )
    return str(name)


class _RNNBase(keras.layers.Layer):  # type: ignore[misc]
    """Arguments, weights, masks and the call shared by :class:`SimpleRNN`, :class:`GRU`
    and :class:`LSTM` (``keras.layers.RNN``'s role)."""

    _kind = "rnn"
    """The kind of layer: its cells are ``polyrnn.nn.LAYER_CELLS[_kind]``, its own first."""

    def __init__(
        self,
        units: int,
        *,
        cell: str = "rnn",
        activation: Any = "tanh",
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        recurrent_regularizer: Any = None,
        bias_regularizer: Any = None,
        kernel_constraint: Any = None,
        recurrent_constraint: Any = None,
        bias_constraint: Any = None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        seed: int | None = None,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        zero_output_for_mask: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        cls = type(self).__name__
        backend = keras.backend.backend()
        if backend not in ("jax", "torch", "numpy"):
            raise NotImplementedError(
                f"{cls}: Keras's {backend!r} backend is not supported: polyrnn computes on "
                "JAX, PyTorch and NumPy arrays; set KERAS_BACKEND=jax, torch or numpy"
            )
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{cls}: units must be a positive integer, got {units!r}")
        self._cell = choose_cell(cls, self._kind, cell)
        self.cell = cell
        flags = {
            "use_bias": use_bias,
            "return_sequences": return_sequences,
            "return_state": return_state,
            "go_backwards": go_backwards,
            "stateful": stateful,
            "unroll": unroll,
            "zero_output_for_mask": zero_output_for_mask,
        }
        for arg, flag in flags.items():
            if not isinstance(flag, bool):
                raise TypeError(f"{cls}: {arg} must be True or False, got {flag!r}")
        for arg, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if (
                isinstance(rate, bool)
                or not isinstance(rate, int | float)
                or not 0 <= float(rate) < 1
            ):
                raise ValueError(f"{cls}: {arg} must be a number in [0, 1), got {rate!r}")
        if stateful:
            raise NotImplementedError(
                f"{cls}: stateful=True is not supported (got stateful={stateful!r}); pass the "
                "previous call's states as initial_state, or use keras.layers." + cls
            )
        self.units = units
        self.activation = _activation_name(cls, "activation", activation, self._activations())
        self.use_bias = use_bias
        for arg, value in zip(
            _SERIALIZED,
            (
                keras.initializers.get(kernel_initializer),
                keras.initializers.get(recurrent_initializer),
                keras.initializers.get(bias_initializer),
                keras.regularizers.get(kernel_regularizer),
                keras.regularizers.get(recurrent_regularizer),
                keras.regularizers.get(bias_regularizer),
                keras.constraints.get(kernel_constraint),
                keras.constraints.get(recurrent_constraint),
                keras.constraints.get(bias_constraint),
            ),
            strict=True,
        ):
            setattr(self, arg, value)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self.seed_generator = None
        if dropout > 0 or recurrent_dropout > 0:
            self.seed_generator = keras.random.SeedGenerator(seed)
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.stateful = False
        self.unroll = unroll
        self.zero_output_for_mask = zero_output_for_mask
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)
        if self._cell.linear is not None:
            recurrent = {
                "recurrent_dropout": self.recurrent_dropout or None,
                "recurrent_regularizer": self.recurrent_regularizer,
                "recurrent_constraint": self.recurrent_constraint,
            }
            for arg, value in recurrent.items():
                if value is not None:
                    raise ValueError(
                        f"{cls}: cell={cell!r} has no recurrent_kernel (its gates read the "
                        f"input alone), so {arg} cannot apply; got {arg}={value!r}"
                    )

    @property
    def _gates(self) -> int:
        return self._cell.gates

    @property
    def _states(self) -> int:
        return len(self._cell.states)

    # ------------------------------------------------------------------ per cell

    def _activations(self) -> tuple[str, ...]:
        return ("tanh",)

    def _bias_shape(self) -> tuple[int, ...]:
        return (self._gates * self.units,)

    def _bias_initializer(self) -> Any:
        return self.bias_initializer

    def _params(self, xp: Any) -> Any:
        """polyrnn's parameters, in its gate order, of the weights' current values."""
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        """The cell record's options (``activation``, ``reset_after``)."""
        return {}

    # ------------------------------------------------------------------ Keras's interface

    def build(self, sequences_shape: Any, initial_state_shape: Any = None) -> None:
        n_in = sequences_shape[-1]
        if n_in is None:
            raise ValueError(
                f"{type(self).__name__}: the last axis of the input (its features) must be "
                f"known to build the layer, got input shape {tuple(sequences_shape)}"
            )
        g_h = self._gates * self.units
        self.kernel = self.add_weight(
            shape=(n_in, g_h),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = None
        if self._cell.linear is None:
            self.recurrent_kernel = self.add_weight(
                shape=(self.units, g_h),
                name="recurrent_kernel",
                initializer=self.recurrent_initializer,
                regularizer=self.recurrent_regularizer,
                constraint=self.recurrent_constraint,
            )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self._bias_shape(),
                name="bias",
                initializer=self._bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        for name, width, init in _norms(self._cell):
            setattr(
                self,
                name,
                self.add_weight(shape=(width * self.units,), name=name, initializer=init),
            )

    def compute_output_shape(self, sequences_shape: Any, initial_state_shape: Any = None) -> Any:
        batch, steps = sequences_shape[0], sequences_shape[1]
        out = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return (out, *[(batch, self.units)] * self._states)
        return out

    def compute_mask(self, inputs: Any, mask: Any = None) -> Any:
        if isinstance(mask, list | tuple):
            mask = mask[0]
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out, *[None] * self._states]
        return out

    def get_config(self) -> dict[str, Any]:
        config = {
            "units": self.units,
            "cell": self.cell,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
            "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
        }
        serializers = {
            "initializer": keras.initializers.serialize,
            "regularizer": keras.regularizers.serialize,
            "constraint": keras.constraints.serialize,
        }
        for arg in _SERIALIZED:
            config[arg] = serializers[arg.rsplit("_", 1)[1]](getattr(self, arg))
        return {**super().get_config(), **config}

    # ------------------------------------------------------------------ the computation

    def _weights_of(self, xp: Any) -> tuple[Any, Any, Any]:
        """``(kernel, recurrent_kernel, bias)`` as backend tensors (``recurrent_kernel``
        ``None`` for a linear cell, ``bias`` zeros of ``self._bias_shape()`` without
        ``use_bias``)."""
        kernel = self.kernel.value
        recurrent = None if self.recurrent_kernel is None else self.recurrent_kernel.value
        if self.bias is not None:
            return kernel, recurrent, self.bias.value
        zeros = xp.zeros(self._bias_shape(), dtype=kernel.dtype, device=device(kernel))
        return kernel, recurrent, zeros

    def _lengths(self, mask: Any, steps: int) -> tuple[Any, Any]:
        """``(lengths, prefix)``: the valid length of each row of a right-padded ``mask``
        ``(N, T)`` (checked where its values can be read), and the boolean mask of those
        lengths."""
        if isinstance(mask, list | tuple):
            mask = mask[0]
        mask = ops.cast(mask, "bool")
        lengths = ops.cast(ops.sum(ops.cast(mask, "int32"), axis=1), "int32")
        prefix = ops.arange(steps, dtype="int32")[None, :] < lengths[:, None]
        adapter = get_adapter(array_namespace(lengths))
        if adapter.concrete(lengths):
            bad = adapter.to_numpy(ops.any(ops.not_equal(prefix, mask), axis=1))
            if bad.any():
                row = int(bad.argmax())
                raise ValueError(
                    f"{type(self).__name__}: the mask must be right-padded (each row True "
                    f"on its first steps, then False), but row {row} is "
                    f"{adapter.to_numpy(mask[row]).astype(int).tolist()}; polyrnn turns "
                    "a mask into sequence lengths"
                )
        return lengths, prefix

    def call(
        self,
        sequences: Any,
        initial_state: Any = None,
        mask: Any = None,
        training: bool | None = False,
    ) -> Any:
        cls = type(self).__name__
        xs = sequences
        # Keras's dropout: masks for all steps, the input's then the state's, drawn at
        # every call (in inference too, as Keras does, so that a seed gives its masks)
        recurrent_mask = None
        if self.dropout > 0:
            keep = keras.random.dropout(
                ops.ones_like(xs[:, 0, :]), rate=self.dropout, seed=self.seed_generator
            )
            if training:
                xs = xs * keep[:, None, :]
        if self.recurrent_dropout > 0:
            ones = ops.ones((xs.shape[0], self.units), dtype=xs.dtype)
            keep_h = keras.random.dropout(
                ones, rate=self.recurrent_dropout, seed=self.seed_generator
            )
            if training:
                recurrent_mask = keep_h
        xp = array_namespace(xs)
        state0 = None
        if initial_state is not None:
            nested = isinstance(initial_state, list | tuple)
            states = list(initial_state) if nested else [initial_state]
            if len(states) != self._states:
                raise ValueError(
                    f"{cls}: initial_state must hold {self._states} tensor(s) of shape "
                    f"(batch, {self.units}), got {len(states)}"
                )
            states = [ops.convert_to_tensor(s, dtype=self.compute_dtype) for s in states]
            state0 = states[0] if self._states == 1 else tuple(states)
        steps = int(xs.shape[1])
        lengths: Any = None
        prefix: Any = None
        if mask is not None:
            lengths, prefix = self._lengths(mask, steps)
        hs, last = cell_scan(
            self._cell, xs, self._params(xp), state0, reverse=self.go_backwards,
            lengths=lengths, recurrent_mask=recurrent_mask, **self._options(),
        )  # fmt: skip
        if prefix is not None and not self.zero_output_for_mask:
            # Keras repeats the previous output at a masked step (polyrnn: zeros): the
            # last state on the padding after a sequence.  Before the first valid step
            # (go_backwards reads the padding first; an empty row) Keras's backends
            # differ: jax and numpy output the initial state, torch zeros.
            start = ops.zeros_like(last[0])
            if state0 is not None and keras.backend.backend() != "torch":
                start = states[0]
            fill = start if self.go_backwards else ops.where(lengths[:, None] > 0, last[0], start)
            hs = ops.where(prefix[:, :, None], hs, fill[:, None, :])
        if self.go_backwards:
            hs = ops.flip(hs, axis=1)  # Keras's order: the order the steps were read in
        # Keras's last output: the last step's, masked or not
        last_output = last[0] if prefix is None else hs[:, -1]
        output = hs if self.return_sequences else last_output
        if self.return_state:
            return (output, *last)
        return output


@keras.saving.register_keras_serializable(package="polyrnn")
class SimpleRNN(_RNNBase):
    r"""Elman RNN layer, drop-in for ``keras.layers.SimpleRNN``:
    :math:`h_t = \mathrm{act}(x_t K + h_{t-1} R + b)`.

    Weights ``kernel (D, H)``, ``recurrent_kernel (H, H)``, ``bias (H,)``; the call is
    :func:`polyrnn.rnn_scan` with ``w_x = kernel``, ``w_h = recurrent_kernel``, ``b_x =
    bias``, ``b_h = 0``.

    Parameters
    ----------
    units, use_bias, kernel_initializer, recurrent_initializer, bias_initializer
        As ``keras.layers.SimpleRNN``; also its regularizers and constraints.
    activation : {"tanh", "relu", "sigmoid"}
        A name or the ``keras.activations`` function; others raise ``ValueError``.
    dropout : float
        As Keras: in training, the inputs times one dropout mask for every step.
    recurrent_dropout : float
        In training, ``h_{t-1}`` times one dropout mask for every step where it meets
        ``recurrent_kernel`` (Keras's for the SimpleRNN; one for all gates in the GRU and
        LSTM, where Keras draws one per gate).
    seed : int, optional
        Of the dropout masks, drawn as Keras draws them.
    return_sequences, return_state, go_backwards
        As Keras: output ``(N, T, H)`` or ``(N, H)``, then the final state.
    stateful, unroll
        ``stateful`` must be ``False``; ``unroll`` changes nothing.
    cell : {"rnn"}, keyword-only
        The Elman cell only (:class:`GRU` and :class:`LSTM` take polyrnn's others).

    Examples
    --------
    >>> import numpy as np, polyrnn.nn.keras
    >>> layer = polyrnn.nn.keras.SimpleRNN(4, return_sequences=True, return_state=True)
    >>> out, h = layer(np.zeros((2, 5, 3), dtype="float32"))
    >>> tuple(out.shape), tuple(h.shape)
    ((2, 5, 4), (2, 4))
    """

    def __init__(self, units: int, activation: Any = "tanh", **kwargs: Any) -> None:
        super().__init__(units, activation=activation, **kwargs)

    def _activations(self) -> tuple[str, ...]:
        return tuple(cells.ACTIVATIONS)

    def _params(self, xp: Any) -> RNNParams:
        kernel, recurrent, bias = self._weights_of(xp)
        return RNNParams(kernel, recurrent, bias, xp.zeros_like(bias))

    def _options(self) -> dict[str, Any]:
        return {"activation": self.activation}


class _GatedBase(_RNNBase):
    """What the GRU and the LSTM add to :class:`_RNNBase`: the gates' ``recurrent_activation``
    (the sigmoid only) and Keras's ``use_cudnn``, accepted so that its configs load."""

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        use_cudnn: Any = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(units, activation=activation, **kwargs)
        self.recurrent_activation = _activation_name(
            type(self).__name__, "recurrent_activation", recurrent_activation, ("sigmoid",)
        )
        self.use_cudnn = use_cudnn

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "recurrent_activation": self.recurrent_activation,
            "use_cudnn": self.use_cudnn,
        }


@keras.saving.register_keras_serializable(package="polyrnn")
class GRU(_GatedBase):
    r"""GRU layer, drop-in for ``keras.layers.GRU``, both ``reset_after`` conventions.

    With Keras's gates :math:`(z, r, h)` stacked in the columns of ``kernel (D, 3H)`` and
    ``recurrent_kernel (H, 3H)``:

    .. math::

        z &= \sigma(x K_z + h R_z + b^{in}_z + b^{rec}_z), \quad
        r = \sigma(x K_r + h R_r + b^{in}_r + b^{rec}_r) \\
        \tilde h &= \tanh(x K_h + b^{in}_h + r \odot (h R_h + b^{rec}_h))
        \quad \text{(reset_after=True)} \\
        \tilde h &= \tanh(x K_h + (r \odot h) R_h + b^{in}_h)
        \quad \text{(reset_after=False, no } b^{rec} \text{)} \\
        h' &= z \odot h + (1 - z) \odot \tilde h

    with ``bias`` ``(2, 3H)`` holding :math:`[b^{in}; b^{rec}]` (``reset_after=True``) or
    ``(3H,)`` holding :math:`b^{in}` (``reset_after=False``).  The call is
    :func:`polyrnn.gru_scan` with the same ``reset_after`` on these weights, the first two
    gate blocks exchanged into polyrnn's ``(r, z, n)``.

    Parameters
    ----------
    units, use_bias, kernel_initializer, recurrent_initializer, bias_initializer
        As ``keras.layers.GRU``; also its regularizers and constraints.
    activation, recurrent_activation
        ``"tanh"`` and ``"sigmoid"`` (the names or the functions); others raise
        ``ValueError``.
    dropout, recurrent_dropout, seed, return_sequences, return_state, go_backwards,
    stateful, unroll
        As :class:`SimpleRNN`.
    reset_after : bool
        ``True`` (Keras's default, the cuDNN GRU) or ``False`` (Cho et al. 2014, the
        seed notebook's GRU; ``cell="gru"`` only).
    use_cudnn
        Accepted for ``keras.layers.GRU``'s configs; changes nothing.
    cell : {"gru", "ln_gru", "min_gru", "min_lstm"}, keyword-only
        The cell, each with the GRU's one state ``h``:

        - ``"gru"``: the equations above;
        - ``"ln_gru"``: layer-normalised (:func:`polyrnn.ln_gru_scan`, reset after the
          product): the same ``kernel``, ``recurrent_kernel`` and ``bias (2, 3H)`` in
          Keras's ``(z, r, h)`` order, ``bias`` holding the normalisations' shifts of
          ``x K`` and ``h R``, plus their gains ``ln_gamma_kernel (3H,)`` and
          ``ln_gamma_recurrent (3H,)`` (ones);
        - ``"min_gru"``: minGRU (:func:`polyrnn.min_gru_scan`), ``kernel (D, 2H)`` and
          ``bias (2H,)``, gates ``(z, h̃)``;
        - ``"min_lstm"``: minLSTM (:func:`polyrnn.min_lstm_scan`), ``kernel (D, 3H)`` and
          ``bias (3H,)``, gates ``(f, i, h̃)``.

        The minimal cells' gates read the input alone: no ``recurrent_kernel``, so no
        ``recurrent_dropout``, ``recurrent_regularizer`` or ``recurrent_constraint``
        (``recurrent_initializer`` is unused), and ``activation`` (the candidate is
        linear) is unused; they run as linear recurrences (``method="auto"``: a parallel
        scan on accelerators).

    Examples
    --------
    >>> import numpy as np, keras, polyrnn.nn.keras
    >>> ref = keras.layers.GRU(4, reset_after=False)
    >>> ours = polyrnn.nn.keras.GRU(4, reset_after=False)
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype("float32")
    >>> ref.build(x.shape), ours.build(x.shape)
    (None, None)
    >>> ours.set_weights([w.value for w in ref.weights])  # ref.get_weights(), less a warning
    >>> bool(keras.ops.max(keras.ops.abs(ours(x) - ref(x))) < 1e-6)
    True
    """

    _kind = "gru"

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        reset_after: bool = True,
        use_cudnn: Any = "auto",
        *,
        cell: str = "gru",
        **kwargs: Any,
    ) -> None:
        super().__init__(units, activation, recurrent_activation, use_cudnn, cell=cell, **kwargs)
        if not isinstance(reset_after, bool):
            raise TypeError(f"GRU: reset_after must be True or False, got {reset_after!r}")
        choose_cell("GRU", "gru", cell, reset_after)
        self.reset_after = reset_after

    def _bias_shape(self) -> tuple[int, ...]:
        if self._cell.linear is not None:
            return (self._gates * self.units,)
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _params(self, xp: Any) -> GRUParams | LNGRUParams | MinGRUParams | MinLSTMParams:
        kernel, recurrent, bias = self._weights_of(xp)
        if self.cell == "min_gru":
            return MinGRUParams(kernel, bias)
        if self.cell == "min_lstm":
            return MinLSTMParams(kernel, bias)
        if self.reset_after:
            b_in, b_rec = bias[0], bias[1]
        else:
            b_in, b_rec = bias, xp.zeros_like(bias)
        n_h = self.units
        swapped = [_swap_first_two(xp, a, n_h) for a in (kernel, recurrent, b_in, b_rec)]
        if self.cell == "ln_gru":
            gains = (self.ln_gamma_kernel.value, self.ln_gamma_recurrent.value)
            return LNGRUParams(*swapped, *(_swap_first_two(xp, g, n_h) for g in gains))
        return GRUParams(*swapped)

    def _options(self) -> dict[str, Any]:
        if self._cell.linear is not None:
            return {"method": "auto"}
        return {"reset_after": self.reset_after} if self.cell == "gru" else {}

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reset_after": self.reset_after}


@keras.saving.register_keras_serializable(package="polyrnn")
class LSTM(_GatedBase):
    r"""LSTM layer, drop-in for ``keras.layers.LSTM``.

    Gates :math:`(i, f, c, o)` in the columns of ``kernel (D, 4H)`` and ``recurrent_kernel
    (H, 4H)``, ``bias (4H,)``, as Keras and as polyrnn (so the weights are used as they
    are): :math:`c' = f \odot c + i \odot \tanh(x K_c + h R_c + b_c)`,
    :math:`h' = o \odot \tanh(c')`; the call is :func:`polyrnn.lstm_scan`.  The state is
    ``[h, c]``: ``return_state`` returns ``(output, h, c)`` and ``initial_state`` is
    ``[h_0, c_0]``.

    Parameters
    ----------
    units, use_bias, kernel_initializer, recurrent_initializer, bias_initializer
        As ``keras.layers.LSTM``; also its regularizers and constraints.
    activation, recurrent_activation
        ``"tanh"`` and ``"sigmoid"``; others raise ``ValueError``.
    unit_forget_bias : bool
        As Keras: the forget gate's bias initialised to ones (with ``cell="ln_lstm"``,
        the forget gate's shift of the normalisations, where
        :func:`polyrnn.init_ln_lstm` has zeros).
    dropout, recurrent_dropout, seed, return_sequences, return_state, go_backwards,
    stateful, unroll
        As :class:`SimpleRNN`.
    use_cudnn
        Accepted for ``keras.layers.LSTM``'s configs; changes nothing.
    cell : {"lstm", "ln_lstm"}, keyword-only
        ``"ln_lstm"``: layer-normalised (:func:`polyrnn.ln_lstm_scan`), state ``[h, c]``;
        the same ``kernel``, ``recurrent_kernel`` and ``bias (4H,)`` (the shift of the
        gates' normalisations), plus the gains ``ln_gamma_kernel (4H,)``,
        ``ln_gamma_recurrent (4H,)``, ``ln_gamma_cell (H,)`` (ones) and the shift
        ``ln_beta_cell (H,)`` (zeros) of the cell state's normalisation.

    Examples
    --------
    >>> import numpy as np, polyrnn.nn.keras
    >>> layer = polyrnn.nn.keras.LSTM(4, return_state=True)
    >>> out, h, c = layer(np.zeros((2, 5, 3), dtype="float32"))
    >>> tuple(out.shape), tuple(c.shape), [tuple(w.shape) for w in layer.weights]
    ((2, 4), (2, 4), [(3, 16), (4, 16), (16,)])
    """

    _kind = "lstm"

    def __init__(
        self,
        units: int,
        activation: Any = "tanh",
        recurrent_activation: Any = "sigmoid",
        unit_forget_bias: bool = True,
        use_cudnn: Any = "auto",
        *,
        cell: str = "lstm",
        **kwargs: Any,
    ) -> None:
        super().__init__(units, activation, recurrent_activation, use_cudnn, cell=cell, **kwargs)
        if not isinstance(unit_forget_bias, bool):
            raise TypeError(
                f"LSTM: unit_forget_bias must be True or False, got {unit_forget_bias!r}"
            )
        self.unit_forget_bias = unit_forget_bias

    def _bias_initializer(self) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer
        init, n_h = self.bias_initializer, self.units

        def forget_ones(shape: Any, dtype: Any = None) -> Any:
            return ops.concatenate(
                [
                    init((n_h,), dtype=dtype),
                    keras.initializers.Ones()((n_h,), dtype=dtype),
                    init((2 * n_h,), dtype=dtype),
                ]
            )

        return forget_ones

    def _params(self, xp: Any) -> LSTMParams | LNLSTMParams:
        kernel, recurrent, bias = self._weights_of(xp)
        if self.cell == "ln_lstm":
            norms = (
                self.ln_gamma_kernel,
                self.ln_gamma_recurrent,
                self.ln_gamma_cell,
                self.ln_beta_cell,
            )
            return LNLSTMParams(
                kernel, recurrent, bias, xp.zeros_like(bias), *(w.value for w in norms)
            )
        return LSTMParams(kernel, recurrent, bias, xp.zeros_like(bias))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}
