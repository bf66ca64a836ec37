"""Benchmark the linear scans and minGRU against the GRU, one process per backend.

Usage (from the repository root)::

    python benchmarks/linear_bench.py                     # numpy, jax, torch; ~15 min on 2 cores
    python benchmarks/linear_bench.py --quick             # smoke run: small grid, few repetitions
    python benchmarks/linear_bench.py --backends numpy,torch --device gpu   # on a GPU machine

Two experiments, float32, batch B = 8, hidden size H = 128, time-major inputs:

``linear``
    :func:`polyrnn.linear_scan` with ``method="sequential"``, ``"parallel"`` and ``"auto"``
    over ``a, b (T, B, H)`` (``a`` in (0, 1) like minGRU's ``1 - z``), for T in 256, 4096,
    65536.  On torch also the log-space (Heinsen 2023) formulation with ``cumsum`` and
    ``logcumsumexp``, for its speed and its float32 error, as the design notes discuss.
``cells``
    :func:`polyrnn.gru_scan` (``reset_after=True``: what the language model and
    ``torch.nn.GRU`` use) against :func:`polyrnn.min_gru_scan` sequential, parallel and
    auto, ``xs (T, B, D=64)``, for T from 256 to 65536.

Within one process the variants of a row are timed *interleaved* (one call of each, round
after round), so a change of the machine's load is shared by all of them, and each row
reports medians.  Results: ``linear_results.json`` (every number, machine, versions),
``linear_results.md`` (tables) and ``linear_results.png`` (time against T per backend) in
``--out`` (``docs/linear_results`` by default).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness
import numpy as np

B, H, D = 8, 128, 64
LINEAR_T = (256, 4096, 65536)
CELLS_T = (256, 1024, 4096, 16384, 65536)
QUICK_LINEAR_T = (256, 4096)
QUICK_CELLS_T = (256, 1024)
BACKENDS = ("numpy", "jax", "torch")
OUT = _harness.ROOT / "docs" / "linear_results"


# --------------------------------------------------------------------------- worker


class Lib:
    """One backend inside a worker: conversion to its arrays, and a blocking call."""

    def __init__(self, name: str, device: str) -> None:
        self.name = name
        if name == "numpy":
            self.asarray: Callable[[np.ndarray], Any] = lambda a: a
            self.block: Callable[[Any], Any] = lambda out: out
            self.xp: Any = np
            self.device = "cpu"
        elif name == "jax":
            import jax
            import jax.numpy as jnp

            dev = jax.devices("gpu" if device == "gpu" else "cpu")[0]
            self.asarray = lambda a: jax.device_put(jnp.asarray(a), dev)
            self.block = jax.block_until_ready
            self.xp = jnp
            self.device = str(dev)
        elif name == "torch":
            import torch

            dev_t = torch.device("cuda" if device == "gpu" else "cpu")
            self.asarray = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(dev_t)

            def block(out: Any) -> Any:
                if dev_t.type == "cuda":
                    torch.cuda.synchronize()
                return out

            self.block = block
            self.xp = torch
            self.device = str(dev_t)
        elif name == "cupy":
            import cupy

            self.asarray = cupy.asarray

            def block_cupy(out: Any) -> Any:
                cupy.cuda.Device().synchronize()
                return out

            self.block = block_cupy
            self.xp = cupy
            self.device = "cuda"
        else:
            raise ValueError(f"unknown backend {name!r}")

    def to_numpy(self, a: Any) -> np.ndarray:
        from polyrnn.backends import to_numpy

        return to_numpy(a)


def interleaved(
    calls: dict[str, Callable[[], Any]], budget: float, min_rounds: int, max_rounds: int
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Time ``calls`` round-robin: after one untimed call of each (compilation, caches: its
    time is ``first_ms``), rounds of one call each until ``budget`` seconds or ``max_rounds``,
    at least ``min_rounds``.  Returns per-call stats (ms) and each call's last output."""
    first, outputs = {}, {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        outputs[name] = call()
        first[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.monotonic() + budget
    rounds = 0
    names = list(calls)
    while rounds < min_rounds or (rounds < max_rounds and time.monotonic() < deadline):
        for name in names[rounds % len(names) :] + names[: rounds % len(names)]:  # rotate
            t0 = time.perf_counter()
            outputs[name] = calls[name]()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    stats = {name: _harness.summarise(ts, first[name]) for name, ts in times.items()}
    return stats, outputs


def _coefficients(T: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(T)
    k = rng.normal(size=(T, B, H)).astype(np.float32)
    a = (1.0 / (1.0 + np.exp(k))).astype(np.float32)  # 1 - z, z = σ(k)
    b = ((1.0 - a) * rng.normal(size=(T, B, H))).astype(np.float32)
    return a, b


def _sequential_f64(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    hs = np.empty(a.shape, np.float64)
    h = np.zeros(a.shape[1:])
    for t in range(a.shape[0]):
        h = a[t] * h + b[t]
        hs[t] = h
    return hs


def _heinsen(torch: Any, a: Any, b: Any) -> Any:
    """Log-space linear scan (Heinsen 2023), signs of ``b`` carried by splitting it: valid
    for ``a > 0``; two ``logcumsumexp`` and one ``cumsum`` over time."""
    a_star = torch.cumsum(torch.log(a), 0)
    pos = torch.logcumsumexp(torch.log(torch.clamp(b, min=0)) - a_star, 0)
    neg = torch.logcumsumexp(torch.log(torch.clamp(-b, min=0)) - a_star, 0)
    return torch.exp(a_star + pos) - torch.exp(a_star + neg)


def measure_linear(lib: Lib, T: int, budget: float, rounds: tuple[int, int]) -> dict[str, Any]:
    from polyrnn.linear import linear_scan

    a_np, b_np = _coefficients(T)
    a, b = lib.asarray(a_np), lib.asarray(b_np)
    calls = {
        m: (lambda m=m: lib.block(linear_scan(a, b, time_major=True, method=m)[0]))
        for m in ("sequential", "parallel", "auto")
    }
    if lib.name == "torch":
        import torch

        calls["log-space"] = lambda: lib.block(_heinsen(torch, a, b))
    stats, outs = interleaved(calls, budget, *rounds)
    truth = _sequential_f64(a_np.astype(np.float64), b_np.astype(np.float64))
    scale = float(np.abs(truth).max())
    for name, out in outs.items():
        stats[name]["max_rel_err_vs_f64"] = float(
            np.abs(lib.to_numpy(out).astype(np.float64) - truth).max() / scale
        )
    return stats


def measure_cells(lib: Lib, T: int, budget: float, rounds: tuple[int, int]) -> dict[str, Any]:
    import polyrnn
    from polyrnn.minrnn import init_min_gru, min_gru_scan

    xs_np = np.random.default_rng(T).normal(size=(T, B, D)).astype(np.float32)
    xs = lib.asarray(xs_np)
    extra = {"device": "cuda"} if lib.name == "torch" and lib.device == "cuda" else {}
    gru = polyrnn.init_gru(D, H, xp=lib.xp, dtype="float32", **extra)
    mgru = init_min_gru(D, H, xp=lib.xp, dtype="float32", **extra)
    if lib.name == "jax":
        gru = type(gru)(*map(lib.asarray, map(np.asarray, gru)))
        mgru = type(mgru)(*map(lib.asarray, map(np.asarray, mgru)))
    calls = {
        "gru_scan": lambda: lib.block(
            polyrnn.gru_scan(xs, gru, time_major=True, reset_after=True)[0]
        ),
        **{
            f"min_gru {m}": (
                lambda m=m: lib.block(min_gru_scan(xs, mgru, time_major=True, method=m)[0])
            )
            for m in ("sequential", "parallel", "auto")
        },
    }
    return interleaved(calls, budget, *rounds)[0]


def worker(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="linear_bench.py --worker")
    p.add_argument("backend", choices=(*BACKENDS, "cupy"))
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    lib = Lib(args.backend, args.device)
    budget, rounds = (0.5, (3, 5)) if args.quick else (6.0, (3, 1000))
    linear_t = QUICK_LINEAR_T if args.quick else LINEAR_T
    cells_t = QUICK_CELLS_T if args.quick else CELLS_T
    jobs: list[tuple[str, int, Callable[..., dict[str, Any]]]] = [
        *(("linear", T, measure_linear) for T in linear_t),
        *(("cells", T, measure_cells) for T in cells_t),
    ]
    for experiment, T, fn in jobs:
        record: dict[str, Any] = {"backend": lib.name, "device": lib.device}
        record.update(experiment=experiment, T=T, B=B, H=H, D=D, dtype="float32")
        try:
            record["items"] = fn(lib, T, budget, rounds)
        except Exception as e:  # noqa: BLE001 - reported, and the run goes on
            record["error"] = f"{type(e).__name__}: {e}"
            record["traceback"] = traceback.format_exc()
        _harness.emit(record)
    return 0


# --------------------------------------------------------------------------- driver


def _median(record: dict[str, Any], item: str) -> float | None:
    stats = record.get("items", {}).get(item)
    return None if stats is None else stats["median_ms"]


def tables(records: list[dict[str, Any]]) -> str:
    """The markdown of the results: linear-scan methods, then minGRU against the GRU."""
    lines = []
    linear = [r for r in records if r["experiment"] == "linear" and "items" in r]
    if linear:
        rows = []
        for r in linear:
            seq, par, auto = (_median(r, m) for m in ("sequential", "parallel", "auto"))
            best = min(v for v in (seq, par) if v is not None)
            log = _median(r, "log-space")
            err = r["items"].get("log-space", {}).get("max_rel_err_vs_f64")
            mins = {m: r["items"][m]["min_ms"] for m in ("sequential", "parallel", "auto")}
            rows.append([
                r["backend"], str(r["T"]), _harness.fmt_ms(seq), _harness.fmt_ms(par),
                _harness.fmt_ms(auto), _harness.fmt_ratio(par / seq if par and seq else None),
                _harness.fmt_ratio(auto / best if auto else None),
                _harness.fmt_ratio(mins["auto"] / min(mins["sequential"], mins["parallel"])),
                "—" if log is None else f"{_harness.fmt_ms(log)} (err {err:.1e})",
            ])  # fmt: skip
        lines += [
            (
                "**`linear_scan`**, float32, `a, b (T, 8, 128)`, median ms per call. "
                "*par/seq* > 1: the parallel form is slower; *auto/best* must stay ≤ 1.10 "
                "(on a CPU auto *is* the sequential code path, plus a ~1 µs choice, so what "
                "this column shows beyond 1.00 is the machine's noise; *(min)* compares the "
                "fastest calls, which noise only slows)."
            ),
            "",
            _harness.markdown(
                [
                    "backend",
                    "T",
                    "sequential",
                    "parallel",
                    "auto",
                    "par/seq",
                    "auto/best",
                    "auto/best (min)",
                    "log-space (torch)",
                ],
                rows,
            ),
            "",
        ]
    cells = [r for r in records if r["experiment"] == "cells" and "items" in r]
    if cells:
        rows = []
        for r in cells:
            gru = _median(r, "gru_scan")
            seq, par, auto = (
                _median(r, f"min_gru {m}") for m in ("sequential", "parallel", "auto")
            )
            rows.append([
                r["backend"], str(r["T"]), _harness.fmt_ms(gru), _harness.fmt_ms(seq),
                _harness.fmt_ms(par), _harness.fmt_ms(auto),
                _harness.fmt_ratio(gru / auto if gru and auto else None),
            ])  # fmt: skip
        lines += [
            (
                "**`min_gru_scan` against `gru_scan`** (`reset_after=True`), float32, "
                "`xs (T, 8, 64)`, H = 128, median ms per call; *speed-up* = gru / minGRU auto."
            ),
            "",
            _harness.markdown(
                ["backend", "T", "gru_scan", "minGRU seq", "minGRU par", "minGRU auto", "speed-up"],
                rows,
            ),
            "",
        ]
    failed = [r for r in records if "error" in r]
    for r in failed:
        lines.append(f"- {r['backend']} {r['experiment']} T={r['T']}: {r['error']}")
    return "\n".join(lines)


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [r for r in records if r["experiment"] == "cells" and "items" in r]
    backends = sorted({r["backend"] for r in cells}, key=lambda b: (*BACKENDS, b).index(b))
    if not backends:
        return
    fig, axes = plt.subplots(1, len(backends), figsize=(4.2 * len(backends), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    styles = {
        "gru_scan": ("GRU (gru_scan)", "k", "o-"),
        "min_gru sequential": ("minGRU sequential", "tab:blue", "s-"),
        "min_gru parallel": ("minGRU parallel", "tab:orange", "^-"),
    }
    for ax, backend in zip(axes, backends, strict=True):
        rows = sorted((r for r in cells if r["backend"] == backend), key=lambda r: r["T"])
        for item, (label, color, style) in styles.items():
            pts = [(r["T"], _median(r, item)) for r in rows if _median(r, item) is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), style, color=color, label=label, ms=4)
        ax.set(
            xscale="log", yscale="log", xlabel="T (steps)", title=f"{backend} ({rows[0]['device']})"
        )
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms per forward call (median)")
    axes[0].legend(fontsize=8)
    fig.suptitle("float32, B=8, D=64, H=128, forward", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--worker":
        return worker(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--quick", action="store_true", help="small grid, few repetitions")
    p.add_argument("--repeat", type=int, default=1, help="run each backend's worker N times")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per worker")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads of each framework (default 1: on a small shared machine two "
        "threads per framework measured up to 10x slower, from spinning thread pools)",
    )
    p.add_argument(
        "--render", type=Path, help="re-render the tables and plot of a saved JSON, no timing"
    )
    args = p.parse_args(argv)
    if args.render:
        saved = json.loads(args.render.read_text())
        threads = saved.get("threads", 1)
        write(saved["runs"], saved["machine"], saved["command"], threads, args.out)
        return 0
    records: list[dict[str, Any]] = []
    for repeat in range(args.repeat):
        for backend in args.backends.split(","):
            cmd = [sys.executable, __file__, "--worker", backend, "--device", args.device]
            if args.quick:
                cmd.append("--quick")
            print(f"[{repeat + 1}/{args.repeat}] {backend} ...", file=sys.stderr, flush=True)

            def show(r: dict[str, Any]) -> None:
                brief = {k: v["median_ms"] for k, v in r.get("items", {}).items()}
                print(
                    f"    {r['experiment']} T={r['T']}: {brief or r.get('error')}", file=sys.stderr
                )

            got, problem = _harness.run_worker(cmd, args.timeout, args.threads, on_record=show)
            for r in got:
                r["repeat"] = repeat
            records += got
            if problem:
                print(f"    {backend}: {problem}", file=sys.stderr)
    command = " ".join(["python", "benchmarks/linear_bench.py", *argv])
    write(records, _harness.machine_info(), command, args.threads, args.out)
    return 0


def write(
    records: list[dict[str, Any]], machine: dict[str, Any], command: str, threads: int, out: Path
) -> None:
    """``linear_results.json``, ``.md`` and ``.png`` in ``out``; the tables on stdout."""
    merged = merge(records)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": machine,
        "command": command,
        "threads": threads,
        "records": merged,
        "runs": records,
    }
    (out / "linear_results.json").write_text(json.dumps(result, indent=1) + "\n")
    md = tables(merged)
    load = ", ".join(f"{x:.1f}" for x in machine.get("load_average") or [])
    header = (
        f"Measured {machine['date']} on {machine['cpu']} ({machine['cores_usable']} usable "
        f"cores, load average {load} at the end), `{command}`; each backend in its own "
        f"process with {threads} CPU thread(s), the variants of a row timed interleaved "
        f"(rotating order); with several runs, the median of the runs' medians.\n\n"
    )
    (out / "linear_results.md").write_text(header + md + "\n")
    plot(merged, out / "linear_results.png")
    print(md)


def merge(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (backend, experiment, T): the median over repeats of each item's median
    (the per-run numbers stay in the JSON's ``runs``)."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["backend"], r["experiment"], r["T"]), []).append(r)
    merged = []
    for runs in groups.values():
        ok = [r for r in runs if "items" in r]
        if not ok:
            merged.append(runs[-1])
            continue
        out = {k: v for k, v in ok[0].items() if k not in ("items", "repeat")}
        out["repeats"] = len(ok)
        out["items"] = {}
        for item in ok[0]["items"]:
            stats = [r["items"][item] for r in ok if item in r["items"]]
            entry = dict(stats[0])
            entry["median_ms"] = statistics.median(s["median_ms"] for s in stats)
            entry["min_ms"] = min(s["min_ms"] for s in stats)
            entry["reps"] = sum(s["reps"] for s in stats)
            entry["run_medians_ms"] = [s["median_ms"] for s in stats]
            merged_err = [s["max_rel_err_vs_f64"] for s in stats if "max_rel_err_vs_f64" in s]
            if merged_err:
                entry["max_rel_err_vs_f64"] = max(merged_err)
            out["items"][item] = entry
        merged.append(out)
    return merged


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
