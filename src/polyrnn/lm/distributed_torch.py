"""Data parallelism on PyTorch's own distributed runtime, :mod:`torch.distributed`.

Launched by ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``), every process joins one process
group (gloo; ``cpu:gloo,cuda:nccl`` where CUDA is available) through a
``torch.distributed.TCPStore`` at ``MASTER_ADDR:MASTER_PORT`` (torchrun's own store
when it hosts one), with a timeout on every collective.

- Training (:class:`~polyrnn.lm.Trainer` with ``group=``): the ``B`` streams of every
  batch are cut into ``WORLD_SIZE`` contiguous blocks of rows, one per rank
  (:meth:`~polyrnn.lm.TorchGroup.rows`); each rank computes the gradient ``g_r`` of its
  rows' mean loss, and the ranks sum ``g = sum_r (B_r / B) g_r``, the gradient of the
  whole batch, which the same Adam step applies to the same (replicated) parameters.
  :meth:`~polyrnn.lm.TorchGroup.data_parallel` chooses how, in one place: on PyTorch
  with autograd (its default engine), :class:`~torch.nn.parallel.DistributedDataParallel`
  (``DDPReducer``); for gradients polyrnn writes by hand (NumPy, and PyTorch with
  ``engine="by_hand"``), which no framework's gradient hooks see, one
  :func:`torch.distributed.all_reduce` of a flat buffer (``FlatAllReduce``).  Either
  way the replicas start from rank 0's parameters, and the dropout masks are the whole
  batch's (:func:`~polyrnn.lm.dropout_masks`), cut the same way.
- Evaluation (``distributed_torch.evaluate_tokens``): the ``S`` streams of
  :func:`polyrnn.lm.evaluate_tokens` are cut the same way; each rank sums the negative
  log-likelihood of its streams and counts its characters, and one all-reduce in float64
  of the two sums gives ``loss = sum(nll) / sum(count)``, the single process's figure up
  to the order of the additions (never a mean of the ranks' means).

A rank whose peer died or hangs stops with :class:`~polyrnn.lm.PeerLostError`, from
DDP's all-reduce as from the others.  JAX has its own runtime (``jax.distributed``); CuPy
and array-api-strict training is single-process.
"""

from __future__ import annotations

import datetime
import functools
import gc
import os
import re
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import _tree
from .._compat import Array
from . import evaluation, grad, model
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
        self._reducers: weakref.WeakSet[DDPReducer] = weakref.WeakSet()

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
        """Leave the group, first freeing the ``DistributedDataParallel`` wrappers made on it
        (their reducers then refuse to run): one that outlives its process group is
        destroyed at the interpreter's exit, where the process can abort (``terminate
        called without an active exception``: 4 of 24 two-process runs of ``polyrnn train
        --backend torch`` on CPU; none of 40 with this)."""
        dist = _dist()
        for reducer in list(self._reducers):
            reducer.ddp = None
        self._reducers.clear()
        gc.collect()  # DDP's own reference cycles: collected now, not at the exit
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

    def data_parallel(
        self,
        backend: Backend,
        cell: str,
        engine: str | None,
        params: model.LMParams,
        weight: float,
    ) -> tuple[GradientReducer, model.LMParams]:
        """How this rank's gradient ``g_r`` becomes the whole batch's, ``sum_r weight_r
        g_r``, and the parameters every rank starts from (rank 0's).  The one place where
        the way is chosen:

        - PyTorch with autograd (``engine="autodiff"``, its default): ``DDPReducer``,
          whose :class:`~torch.nn.parallel.DistributedDataParallel` broadcasts rank 0's
          parameters when it starts and all-reduces the gradients in ``backward()``;
        - NumPy (hand-written gradients, no autograd) and PyTorch with
          ``engine="by_hand"``: ``FlatAllReduce``, one all-reduce of a flat buffer per
          step, after one broadcast of the parameters.

        ``weight`` is this rank's share of the batch's rows, ``B_r / B``.
        """
        if backend.name not in BACKENDS:
            raise single_process_error(backend.name)
        engine = grad.default_engine(backend) if engine is None else engine
        if backend.name == "torch" and engine == "autodiff":
            ddp = DDPReducer(self, cell, params, weight)
            self._reducers.add(ddp)
            return ddp, ddp.replicas()
        flat = FlatAllReduce(self, backend, grad.value_and_grad(backend, cell, engine), weight)
        start = _tree.map_(
            lambda a: backend.asarray(self.broadcast(backend.to_numpy(a), "the first broadcast")),
            params,
        )
        return flat, start


