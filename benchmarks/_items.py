"""What the benchmarks measure: the inputs, the array libraries and the registry of items.

An *item* is one implementation of the same work, a float32 GRU (``reset_after=True``)
over time-major inputs ``xs (T, B, D)`` starting from ``h0 = 0``:

* ``numpy``, ``jax``, ``torch``, ``cupy``, ``array_api_strict``: :func:`polyrnn.gru_scan`
  on that library's arrays;
* ``torch.nn.GRU``: PyTorch's fused native kernel (cuDNN on CUDA), ``batch_first=False``;
* ``jax.lax.scan``: a GRU written here by hand, hoisted input projection, one
  ``jax.lax.scan`` under ``jax.jit``;
* ``seed-loop``: the seed notebook's eager per-step loop in ``jax.numpy``, as the notebook
  runs it (its own ``reset_after=False`` GRU plus its readout ``y = σ(W_y h + b_y)``: a
  timing peer, not the same numbers).

The peers never import polyrnn.  Every item's worker function takes the NumPy inputs of
:func:`gru_inputs`, a mode (``"fwd"``, or ``"fwd+bwd"``: the gradient of ``sum(hs)`` with
respect to ``xs`` and every weight) and a device (``"cpu"`` or ``"gpu"``), converts,
and returns a :class:`Prepared` whose ``call`` runs the work once and waits for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SHAPES: dict[str, tuple[int, int, int, int]] = {
    "seed": (256, 1, 128, 16),
    "lm": (256, 32, 128, 256),
    "large": (512, 64, 256, 512),
    "long": (4096, 8, 64, 128),
}
"""Benchmark shapes ``(T, B, D, H)``: the seed notebook's, a small language model's, a
large one and a long sequence."""

MODES = ("fwd", "fwd+bwd")

PARAM_KEYS = ("w_x", "w_h", "b_x", "b_h")
"""The GRU weights in :class:`polyrnn.GRUParams` order; gates ``(r, z, n)`` along the last axis."""


class Skip(Exception):
    """This item cannot run here (library missing, no device, feature absent); the message says why."""


def parse_shape(text: str) -> tuple[str, tuple[int, int, int, int]]:
    """A shape name of :data:`SHAPES` or ``"TxBxDxH"``, as ``(name, dims)``."""
    if text in SHAPES:
        return text, SHAPES[text]
    try:
        dims = tuple(int(v) for v in text.split("x"))
    except ValueError:
        dims = ()
    if len(dims) != 4 or min(dims) < 1:
        raise ValueError(f"a shape is one of {sorted(SHAPES)} or 'TxBxDxH', got {text!r}")
    return text, dims  # type: ignore[return-value]


def gru_inputs(dims: Sequence[int], seed: int = 0) -> dict[str, np.ndarray]:
    """``xs (T, B, D)`` ~ N(0, 1) and GRU weights ~ U(±1/sqrt(H)), float32, from one NumPy seed."""
    steps, batch, d_in, hidden = dims
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(hidden)
    g = 3 * hidden
    shapes = {"w_x": (d_in, g), "w_h": (hidden, g), "b_x": (g,), "b_h": (g,)}
    out = {"xs": rng.standard_normal((steps, batch, d_in)).astype(np.float32)}
    for key in PARAM_KEYS:
        out[key] = rng.uniform(-bound, bound, size=shapes[key]).astype(np.float32)
    return out


# --------------------------------------------------------------------------- array libraries


@dataclass(frozen=True)
class Lib:
    """One array library on one device: conversion from and to NumPy, and a barrier."""

    name: str
    module: Any
    asarray: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]
    sync: Callable[[Any], None]
    device: str


def _no_sync(_: Any) -> None:
    return None


def load_lib(name: str, device: str) -> Lib:
    """The library ``name`` on ``device`` (``"cpu"`` or ``"gpu"``); :class:`Skip` if it cannot run."""
    if importlib.util.find_spec(name) is None:
        raise Skip(f"{name} is not installed")
    if name in ("numpy", "array_api_strict"):
        if device != "cpu":
            raise Skip(f"{name} runs on the CPU only")
        mod = importlib.import_module(name)
        back = np.asarray if name == "numpy" else np.from_dlpack
        return Lib(name, mod, mod.asarray, back, _no_sync, "cpu")
    if name == "jax":
        jax = importlib.import_module("jax")
        try:
            dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
        except RuntimeError as e:
            raise Skip(f"jax has no {device} device ({e})") from None
        return Lib(
            name, jax, lambda a: jax.device_put(a, dev), np.asarray, jax.block_until_ready, str(dev)
        )
    if name == "torch":
        torch = importlib.import_module("torch")
        if device == "gpu" and not torch.cuda.is_available():
            raise Skip("torch sees no CUDA device")
        dev = "cuda" if device == "gpu" else "cpu"

        def torch_sync(_: Any) -> None:
            if dev == "cuda":
                torch.cuda.synchronize()

        return Lib(
            name,
            torch,
            lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev),
            lambda a: a.detach().cpu().numpy(),
            torch_sync,
            torch.cuda.get_device_name() if dev == "cuda" else "cpu",
        )
    if name == "cupy":
        if device != "gpu":
            raise Skip("cupy needs --device gpu")
        cupy = importlib.import_module("cupy")
        if not cupy.is_available():
            raise Skip("cupy is installed but no CUDA device is usable")
        return Lib(
            name,
            cupy,
            cupy.asarray,
            cupy.asnumpy,
            lambda _: cupy.cuda.Device().synchronize(),
            f"cuda:{cupy.cuda.Device().id}",
        )
    raise Skip(f"unknown array library {name!r}")


# --------------------------------------------------------------------------- shared machinery


@dataclass(frozen=True)
class Prepared:
    """``call()`` runs the work once, waits for the device, and returns its output arrays."""

    call: Callable[[], Sequence[Any]]
    lib: Lib

    def checksum(self, outputs: Sequence[Any]) -> dict[str, float]:
        """Sum of every output and sum of their absolute values (float64): items that compute
        the same numbers agree on the first to float32 rounding, relative to the second."""
        arrays = [self.lib.to_numpy(a).astype(np.float64) for a in outputs]
        return {
            "checksum": float(sum(a.sum() for a in arrays)),
            "checksum_scale": float(sum(np.abs(a).sum() for a in arrays)),
        }


def _jax_prepared(
    lib: Lib, forward: Callable[..., Any], args: Sequence[Any], mode: str
) -> Prepared:
    """``forward(*args) -> hs``, or the gradient of ``sum(hs)`` w.r.t. every argument (jitted)."""
    jax = lib.module
    if mode == "fwd":
        fn = forward
    else:
        import jax.numpy as jnp

        def loss(*a: Any) -> Any:
            return jnp.sum(forward(*a))

        fn = jax.jit(jax.grad(loss, argnums=tuple(range(len(args)))))

    def call() -> Sequence[Any]:
        out = jax.block_until_ready(fn(*args))
        return jax.tree_util.tree_leaves(out)

    return Prepared(call, lib)


def _torch_prepared(
    lib: Lib, forward: Callable[[], Any], leaves: Sequence[Any], mode: str
) -> Prepared:
    """``forward() -> hs`` without autograd, or ``sum(hs).backward()`` into ``leaves``' grads."""
    torch = lib.module
    if mode == "fwd":

        def call() -> Sequence[Any]:
            with torch.no_grad():
                hs = forward()
            lib.sync(hs)
            return (hs,)

        return Prepared(call, lib)
    for leaf in leaves:
        leaf.requires_grad_(True)

    def call_grad() -> Sequence[Any]:
        for leaf in leaves:
            leaf.grad = None
        forward().sum().backward()
        grads = tuple(leaf.grad for leaf in leaves)
        lib.sync(grads[0])
        return grads

    return Prepared(call_grad, lib)


