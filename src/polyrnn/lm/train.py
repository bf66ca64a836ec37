"""Training: truncated backpropagation through time with Adam, on any backend.

One training step is written once::

    (loss, state), grads = value_and_grad(params, tokens, targets, state, masks)
    params, opt_state, grad_norm = adam.update(params, grads, opt_state, lr=lr)

where ``value_and_grad`` is JAX's, PyTorch autograd's or the hand-written one
(:mod:`polyrnn.lm.grad`), and on JAX the whole step is one :func:`jax.jit`.  With
``TrainConfig.dropout`` ``p > 0``, ``masks`` are the step's dropout multipliers
(:func:`polyrnn.lm.dropout_masks`): drawn on the host from the seed and the step number,
so every backend drops the same entries, and passed in as arguments of the compiled step;
validation, evaluation and sampling never drop.  The
learning rate warms up linearly over the first steps and then follows a cosine from
``lr`` down to ``final_lr * lr`` over the run, measured in steps or, for a run bounded
by time, in training seconds.

Every validation (:meth:`Trainer.validate`) that beats the lowest validation loss so far
keeps a host copy of the parameters, ``Trainer.best`` (a :class:`Checkpoint`), so the
model to keep is the best one seen, not the last one: training longer never makes it worse.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .. import _tree
from .._compat import Array, array_namespace
from . import _checks
from .backend import Backend, get_backend
from .data import StreamBatches, Vocab, split_text
from .distributed_torch import GradientReducer, TorchGroup
from .distributed_torch import evaluate_tokens as evaluate_across
from .errors import DivergedError, LMError
from .evaluation import Metrics, evaluate_tokens
from .grad import value_and_grad
from .model import (
    CELLS,
    LanguageModel,
    LMParams,
    Masks,
    ModelConfig,
    State,
    dropout_masks,
    init_params,
    zero_state,
)
from .optim import Adam, AdamState

if TYPE_CHECKING:
    from jax.sharding import Mesh

    from .distributed_jax import DataParallel

__all__ = ["Checkpoint", "Progress", "RunProgress", "TrainConfig", "TrainReport", "Trainer"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of training.

    Parameters
    ----------
    batch : int
        B, the number of parallel streams.
    seq_len : int
        T, the number of characters backpropagated through per step.
    lr : float
        Peak learning rate of Adam.
    warmup : int
        Steps of linear warm-up from ``lr / warmup`` to ``lr``.
    final_lr : float
        The learning rate at the end of the run, as a fraction of ``lr`` (cosine decay);
        1 keeps it constant.
    clip_norm : float or None
        Largest global gradient norm; ``None`` disables clipping.
    beta1, beta2, eps : float
        Of Adam.
    weight_decay : float
        λ >= 0, Adam's decoupled weight decay (:class:`~polyrnn.lm.Adam`, as
        :class:`torch.optim.AdamW`): every parameter shrinks by the factor ``1 - lr * λ``
        each step; 0, the default, is plain Adam.
    seed : int
        Of the initial parameters and of the dropout masks.
    val_fraction : float
        The share of the text, at its end, held out for validation.
    dropout : float
        p in ``[0, 1)``: during training steps only, each entry of the embedding's output
        and of every recurrent layer's output (the last one's before the readout) is
        zeroed with probability p and the others scaled by ``1 / (1 - p)`` (Zaremba et al.
        2014; see :func:`polyrnn.lm.dropout_masks`).  0, the default, drops nothing.
    recurrent_dropout : float
        p in ``[0, 1)``: during training steps only, each layer's ``h_{t-1}`` is multiplied,
        where it meets ``W_h``, by a mask drawn once per stream and chunk (zeros with
        probability p, ``1 / (1 - p)`` else; Gal & Ghahramani 2016, Keras'
        ``recurrent_dropout``).  For the cells with a recurrent weight (not minGRU and
        minLSTM); their fused kernels have no mask, so the generic scan runs.  0, the
        default, drops nothing.
    """

    batch: int = 32
    seq_len: int = 32
    lr: float = 5e-3
    warmup: int = 50
    final_lr: float = 0.1
    clip_norm: float | None = 1.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    seed: int = 0
    val_fraction: float = 0.1
    dropout: float = 0.0
    recurrent_dropout: float = 0.0

    def __post_init__(self) -> None:
        _checks.integer("batch", self.batch, 1)
        _checks.integer("seq_len", self.seq_len, 1)
        _checks.real("lr", self.lr, above=True)
        _checks.integer("warmup", self.warmup)
        if not 0.0 <= _checks.real("final_lr", self.final_lr) <= 1.0:
            raise ValueError(f"final_lr must be in [0, 1], got {self.final_lr}")
        self.optimizer()  # checks its own
        _checks.integer("seed", self.seed)
        if not 0.0 < _checks.real("val_fraction", self.val_fraction) < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("dropout", "recurrent_dropout"):
            value = getattr(self, name)
            if not 0.0 <= _checks.real(name, value, -math.inf) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")

    def optimizer(self) -> Adam:
        """The :class:`~polyrnn.lm.Adam` of these hyper-parameters."""
        return Adam(self.beta1, self.beta2, self.eps, self.clip_norm, self.weight_decay)

    def lr_at(self, step: int, progress: float) -> float:
        """The learning rate of step ``step`` (0-based) at ``progress`` in [0, 1] of the run."""
        warm = min(1.0, (step + 1) / self.warmup) if self.warmup else 1.0
        cos = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        return self.lr * warm * (self.final_lr + (1.0 - self.final_lr) * cos)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


