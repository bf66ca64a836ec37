"""What the ``polyrnn`` subcommands share: argparse types, the formatting of numbers and
JSON, and joining ``torchrun``'s process group."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
from collections.abc import Iterator
from typing import Any

from .. import lm


def number(
    kind: type, low: float, high: float = math.inf, *, above: bool = False, below: bool = False
) -> Any:
    """An argparse type: a finite ``kind`` in ``[low, high]``, with ``above`` excluding
    ``low`` and ``below`` excluding ``high``; integers are at most :data:`INT_MAX`."""
    if high == math.inf:
        wanted = ("positive" if above else "non-negative") if low == 0 else f">= {low:g}"
    else:
        wanted = f"in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if (value <= low if above else value < low) or not (
            value < high if below else value <= high
        ):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        if kind is int and value > INT_MAX:
            raise argparse.ArgumentTypeError(f"must be at most {INT_MAX}, got {text:.30}")
        return value

    parse.__name__ = kind.__name__
    return parse


INT_MAX = 2**31 - 1
"""The largest count or size an option takes: beyond it nothing fits in memory."""


def positive(kind: type) -> Any:
    return number(kind, 0, above=True)


def file_path(text: str) -> str:
    """An argparse type: a non-empty path."""
    if not text:
        raise argparse.ArgumentTypeError("must be a file path, got an empty string")
    return text


def to_json(document: Any, indent: int | None = None) -> str:
    """``document`` as JSON, with non-finite numbers (a diverged loss, an infinite
    perplexity), which JSON cannot hold, as ``null``."""

    def finite(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [finite(v) for v in x]
        return x

    return json.dumps(finite(document), indent=indent, ensure_ascii=False, allow_nan=False)


def shown(x: float, places: int) -> str:
    """``x`` with ``places`` decimals, or in scientific notation when it is huge (a
    diverging run), not as a number of a hundred digits."""
    return f"{x:.{places}f}" if abs(x) < 1e6 or not math.isfinite(x) else f"{x:.{places}e}"


@contextlib.contextmanager
def torch_group(timeout: float, train_backend: str | None = None) -> Iterator[Any]:
    """The :class:`~polyrnn.lm.distributed_torch.TorchGroup` of a process started by
    ``torchrun`` as one of several (left at the end), else ``None``; refuses to train on
    ``train_backend`` where that is single-process."""
    from ..lm import distributed_torch

    if not distributed_torch.launched():
        yield None
        return
    if train_backend is not None and train_backend not in distributed_torch.BACKENDS:
        raise distributed_torch.single_process_error(train_backend)
    group = distributed_torch.TorchGroup.from_env(timeout)

    def stopped(signum: int, frame: Any) -> None:  # torchrun stops the others of a failure
        if group.reporting:  # a failed exchange is being reported already
            return
        raise lm.PeerLostError(group.lost("and was stopped by the launcher"))

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        yield group
    finally:
        signal.signal(signal.SIGTERM, previous)
        group.close()


def jax_mesh(args: argparse.Namespace) -> Any:
    """The mesh of ``--devices`` and ``--num-processes`` (JAX's data parallelism, set up
    before JAX first computes; ``eval`` has no ``--devices``), ``None`` without them."""
    given = [
        o
        for o in ("devices", "num_processes", "process_id", "coordinator_address")
        if getattr(args, o, None) is not None
    ]
    if not given:
        return None
    from ..lm import distributed_torch

    if distributed_torch.launched() and args.num_processes is not None:
        raise lm.LMError(
            "--num-processes joins processes through jax.distributed; under torchrun, "
            "which has joined them already, leave it out"
        )
    if args.backend != "jax":
        raise lm.LMError(
            f"--{given[0].replace('_', '-')} needs --backend jax, got --backend {args.backend}"
        )
    from ..lm import distributed_jax  # needs JAX

    return distributed_jax.initialize(
        getattr(args, "devices", None),
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
        timeout=args.timeout,
    )


def jax_faults(mesh: Any) -> contextlib.AbstractContextManager[None]:
    """``distributed_jax.peer_faults`` when ``mesh`` spans several processes."""
    if mesh is None:
        return contextlib.nullcontext()
    from ..lm import distributed_jax

    if distributed_jax.processes(mesh) == 1:
        return contextlib.nullcontext()
    return distributed_jax.peer_faults()


def reports(args: argparse.Namespace) -> bool:
    """Whether this process writes the command's files and prints its results: a lone
    process, or process 0 of ``jax.distributed`` or of ``torchrun`` (known from the
    environment, before joining)."""
    from ..lm import distributed_torch

    torch_rank = int(os.environ["RANK"]) if distributed_torch.launched() else 0
    return not getattr(args, "process_id", None) and torch_rank == 0
