"""The ``polyrnn`` command (also ``python -m polyrnn``)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import __version__, gru_scan, init_gru

LIBRARIES = {
    "numpy": "numpy",
    "array_api_strict": "array_api_strict",
    "jax": "jax.numpy",
    "torch": "torch",
    "cupy": "cupy",
}


def _installed() -> dict[str, Any]:
    """The array libraries importable here (CuPy only with a usable CUDA device)."""
    found = {}
    for name, module in LIBRARIES.items():
        if importlib.util.find_spec(name) is None:
            continue
        try:
            xp = importlib.import_module(module)
            if name == "jax":
                importlib.import_module("jax").config.update("jax_enable_x64", True)
            if name == "cupy" and not xp.is_available():
                continue
        except (ImportError, RuntimeError):  # a broken install counts as absent
            continue
        found[name] = xp
    return found


def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu()
    if hasattr(a, "get"):
        a = a.get()
    if hasattr(a, "_array"):  # array_api_strict
        a = a._array
    return np.asarray(a)


def check(args: argparse.Namespace) -> int:
    """Run one GRU scan on every installed array library and compare with NumPy float64."""
    T, B, D, H = 64, 4, 16, 32
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(B, T, D))
    ref, _ = gru_scan(xs, init_gru(D, H))
    print(f"polyrnn {__version__}: gru_scan on (B={B}, T={T}, D={D}, H={H}), float64")
    print(f"{'library':<18}{'version':<14}{'max |diff| vs NumPy':>20}{'ms':>9}")
    worst = 0.0
    for name, xp in _installed().items():
        params = init_gru(D, H, xp=xp, dtype="float64")
        x = xp.asarray(xs)
        gru_scan(x, params)  # warm up (JIT compilation)
        start = time.perf_counter()
        hs, _ = gru_scan(x, params)
        diff = float(np.max(np.abs(_to_numpy(hs) - ref)))
        ms = (time.perf_counter() - start) * 1e3
        version = getattr(sys.modules[name], "__version__", "?")
        print(f"{name:<18}{version:<14}{diff:>20.2e}{ms:>9.2f}")
        worst = max(worst, diff)
    agree = worst < 1e-10
    print("all libraries agree" if agree else f"MISMATCH: {worst:.3e} > 1e-10")
    return 0 if agree else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="polyrnn", description=__doc__)
    parser.add_argument("--version", action="version", version=f"polyrnn {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("check", help=check.__doc__).set_defaults(run=check)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["check"])
    return int(args.run(args))
