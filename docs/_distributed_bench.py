"""Throughput of data-parallel training: the figures of distributed.md.

Run from the repository root: ``python docs/_distributed_bench.py``, on an idle machine.

JAX's CPU devices.  Each case runs in a subprocess of its own (JAX fixes its devices when
it starts): the library's default model (``lm.ModelConfig()``: GRU, E=64, H=256; 280k
parameters with this text's characters) at B=32, T=32 on Python's documentation, without
a mesh and with meshes of 1 and 2 CPU devices; 3 steps to compile, then the median of 5
rounds of 10 steps.  Each device case also times the
all-reduce of the gradients alone: a sum over the devices of one float32 array per
device of the size of the parameters.

PyTorch's processes (the check of the time model on hardware that runs in parallel: one
process per core).  The same model, batch and steps, ``--backend torch``, each process
with one thread: one process at B=32 and at B=16 (the compute of half the batch), and
two lone processes at B=16 at once (the same, with both cores busy), ``torchrun`` with 2
processes at B=32 (each steps 16 streams), which also times gloo's all-reduce of one
float32 tensor of the parameters' size between them; and, for comparison, one process
with 2 threads at B=32.

Every case runs 3 times, the cases interleaved; each one's figure is its median round.

Writes docs/distributed_results/throughput.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

STEP = r"""
import statistics, time
from pydoc_data.topics import topics

text = "\n\n".join(topics[k] for k in sorted(topics))


def median_step(trainer):  # seconds per step: 3 to warm up, the median of 5 rounds of 10
    for _ in range(3):
        trainer.train_step(1e-3)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(10):
            trainer.train_step(1e-3)
        rounds.append((time.perf_counter() - start) / 10)
    return statistics.median(rounds)
"""
"""What both cases' scripts start with: the text and the timing of a step."""

CASE = (
    STEP
    + r"""
import json, sys
import numpy as np
from polyrnn import lm
from polyrnn.lm import distributed_jax

devices = int(sys.argv[1])
mesh = distributed_jax.initialize(devices) if devices else None
import jax, jax.numpy as jnp

config = lm.TrainConfig(batch=32, seq_len=32)
trainer = lm.Trainer(text, config=config, backend="jax", mesh=mesh)
step = median_step(trainer)
out = {"devices": devices, "step_ms": 1e3 * step, "tokens_per_s": 32 * 32 / step,
       "parameters": trainer.lm.params.size()}
if mesh is not None:
    P = jax.sharding.PartitionSpec
    grads = jax.device_put(np.ones((devices, out["parameters"]), np.float32),
                           jax.sharding.NamedSharding(mesh, P("data")))
    reduce = jax.jit(lambda g: g.sum(0), out_shardings=jax.sharding.NamedSharding(mesh, P()))
    reduce(grads).block_until_ready()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        reduce(grads).block_until_ready()
        times.append(time.perf_counter() - start)
    out["allreduce_ms"] = 1e3 * statistics.median(times)
print(json.dumps(out))
"""
)

TORCH_CASE = (
    STEP
    + r"""
import json, sys
import torch
from polyrnn import lm
from polyrnn.lm.distributed_torch import TorchGroup, launched

batch = int(sys.argv[1])
group = TorchGroup.from_env() if launched() else None
config = lm.TrainConfig(batch=batch, seq_len=32)
trainer = lm.Trainer(text, config=config, backend="torch", group=group)
step = median_step(trainer)
out = {"processes": group.world if group else 1, "threads": torch.get_num_threads(),
       "batch": batch, "step_ms": 1e3 * step, "tokens_per_s": batch * 32 / step}
if group is not None:
    import torch.distributed as dist
    grads = torch.ones(trainer.lm.params.size())
    times = []
    for _ in range(20):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(grads)
        times.append(time.perf_counter() - start)
    out["allreduce_ms"] = 1e3 * statistics.median(times)
    group.close()
    if group.rank != 0:
        sys.exit(0)
print(json.dumps(out))
"""
)


ROUNDS = 3
"""Rounds of every case, the cases interleaved (so that a slow minute of a shared machine
hits them all); each case's figure is its median round."""


def _median_round(seen: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of a case with the median step time, and every round's step time."""
    case = sorted(seen, key=lambda c: c["step_ms"])[len(seen) // 2]
    return dict(case, rounds=[round(c["step_ms"], 2) for c in seen])


def _torch_case(env: dict[str, str], threads: int, launch: Any, batch: int) -> dict[str, Any]:
    """One PyTorch case: ``launch`` is a command, or ``"pair"``: two lone processes at once."""
    threaded = dict(env, OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:  # torchrun runs a file, not -c
        script = Path(tmp) / "case.py"
        script.write_text(TORCH_CASE, encoding="utf-8")
        cmd = [sys.executable] if launch == "pair" else launch
        procs = [
            subprocess.Popen(
                [*cmd, str(script), str(batch)], stdout=subprocess.PIPE, text=True, env=threaded
            )
            for _ in range(2 if launch == "pair" else 1)
        ]
        outs = [proc.communicate()[0] for proc in procs]
        if any(proc.returncode for proc in procs):
            raise SystemExit(f"the torch case {launch} B={batch} failed")
    case: dict[str, Any] = json.loads(outs[0].strip().splitlines()[-1])
    if launch == "pair":  # the compute of a step of each, with both cores busy
        case["concurrent"] = 2
        case["step_ms"] = max(json.loads(o.strip().splitlines()[-1])["step_ms"] for o in outs)
        case["tokens_per_s"] = 2 * batch * 32 / (case["step_ms"] / 1e3)
    return case


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root / "src"), JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    load = os.getloadavg()[0]  # of the minute before: whether the machine was idle
    jax_runs: list[list[dict[str, Any]]] = [[], [], []]
    for _ in range(ROUNDS):
        for devices, seen in enumerate(jax_runs):  # 0: no mesh, the plain single-device step
            done = subprocess.run(
                [sys.executable, "-c", CASE, str(devices)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            seen.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(seen[-1], flush=True)
    cases = [_median_round(seen) for seen in jax_runs]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    torchrun += ["--rdzv-backend", "c10d", "--rdzv-endpoint", "127.0.0.1:29477"]
    plan: list[tuple[int, Any, int]] = [
        (1, [sys.executable], 32),
        (1, [sys.executable], 16),
        (1, "pair", 16),
        (1, torchrun, 32),
        (2, [sys.executable], 32),
    ]
    runs: list[list[dict[str, Any]]] = [[] for _ in plan]
    for _ in range(ROUNDS):
        for (threads, launch, batch), seen in zip(plan, runs, strict=True):
            seen.append(_torch_case(env, threads, launch, batch))
            print(seen[-1], flush=True)
    torch_cases = [_median_round(seen) for seen in runs]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, load average "
        f"{load:.1f} before the run and {os.getloadavg()[0]:.1f} at its end",
        "cases": cases,
        "torch_cases": torch_cases,
    }
    path = root / "docs" / "distributed_results" / "throughput.json"
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
