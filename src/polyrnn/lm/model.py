r"""The character-level language model: embedding, recurrent layers, linear readout.

.. math::
    x_t = E[w_t], \qquad h^{(l)}_t = \mathrm{cell}_l(h^{(l)}_{t-1}, h^{(l-1)}_t), \qquad
    \log P(w_{t+1} \mid w_{\le t}) = \operatorname{log\_softmax}(h^{(L)}_t W + b)

with ``E (V, E)``, ``L`` recurrent layers of width ``H`` and the readout ``W (H, V)``,
``b (V,)``.  Everything is written once against the Array API.  The loss is
:func:`polyrnn.cross_entropy` in nats per character; :func:`loss` is what JAX
and PyTorch differentiate, :func:`loss_and_grad` is the same loss with its gradient by
hand (backpropagation through each layer's scan with
``polyrnn.vjp.cell_scan_vjp``) for the libraries that do not differentiate.

The recurrent cells are entries of :data:`CELLS`, each a cell record with its options;
a new cell is one more entry.

Dropout (Zaremba et al. 2014, "Recurrent Neural Network Regularization") multiplies every
non-recurrent connection by a mask: the embedding's output (the input of layer 1), the
output of every layer (the input of the next, and the last layer's the input of the
readout); the recurrence ``h_{t-1} -> h_t`` and the carried state are never dropped.
:func:`forward`, :func:`loss` and :func:`loss_and_grad` take the ``L + 1`` multipliers as
``masks``; :func:`dropout_masks` draws them on the host, the same numbers on every backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .. import _tree
from .._cell import Cell
from .._compat import Array, array_namespace
from ..cells import GRU, LN_GRU, LN_LSTM, LSTM, MIN_GRU, MIN_LSTM, RNN
from ..lnrnn import init_ln_gru, init_ln_lstm
from ..metrics import cross_entropy, log_softmax
from ..minrnn import init_min_gru, init_min_lstm
from ..params import init_gru, init_lstm, init_rnn
from ..scans import cell_scan
from ..vjp import cell_scan_vjp
from .backend import Backend
from .data import Vocab

__all__ = [
    "CELLS",
    "CellSpec",
    "LMParams",
    "LanguageModel",
    "ModelConfig",
    "State",
    "dropout_masks",
    "forward",
    "init_params",
    "loss",
    "loss_and_grad",
    "zero_state",
]

Carry = tuple[Array, ...]
"""The state of one layer: ``(h,)``, or ``(h, c)`` for the LSTM; each ``(B, H)``."""

State = tuple[Carry, ...]
"""The state of the whole model: one ``Carry`` per layer."""

Backward = Callable[[Array], tuple[Array, Any]]
"""``d_hs (B, T, H) -> (d_xs (B, T, D), d_params)`` of one layer, the final state's
cotangent being zero (truncated backpropagation through time)."""


@dataclass(frozen=True)
class CellSpec:
    """How the model uses one kind of recurrent layer: its cell record, run by polyrnn's
    generic scan and scan-VJP (``polyrnn.scans.cell_scan``,
    ``polyrnn.vjp.cell_scan_vjp``) with fixed options.

    Both methods take and return the layer state as a tuple (``Carry``), so the model code
    is the same for all cells.
    """

    init: Callable[..., Any]
    """``init(input_size, hidden_size, *, seed, xp, dtype, device) -> params``, as
    :func:`polyrnn.init_gru`."""
    cell: Cell
    """The record (``polyrnn.cells.GRU``, ...)."""
    options: tuple[tuple[str, Any], ...]
    """The record's options, as ``(name, value)`` pairs."""
    doc: str
    """One line for ``--help``."""

    @property
    def n_states(self) -> int:
        """Length of the carry: 1 (``h``) or 2 (``h, c``)."""
        return len(self.cell.states)

    def scan(
        self, xs: Array, p: Any, carry: Carry, recurrent_mask: Array | None = None
    ) -> tuple[Array, Carry]:
        """``(hs (B, T, H), carry)`` of ``xs (B, T, D)`` from ``carry``; ``recurrent_mask (B,
        H)`` multiplies ``h_{t-1}`` where it meets ``W_h`` (recurrent dropout)."""
        state = carry[0] if len(carry) == 1 else carry
        return cell_scan(
            self.cell, xs, p, state, recurrent_mask=recurrent_mask, **dict(self.options)
        )

    def scan_vjp(
        self, xs: Array, p: Any, carry: Carry, recurrent_mask: Array | None = None
    ) -> tuple[tuple[Array, Carry], Backward]:
        """:meth:`scan` and its ``Backward``."""
        state = carry[0] if len(carry) == 1 else carry
        outputs, back = cell_scan_vjp(
            self.cell, xs, p, state, recurrent_mask=recurrent_mask, **dict(self.options)
        )
        return outputs, lambda d_hs: back(d_hs, None)[:2]