class Progress(NamedTuple):
    """What :meth:`Trainer.run` reports after each step."""

    step: int
    """Steps done."""
    fraction: float
    """Of the run, in steps or in training time."""
    seconds: float
    """Training time so far (evaluations excluded)."""
    loss: float
    """Mean training loss of the recent steps, nats per character."""
    tokens_per_s: float
    """Training characters per second so far."""
    lr: float
    """Learning rate of the step."""


@dataclass
class TrainReport:
    """What a run did."""

    steps: int
    seconds: float
    """Training time, evaluations excluded."""
    tokens_per_s: float
    losses: list[float]
    """The training loss of every step, nats per character."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One record per evaluation: ``step``, ``seconds``, ``tokens``, ``train_loss`` (mean
    since the previous evaluation, ``None`` at step 0), ``val_loss``, ``val_perplexity``."""
    val: Metrics | None = None
    """Validation metrics at the end (``None`` when the run had no evaluation); the
    lowest are in :attr:`best` and ``Trainer.best``."""

    @property
    def best(self) -> dict[str, Any] | None:
        """The record of :attr:`history` with the lowest ``val_loss`` (the first of equal
        ones), ``None`` without evaluations.  Its parameters are ``Trainer.best``'s,
        unless an earlier call of :meth:`Trainer.run` had validated lower."""
        if not self.history:
            return None
        return min(self.history, key=lambda record: record["val_loss"])

    @property
    def train_loss(self) -> float:
        """Mean training loss of the last tenth of the steps (at least one)."""
        if not self.losses:
            return math.nan
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return sum(tail) / len(tail)


def _train_step(
    params: LMParams,
    opt_state: AdamState,
    tokens: Array,
    targets: Array,
    state: State,
    lr: Array,
    masks: Masks | None = None,
    *,
    grad_fn: Callable[..., Any],
    optimizer: Adam,
) -> tuple[LMParams, AdamState, State, Array, Array, Array]:
    """One step, with the dropout multipliers ``masks`` (``None``: none); also returns the
    loss, the gradient norm and whether every updated parameter is finite (a 0-d bool
    array)."""
    (value, state), grads = grad_fn(params, tokens, targets, state, masks)
    params, opt_state, norm = optimizer.update(params, grads, opt_state, lr=lr)
    leaves = _tree.flatten(params)[0]
    xp = array_namespace(*leaves)
    finite = xp.all(xp.isfinite(leaves[0]))
    for a in leaves[1:]:
        finite = finite & xp.all(xp.isfinite(a))
    return params, opt_state, state, value, norm, finite


