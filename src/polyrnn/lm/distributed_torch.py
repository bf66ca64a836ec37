"""Data parallelism on PyTorch's own distributed runtime, :mod:`torch.distributed`.

Launched by ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``), every process joins one process
group (gloo; ``cpu:gloo,cuda:nccl`` where CUDA is available) through a
``torch.distributed.TCPStore`` at ``MASTER_ADDR:MASTER_PORT`` (torchrun's own store
when it hosts one), with a timeout on every collective.

- Training (:class:`~polyrnn.lm.Trainer` with ``group=``): the ``B`` streams of every
  batch are cut into ``WORLD_SIZE`` contiguous blocks of rows, one per rank
  (:meth:`~polyrnn.lm.TorchGroup.rows`); each rank computes the gradient of its rows' mean loss, and
  one :func:`torch.distributed.all_reduce` of the gradients weighted by the rows' share,
  ``g = sum_r (B_r / B) g_r``, gives every rank the gradient of the whole batch, which
  the same Adam step applies to the same (replicated) parameters.  The dropout masks are
  the whole batch's (:func:`~polyrnn.lm.dropout_masks`), cut the same way.
- Evaluation (``distributed_torch.evaluate_tokens``): the ``S`` streams of
  :func:`polyrnn.lm.evaluate_tokens` are cut the same way; each rank sums the negative
  log-likelihood of its streams and counts its characters, and one all-reduce in float64
  of the two sums gives ``loss = sum(nll) / sum(count)``, the single process's figure up
  to the order of the additions (never a mean of the ranks' means).

The gradient engine stays the backend's own (PyTorch autograd, or the hand-written one of
NumPy, whose gradient arrays the all-reduce reads and writes in place through
:func:`torch.from_numpy`).  JAX has its own runtime (``jax.distributed``); CuPy and
array-api-strict training is single-process.
"""

from __future__ import annotations

import datetime
import os
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _tree
from .._compat import Array
from . import evaluation, model
from .backend import Backend
from .errors import BackendUnavailableError, LMError, PeerLostError, lost_peers

__all__ = ["ENV", "TIMEOUT", "TorchGroup", "evaluate_tokens", "launched"]

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""The environment variables by which ``torchrun`` tells a process its place."""

TIMEOUT = 30.0
"""Seconds a collective (or the rendezvous) waits for the other processes before failing."""

BACKENDS = ("numpy", "torch")
"""The backends whose training runs under :mod:`torch.distributed`."""


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or a launcher like it) as one of
    several: ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` are set and ``WORLD_SIZE > 1``."""
    return all(k in os.environ for k in ENV) and int(os.environ["WORLD_SIZE"]) > 1


def _dist() -> Any:
    try:
        import torch.distributed as dist
    except ImportError:
        raise BackendUnavailableError(
            "running under torchrun needs PyTorch: pip install 'polyrnn[torch]'"
        ) from None
    if not dist.is_available():
        raise BackendUnavailableError("this PyTorch build has no torch.distributed")
    return dist