CELLS: dict[str, CellSpec] = {
    "gru": CellSpec(
        init_gru, GRU, (("reset_after", True),),
        "GRU, reset gate after the recurrent product (torch)",
    ),
    "lstm": CellSpec(init_lstm, LSTM, (), "LSTM"),
    "rnn": CellSpec(init_rnn, RNN, (("activation", "tanh"),), "vanilla tanh RNN"),
    "min_gru": CellSpec(
        init_min_gru, MIN_GRU, (("method", "auto"),), "minGRU (Feng et al. 2024), a linear scan"
    ),
    "min_lstm": CellSpec(
        init_min_lstm, MIN_LSTM, (("method", "auto"),),
        "minLSTM (Feng et al. 2024), a linear scan",
    ),
    "ln_gru": CellSpec(init_ln_gru, LN_GRU, (), "layer-normalised GRU (Ba et al. 2016)"),
    "ln_lstm": CellSpec(init_ln_lstm, LN_LSTM, (), "layer-normalised LSTM (Ba et al. 2016)"),
}  # fmt: skip
"""The recurrent layers by name.

The GRU is the ``reset_after=True`` variant of :class:`torch.nn.GRU`, cuDNN, Keras 3 and
flax: its recurrent product ``h W_h`` is one GEMM per step (the other variant needs two,
one after the other), PyTorch runs it as one fused aten/cuDNN kernel, and a model trained
here ports to those libraries unchanged.
"""


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of a language model; its vocabulary size comes with the data.

    Parameters
    ----------
    embed_size : int
        E, the width of the character embedding.
    hidden_size : int
        H, the width of every recurrent layer.
    layers : int
        L, the number of stacked recurrent layers.
    cell : str
        A key of :data:`CELLS`.

    Raises
    ------
    ValueError
        For a size that is not a positive integer or an unknown cell.
    """

    embed_size: int = 64
    hidden_size: int = 256
    layers: int = 1
    cell: str = "gru"

    def __post_init__(self) -> None:
        for name in ("embed_size", "hidden_size", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (``ModelConfig(**d)`` inverts it)."""
        return asdict(self)


class LMParams(NamedTuple):
    """The weights of a language model (a pytree: a NamedTuple of arrays and cell params)."""

    embed: Array
    """Character embedding, ``(V, E)``."""
    layers: tuple[Any, ...]
    """The parameters of each recurrent layer, e.g. :class:`polyrnn.GRUParams`; the first
    has input size E, the others H."""
    w_out: Array
    """Readout weights, ``(H, V)``."""
    b_out: Array
    """Readout bias, ``(V,)``."""

    def size(self) -> int:
        """The number of scalar parameters."""
        return sum(math.prod(a.shape) for a in _tree.flatten(self)[0])


