"""Time the seed notebook's eager GRU loop against ``polyrnn.gru_scan`` on one array library.

Usage, from ``docs/``: ``python _seed_timing.py LIBRARY`` with LIBRARY one of numpy, jax,
torch, cupy.  Prints one JSON line.  The tutorial runs it once per installed library,
each in a fresh process: two frameworks' thread pools in one process slow each other.

Both sides compute the notebook's ``scan(forward_GRU, X, weights, h_0)`` on its weights
(``tests/data/seed_weights.npz``, float32, T=256, D=128, H=16): the hidden states and the
readout ``y_t = sigmoid(w_y h_t + b_y)`` of every step.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import polyrnn
from polyrnn import interop

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "tests" / "data" / "seed_weights.npz"
sys.path.insert(0, str(ROOT / "benchmarks"))
from _seed_notebook import notebook  # the notebook's loop, shared with bench.py

NAMES = ("w1", "w2", "w3", "w4", "b1", "b2", "b3", "b4")


def library(name: str) -> tuple[Any, Any, Any, Any, str]:
    """``(xp, asarray, stack, block, version)`` of an array library."""
    if name == "numpy":
        return np, np.asarray, np.array, lambda a: a, np.__version__
    if name == "jax":
        import jax
        import jax.numpy as jnp

        return jnp, jnp.asarray, jnp.array, lambda a: a.block_until_ready(), jax.__version__
    if name == "torch":
        import torch

        return torch, torch.from_numpy, torch.stack, lambda a: a, torch.__version__
    if name == "cupy":
        import cupy

        def block(a: Any) -> Any:
            cupy.cuda.get_current_stream().synchronize()
            return a

        return cupy, cupy.asarray, cupy.stack, block, cupy.__version__
    raise SystemExit(f"unknown library {name!r}")


def median_ms(fn: Any, block: Any, budget: float = 1.0, reps: int = 15) -> float:
    """Median wall time of ``fn()`` in ms: one warm-up call, then up to ``reps`` calls in
    about ``budget`` seconds (at least 3)."""
    block(fn()[0])
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (len(times) < reps and time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        block(fn()[0])
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(name: str) -> None:
    xp, asarray, stack, block, version = library(name)
    with np.load(SEED) as f:
        seed = {k: asarray(f[k]) for k in f.files}
    weights = [seed[k] for k in NAMES]
    X, h_0 = seed["X"], asarray(np.zeros((16, 1), np.float32))

    loop = notebook(xp, stack)
    gru = interop.from_seed_gru(*weights[0:3], *weights[4:7])
    w_y, b_y = interop.from_seed_readout(weights[3], weights[7])
    xs = X[:, :, 0]  # the notebook's (T, D, 1) columns as (T, D) rows

    def polyrnn_scan() -> Any:
        hs, h_last = polyrnn.gru_scan(xs, gru)
        return 1.0 / (1.0 + xp.exp(-(hs @ w_y + b_y))), h_last

    ys_loop = loop(X, weights, h_0)[0][:, :, 0]
    ys_scan = polyrnn_scan()[0]
    to_np = (lambda a: a.get()) if name == "cupy" else np.asarray
    diff = float(np.abs(to_np(ys_loop) - to_np(ys_scan)).max())
    print(
        json.dumps(
            {
                "library": name,
                "version": version,
                "loop_ms": median_ms(lambda: loop(X, weights, h_0), block),
                "scan_ms": median_ms(polyrnn_scan, block),
                "max_diff": diff,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
