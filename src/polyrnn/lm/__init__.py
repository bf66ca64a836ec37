"""Character-level language models, trained for real on any array library.

Written once against the Array API: the training step is differentiated by polyrnn's
hand-written backpropagation through time (compiled by :func:`jax.jit` on JAX, where it
is faster than :func:`jax.value_and_grad`), and on PyTorch by autograd through aten's
fused kernels (see :func:`~polyrnn.lm.value_and_grad` for the choice).

>>> text = "to be or not to be, that is the question. " * 30
>>> trainer = polyrnn.lm.Trainer(
...     text,
...     model=polyrnn.lm.ModelConfig(embed_size=8, hidden_size=32),
...     config=polyrnn.lm.TrainConfig(batch=4, seq_len=32, lr=1e-2),
...     backend="numpy",
... )
>>> report = trainer.run(steps=40, evals=1)
>>> report.val.perplexity < len(trainer.lm.vocab)  # better than a uniform guess
True
>>> len(polyrnn.lm.sample(trainer.lm, "to be", 20, temperature=0.5, seed=0))
20

Modules: :mod:`~polyrnn.lm.data` (vocabulary, split, batches), :mod:`~polyrnn.lm.model`
(the network, its loss and hand-written gradient, the cell table :data:`CELLS`),
:mod:`~polyrnn.lm.grad` (one gradient engine per library), :mod:`~polyrnn.lm.optim`
(Adam), :mod:`~polyrnn.lm.train`, :mod:`~polyrnn.lm.evaluation`, :mod:`~polyrnn.lm.sampling`,
:mod:`~polyrnn.lm.io` (``.npz`` files and training checkpoints),
:mod:`~polyrnn.lm.distributed_torch` (several processes under ``torchrun``) and
:mod:`~polyrnn.lm.backend`; :mod:`~polyrnn.lm.distributed_jax` (data-parallel training on
JAX) imports JAX, on first use of the attribute ``polyrnn.lm.distributed_jax``.
"""

import importlib
from typing import TYPE_CHECKING, Any

from .backend import BACKENDS, Backend, get_backend
from .data import StreamBatches, Vocab, read_text, split_text
from .distributed_torch import TorchGroup
from .errors import (
    BackendUnavailableError,
    DataError,
    DivergedError,
    LMError,
    ModelFileError,
    PeerLostError,
)
from .evaluation import Metrics, evaluate, evaluate_tokens
from .grad import default_engine, value_and_grad
from .io import load, resume_training, save, save_training
from .model import (
    CELLS,
    CellSpec,
    LanguageModel,
    LMParams,
    ModelConfig,
    dropout_masks,
    forward,
    init_params,
    loss,
    loss_and_grad,
    zero_state,
)
from .optim import Adam, AdamState
from .sampling import sample
from .train import Checkpoint, Progress, RunProgress, TrainConfig, Trainer, TrainReport

__all__ = [
    "BACKENDS",
    "CELLS",
    "Adam",
    "AdamState",
    "Backend",
    "BackendUnavailableError",
    "CellSpec",
    "Checkpoint",
    "DataError",
    "DivergedError",
    "LMError",
    "LMParams",
    "LanguageModel",
    "Metrics",
    "ModelConfig",
    "ModelFileError",
    "PeerLostError",
    "Progress",
    "RunProgress",
    "StreamBatches",
    "TorchGroup",
    "TrainConfig",
    "TrainReport",
    "Trainer",
    "Vocab",
    "default_engine",
    "dropout_masks",
    "evaluate",
    "evaluate_tokens",
    "forward",
    "get_backend",
    "init_params",
    "load",
    "loss",
    "loss_and_grad",
    "read_text",
    "resume_training",
    "sample",
    "save",
    "save_training",
    "split_text",
    "value_and_grad",
    "zero_state",
]

_SUBMODULES = ("distributed_jax",)
"""The modules that import a framework, loaded on first use as attributes of the package."""


def __getattr__(name: str) -> Any:
    """``polyrnn.lm.distributed_jax`` imports that module (and JAX) on first use."""
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from . import distributed_jax as distributed_jax