def init_params(
    config: ModelConfig, vocab_size: int, backend: Backend, *, seed: int = 0
) -> LMParams:
    """Random parameters, the same numbers on every backend for the same ``seed``.

    As PyTorch initialises the same layers: the embedding ``N(0, 1)``
    (:class:`torch.nn.Embedding`), each recurrent layer uniform in ``±1/sqrt(H)``
    (:class:`torch.nn.GRU`), the readout weights and bias uniform in ``±1/sqrt(H)``
    (:class:`torch.nn.Linear`).  The numbers are drawn on the host in float64 and then
    cast, from independent streams of ``numpy.random.SeedSequence(seed)``.

    Parameters
    ----------
    config : ModelConfig
    vocab_size : int
        V.
    backend : Backend
        The array library and dtype of the result.
    seed : int

    Returns
    -------
    LMParams

    Examples
    --------
    >>> cfg = polyrnn.lm.ModelConfig(embed_size=3, hidden_size=4, layers=2)
    >>> p = polyrnn.lm.init_params(cfg, 5, polyrnn.lm.get_backend("numpy"))
    >>> p.embed.shape, p.layers[1].w_x.shape, p.w_out.shape, p.embed.dtype
    ((5, 3), (4, 12), (4, 5), dtype('float32'))
    """
    spec = CELLS[config.cell]
    v, e, h = vocab_size, config.embed_size, config.hidden_size
    streams = np.random.SeedSequence(seed).spawn(config.layers + 2)
    embed = np.random.default_rng(streams[0]).normal(size=(v, e))
    bound = 1.0 / math.sqrt(h)
    head = np.random.default_rng(streams[1])
    w_out = head.uniform(-bound, bound, size=(h, v))
    b_out = head.uniform(-bound, bound, size=(v,))
    layers = tuple(
        spec.init(
            e if i == 0 else h,
            h,
            seed=int(stream.generate_state(1)[0]),
            xp=backend.xp,
            dtype=backend.dtype,
        )
        for i, stream in enumerate(streams[2:])
    )
    return LMParams(backend.asarray(embed), layers, backend.asarray(w_out), backend.asarray(b_out))


@dataclass
class LanguageModel:
    """A trained (or initialised) model with everything needed to use it.

    :class:`~polyrnn.lm.Trainer` makes one, :func:`~polyrnn.lm.load` reads one, and
    :func:`~polyrnn.lm.evaluate`, :func:`~polyrnn.lm.sample` and :func:`~polyrnn.lm.save`
    use one.
    """

    config: ModelConfig
    """The architecture."""
    vocab: Vocab
    """The characters; ``len(vocab)`` is V."""
    params: LMParams
    """The weights, arrays of ``backend``."""
    backend: Backend
    """The array library and dtype of ``params``."""
    info: dict[str, Any] = field(default_factory=dict)
    """Free-form, JSON-ready facts saved with the model (training hyper-parameters,
    final metrics)."""


def zero_state(config: ModelConfig, backend: Backend, batch: int) -> State:
    """The initial state of ``batch`` sequences: zeros ``(batch, H)``, per layer and state."""
    n = CELLS[config.cell].n_states

    def zeros() -> Array:
        return backend.xp.zeros((batch, config.hidden_size), dtype=backend.dtype)

    return tuple(tuple(zeros() for _ in range(n)) for _ in range(config.layers))


def _embed(params: LMParams, tokens: Array) -> Array:
    xp = array_namespace(params.embed)
    x = xp.take(params.embed, xp.reshape(tokens, (-1,)), axis=0)
    return xp.reshape(x, (*tokens.shape, params.embed.shape[1]))


class Masks(NamedTuple):
    """The dropout multipliers of one training step (:func:`dropout_masks`): each entry 0
    (dropped) or ``1 / (1 - p)`` (kept), in the parameters' dtype."""

    outputs: tuple[Array, ...] | None
    """``L + 1`` arrays: ``(B, T, E)`` for the embedding's output, then ``(B, T, H)`` for
    each layer's output; ``None``: no dropout there."""
    recurrent: tuple[Array, ...] | None = None
    """``L`` arrays ``(B, H)``: each layer's multiplier of ``h_{t-1}`` where it meets
    ``W_h``, the same at every step of the chunk (recurrent dropout, Gal & Ghahramani
    2016); ``None``: none."""


