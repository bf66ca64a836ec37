"""Data-parallel training on JAX: one mesh axis ``"data"``, the batch sharded, the rest replicated.

A :class:`jax.sharding.Mesh` of ``N`` devices with one axis, ``"data"``, splits the
``B`` streams of every step into ``N`` shards of ``B / N`` rows
(``NamedSharding(mesh, P("data"))``: the tokens, the targets, the carried state and the
dropout masks), while the parameters, the optimiser state and the learning rate are
replicated (``NamedSharding(mesh, P())``).  The whole training step stays one
:func:`jax.jit`: XLA partitions it, each device runs the forward and backward passes of
its rows, and the mean over the batch of the loss and of the gradients becomes an
all-reduce inside the compiled step.  Nothing comes back to the host but the loss, the
gradient norm and the finiteness flag, and no device ever holds the whole batch.

The devices may belong to one process (several GPUs, or ``N`` simulated CPU devices) or
to several processes, on one machine or many, joined by :func:`jax.distributed.initialize`
(one device per process on CPU, whose collectives go through gloo).  Every process reads
the same text and draws the same batches; each copies only the rows of its own devices
to them (:func:`jax.make_array_from_callback`).

``initialize`` sets up the devices (it must run before JAX first computes) and returns
the mesh that :class:`polyrnn.lm.Trainer` takes as ``mesh``; ``DataParallel`` places a
step's arrays on it and compiles the step.  ``evaluate_tokens`` shares an evaluation's
streams among the processes and combines their float64 sums exactly (``polyrnn eval``,
and the validation of a run over several processes).

Faults: the processes join with every timeout of :func:`jax.distributed.initialize`
set to ``timeout`` (the join, the heartbeats by which the coordination service, on
process 0, declares a silent process dead, and the shutdown).  A process that dies
mid-step breaks the gloo connections, so the survivors' step raises at once;
``lost`` names the processes gone (each survivor registers in the coordination
service's key-value store and waits briefly for the others) and ``leave`` ends the
process without the shutdown barrier, which would wait for the dead.  A survivor that
is not in a collective when a peer dies is ended by JAX itself after ``timeout``
seconds: the coordination service reports the missed heartbeats to every process, and
the client, which :func:`jax.distributed.initialize` gives no callback, aborts it
(status 134, a log line ``Terminating process because the JAX distributed service
detected fatal errors``).  ``polyrnn train --devices N`` (and
``--num-processes``) drives them; see the documentation's page on distributed training.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from ..backends._registry import LIBRARIES
from . import _checks, evaluation, model
from .distributed_torch import TIMEOUT, _first_line
from .errors import BackendUnavailableError, LMError, PeerLostError, lost_peers

try:
    import jax
except ImportError as _error:  # pragma: no cover - needs an install without jax
    raise BackendUnavailableError(
        f"polyrnn.lm.distributed_jax needs JAX, which is not installed ({_error}); install "
        f"it with: pip install {LIBRARIES['jax'].install}"
    ) from _error

from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "AXIS",
    "DataParallel",
    "data_mesh",
    "evaluate_tokens",
    "initialize",
    "leave",
    "lost",
    "peer_faults",
    "processes",
]

AXIS = "data"
"""The name of the mesh axis the batch is split along."""

_FORCE = "--xla_force_host_platform_device_count"
"""The XLA flag that also sets the number of CPU devices."""

T = TypeVar("T")


def _backends_started() -> bool:
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def initialize(
    devices: int | None = None,
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout: float = TIMEOUT,
) -> Mesh:
    """Set up JAX's devices (and processes) for data parallelism; the mesh of ``data_mesh``.

    Call it before JAX first computes (before ``polyrnn.lm.get_backend("jax")``).

    Parameters
    ----------
    devices : int, optional
        N, the devices of the mesh.  With one process, on CPU, JAX is asked for N
        devices (``jax_num_cpu_devices``; without effect on GPUs) unless ``XLA_FLAGS``
        already sets ``--xla_force_host_platform_device_count``.  With several processes
        it must equal the number of devices of all of them (the default there).
    coordinator_address, num_processes, process_id
        Of :func:`jax.distributed.initialize`, which runs when ``num_processes`` is given:
        ``host:port`` of process 0 (``JAX_COORDINATOR_ADDRESS`` when not given), the
        number of processes and this one's rank in ``[0, num_processes)``.
    timeout : float
        With several processes: seconds to wait for every process to join, and after
        which the coordination service declares a process that stopped sending
        heartbeats dead (ending the others); rounded up to whole seconds.

    Returns
    -------
    jax.sharding.Mesh
        One axis, ``"data"``.

    Raises
    ------
    TypeError, ValueError
        For an argument that is not a count.
    LMError
        Without a process id or coordinator address for several processes, or when JAX
        has already started with fewer devices than asked.
    """
    if devices is not None:
        _checks.integer("devices", devices, 1)
    _checks.real("timeout", timeout, above=True)
    if num_processes is None and (process_id is not None or coordinator_address is not None):
        raise LMError("process_id and coordinator_address need num_processes")
    if num_processes is not None:
        _checks.integer("num_processes", num_processes, 1)
        if process_id is None or not 0 <= _checks.integer("process_id", process_id) < num_processes:
            raise LMError(
                f"process_id must be in [0, {num_processes}) with num_processes "
                f"{num_processes}, got {process_id}"
            )
        address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
        if not address:
            raise LMError(
                "several processes need the coordinator's address (host:port of process 0): "
                "give coordinator_address (--coordinator-address) or set "
                "JAX_COORDINATOR_ADDRESS"
            )
        if not jax.distributed.is_initialized():
            if _backends_started():
                raise LMError(
                    "jax.distributed.initialize must run before JAX first computes, and JAX "
                    "has already started in this process"
                )
            seconds = math.ceil(timeout)
            jax.distributed.initialize(
                address,
                num_processes,
                process_id,
                initialization_timeout=seconds,
                heartbeat_timeout_seconds=seconds,
                shutdown_timeout_seconds=seconds,
            )
    elif (
        devices is not None
        and devices > 1
        and _FORCE not in os.environ.get("XLA_FLAGS", "")
        and not _backends_started()
    ):
        try:
            jax.config.update("jax_num_cpu_devices", devices)  # type: ignore[no-untyped-call]
        except AttributeError:  # pragma: no cover - an older JAX without the option
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FORCE}={devices}"
    return data_mesh(devices)


def processes(mesh: Mesh) -> int:
    """The number of processes whose devices ``mesh`` spans."""
    return len({d.process_index for d in mesh.devices.flat})


def data_mesh(devices: int | None = None) -> Mesh:
    """The mesh of the first ``devices`` of :func:`jax.devices` (all by default), axis ``"data"``.

    With several processes the mesh must hold every device of every process.

    Raises
    ------
    LMError
        When there are fewer devices, naming how to get more.
    """
    available = jax.devices()
    n = len(available) if devices is None else devices
    if jax.process_count() > 1 and n != len(available):
        raise LMError(
            f"with {jax.process_count()} processes the mesh takes all their "
            f"{len(available)} devices, got devices={n}"
        )
    if n > len(available):
        platform = available[0].platform
        how = (
            f"set XLA_FLAGS={_FORCE}={n} (or jax.config.update('jax_num_cpu_devices', {n})) "
            "before JAX first computes"
            if platform == "cpu"
            else "use a machine with more, or launch several processes"
        )
        raise LMError(f"asked for {n} devices, but JAX has {len(available)} ({platform}): {how}")
    return Mesh(np.array(available[:n]), (AXIS,))


class DataParallel:
    """Places the arrays of a training step on ``mesh`` and compiles the step for it.

    Parameters
    ----------
    mesh : jax.sharding.Mesh
        One axis, ``"data"``.
    dtype : str
        ``"float32"`` or ``"float64"``: that of the floating arrays placed.
    """

    def __init__(self, mesh: Mesh, dtype: str) -> None:
        if not isinstance(mesh, Mesh) or mesh.axis_names != (AXIS,):
            raise LMError(f"mesh must be a jax.sharding.Mesh with one axis {AXIS!r}, got {mesh!r}")
        self.mesh = mesh
        self.batch = NamedSharding(mesh, P(AXIS))  # type: ignore[no-untyped-call]
        """Rows (the batch axis, first) split across the devices."""
        self.replicated = NamedSharding(mesh, P())  # type: ignore[no-untyped-call]
        """A whole copy on every device."""
        self._float = np.dtype(dtype)
        self._int = np.dtype(jax.dtypes.canonicalize_dtype(np.int64))

    @property
    def size(self) -> int:
        """N, the devices of the mesh."""
        return int(self.mesh.size)

    def check_batch(self, batch: int) -> None:
        """Raise :class:`~polyrnn.lm.LMError` unless the ``batch`` streams split evenly."""
        if batch % self.size:
            raise LMError(
                f"batch (B, --batch) must be divisible by the {self.size} devices of the mesh "
                f"(--devices), got {batch}"
            )

    def _host(self, a: Any) -> np.ndarray:
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.floating):
            return a.astype(self._float, copy=False)
        if np.issubdtype(a.dtype, np.integer):
            return a.astype(self._int, copy=False)
        return a

    def _place(self, a: Any, sharding: NamedSharding) -> jax.Array:
        host = self._host(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    def shard(self, a: np.ndarray) -> jax.Array:
        """Host array ``(B, ...)`` as one array split by rows across the mesh; each
        process copies only its own devices' rows."""
        return self._place(a, self.batch)

    def replicate(self, tree: T) -> T:
        """Every array of ``tree`` (host or device) copied whole to every device of the mesh."""
        return jax.tree_util.tree_map(lambda a: self._place(a, self.replicated), tree)

    @property
    def writes(self) -> bool:
        """Whether this process writes the files: JAX's process 0."""
        return jax.process_index() == 0

    def gather(self, a: jax.Array) -> np.ndarray:
        """The whole of ``a`` on the host; with several processes a collective
        (``jax.experimental.multihost_utils.process_allgather``): all must call it."""
        if a.is_fully_addressable or a.is_fully_replicated:
            return np.asarray(a)
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(a, tiled=True))

    def local(self, tree: T) -> T:
        """This process's copy, on one of its devices, of every replicated array of ``tree``:
        for work done apart from the mesh (validation), at no copy."""
        return jax.tree_util.tree_map(lambda a: a.addressable_data(0), tree)

    def jit(self, step: Callable[..., Any], inputs: Sequence[bool], outputs: Sequence[bool]) -> Any:
        """``step`` compiled with :func:`jax.jit` for the mesh: each positional argument,
        and each result, split by rows where ``inputs``, ``outputs`` is true, else
        replicated (the same sharding for every array of a tuple)."""

        def where(batched: Sequence[bool]) -> tuple[NamedSharding, ...]:
            return tuple(self.batch if b else self.replicated for b in batched)

        return jax.jit(step, in_shardings=where(inputs), out_shardings=where(outputs))


