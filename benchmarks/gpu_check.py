"""One-shot GPU check of polyrnn: correctness, GRU timings and the linear scan, in minutes.

Usage (from the repository root, on a CUDA machine with CuPy, PyTorch and JAX)::

    python benchmarks/gpu_check.py --out gpu_check.md          # about 4-5 minutes
    python benchmarks/gpu_check.py --device cpu --budget 120   # dry run here, tiny shapes

Parts, each in its own subprocesses (one per backend), so one failure never stops the rest:

a. **correctness** — ``gru_scan`` (both ``reset_after``), ``lstm_scan`` and ``rnn_scan``,
   plain, with ``lengths``, ``reverse`` and both, on CuPy, torch CUDA and JAX GPU, float32,
   against the NumPy float64 reference of the test suite (``tests/reference.py``, written
   from the equations; same float32-rounded inputs); then the gradient of ``sum(hs)``
   (JAX ``grad``, torch autograd, :mod:`polyrnn.vjp` on CuPy) along one random direction
   of all inputs, against the complex-step derivative of that reference.  Error = max |out -
   ref| / max(1, max |ref|) over every output (for a gradient: |<g, v> - exact| /
   max(1, |g| |v|)); PASS at the test suite's float32 tolerance (``tests/tolerances.py``:
   2e-6, 5e-6 through the 50-step scans).  TF32 is switched off for these
   (``torch.backends.*.allow_tf32 = False``, ``jax_default_matmul_precision =
   "highest"``); one extra *info* row per backend shows the error with the framework's
   default precision.  **Any FAIL or ERROR makes the script exit with status 1**, as
   does a ``--device gpu`` run that checked nothing (no CUDA device).
b. **timings** — polyrnn on each GPU backend against ``torch.nn.GRU`` (cuDNN) and a
   hand-written ``jax.lax.scan`` GRU at the four benchmark shapes, forward and
   forward+backward (``bench.py --worker``, synchronised, medians), framework defaults.
c. **linear scan** — if ``polyrnn.linear_scan`` exists: ``method="parallel"`` against
   ``"sequential"`` at T = 4096, 16384, 65536 on JAX and torch, with their agreement.

A global ``--budget`` (seconds) is shared out among the parts (a 30 %, b 55 %, c 15 %,
leftovers carried forward); what does not fit is skipped and said so.  polyrnn is taken
from ``src/``; if ``array_api_compat`` is not installed, a wheel of it in ``.whl/`` (see
``/work/.library/device/README.md``) or ``benchmarks/.whl/`` is put on the path.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness
from _items import SHAPES, Skip, load_lib

ROOT = _harness.ROOT


def _ensure_array_api_compat() -> str:
    """Make ``array_api_compat`` importable (here and in workers); say where it came from."""
    try:
        import array_api_compat

        return f"array_api_compat {array_api_compat.__version__}"
    except ImportError:
        pass
    for folder in (ROOT / ".whl", HERE / ".whl"):
        for wheel in sorted(folder.glob("array_api_compat-*.whl")):
            sys.path.insert(0, str(wheel))  # a pure-Python wheel imports straight from the zip
            old = os.environ.get("PYTHONPATH")
            os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(wheel), old) if p)
            return f"array_api_compat from {wheel.name}"
    return "array_api_compat MISSING: polyrnn will not import (carry its wheel in .whl/)"


COMPAT = _ensure_array_api_compat()
sys.path.insert(0, str(_harness.SRC))
sys.path.insert(0, str(ROOT / "tests"))  # the reference and the tolerances of the test suite

import reference
from tolerances import tolerance

GPU_BACKENDS = ("cupy", "torch", "jax")
CPU_BACKENDS = ("numpy", "torch", "jax", "cupy")
"""Part (a) backends; on the CPU dry run NumPy float32 stands in, CuPy skips itself."""

INFO_TOL = 1e-2
"""Only for the *info* rows at the frameworks' default precision (TF32 on cuDNN)."""
LONG_SCAN = 50
"""From this many steps on, the float32 tolerance is the test suite's long-scan one."""