DROPOUT_STREAM = 0x64726F70
"""The first word of the ``spawn_key`` of :func:`dropout_masks`' seed sequence ("drop" in
ASCII): a stream apart from :func:`init_params`' ones (``spawn_key`` ``(0,)``, ``(1,)``, ...)
of the same seed."""


def dropout_masks(
    config: ModelConfig,
    rate: float,
    batch: int,
    seq_len: int,
    *,
    seed: int,
    step: int,
    dtype: str = "float64",
    recurrent: float = 0.0,
) -> Masks:
    r"""The dropout multipliers of training step ``step``, drawn on the host.

    ``rng = numpy.random.default_rng(numpy.random.SeedSequence(seed, spawn_key=(DROPOUT_STREAM,
    step)))``, then, where ``rate > 0``, in order, for the embedding's output ``(B, T, E)``
    and for the output of each of the ``L`` layers ``(B, T, H)``: ``keep = rng.random(shape)
    >= rate`` (as :func:`polyrnn.gru_layers` draws its ``seed=`` masks) and the multiplier
    ``keep / (1 - rate)`` (inverted dropout: the expected value of every input is unchanged,
    so validation and sampling use the weights as they are); then, where ``recurrent > 0``,
    for each layer ``rng.random((B, H)) >= recurrent``, scaled likewise: one recurrent
    mask per stream and chunk.

    They depend on ``(seed, step)`` only, so every backend trains with the same masks, and
    they are drawn outside any compiled function: the training step takes them as arguments
    (a draw inside :func:`jax.jit` would be a constant of the compiled step, and
    :mod:`jax.random`'s numbers are not NumPy's).

    Parameters
    ----------
    config : ModelConfig
        E, H and L.
    rate : float
        p in ``[0, 1)``, the probability that an entry of an output is dropped.
    batch, seq_len : int
        B and T of the step.
    seed, step : int
        Non-negative: the trainer's seed and the number of steps done before this one.
    dtype : {"float64", "float32"}
        Of the result: the parameters' (the draw is the same; the multiplier is
        ``1 / (1 - rate)`` rounded to it).  Made on the host, the masks move to the backend
        as they are, without a conversion there: on PyTorch's CPU a float64 mask costs a
        copy and a cast per step, a float32 one none.
    recurrent : float
        The probability in ``[0, 1)`` that an entry of a recurrent mask is dropped.

    Returns
    -------
    Masks
        Of NumPy arrays of 0 and ``1 / (1 - p)``: the ``masks`` of :func:`forward`, to
        move to the backend (``Backend.asarray``); a field is ``None`` where its rate is 0.

    Examples
    --------
    >>> cfg = polyrnn.lm.ModelConfig(embed_size=3, hidden_size=4, layers=2)
    >>> m = polyrnn.lm.dropout_masks(cfg, 0.5, 2, 5, seed=0, step=7, recurrent=0.2)
    >>> [a.shape for a in m.outputs], [a.shape for a in m.recurrent]
    ([(2, 5, 3), (2, 5, 4), (2, 5, 4)], [(2, 4), (2, 4)])
    >>> np.unique(np.concatenate([a.ravel() for a in m.outputs])).tolist()
    [0.0, 2.0]
    """
    for name, p in (("dropout", rate), ("recurrent dropout", recurrent)):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {p}")
    sequence = np.random.SeedSequence(seed, spawn_key=(DROPOUT_STREAM, step))
    rng = np.random.default_rng(sequence)

    def draw(shape: tuple[int, ...], p: float) -> np.ndarray:
        mask = (rng.random(shape) >= p).astype(dtype)
        mask *= np.asarray(1.0 / (1.0 - p), dtype=dtype)  # 0 or 1/(1-p) exactly; half the
        return mask  # time of numpy.where(keep, scale, 0)

    widths = (config.embed_size,) + (config.hidden_size,) * config.layers
    outputs = tuple(draw((batch, seq_len, w), rate) for w in widths) if rate else None
    hidden = (batch, config.hidden_size)
    rec = tuple(draw(hidden, recurrent) for _ in range(config.layers)) if recurrent else None
    return Masks(outputs, rec)