def _client() -> Any:
    """The client of JAX's coordination service (``None`` without jax.distributed)."""
    from jax._src import distributed  # no public handle on the client

    return distributed.global_state.client


def _missing_processes(wait: float = 3.0) -> list[int] | None:
    """The processes that do not register as alive in the coordination service's
    key-value store within ``wait`` seconds (each survivor of a failed step registers);
    ``None`` when the service itself (process 0) does not answer."""
    me, world, client = jax.process_index(), jax.process_count(), _client()
    found: list[list[int]] = []

    def check() -> None:
        client.key_value_set(f"polyrnn/alive/{me}", "1", allow_overwrite=True)
        deadline = time.monotonic() + wait
        while True:
            missing = [p for p in range(world) if not _alive(client, p)]
            if not missing or time.monotonic() > deadline:
                found.append(missing)
                return
            time.sleep(0.1)

    # the service's RPCs can wait long for a dead coordinator: bound them by a thread
    thread = threading.Thread(target=_quietly, args=(check,), daemon=True)
    thread.start()
    thread.join(wait + 2.0)
    return found[0] if found else None


def _alive(client: Any, process: int) -> bool:
    try:
        client.key_value_try_get(f"polyrnn/alive/{process}")
    except jax.errors.JaxRuntimeError:  # NOT_FOUND
        return False
    return True