class TorchGroup:
    """This process's place in a :mod:`torch.distributed` process group, and the
    collectives polyrnn needs.  Build it with :meth:`from_env`.

    Every collective raises :class:`PeerLostError` when it fails (a process died: gloo
    notices the closed connection at once; a process hangs: after ``timeout`` seconds),
    naming the ranks that did not answer.
    """

    def __init__(self, rank: int, world: int, store: Any, timeout: float) -> None:
        self.rank = rank
        """This process's rank, 0 to ``world - 1``."""
        self.world = world
        """The number of processes."""
        self.timeout = timeout
        """Seconds a collective waits."""
        self.reporting = False
        """Whether :meth:`lost` has been called: the process is on its way out."""
        self._store = store

    @classmethod
    def from_env(cls, timeout: float = TIMEOUT) -> TorchGroup:
        """Join the group ``torchrun`` set up (the variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
        ``MASTER_ADDR``/``MASTER_PORT``), with ``timeout`` seconds for the rendezvous and
        for every collective.

        Raises
        ------
        BackendUnavailableError
            Without PyTorch.
        PeerLostError
            If the other processes do not join within ``timeout``.
        """
        dist = _dist()
        import torch

        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        host = os.environ.get("MASTER_ADDR", "127.0.0.1")
        port = int(os.environ.get("MASTER_PORT", "29500"))
        wait = datetime.timedelta(seconds=timeout)
        agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
        try:  # torchrun's agent hosts the store; else rank 0 does, as env:// would
            store = dist.TCPStore(
                host, port, world, is_master=rank == 0 and not agent, timeout=wait
            )
            store = dist.PrefixStore(
                f"polyrnn/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store
            )
            backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=wait)
        except (RuntimeError, ValueError) as e:
            raise PeerLostError(
                f"rank {rank} of {world} could not join the process group at {host}:{port} "
                f"within {timeout:g} s ({_first_line(e)})"
            ) from None
        return cls(rank, world, store, timeout)

    def close(self) -> None:
        """Leave the group."""
        dist = _dist()
        if dist.is_initialized():
            dist.destroy_process_group()

    def rows(self, n: int) -> slice:
        """This rank's block of ``n`` rows: the ``rank``-th of ``world`` contiguous
        blocks, as :func:`numpy.array_split` cuts them (the first ``n % world`` one row
        longer)."""
        q, r = divmod(n, self.world)
        start = self.rank * q + min(self.rank, r)
        return slice(start, start + q + (self.rank < r))

    # ------------------------------------------------------------------ collectives

    def _collective(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except RuntimeError as e:  # torch.distributed.DistError is one
            raise PeerLostError(self.lost(f"during {what} ({_first_line(e)})")) from None

    def lost(self, how: str) -> str:
        """One line saying that this rank stopped ``how`` and which ranks are gone, found
        by each survivor registering in the store and waiting briefly for the others."""
        self.reporting = True
        host = "the process hosting the rendezvous store (rank 0 or torchrun's agent)"
        return lost_peers("rank", self.rank, self.world, self.missing_peers(), host, how)

    def missing_peers(self, wait: float = 3.0) -> list[int] | None:
        """The ranks that do not register as alive in the store within ``wait`` seconds
        (each survivor of a failed collective registers), ``None`` if the store itself is
        gone."""
        try:
            self._store.set(f"alive/{self.rank}", "1")
            deadline = time.monotonic() + wait
            while True:
                missing = [r for r in range(self.world) if not self._store.check([f"alive/{r}"])]
                if not missing or time.monotonic() > deadline:
                    return missing
                time.sleep(0.1)
        except PeerLostError:
            raise
        except RuntimeError:  # the store's own errors
            return None

    def all_sum(self, a: np.ndarray, what: str) -> np.ndarray:
        """The sum over the ranks of the host array ``a`` (float32 or float64)."""
        import torch

        dist = _dist()
        t = torch.from_numpy(np.ascontiguousarray(a).copy())
        self._collective(what, lambda: dist.all_reduce(t, op=dist.ReduceOp.SUM))
        return t.numpy()

    def broadcast(self, a: np.ndarray, what: str) -> np.ndarray:
        """Rank 0's host array ``a`` (the same shape and dtype on every rank)."""
        import torch

        dist = _dist()
        t = torch.from_numpy(np.ascontiguousarray(a).copy())
        self._collective(what, lambda: dist.broadcast(t, src=0))
        return t.numpy()

    def gather_rows(self, a: np.ndarray, n: int, what: str) -> np.ndarray:
        """The ``(n, ...)`` array whose rows :meth:`rows` are each rank's ``a``."""
        import torch

        dist = _dist()
        q = -(-n // self.world)
        padded = np.zeros((q, *a.shape[1:]), dtype=a.dtype)
        padded[: a.shape[0]] = a
        t = torch.from_numpy(padded)
        parts = [torch.empty_like(t) for _ in range(self.world)]
        self._collective(what, lambda: dist.all_gather(parts, t))
        size, rem = divmod(n, self.world)
        blocks = [part.numpy()[: size + (r < rem)] for r, part in enumerate(parts)]
        return np.concatenate(blocks, axis=0)

    def reduce_gradients(
        self, value_and_grad: Callable[..., Any], backend: Backend, weight: float
    ) -> Callable[..., Any]:
        """``value_and_grad`` (of :mod:`polyrnn.lm.grad`) whose loss and gradients are
        ``sum_r weight_r * (loss_r, grads_r)`` over the ranks: one all-reduce of one flat
        buffer per step, in the backend's dtype (PyTorch tensors as they are, NumPy
        arrays through :func:`torch.from_numpy`)."""
        if backend.name not in BACKENDS:
            raise single_process_error(backend.name)
        dist = _dist()
        import torch

        def reduced(
            params: model.LMParams,
            tokens: Array,
            targets: Array,
            state: model.State,
            masks: model.Masks | None = None,
        ) -> tuple[tuple[Array, model.State], model.LMParams]:
            (value, new_state), grads = value_and_grad(params, tokens, targets, state, masks)
            leaves, rebuild = _tree.flatten(grads)
            parts = [value, *leaves]
            if backend.name == "torch":
                flat = torch.cat([torch.reshape(p, (-1,)) for p in parts])
            else:
                flat = torch.from_numpy(np.concatenate([np.reshape(p, (-1,)) for p in parts]))
            flat *= weight
            self._collective(
                "the gradient all-reduce", lambda: dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            )
            out = flat if backend.name == "torch" else flat.numpy()
            sizes = [int(np.prod(p.shape)) for p in parts]
            offsets = np.cumsum([0, *sizes])
            pieces = [
                out[int(a) : int(b)].reshape(tuple(p.shape))
                for a, b, p in zip(offsets[:-1], offsets[1:], parts, strict=True)
            ]
            return (pieces[0], new_state), rebuild(pieces[1:])

        return reduced


def single_process_error(backend: str) -> LMError:
    """The error for training on ``backend`` under ``torchrun``."""
    return LMError(
        f"--backend {backend} trains in one process only; under torchrun use --backend "
        f"torch or numpy (their gradients are all-reduced by torch.distributed), and for "
        f"JAX its own runtime (jax.distributed)"
    )


def evaluate_tokens(
    lm: model.LanguageModel,
    tokens: np.ndarray,
    group: TorchGroup,
    *,
    streams: int = 64,
    seq_len: int = 256,
) -> evaluation.Metrics:
    """:func:`polyrnn.lm.evaluate_tokens` across the processes of ``group``: each scores
    its block of the streams (:meth:`TorchGroup.rows`), and the float64 sums of the
    negative log-likelihoods and of the characters scored are all-reduced, so every rank
    gets ``loss = sum(nll) / sum(count)``."""
    nll, count = evaluation.nll_sum(
        lm, tokens, streams=streams, seq_len=seq_len, part=(group.rank, group.world)
    )
    total = group.all_sum(np.array([nll, count], dtype=np.float64), "the evaluation all-reduce")
    return evaluation.metrics(float(total[0]), round(float(total[1])))


def _first_line(error: BaseException) -> str:
    """The first sentence of ``error``'s message, without gloo's source location."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = re.sub(r"^\[[^\]]*\]\s*", "", lines[0]) if lines else ""
    return first.split(". ")[0].rstrip(".") or type(error).__name__