def _check_masks(masks: Masks, params: LMParams, tokens: Array) -> None:
    """Shapes only (static under :func:`jax.jit`): one mask per dropped connection."""
    n_layers = len(params.layers)
    b, t = tokens.shape
    n_h = params.w_out.shape[0]
    if masks.outputs is not None:
        if len(masks.outputs) != n_layers + 1:
            raise ValueError(
                f"masks.outputs must hold L + 1 = {n_layers + 1} arrays (the embedding's "
                f"output and each layer's), got {len(masks.outputs)}"
            )
        for i, m in enumerate(masks.outputs):
            width = params.embed.shape[1] if i == 0 else n_h
            if tuple(m.shape) != (b, t, width):
                raise ValueError(
                    f"masks.outputs[{i}] must have shape {(b, t, width)}, got {tuple(m.shape)}"
                )
    if masks.recurrent is not None:
        if len(masks.recurrent) != n_layers:
            raise ValueError(
                f"masks.recurrent must hold L = {n_layers} arrays (one per layer), got "
                f"{len(masks.recurrent)}"
            )
        for i, m in enumerate(masks.recurrent):
            if tuple(m.shape) != (b, n_h):
                raise ValueError(
                    f"masks.recurrent[{i}] must have shape {(b, n_h)}, got {tuple(m.shape)}"
                )


def _unpack(
    masks: Masks | None, params: LMParams, tokens: Array
) -> tuple[tuple[Array, ...] | None, tuple[Array, ...] | None]:
    """``(outputs, recurrent)`` of checked ``masks``; ``(None, None)`` without."""
    if masks is None:
        return None, None
    _check_masks(masks, params, tokens)
    return masks.outputs, masks.recurrent


def forward(
    params: LMParams, tokens: Array, state: State, *, cell: str, masks: Masks | None = None
) -> tuple[Array, State]:
    """Log-probabilities of the next character after each position.

    Parameters
    ----------
    params : LMParams
    tokens : integer array, shape ``(B, T)``
        Character ids in ``[0, V)``.
    state : State
        The state before the first position (:func:`zero_state` or a previous call's).
    cell : str
        The key of :data:`CELLS` the params were made for.
    masks : Masks, optional
        Dropout, during training only (:func:`dropout_masks`): multipliers of the
        embedding's output and of each layer's output (the last one's before the readout),
        and of each layer's ``h_{t-1}`` where it meets ``W_h``.  ``None`` (evaluation,
        sampling) drops nothing.

    Returns
    -------
    log_probs : array, shape ``(B, T, V)``
        ``log_probs[b, t, v] = log P(next = v | tokens[b, :t+1], state)``.
    state : State
        The state after the last position (never dropped out).
    """
    spec = CELLS[cell]
    xp = array_namespace(params.embed)
    out, rec = _unpack(masks, params, tokens)
    x = _embed(params, tokens)
    if out is not None:
        x = x * out[0]
    new_state = []
    for i, (p, carry) in enumerate(zip(params.layers, state, strict=True)):
        x, last = spec.scan(x, p, carry, None if rec is None else rec[i])
        if out is not None:
            x = x * out[i + 1]
        new_state.append(last)
    b, t, h = x.shape
    logits = xp.reshape(x, (b * t, h)) @ params.w_out + params.b_out
    return xp.reshape(log_softmax(logits), (b, t, -1)), tuple(new_state)