SCANS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "gru": ("gru_scan", "init_gru", {"reset_after": False}),
    "gru_ra": ("gru_scan", "init_gru", {"reset_after": True}),
    "lstm": ("lstm_scan", "init_lstm", {}),
    "rnn": ("rnn_scan", "init_rnn", {}),
}
"""Case name -> (polyrnn function, initialiser, options)."""
KIND = {"gru_scan": "gru", "lstm_scan": "lstm", "rnn_scan": "rnn"}
"""polyrnn function -> kind of ``reference.scan``."""

VARIANTS: dict[str, tuple[bool, bool]] = {
    "plain": (False, False),
    "lengths": (True, False),
    "reverse": (False, True),
    "lengths+reverse": (True, True),
}
"""Variant -> (with lengths, reverse)."""

CHECK_SIZES = {"small": (7, 3, 5, 4), "medium": (50, 16, 32, 64)}
"""``(T, B, D, H)``; every variant at small, plain and lengths+reverse at medium."""

TIMING_ITEMS = ("cupy", "torch", "jax", "torch.nn.GRU", "jax.lax.scan")
DRY_SHAPES = ("32x1x16x8", "32x4x16x32", "16x8x32x64", "256x2x8x16")
GPU_TIMING = _harness.Timing(
    min_time=0.3, min_reps=5, max_reps=1000, max_time=1.5, warmup_time=0.1, slow_time=6.0
)
DRY_TIMING = _harness.Timing(
    min_time=0.05, min_reps=3, max_reps=50, max_time=0.2, warmup_time=0.02, slow_time=1.0
)
LINEAR_STEPS = {"gpu": (4096, 16384, 65536), "cpu": (64, 256)}
LINEAR_WIDTH = {"gpu": (4, 256), "cpu": (2, 8)}
"""Batch and width of the linear-scan inputs ``(T, B, H)``."""


# --------------------------------------------------------------------------- part (a) worker


def _precision(lib: Any, strict: bool) -> None:
    """TF32 off (``strict``) or the framework's defaults."""
    if lib.name == "torch":
        lib.module.backends.cuda.matmul.allow_tf32 = False  # torch's default too
        lib.module.backends.cudnn.allow_tf32 = not strict  # torch's default: True
    elif lib.name == "jax":
        lib.module.config.update("jax_default_matmul_precision", "highest" if strict else None)


def _outputs(result: Any) -> list[Any]:
    """``(hs, h_last)`` or ``(hs, (h, c))`` as a flat list."""
    hs, last = result
    return [hs, *last] if isinstance(last, tuple | list) else [hs, last]


def _error(outs: Sequence[np.ndarray], refs: Sequence[np.ndarray]) -> float:
    err = 0.0
    for out, ref in zip(outs, refs, strict=True):
        if out.shape != ref.shape:
            raise ValueError(f"shape {out.shape} != reference {ref.shape}")
        scale = max(1.0, float(np.max(np.abs(ref), initial=0.0)))
        diff = np.abs(out.astype(np.float64) - ref)
        err = max(err, float(np.max(diff, initial=0.0)) / scale)
    return err if np.all([np.isfinite(o).all() for o in outs]) else float("inf")