def _quietly(fn: Callable[[], None]) -> None:
    with contextlib.suppress(jax.errors.JaxRuntimeError):  # the service is gone: None
        fn()


def lost(how: str) -> str:
    """One line saying that this process stopped ``how`` and which processes are gone."""
    host = "the coordinator (process 0, which hosts JAX's coordination service)"
    me, world = jax.process_index(), jax.process_count()
    return lost_peers("process", me, world, _missing_processes(), host, how)


@contextlib.contextmanager
def peer_faults(during: str = "a training step") -> Iterator[None]:
    """Turns a failed computation of several processes (a peer died: gloo's connections
    broke, ``jax.errors.JaxRuntimeError``) into :class:`~polyrnn.lm.PeerLostError` naming
    the processes gone (:func:`lost`) and what was under way, ``during``."""
    try:
        yield
    except jax.errors.JaxRuntimeError as e:
        what = re.sub(r"\[[^\]\s]*:\d+\]\s*", "", _first_line(e))  # no source locations
        raise PeerLostError(lost(f"during {during} ({what})")) from None


def evaluate_tokens(
    lm: model.LanguageModel, tokens: np.ndarray, *, streams: int = 64, seq_len: int = 256
) -> evaluation.Metrics:
    """:func:`polyrnn.lm.evaluate_tokens` across the processes of :mod:`jax.distributed`:
    process ``i`` of ``k`` scores the ``i``-th block of the streams
    (:func:`polyrnn.lm.evaluation.nll_sum`), and one all-gather of every process's float64
    sums (sent as their bytes, so they stay float64 whether or not ``jax_enable_x64`` is
    on) gives every process ``loss = sum(nll) / sum(count)``."""
    from jax.experimental import multihost_utils

    part = (jax.process_index(), jax.process_count())
    nll, count = evaluation.nll_sum(lm, tokens, streams=streams, seq_len=seq_len, part=part)
    mine = np.array([nll, count], dtype=np.float64).view(np.uint32)
    with peer_faults("the evaluation's all-gather"):
        every = np.asarray(multihost_utils.process_allgather(mine))
    total = np.ascontiguousarray(every).view(np.float64).reshape(part[1], 2).sum(axis=0)
    return evaluation.metrics(float(total[0]), round(float(total[1])))


def leave(status: int) -> None:
    """End this process at once with ``status``, its output flushed, skipping
    ``jax.distributed.shutdown`` (run at exit), whose barrier would wait for a lost
    process until the heartbeat timeout and then abort."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