# --------------------------------------------------------------------------- polyrnn items


def _polyrnn_args(lib: Lib, inp: dict[str, np.ndarray]) -> tuple[Any, Any]:
    import polyrnn

    return lib.asarray(inp["xs"]), polyrnn.GRUParams(*(lib.asarray(inp[k]) for k in PARAM_KEYS))


def _polyrnn_forward(xs: Any, params: Any) -> Any:
    import polyrnn

    return polyrnn.gru_scan(xs, params, reset_after=True, time_major=True)[0]


def _polyrnn_vjp(name: str, inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    """polyrnn on a library without autodiff: the backward pass is :mod:`polyrnn.vjp`."""
    lib = load_lib(name, device)
    xs, params = _polyrnn_args(lib, inp)
    if mode == "fwd":

        def call() -> Sequence[Any]:
            hs = _polyrnn_forward(xs, params)
            lib.sync(hs)
            return (hs,)

        return Prepared(call, lib)
    try:
        from polyrnn.vjp import gru_scan_vjp
    except ImportError as e:
        raise Skip(f"polyrnn.vjp.gru_scan_vjp is not importable ({e})") from None
    steps, batch = inp["xs"].shape[:2]
    d_hs = lib.asarray(np.ones((steps, batch, inp["w_h"].shape[0]), np.float32))

    def call_grad() -> Sequence[Any]:
        _, backward = gru_scan_vjp(xs, params, reset_after=True, time_major=True)
        d_xs, d_params, _ = backward(d_hs, None)
        lib.sync(d_xs)
        return (d_xs, *d_params)

    return Prepared(call_grad, lib)


def polyrnn_numpy(inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    return _polyrnn_vjp("numpy", inp, mode, device)


def polyrnn_array_api_strict(inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    return _polyrnn_vjp("array_api_strict", inp, mode, device)


def polyrnn_cupy(inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    return _polyrnn_vjp("cupy", inp, mode, device)


def polyrnn_jax(inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    """Called eagerly, as a user would: polyrnn's JAX adapter jits the scan itself."""
    lib = load_lib("jax", device)
    return _jax_prepared(lib, _polyrnn_forward, _polyrnn_args(lib, inp), mode)


def polyrnn_torch(inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    lib = load_lib("torch", device)
    xs, params = _polyrnn_args(lib, inp)
    return _torch_prepared(lib, lambda: _polyrnn_forward(xs, params), (xs, *params), mode)


# --------------------------------------------------------------------------- peers


def torch_gru(inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    """:class:`torch.nn.GRU` (the fused aten kernel; cuDNN on CUDA), same weights and layout."""
    lib = load_lib("torch", device)
    torch = lib.module
    d_in, hidden = inp["w_x"].shape[0], inp["w_h"].shape[0]
    gru = torch.nn.GRU(d_in, hidden, batch_first=False)
    with torch.no_grad():  # torch stores W^T: weight_ih (3H, D), gates (r, z, n) like polyrnn
        gru.weight_ih_l0.copy_(torch.from_numpy(inp["w_x"].T.copy()))
        gru.weight_hh_l0.copy_(torch.from_numpy(inp["w_h"].T.copy()))
        gru.bias_ih_l0.copy_(torch.from_numpy(inp["b_x"]))
        gru.bias_hh_l0.copy_(torch.from_numpy(inp["b_h"]))
    xs = lib.asarray(inp["xs"])
    gru = gru.to(xs.device)
    return _torch_prepared(lib, lambda: gru(xs)[0], (xs, *gru.parameters()), mode)


def _lax_scan_gru(xs: Any, w_x: Any, w_h: Any, b_x: Any, b_h: Any) -> Any:
    """A GRU by hand (``reset_after=True``), independent of polyrnn: returns ``hs (T, B, H)``.

    r = σ(x W_xr + b_xr + h W_hr + b_hr),  z = σ(x W_xz + b_xz + h W_hz + b_hz),
    n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn)),  h' = (1 - z) * n + z * h.
    """
    import jax
    import jax.numpy as jnp

    hidden = w_h.shape[0]
    gx = xs @ w_x + b_x  # the input projection of every step at once

    def step(h: Any, g: Any) -> tuple[Any, Any]:
        gh = h @ w_h + b_h
        r = jax.nn.sigmoid(g[:, :hidden] + gh[:, :hidden])
        z = jax.nn.sigmoid(g[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
        n = jnp.tanh(g[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
        h = (1.0 - z) * n + z * h
        return h, h

    h0 = jnp.zeros((xs.shape[1], hidden), xs.dtype)
    return jax.lax.scan(step, h0, gx)[1]


def jax_lax_scan(inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    """:func:`_lax_scan_gru` under ``jax.jit`` (the gradient: ``jax.jit(jax.grad(...))``)."""
    lib = load_lib("jax", device)
    jax = lib.module
    args = [lib.asarray(inp[k]) for k in ("xs", *PARAM_KEYS)]
    forward = jax.jit(_lax_scan_gru) if mode == "fwd" else _lax_scan_gru
    return _jax_prepared(lib, forward, args, mode)


def seed_loop(inp: dict[str, np.ndarray], mode: str, device: str) -> Prepared:
    """The notebook's ``scan(forward_GRU, X, weights, h_0)``, eager ``jax.numpy``.

    The notebook runs batch 1 with column vectors: ``X (T, D, 1)``, ``h_0 (H, 1)``.  For
    ``B > 1`` the columns are the batch, ``X (T, D, B)`` and ``h_0 (H, B)``, the same code.
    Weights are the notebook's shapes (``W_r, W_u, W_h (H, H + D)``, ``W_y (H, H)``, biases
    ``(H, 1)``), drawn N(0, 1) from the benchmark's seed, since only the time matters.
    """
    if mode != "fwd":
        raise Skip("the seed notebook's loop is a forward-only timing peer")
    lib = load_lib("jax", device)
    import _seed_notebook

    _, batch, d_in = inp["xs"].shape
    hidden = inp["w_h"].shape[0]
    rng = np.random.default_rng(1)
    shapes = [(hidden, hidden + d_in)] * 3 + [(hidden, hidden)] + [(hidden, 1)] * 4
    weights = [lib.asarray(rng.standard_normal(s).astype(np.float32)) for s in shapes]
    big_x = lib.asarray(np.ascontiguousarray(inp["xs"].transpose(0, 2, 1)))  # (T, D, B)
    h_0 = lib.asarray(np.zeros((hidden, batch), np.float32))

    import jax.numpy as jnp

    loop = _seed_notebook.notebook(jnp, jnp.array)

    def call() -> Sequence[Any]:
        ys, _ = loop(big_x, weights, h_0)
        lib.sync(ys)
        return (ys,)

    return Prepared(call, lib)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Item:
    """One implementation under test."""

    worker: Callable[[dict[str, np.ndarray], str, str], Prepared]
    label: str
    """Column header."""
    requires: str
    """Top-level module that must be installed."""
    polyrnn: bool = True
    """A polyrnn backend (``False``: a peer)."""
    shapes: tuple[str, ...] | None = None
    """Shapes it runs at (``None``: all)."""
    modes: tuple[str, ...] = MODES
    optional: bool = False
    """Only with ``--all``."""
    same_numbers: bool = True
    """Computes the numbers the other items compute (its checksum is compared)."""

    def applies(self, shape: str, mode: str) -> bool:
        return mode in self.modes and (self.shapes is None or shape in self.shapes)


ITEMS: dict[str, Item] = {
    "numpy": Item(polyrnn_numpy, "polyrnn[numpy]", "numpy"),
    "jax": Item(polyrnn_jax, "polyrnn[jax]", "jax"),
    "torch": Item(polyrnn_torch, "polyrnn[torch]", "torch"),
    "cupy": Item(polyrnn_cupy, "polyrnn[cupy]", "cupy"),
    "array_api_strict": Item(
        polyrnn_array_api_strict, "polyrnn[strict]", "array_api_strict", optional=True
    ),
    "torch.nn.GRU": Item(torch_gru, "torch.nn.GRU", "torch", polyrnn=False),
    "jax.lax.scan": Item(jax_lax_scan, "jax lax.scan", "jax", polyrnn=False),
    "seed-loop": Item(
        seed_loop,
        "seed loop",
        "jax",
        polyrnn=False,
        shapes=("seed", "lm"),
        modes=("fwd",),
        same_numbers=False,
    ),
}
"""Every item by name: polyrnn on each backend, then the peers."""