def _case_inputs(
    scan: str, size: tuple[int, int, int, int], with_lengths: bool
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    """float32-exact float64 inputs: ``xs (B, T, D)``, the four weights, lengths or ``None``."""
    import polyrnn

    steps, batch, d_in, hidden = size
    rng = np.random.default_rng(sum(map(ord, scan)) + steps)
    xs = rng.standard_normal((batch, steps, d_in)).astype(np.float32).astype(np.float64)
    init = getattr(polyrnn, SCANS[scan][1])
    params = [np.asarray(a, np.float32).astype(np.float64) for a in init(d_in, hidden, seed=1)]
    lengths = None
    if with_lengths:
        lengths = rng.integers(0, steps + 1, size=batch).astype(np.int32)
        lengths[0], lengths[-1] = steps, 0  # a full sequence and an empty one
        if batch > 2:
            lengths[1] = 1
    return xs, params, lengths


def _forward(scan: str, xs: Any, params: list[Any], lengths: Any, reverse: bool) -> Any:
    import polyrnn

    fn_name, _, options = SCANS[scan]
    cls = {"gru_scan": polyrnn.GRUParams, "lstm_scan": polyrnn.LSTMParams}.get(
        fn_name, polyrnn.RNNParams
    )
    fn = getattr(polyrnn, fn_name)
    return fn(xs, cls(*params), lengths=lengths, reverse=reverse, **options)


def _gradients(lib: Any, scan: str, xs: Any, params: list[Any], lengths: Any) -> list[Any]:
    """d sum(hs) / d (xs, *params) with the library's own machinery."""
    import polyrnn

    if lib.name == "jax":
        import jax
        import jax.numpy as jnp

        def loss(x: Any, *p: Any) -> Any:
            return jnp.sum(_forward(scan, x, list(p), lengths, False)[0])

        grad = jax.jit(jax.grad(loss, argnums=tuple(range(1 + len(params)))))
        return list(grad(xs, *params))
    if lib.name == "torch":
        leaves = [a.clone().requires_grad_(True) for a in (xs, *params)]
        _forward(scan, leaves[0], leaves[1:], lengths, False)[0].sum().backward()
        return [leaf.grad for leaf in leaves]
    import polyrnn.vjp

    fn_name, _, options = SCANS[scan]
    cls = {"gru_scan": polyrnn.GRUParams, "lstm_scan": polyrnn.LSTMParams}.get(
        fn_name, polyrnn.RNNParams
    )
    vjp = getattr(polyrnn.vjp, fn_name + "_vjp")
    (hs, _), backward = vjp(xs, cls(*params), lengths=lengths, **options)
    d_xs, d_params, _ = backward(lib.module.ones_like(hs), None)
    return [d_xs, *d_params]


def _reference_forward(
    scan: str, xs: np.ndarray, params: list[np.ndarray], lengths: Any, reverse: bool
) -> list[np.ndarray]:
    """``(hs, *last)`` of the NumPy float64 reference (complex in, complex out)."""
    fn_name, _, options = SCANS[scan]
    hs, last = reference.scan(
        KIND[fn_name], params, xs, None, lengths=lengths, reverse=reverse, **options
    )
    return _outputs((hs, last))


def _directional_error(
    scan: str, xs: np.ndarray, params: list[np.ndarray], lengths: Any, got: list[np.ndarray]
) -> float:
    """``|<g, v> - d/dt sum(hs)((x, p) + t v)| / max(1, |g| |v|)`` for one random direction
    ``v`` of all inputs at once, the derivative by one complex step of the reference
    (``|g| |v|`` bounds the rounding of the dot product)."""
    inputs = [xs, *params]
    rng = np.random.default_rng(len(scan))
    directions = [rng.standard_normal(a.shape) for a in inputs]

    def loss(*a: Any) -> Any:
        return np.sum(_reference_forward(scan, a[0], list(a[1:]), lengths, False)[0])

    exact = reference.directional_derivative(loss, inputs, directions)
    g64 = [g.astype(np.float64) for g in got]
    if not all(np.isfinite(g).all() for g in g64):
        return float("inf")
    dot = sum(float(np.sum(g * v)) for g, v in zip(g64, directions, strict=True))
    norm_g = np.sqrt(sum(float(np.sum(g * g)) for g in g64))
    norm_v = np.sqrt(sum(float(np.sum(v * v)) for v in directions))
    return abs(dot - exact) / max(1.0, float(norm_g * norm_v))


def _to_float32(lib: Any, a: np.ndarray) -> Any:
    return lib.asarray(a.astype(np.float32))


def check_worker(backend: str, device: str, budget: float) -> None:
    """Part (a) for one backend: one record per case, in this process."""
    deadline = time.monotonic() + budget
    try:
        import polyrnn  # noqa: F401 - an ImportError of a case below means a missing feature

        lib = load_lib(backend, device)
    except Skip as e:
        _harness.emit({"backend": backend, "case": "*", "skipped": str(e)})
        return
    except Exception as e:  # noqa: BLE001 - reported, the other backends go on
        _harness.emit({"backend": backend, "case": "*", "error": f"{type(e).__name__}: {e}"})
        return
    cases = [
        (size, scan, variant, "fwd", True)
        for size in CHECK_SIZES
        for scan in SCANS
        for variant in VARIANTS
        if size == "small" or variant in ("plain", "lengths+reverse")
    ]
    cases += [
        ("medium", scan, v, "grad", True)
        for scan in ("gru_ra", "lstm")
        for v in ("plain", "lengths")
    ]
    cases += [("medium", "gru_ra", "plain", "fwd", False)]  # info: framework-default precision
    for size, scan, variant, kind, strict in cases:
        long = CHECK_SIZES[size][0] >= LONG_SCAN
        record: dict[str, Any] = {
            "backend": backend, "device": lib.device, "size": size, "scan": scan,
            "variant": variant, "kind": kind if strict else f"{kind} (default precision)",
            "tol": tolerance("float32", long=long)[0] if strict else INFO_TOL,
        }  # fmt: skip
        if time.monotonic() > deadline:
            record["skipped"] = "time budget exhausted"
            _harness.emit(record)
            continue
        try:
            with_lengths, reverse = VARIANTS[variant]
            xs, params, lengths = _case_inputs(scan, CHECK_SIZES[size], with_lengths)
            _precision(lib, strict)
            t0 = time.perf_counter()
            on = functools.partial(_to_float32, lib)
            lens = None if lengths is None else lib.asarray(lengths)
            if kind == "fwd":
                got = _outputs(_forward(scan, on(xs), [on(p) for p in params], lens, reverse))
            else:
                got = _gradients(lib, scan, on(xs), [on(p) for p in params], lens)
            got_np = [lib.to_numpy(g) for g in got]
            if any(g.dtype != np.float32 for g in got_np):
                raise TypeError(f"dtypes {[str(g.dtype) for g in got_np]}, expected float32")
            if kind == "fwd":
                want = _reference_forward(scan, xs, params, lengths, reverse)
                record["err"] = _error(got_np, want)
            else:
                record["err"] = _directional_error(scan, xs, params, lengths, got_np)
            record["seconds"] = time.perf_counter() - t0
            record["status"] = "PASS" if record["err"] <= record["tol"] else "FAIL"
            if not strict:
                record["status"] = "info"
        except Skip as e:
            record["skipped"] = str(e)
        except ImportError as e:
            record["skipped"] = f"{type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - reported, the next case goes on
            record["error"] = f"{type(e).__name__}: {e}"
            record["traceback"] = traceback.format_exc()
        _harness.emit(record)


# --------------------------------------------------------------------------- part (c) worker


def _linear_call(fn: Callable[..., Any], a: Any, b: Any, method: str) -> Any:
    """``fn(a, b, method=...)`` over time-major ``(T, B, H)``, whatever the exact signature."""
    names = inspect.signature(fn).parameters
    kwargs: dict[str, Any] = {"method": method}
    if "time_major" in names:
        kwargs["time_major"] = True
    elif "axis" in names:
        kwargs["axis"] = 0
    out = fn(a, b, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def linear_worker(backend: str, device: str, budget: float) -> None:
    """Part (c) for one backend: parallel vs sequential ``polyrnn.linear_scan``."""
    deadline = time.monotonic() + budget
    import polyrnn

    fn = getattr(polyrnn, "linear_scan", None)
    if fn is None:  # not exported (yet): the module that defines it
        try:
            from polyrnn.linear import linear_scan as fn
        except ImportError:
            _harness.emit({"backend": backend, "skipped": "polyrnn.linear_scan does not exist"})
            return
    try:
        lib = load_lib(backend, device)
    except Skip as e:
        _harness.emit({"backend": backend, "skipped": str(e)})
        return
    batch, width = LINEAR_WIDTH[device]
    timing = GPU_TIMING if device == "gpu" else DRY_TIMING
    for steps in LINEAR_STEPS[device]:
        rng = np.random.default_rng(steps)
        a = lib.asarray(rng.uniform(0.5, 1.0, (steps, batch, width)).astype(np.float32))
        b = lib.asarray(rng.standard_normal((steps, batch, width)).astype(np.float32))
        outs = {}
        for method in ("parallel", "sequential"):  # the one of interest first
            record: dict[str, Any] = {"backend": backend, "T": steps, "method": method}
            if time.monotonic() > deadline:
                record["skipped"] = "time budget exhausted"
                _harness.emit(record)
                continue
            try:
                stats, out = _harness.measure(
                    functools.partial(_timed_linear, lib, fn, a, b, method), timing
                )
                outs[method] = lib.to_numpy(out).astype(np.float64)
                record.update(stats, device=lib.device, signature=str(inspect.signature(fn)))
                if len(outs) == 2:
                    ref = outs["sequential"]
                    diff = np.max(np.abs(outs["parallel"] - ref)) / max(1.0, np.max(np.abs(ref)))
                    record["agree_err"] = float(diff)
            except Exception as e:  # noqa: BLE001 - reported, the next case goes on
                record["error"] = f"{type(e).__name__}: {e}"
                record["traceback"] = traceback.format_exc()
            _harness.emit(record)


def _timed_linear(lib: Any, fn: Callable[..., Any], a: Any, b: Any, method: str) -> Any:
    out = _linear_call(fn, a, b, method)
    lib.sync(out)
    return out


# --------------------------------------------------------------------------- driver


class Budget:
    """The global time budget, shared out among parts and, within a part, among workers."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def part(self, share_of_rest: float) -> float:
        """Seconds for the next part: ``share_of_rest`` of what is left."""
        return self.left() * share_of_rest


def _run_workers(
    title: str,
    commands: Sequence[tuple[str, list[str]]],
    part_seconds: float,
    show: Callable[[dict[str, Any]], str | None],
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Run each ``(name, argv)`` in turn, each with a fair share of ``part_seconds``; the
    records, the problems, and whether Ctrl-C stopped it."""
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    end = time.monotonic() + part_seconds

    def on_record(r: dict[str, Any]) -> None:
        line = show(r)
        if line:
            print(f"  {line}", file=sys.stderr, flush=True)

    for k, (name, argv) in enumerate(commands):
        share = max(0.0, end - time.monotonic()) / (len(commands) - k)
        if share < 3:
            problems.append(f"{name}: skipped, time budget exhausted")
            print(f"[{title}] {name}: skipped, time budget exhausted", file=sys.stderr)
            continue
        print(f"[{title}] {name} ({share:.0f} s) ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, f"--budget={share - 2:.1f}"]
        try:
            found, problem = _harness.run_worker(cmd, share + 20, on_record=on_record)
        except _harness.Interrupted as e:  # Ctrl-C: report what there is, skip the rest
            records += e.records
            problems.append(f"{name}: interrupted by the user")
            return records, problems, True
        records += found
        if problem:
            problems.append(f"{name}: {problem}")
            print(f"  {name}: {problem}", file=sys.stderr, flush=True)
    return records, problems, False


def _show_check(r: dict[str, Any]) -> str | None:
    keys = ("backend", "size", "scan", "variant", "kind")
    where = " ".join(str(r[k]) for k in keys if k in r)
    if "status" in r:
        return f"{where}: err {r['err']:.2e} {r['status']}"
    if "error" in r:
        return f"{where}: ERROR {r['error']}"
    return f"{where}: skipped ({r['skipped']})" if r.get("case") == "*" else None


def _show_timing(r: dict[str, Any]) -> str | None:
    where = f"{r['item']} {r['shape']} {r['mode']}"
    if "median_ms" in r:
        return (
            f"{where}: {_harness.fmt_ms(r['median_ms'])} ms ({r['reps']} reps, {r.get('device')})"
        )
    return f"{where}: {r.get('error', r.get('skipped'))}"


def _show_linear(r: dict[str, Any]) -> str | None:
    where = " ".join(str(r[k]) for k in ("backend", "T", "method") if k in r)
    if "median_ms" in r:
        return f"{where}: {_harness.fmt_ms(r['median_ms'])} ms"
    return f"{where}: {r.get('error', r.get('skipped'))}"


def _table_a(records: Sequence[dict[str, Any]]) -> str:
    header = [
        "backend",
        "device",
        "size",
        "scan",
        "variant",
        "kind",
        "max rel err",
        "tol",
        "result",
    ]
    rows = []
    for r in records:
        if "status" in r:
            result, err = r["status"], f"{r['err']:.2e}"
        elif "error" in r:
            result, err = "ERROR", r["error"].splitlines()[0][:80]
        else:
            result, err = "skip", r.get("skipped", "")[:80]
        rows.append([
            r.get("backend", ""), r.get("device", ""), r.get("size", ""), r.get("scan", "*"),
            r.get("variant", ""), r.get("kind", ""), err, f"{r['tol']:.0e}" if "tol" in r else "",
            result,
        ])  # fmt: skip
    counts = {s: sum(row[-1] == s for row in rows) for s in ("PASS", "FAIL", "ERROR", "skip")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return _harness.markdown(header, rows) + f"\n\n{summary or 'no cases ran'}."


def _table_b(records: Sequence[dict[str, Any]]) -> str:
    shapes: dict[str, tuple[int, ...]] = {}
    for r in records:
        shapes.setdefault(r["shape"], tuple(r["dims"]))
    columns = {
        "cupy": "polyrnn[cupy]", "torch": "polyrnn[torch]", "jax": "polyrnn[jax]",
        "torch.nn.GRU": "torch.nn.GRU (cuDNN)", "jax.lax.scan": "jax lax.scan",
    }  # fmt: skip
    ratios = (
        _harness.Ratio("torch/nn.GRU", "torch", "torch.nn.GRU"),
        _harness.Ratio("jax/lax.scan", "jax", "jax.lax.scan"),
        _harness.Ratio("cupy/nn.GRU", "cupy", "torch.nn.GRU"),
    )
    table = _harness.timing_table(records, shapes, ("fwd", "fwd+bwd"), columns, ratios)
    notes = sorted(
        {f"- {r['item']}: {r['skipped']}" for r in records if "skipped" in r}
        | {f"- {r['item']} {r['shape']} {r['mode']}: {r['error']}" for r in records if "error" in r}
    )
    return table + ("\n\n" + "\n".join(notes) if notes else "")


def _table_c(records: Sequence[dict[str, Any]]) -> str:
    header = ["backend", "T", "sequential ms", "parallel ms", "seq/par", "max rel diff"]
    cells: dict[tuple[str, int], dict[str, Any]] = {}
    notes = []
    for r in records:
        if "T" in r and "median_ms" in r:
            cells.setdefault((r["backend"], r["T"]), {})[r["method"]] = r
        elif "median_ms" not in r:
            where = " ".join(str(r[k]) for k in ("backend", "T", "method") if k in r)
            notes.append(f"- {where}: {r.get('error') or r.get('skipped')}")
    rows = []
    for (backend, steps), m in cells.items():
        seq, par = m.get("sequential", {}).get("median_ms"), m.get("parallel", {}).get("median_ms")
        agree = m.get("sequential", {}).get("agree_err")
        rows.append([
            backend, str(steps), _harness.fmt_ms(seq), _harness.fmt_ms(par),
            _harness.fmt_ratio(seq / par if seq and par else None),
            "—" if agree is None else f"{agree:.1e}",
        ])  # fmt: skip
    text = _harness.markdown(header, rows) if rows else "no measurement"
    return text + ("\n\n" + "\n".join(sorted(set(notes))) if notes else "")


def _gpu_name() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
        return out.stdout.strip().replace("\n", "; ") or "nvidia-smi printed nothing"
    except (OSError, subprocess.SubprocessError) as e:
        return f"no nvidia-smi ({type(e).__name__})"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("gpu", "cpu"), default="gpu",
                   help="cpu: dry run of the same code paths with tiny shapes")  # fmt: skip
    p.add_argument("--budget", type=float, default=280.0, help="seconds for everything")
    p.add_argument("--parts", default="abc", help="which parts to run, e.g. 'ab'")
    p.add_argument("--out", type=Path, help="also write the tables (markdown) and a .json here")
    p.add_argument("--check-worker", metavar="BACKEND", help=argparse.SUPPRESS)
    p.add_argument("--linear-worker", metavar="BACKEND", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.check_worker:
        check_worker(args.check_worker, args.device, args.budget)
        return 0
    if args.linear_worker:
        linear_worker(args.linear_worker, args.device, args.budget)
        return 0

    budget = Budget(args.budget)
    t0 = time.monotonic()
    info = _harness.machine_info()
    gpu = _gpu_name() if args.device == "gpu" else "dry run on the CPU"
    header = [
        f"# polyrnn GPU check ({args.device})",
        "",
        f"{gpu}; {info['cpu']}, {info['cores']} cores; Python {info['python']}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f"; {COMPAT}; git {info['git_commit']}{' (dirty)' if info['git_dirty'] else ''}; "
        f"{info['date']}",
    ]
    print("\n".join(header), file=sys.stderr)
    sections: list[str] = ["\n".join(header)]
    payload: dict[str, Any] = {"machine": info, "gpu": gpu, "compat": COMPAT, "device": args.device}
    dev = f"--device={args.device}"
    shares = {"a": 0.3, "b": 0.55 / 0.7, "c": 1.0}  # of what is left when the part starts
    stop = False  # Ctrl-C: what was measured is still printed and written

    if "a" in args.parts:
        backends = GPU_BACKENDS if args.device == "gpu" else CPU_BACKENDS
        cmds = [(b, ["--check-worker", b, dev]) for b in backends]
        recs, problems, stop = _run_workers("a", cmds, budget.part(shares["a"]), _show_check)
        text = _table_a(recs) + "".join(f"\n- {x}" for x in problems)
        sections.append("## a. Correctness against the NumPy float64 reference\n\n" + text)
        payload["a"] = recs
        payload["a_problems"] = problems
        print("\n" + sections[-1] + "\n", flush=True)

    if "b" in args.parts and not stop:
        shapes = ",".join(SHAPES) if args.device == "gpu" else ",".join(DRY_SHAPES)
        timing = GPU_TIMING if args.device == "gpu" else DRY_TIMING
        cmds = [
            (item, ["--worker", item, shapes, "fwd,fwd+bwd", dev, *timing.as_args()])
            for item in TIMING_ITEMS
        ]
        recs, problems, stop = _run_workers("b", cmds, budget.part(shares["b"]), _show_timing)
        text = _table_b(recs) + "".join(f"\n- {x}" for x in problems)
        sections.append(
            "## b. GRU timings, median ms per call (float32, reset_after=True, time-major)\n\n"
            + text
        )
        payload["b"] = recs
        print("\n" + sections[-1] + "\n", flush=True)

    if "c" in args.parts and not stop:
        cmds = [(b, ["--linear-worker", b, dev]) for b in ("jax", "torch")]
        recs, problems, stop = _run_workers("c", cmds, budget.part(shares["c"]), _show_linear)
        text = _table_c(recs) + "".join(f"\n- {x}" for x in problems)
        sections.append("## c. polyrnn.linear_scan, parallel vs sequential\n\n" + text)
        payload["c"] = recs
        print("\n" + sections[-1] + "\n", flush=True)

    verdict = None
    if "a" in args.parts:
        verdict = _verdict(payload.get("a"), payload.get("a_problems", []), args.device)
    footer = f"Total {time.monotonic() - t0:.0f} s of a {args.budget:.0f} s budget."
    if verdict:
        footer += f"\n\nFAILED: {verdict}"
    print(footer, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n\n".join([*sections, footer]) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.out} and {args.out.with_suffix('.json')}", file=sys.stderr)
    if verdict:
        print(f"gpu_check: FAILED: {verdict}", file=sys.stderr, flush=True)
        return 1
    return 0


def _verdict(
    records: Sequence[dict[str, Any]] | None, worker_problems: Sequence[str], device: str
) -> str | None:
    """Why part (a) failed, or ``None``: any case over its tolerance or raising, a backend
    that could not load for another reason than a missing device or library, a worker
    that crashed, or (on ``--device gpu``) no case run at all."""
    records = records or []
    failed = [r for r in records if r.get("status") == "FAIL" or "error" in r]
    ran = [r for r in records if r.get("status") in ("PASS", "FAIL")]
    problems = [
        " ".join(str(r[k]) for k in ("backend", "size", "scan", "variant", "kind") if k in r)
        + (f": err {r['err']:.2e} > tol {r['tol']:.0e}" if "err" in r else f": {r.get('error')}")
        for r in failed
    ]
    problems += [p for p in worker_problems if "time budget" not in p]
    if problems:
        return f"{len(problems)} correctness case(s) failed:\n- " + "\n- ".join(problems)
    if not ran and device == "gpu":
        skipped = sorted({str(r.get("skipped")) for r in records if "skipped" in r})
        return "no correctness case ran on the GPU (" + "; ".join(skipped or ["no records"]) + ")"
    return None


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:  # part (b) runs bench.py's worker, polyrnn from src/
        import bench

        sys.exit(bench.worker(sys.argv[2:]))
    sys.exit(main())