class DDPReducer:
    """The gradient of the whole batch by :class:`~torch.nn.parallel.DistributedDataParallel`
    (PyTorch autograd): a ``value_and_grad`` of :mod:`polyrnn.lm.grad`.

    ``ddp`` wraps a private module whose parameters (:class:`~torch.nn.Parameter`) hold
    the model's parameter leaves and whose forward is polyrnn's loss.  Each call copies
    the given parameters into them, runs the forward and ``backward()`` of this rank's
    loss scaled by ``world * weight`` (DDP averages the gradients over the ranks, so the
    result is ``sum_r weight_r g_r``, also when the ranks hold different numbers of rows)
    and returns the parameters' ``.grad``, with the loss ``sum_r weight_r loss_r`` of one
    more all-reduce.
    """

    def __init__(self, group: TorchGroup, cell: str, params: model.LMParams, weight: float) -> None:
        from torch.nn.parallel import DistributedDataParallel

        leaves, self._rebuild = _tree.flatten(params)
        self.module = _loss_module()(leaves, self._rebuild, cell)
        """The loss as a module; its parameters are the model's leaves, in order."""
        self.ddp = group._collective(  # broadcasts rank 0's parameters
            "the start of DistributedDataParallel",
            lambda: DistributedDataParallel(self.module),
        )
        """The :class:`~torch.nn.parallel.DistributedDataParallel` around ``module``."""
        self._group, self._weight = group, weight
        self._scale = group.world * weight

    def replicas(self) -> model.LMParams:
        """Copies of the module's parameters: rank 0's on every rank."""
        return self._rebuild([p.detach().clone() for p in self.module.leaves])

    def __call__(
        self,
        params: model.LMParams,
        tokens: Array,
        targets: Array,
        state: model.State,
        masks: model.Masks | None = None,
    ) -> tuple[tuple[Array, model.State], model.LMParams]:
        import torch

        dist = _dist()
        if self.ddp is None:
            raise LMError("this gradient reducer's process group has been closed")
        leaves = self.module.leaves
        with torch.no_grad():
            for p, a in zip(leaves, _tree.flatten(params)[0], strict=True):
                p.copy_(a)
                p.grad = None
        # The forward exchanges nothing (no buffers): its errors are the model's own and
        # pass as they are; the backward's hooks and the loss's sum are the collectives.
        value, new_state = self.ddp(tokens, targets, state, masks)

        def reduce() -> Array:
            (value * self._scale).backward()  # DDP's hooks all-reduce the gradients
            loss = value.detach() * self._weight
            dist.all_reduce(loss, op=dist.ReduceOp.SUM)
            return loss

        loss = self._group._collective("the gradient all-reduce", reduce)
        new_state = _tree.map_(lambda a: a.detach(), new_state)
        return (loss, new_state), self._rebuild([p.grad for p in leaves])


@functools.cache
def _loss_module() -> type[Any]:
    """The class of ``DDPReducer.module`` (defined when PyTorch is first needed)."""
    import torch

    class LossModule(torch.nn.Module):
        """polyrnn's loss, whose parameters are the model's leaves."""

        def __init__(self, leaves: list[Any], rebuild: Callable[..., Any], cell: str) -> None:
            super().__init__()
            self.leaves = torch.nn.ParameterList(
                torch.nn.Parameter(a.detach().clone()) for a in leaves
            )
            self.rebuild, self.cell = rebuild, cell

        def forward(
            self, tokens: Any, targets: Any, state: Any, masks: Any
        ) -> tuple[Any, model.State]:
            params = self.rebuild(list(self.leaves))
            return model.loss(params, tokens, targets, state, cell=self.cell, masks=masks)

    return LossModule


class FlatAllReduce:
    """The gradient of the whole batch by one all-reduce of one flat buffer per step, for
    the gradients polyrnn writes by hand (NumPy; PyTorch with ``engine="by_hand"``): a
    ``value_and_grad`` of :mod:`polyrnn.lm.grad`.

    The loss and the gradients of ``value_and_grad`` are copied into one buffer in the
    backend's dtype (:func:`torch.cat`; for NumPy :func:`numpy.concatenate`, which
    :func:`torch.from_numpy` then shares without another copy), multiplied by ``weight``
    and summed over the ranks, giving ``sum_r weight_r (loss_r, g_r)``.
    """

    def __init__(
        self,
        group: TorchGroup,
        backend: Backend,
        value_and_grad: Callable[..., Any],
        weight: float,
    ) -> None:
        self._group, self._backend = group, backend
        self._value_and_grad, self._weight = value_and_grad, weight

    def __call__(
        self,
        params: model.LMParams,
        tokens: Array,
        targets: Array,
        state: model.State,
        masks: model.Masks | None = None,
    ) -> tuple[tuple[Array, model.State], model.LMParams]:
        import torch

        dist = _dist()
        (value, new_state), grads = self._value_and_grad(params, tokens, targets, state, masks)
        leaves, rebuild = _tree.flatten(grads)
        parts = [value, *leaves]
        torch_arrays = self._backend.name == "torch"
        if torch_arrays:
            flat = torch.cat([torch.reshape(p, (-1,)) for p in parts])
        else:
            flat = torch.from_numpy(np.concatenate([np.reshape(p, (-1,)) for p in parts]))
        flat *= self._weight
        self._group._collective(
            "the gradient all-reduce", lambda: dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        )
        out = flat if torch_arrays else flat.numpy()
        sizes = [int(np.prod(p.shape)) for p in parts]
        offsets = np.cumsum([0, *sizes])
        pieces = [
            out[int(a) : int(b)].reshape(tuple(p.shape))
            for a, b, p in zip(offsets[:-1], offsets[1:], parts, strict=True)
        ]
        return (pieces[0], new_state), rebuild(pieces[1:])


GradientReducer = DDPReducer | FlatAllReduce
"""What :meth:`~polyrnn.lm.TorchGroup.data_parallel` chooses."""


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