def loss(
    params: LMParams,
    tokens: Array,
    targets: Array,
    state: State,
    *,
    cell: str,
    masks: Masks | None = None,
) -> tuple[Array, State]:
    """Mean cross-entropy of ``targets`` in nats per character, and the final state.

    Parameters
    ----------
    params, tokens, state, cell, masks
        As :func:`forward`.
    targets : integer array, shape ``(B, T)``
        The character that follows each position.

    Returns
    -------
    loss : array, 0-d
        :func:`polyrnn.cross_entropy` of the model's log-probabilities.
    state : State
        As :func:`forward`.  This is the ``(value, aux)`` of ``jax.value_and_grad(...,
        has_aux=True)``.
    """
    log_probs, state = forward(params, tokens, state, cell=cell, masks=masks)
    return cross_entropy(log_probs, targets), state


def loss_and_grad(
    params: LMParams,
    tokens: Array,
    targets: Array,
    state: State,
    *,
    cell: str,
    masks: Masks | None = None,
) -> tuple[tuple[Array, State], LMParams]:
    r""":func:`loss` and its gradient with respect to ``params``, by hand.

    Backpropagation through the whole model, with only Array API operations: the
    cross-entropy of log-softmax gives ``d logits = (softmax - onehot(targets)) / N``
    (``N = B T``); the readout gradients are a matrix product and a sum; each recurrent
    layer's is its cell's hand-written VJP (:mod:`polyrnn.vjp`, :mod:`polyrnn.minrnn`) with a
    zero cotangent of its final state (the state passed to the next chunk is cut from the graph, i.e.
    truncated backpropagation through time); the embedding gradient is the scatter-add
    of the input cotangents into their characters' rows, written as ``onehot(tokens)^T
    d_x``.  With dropout ``masks``, the cotangent of each masked activation is multiplied
    by the same mask on its way back (``d x = m * d(m x)``); the recurrent masks are the
    scan-VJPs' own (``recurrent_mask``).

    Parameters
    ----------
    params, tokens, targets, state, cell, masks
        As :func:`loss`.

    Returns
    -------
    (loss, state), grads
        What ``jax.value_and_grad(loss, has_aux=True)`` returns; ``grads`` is an
        :class:`LMParams` of the shapes of ``params``.
    """
    spec = CELLS[cell]
    xp = array_namespace(params.embed)
    dtype = params.embed.dtype
    n_vocab = params.w_out.shape[1]
    b, t = tokens.shape
    n = b * t
    out, rec = _unpack(masks, params, tokens)
    x = _embed(params, tokens)
    if out is not None:
        x = x * out[0]
    backs = []
    new_state = []
    for i, (p, carry) in enumerate(zip(params.layers, state, strict=True)):
        (x, last), back = spec.scan_vjp(x, p, carry, None if rec is None else rec[i])
        if out is not None:
            x = x * out[i + 1]
        backs.append(back)
        new_state.append(last)
    h = xp.reshape(x, (n, x.shape[-1]))
    log_probs = log_softmax(h @ params.w_out + params.b_out)
    flat_targets = xp.reshape(targets, (n,))
    value = cross_entropy(log_probs, flat_targets)

    classes = xp.arange(n_vocab, dtype=flat_targets.dtype)
    onehot_targets = xp.astype(flat_targets[:, None] == classes, dtype)
    d_logits = (xp.exp(log_probs) - onehot_targets) / n
    d_w_out = h.T @ d_logits
    d_b_out = xp.sum(d_logits, axis=0)
    d_x = xp.reshape(d_logits @ params.w_out.T, x.shape)
    d_layers = []
    for i in reversed(range(len(backs))):
        if out is not None:
            d_x = d_x * out[i + 1]
        d_x, d_p = backs[i](d_x)
        d_layers.append(d_p)
    if out is not None:
        d_x = d_x * out[0]
    flat_tokens = xp.reshape(tokens, (n,))
    onehot_tokens = xp.astype(flat_tokens[:, None] == classes, dtype)
    d_embed = onehot_tokens.T @ xp.reshape(d_x, (n, d_x.shape[-1]))
    grads = LMParams(d_embed, tuple(reversed(d_layers)), d_w_out, d_b_out)
    return (value, tuple(new_state)), grads