@dataclass(frozen=True)
class Checkpoint:
    """The parameters of a :class:`Trainer` at one validation, with its metrics: what
    ``Trainer.best`` holds."""

    params: LMParams
    """Host copies of the parameters: NumPy arrays in the backend's dtype, owned by the
    checkpoint (training on does not change them)."""
    metrics: Metrics
    """Their validation metrics."""
    step: int
    """``Trainer.steps_done`` when they were validated."""
    seconds: float
    """``Trainer.seconds`` when they were validated."""

    @property
    def loss(self) -> float:
        """The validation loss, nats per character."""
        return self.metrics.loss


@dataclass
class RunProgress:
    """Where a call of :meth:`Trainer.run` stands: with the parameters, the optimiser
    state, the carried state and ``Trainer.steps_done`` (the batch position), what a
    checkpoint (:func:`~polyrnn.lm.save_training`) needs to continue the run exactly."""

    steps: int | None
    """The run's budget in steps, or ``None``."""
    seconds: float | None
    """Or in training seconds."""
    evals: int
    """Validations over the run."""
    losses: list[float] = field(default_factory=list)
    """The training loss of every step of the run so far."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """Its evaluation records so far (``TrainReport.history``)."""
    since_eval: list[float] = field(default_factory=list)
    """The losses since the last evaluation."""
    next_eval: int = 1
    """The number of the next evaluation, 1 to ``evals``."""
    elapsed: float = 0.0
    """The run's training time so far."""

    @property
    def fraction(self) -> float:
        """The share of the run done, in steps or training time."""
        if self.steps is not None:
            return len(self.losses) / self.steps
        assert self.seconds is not None
        return self.elapsed / self.seconds

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (:meth:`from_dict` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunProgress:
        """The progress :meth:`to_dict` wrote."""
        return cls(**d)


class Trainer:
    """Trains a character-level language model on a text.

    The text's characters make the vocabulary; its last ``val_fraction`` is held out
    for validation and the rest is read as :class:`~polyrnn.lm.StreamBatches`.

    Parameters
    ----------
    text : str
        The whole text.
    model : ModelConfig, optional
        The architecture; the defaults of :class:`~polyrnn.lm.ModelConfig` otherwise.
    config : TrainConfig, optional
        The training hyper-parameters.
    backend : str or Backend
        The array library (see :func:`~polyrnn.lm.get_backend`).
    dtype : {"float32", "float64"}
        Used when ``backend`` is a name.
    group : TorchGroup, optional
        Train data-parallel across the processes of this :mod:`torch.distributed` group
        (:mod:`~polyrnn.lm.distributed_torch`): this process steps the streams ``rows``
        (a slice) of every global batch of ``config.batch``, the gradients are
        all-reduced (by :class:`~torch.nn.parallel.DistributedDataParallel` on PyTorch
        with autograd, else by one all-reduce of a flat buffer: the attribute
        ``reducer``), and validation is shared out.  NumPy and PyTorch backends only.
    mesh : jax.sharding.Mesh, optional
        JAX only: train data-parallel over its devices, along its one axis ``"data"``
        (:mod:`polyrnn.lm.distributed_jax`, whose ``initialize`` makes one): every step's
        batch is split by rows across them (``config.batch`` must be a multiple of their
        number), the parameters and optimiser state are replicated, and the gradients are
        averaged inside the compiled step.  The results are those of one device, to
        rounding.  The attribute ``parallel`` then holds the module's ``DataParallel``,
        which places the step's arrays (:meth:`step_inputs`) and compiles the step; it is
        ``None`` without a mesh.
    engine : {"autodiff", "by_hand"}, optional
        How the gradient is taken (:func:`~polyrnn.lm.value_and_grad`): the faster of the
        backend's (:func:`~polyrnn.lm.default_engine`) when omitted.

    Attributes
    ----------
    lm : LanguageModel
        The model, holding the parameters of the last completed step (so an interrupted
        run can still be saved, and training goes on from them); with a ``mesh``,
        replicated over it.
    best : Checkpoint or None
        The parameters with the lowest validation loss :meth:`validate` has seen, on
        host, with that loss, step and time (the first of equal losses); ``None`` before
        the first validation.  :meth:`best_model` makes a model of them.  A step that
        diverges or a validation loss that is not finite never replaces them.
    steps_done : int
        Steps applied, over every call of :meth:`run` and :meth:`train_step`.
    seconds : float
        Their training time, evaluations excluded.
    progress : RunProgress or None
        Of the current or last call of :meth:`run` (``None`` before the first).
    reducer : callable or None
        With a ``group``, what sums the ranks' gradients: a
        ``polyrnn.lm.distributed_torch.DDPReducer`` or a
        ``polyrnn.lm.distributed_torch.FlatAllReduce``
        (:meth:`~polyrnn.lm.TorchGroup.data_parallel`); ``None`` without.
    text_digest : str
        SHA-256 of the text (UTF-8), to tell a checkpoint of another text apart.

    Raises
    ------
    DataError
        If the text is too short for the validation split or for one batch.
    BackendUnavailableError
        If the backend's library is missing.
    LMError
        For a ``mesh`` on a backend other than JAX, or a batch its devices do not divide.

    Examples
    --------
    >>> text = "the cat sat on the mat. " * 40
    >>> trainer = polyrnn.lm.Trainer(
    ...     text,
    ...     model=polyrnn.lm.ModelConfig(embed_size=8, hidden_size=16),
    ...     config=polyrnn.lm.TrainConfig(batch=4, seq_len=16, lr=1e-2),
    ... )
    >>> report = trainer.run(steps=30, evals=1)
    >>> bool(report.val.loss < np.log(len(trainer.lm.vocab)))  # better than uniform
    True
    >>> trainer.best.loss == min(r["val_loss"] for r in report.history)
    True
    >>> best = trainer.best_model()  # the parameters of that validation, to save or sample
    """

    def __init__(
        self,
        text: str,
        *,
        model: ModelConfig | None = None,
        config: TrainConfig | None = None,
        backend: str | Backend = "numpy",
        dtype: str = "float32",
        group: TorchGroup | None = None,
        mesh: Mesh | None = None,
        engine: str | None = None,
    ) -> None:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        for name, value, kind in (("model", model, ModelConfig), ("config", config, TrainConfig)):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")
        if not isinstance(backend, str | Backend):
            raise TypeError(f"backend must be a name or a Backend, got {backend!r}")
        b = get_backend(backend, dtype) if isinstance(backend, str) else backend
        self.config = config = config or TrainConfig()
        arch = model or ModelConfig()
        if config.recurrent_dropout and not CELLS[arch.cell].cell.recurrent_dropout:
            raise ValueError(
                f"recurrent_dropout needs a cell with a recurrent weight W_h; {arch.cell!r} "
                "has none (its gates read the input alone)"
            )
        train_text, val_text = split_text(text, config.val_fraction)
        vocab = Vocab.from_text(text)
        self.val_tokens = vocab.encode(val_text)
        self.batches = StreamBatches(
            vocab.encode(train_text), batch=config.batch, seq_len=config.seq_len
        )
        self.parallel: DataParallel | None = None
        if mesh is not None:
            if group is not None:
                raise LMError("give a mesh (JAX) or a group (torch.distributed), not both")
            if b.name != "jax":
                raise LMError(f"a mesh needs the backend 'jax', got {b.name!r}")
            from .distributed_jax import DataParallel

            self.parallel = DataParallel(mesh, b.dtype_name)
            self.parallel.check_batch(config.batch)
        params = init_params(arch, len(vocab), b, seed=config.seed)
        self.group = group
        self.rows = slice(0, config.batch)
        self.reducer: GradientReducer | None = None
        if group is None:
            grad_fn = value_and_grad(b, arch.cell, engine)
        else:
            if config.batch < group.world:
                raise ValueError(
                    f"batch must be at least the number of processes, {group.world}, "
                    f"got {config.batch}"
                )
            self.rows = group.rows(config.batch)
            local = self.rows.stop - self.rows.start
            self.reducer, params = group.data_parallel(
                b, arch.cell, engine, params, local / config.batch
            )
            grad_fn = self.reducer
        self.optimizer = config.optimizer()
        opt_state = self.optimizer.init(params)
        if self.parallel is not None:
            params, opt_state = self.parallel.replicate((params, opt_state))
        self.lm = LanguageModel(arch, vocab, params, b)
        self.opt_state = opt_state
        self.state = self._zero_state()
        self.steps_done = 0
        self.seconds = 0.0
        self.best: Checkpoint | None = None
        self._drawn: tuple[int, Masks] | None = None
        self.progress: RunProgress | None = None
        self.text_digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        step = functools.partial(_train_step, grad_fn=grad_fn, optimizer=self.optimizer)
        if self.parallel is None:
            self._step = b.jit(step)
        else:  # split by rows: tokens, targets, state and masks in; the state out
            inputs = (False, False, True, True, True, False, True)
            outputs = (False, False, True, False, False, False)
            self._step = self.parallel.jit(step, inputs, outputs)

    def train_step(self, lr: float) -> float:
        """One step of Adam at learning rate ``lr`` on the next batch.

        With ``config.dropout > 0`` the step drops out with the masks of
        :func:`~polyrnn.lm.dropout_masks` for ``(config.seed, steps_done)``, and the loss
        returned is that of the dropped-out model.

        Returns the batch's loss before the update, nats per character.  Raises
        :class:`~polyrnn.lm.DivergedError`, and keeps the parameters, optimiser state and
        carried state as they were, when the loss, the gradient or any updated parameter
        is not finite (NaN or infinite).
        """
        _checks.real("lr", lr, finite=False)  # inf and NaN: refused below, as diverged
        start = time.perf_counter()
        lm = self.lm
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            # NumPy's warnings of overflow would only precede the DivergedError below
            params, opt_state, state, value, norm, finite = self._step(*self.step_inputs(lr))
        self._host_masks(self.steps_done + 1)  # while an asynchronous backend (JAX) computes
        loss, grad_norm = float(value), float(norm)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            what = f"loss {loss:.4g}, gradient norm {grad_norm:.4g}"
        elif not bool(finite):
            what = f"the update (learning rate {lr:g}) made parameters non-finite"
        else:
            lm.params, self.opt_state, self.state = params, opt_state, state
            self.steps_done += 1
            self.seconds += time.perf_counter() - start
            return loss
        raise DivergedError(
            f"training diverged at step {self.steps_done + 1}: {what}; the parameters are "
            "those before that step (a lower learning rate or gradient-norm clip may help)"
        )

    def step_inputs(self, lr: float) -> tuple[Any, ...]:
        """The arguments of the next step's compiled function: ``(params, opt_state,
        tokens, targets, state, lr, masks)``, arrays of the backend.  With a ``mesh``,
        ``tokens``, ``targets`` (``(B, T)``), ``state`` and ``masks`` are split by rows
        across its devices (``NamedSharding(mesh, P("data"))``) and the others replicated.

        The state is the zero state at the start of an epoch, when the streams start over.
        """
        b, p = self.lm.backend, self.parallel
        put = b.asarray if p is None else p.shard
        k = self.steps_done % len(self.batches)
        state = self._zero_state() if k == 0 else self.state
        x, y = (a[self.rows] for a in self.batches[k])
        lr_host = np.asarray(lr, dtype=np.float64)
        lr_arr = b.asarray(lr_host) if p is None else p.replicate(lr_host)
        return self.lm.params, self.opt_state, put(x), put(y), state, lr_arr, self._masks(put)

    def _zero_state(self) -> State:
        """The zero state of this process's streams (``rows`` of the ``config.batch``),
        split by rows on a mesh."""
        state = zero_state(self.lm.config, self.lm.backend, self.rows.stop - self.rows.start)
        if self.parallel is None:
            return state
        return _tree.map_(self.parallel.shard, state)

    def _masks(self, put: Callable[[np.ndarray], Array]) -> Masks | None:
        """The dropout multipliers of the next step, placed by ``put``; ``None`` without
        dropout."""
        host = self._host_masks(self.steps_done)
        return None if host is None else _tree.map_(lambda m: put(m[self.rows]), host)

    def _host_masks(self, step: int) -> Masks | None:
        """:func:`dropout_masks` of ``step`` (``None`` without dropout), drawn once:
        :meth:`train_step` draws the next step's while the backend computes this one's."""
        c = self.config
        if not (c.dropout or c.recurrent_dropout):
            return None
        if self._drawn is None or self._drawn[0] != step:
            masks = dropout_masks(
                self.lm.config,
                c.dropout,
                c.batch,
                c.seq_len,
                seed=c.seed,
                step=step,
                dtype=self.lm.backend.dtype_name,
                recurrent=c.recurrent_dropout,
            )
            self._drawn = (step, masks)
        return self._drawn[1]

    def validate(self) -> Metrics:
        """:meth:`evaluate`, keeping the parameters in ``best`` when their loss is the
        lowest so far; raises :class:`~polyrnn.lm.DivergedError` when the validation loss
        is not finite (the parameters, all finite, and ``best`` are left as they are).

        Keeping them costs one copy of the parameters to host memory, a small fraction
        of the validation pass itself (measured on the documentation's Training page).
        """
        metrics = self.evaluate()
        if not math.isfinite(metrics.loss):
            raise DivergedError(
                f"training diverged: the validation loss after step {self.steps_done} is "
                f"{metrics.loss:.4g}; the parameters are those of that step (a lower learning "
                "rate or gradient-norm clip may help)"
            )
        if self.best is None or metrics.loss < self.best.loss:
            to_numpy = self.lm.backend.to_numpy
            params = _tree.map_(lambda a: np.array(to_numpy(a), copy=True), self.lm.params)
            self.best = Checkpoint(params, metrics, self.steps_done, self.seconds)
        return metrics

    def best_model(self) -> LanguageModel:
        """A model of the ``best`` parameters, on the trainer's backend, with a copy
        of ``lm``'s ``info``; a new one each call, sharing no array with ``lm``
        or ``best``.

        Raises
        ------
        ValueError
            Before the first validation (``best`` is ``None``).
        """
        if self.best is None:
            raise ValueError("no validation yet: best_model needs one (see Trainer.validate)")
        b = self.lm.backend
        params = _tree.map_(lambda a: b.asarray(a.copy()), self.best.params)  # unshared
        return LanguageModel(self.lm.config, self.lm.vocab, params, b, dict(self.lm.info))

    def evaluate(self) -> Metrics:
        """:class:`~polyrnn.lm.Metrics` on the held-out validation text (never dropped
        out; shared out among the processes of ``group``, or of a ``mesh`` over several
        processes, each process scoring its share on one of its devices)."""
        if self.group is not None:
            return evaluate_across(self.lm, self.val_tokens, self.group)
        lm = self.lm
        if self.parallel is not None:
            lm = dataclasses.replace(lm, params=self.parallel.local(lm.params))
            from . import distributed_jax

            if distributed_jax.processes(self.parallel.mesh) > 1:  # each scores its share
                return distributed_jax.evaluate_tokens(lm, self.val_tokens)
        return evaluate_tokens(lm, self.val_tokens)

    def full_state(self) -> tuple[tuple[np.ndarray, ...], ...]:
        """The carried recurrent state of all ``config.batch`` streams, on the host (with
        ``group``, or a ``mesh`` over several processes, gathered from every process: all
        must call it)."""
        to_numpy, n = self.lm.backend.to_numpy, self.config.batch
        if self.parallel is not None:
            to_numpy = self.parallel.gather
        if self.group is None:
            return tuple(tuple(to_numpy(a) for a in carry) for carry in self.state)
        g = self.group
        return tuple(
            tuple(g.gather_rows(to_numpy(a), n, "gathering the state") for a in carry)
            for carry in self.state
        )

    def run(
        self,
        *,
        steps: int | None = None,
        seconds: float | None = None,
        evals: int = 10,
        on_step: Callable[[Progress], None] | None = None,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
        resume: bool = False,
    ) -> TrainReport:
        """Train for ``steps`` steps or ``seconds`` of training time, evaluating as it goes.

        Each call runs its own learning-rate schedule (warm-up, then cosine over the call)
        from the current parameters and optimiser state; the batches continue where the
        previous call stopped.  With ``resume``, the call goes on with the run recorded in
        ``progress`` (as :func:`~polyrnn.lm.resume_training` restores it), exactly as if
        that run had not stopped.

        Parameters
        ----------
        steps : int, optional
            Number of steps; exactly one of ``steps`` and ``seconds`` must be given.
        seconds : float, optional
            Training time (evaluations excluded, the first step's compilation included).
        evals : int
            Validate (:meth:`validate`, which keeps the best parameters in ``best``)
            before the first step and ``evals`` times evenly over the run (the last at
            the end); 0 never evaluates.
        on_step, on_eval : callable, optional
            Called with a :class:`Progress` after every step, and with each history
            record after each evaluation (when ``progress`` holds that record, so a
            checkpoint saved then continues after it).
        resume : bool
            Continue ``progress``; ``steps``, ``seconds`` and ``evals`` must then be
            those of that run (or left out).

        Returns
        -------
        TrainReport
            Of the whole run, resumed parts included.

        Raises
        ------
        DivergedError
            From :meth:`train_step` (a loss, gradient or updated parameter that is not
            finite: that step is not applied) or :meth:`validate`; ``steps_done`` and the
            parameters, all finite, are those of the last good step.
        """
        if resume:
            p = self.progress
            if p is None:
                raise ValueError("resume needs a run to continue: progress is None")
            given = {"steps": steps, "seconds": seconds}
            for name, value in given.items():
                if value is not None and value != getattr(p, name):
                    raise ValueError(
                        f"{name}={value} differs from the {name}={getattr(p, name)} of the "
                        "run to resume"
                    )
        else:
            if (steps is None) == (seconds is None):
                raise ValueError("give exactly one of steps and seconds")
            if steps is not None:
                _checks.integer("steps", steps, 1)
            if seconds is not None:
                _checks.real("seconds", seconds, above=True)
            _checks.integer("evals", evals)
            p = self.progress = RunProgress(steps, seconds, evals)
        tokens_per_step = self.config.batch * self.config.seq_len
        seconds0 = self.seconds - p.elapsed  # the run's time: what train_step adds to it
        val: Metrics | None = None

        def record() -> None:
            nonlocal val
            val = self.validate()
            done = len(p.losses)
            entry = {
                "step": done,
                "seconds": p.elapsed,
                "tokens": done * tokens_per_step,
                "train_loss": sum(p.since_eval) / len(p.since_eval) if p.since_eval else None,
                "val_loss": val.loss,
                "val_perplexity": val.perplexity,
            }
            p.since_eval.clear()
            p.history.append(entry)
            if on_eval is not None:
                on_eval(entry)

        if p.evals and not resume:
            record()
        while p.fraction < 1.0:
            lr = self.config.lr_at(len(p.losses), p.fraction)
            value = self.train_step(lr)
            p.elapsed = self.seconds - seconds0
            if self.group is not None and p.seconds is not None:  # rank 0's clock decides
                clock = self.group.broadcast(np.array([p.elapsed]), "sharing the clock")
                p.elapsed = float(clock[0])
            p.losses.append(value)
            p.since_eval.append(value)
            done = p.fraction
            if on_step is not None:
                recent = p.losses[-20:]
                on_step(
                    Progress(
                        len(p.losses),
                        min(done, 1.0),
                        p.elapsed,
                        sum(recent) / len(recent),
                        len(p.losses) * tokens_per_step / p.elapsed,
                        lr,
                    )
                )
            if p.evals and (done >= p.next_eval / p.evals - 1e-12 or done >= 1.0):
                p.next_eval = math.floor(done * p.evals + 1e-9) + 1
                record()
        if p.evals and val is None:  # a finished run resumed: measure it again
            val = self.evaluate()
        return TrainReport(
            len(p.losses),
            p.elapsed,
            len(p.losses) * tokens_per_step / p.elapsed if p.elapsed else 0.0,
            list(p.losses),
            list(p.history),
            val,
        )
