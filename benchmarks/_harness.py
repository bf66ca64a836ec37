"""Timing, the worker protocol, machine information and tables, shared by the benchmark scripts.

A worker is a fresh Python process that measures one item (``bench.py --worker``); it
prints one line ``BENCH-JSON {...}`` per measurement on stdout.  Frameworks never share a
process: on a 2-core machine two thread pools in one process slow each other 10-100x.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
MARK = "BENCH-JSON "


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """How long to measure: at least ``min_reps`` calls and ``min_time`` seconds of them,
    at most ``max_reps`` calls and (beyond ``min_reps``) ``max_time`` seconds.  An item
    so slow that ``min_reps`` calls would take over ``slow_time`` gets fewer, never under 3."""

    min_time: float = 1.0
    min_reps: int = 5
    max_reps: int = 5000
    max_time: float = 4.0
    warmup_time: float = 0.3
    slow_time: float = 20.0

    def as_args(self) -> list[str]:
        return [
            f"--min-time={self.min_time}",
            f"--min-reps={self.min_reps}",
            f"--max-reps={self.max_reps}",
            f"--max-time={self.max_time}",
            f"--warmup-time={self.warmup_time}",
            f"--slow-time={self.slow_time}",
        ]


DEFAULT = Timing()
QUICK = Timing(
    min_time=0.2, min_reps=3, max_reps=300, max_time=1.0, warmup_time=0.05, slow_time=5.0
)


def _once(call: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = call()  # the call waits for the device itself
    return time.perf_counter() - t0, out


def measure(call: Callable[[], Any], timing: Timing) -> tuple[dict[str, Any], Any]:
    """Time ``call`` (which must block until its result is ready); return stats in ms and
    the output of the last call.

    The first call (JIT compilation, caches) is reported apart as ``first_ms``; then
    warm-up calls for ``warmup_time`` estimate the cost of a call, which sets the number
    of timed repetitions.  The garbage collector is off while timing, as in :mod:`timeit`.
    """
    first, out = _once(call)
    warm: list[float] = []
    while not warm or (sum(warm) < timing.warmup_time and len(warm) < 50):
        t, out = _once(call)
        warm.append(t)
    per_call = max(statistics.median(warm), 1e-7)
    reps = min(math.ceil(timing.min_time / per_call), timing.max_reps)
    reps = max(min(reps, math.floor(timing.max_time / per_call)), timing.min_reps)
    if reps * per_call > timing.slow_time:
        reps = max(3, math.floor(timing.slow_time / per_call))
    samples = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(reps):
            t, out = _once(call)
            samples.append(t)
    finally:
        if gc_was_enabled:
            gc.enable()
    return summarise(samples, first), out


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def summarise(samples: Sequence[float], first: float | None = None) -> dict[str, Any]:
    """Median, quartiles, min, max (ms) and count of a list of seconds."""
    ms = sorted(s * 1e3 for s in samples)
    q1, _, q3 = statistics.quantiles(ms, n=4) if len(ms) > 1 else (ms[0], 0, ms[0])
    stats = {
        "median_ms": statistics.median(ms),
        "q1_ms": q1,
        "q3_ms": q3,
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "reps": len(ms),
    }
    if first is not None:
        stats["first_ms"] = first * 1e3
    return stats


# --------------------------------------------------------------------------- worker protocol


def emit(record: dict[str, Any]) -> None:
    """Print one measurement for the driver."""
    print(MARK + json.dumps(record), flush=True)


def child_env(threads: int | None = None) -> dict[str, str]:
    """The environment of a worker: this checkout's ``src`` first on ``PYTHONPATH``, JAX not
    grabbing most of a GPU's memory up front, and with ``threads`` each framework's CPU
    thread pools (OpenMP, BLAS, XLA) limited to that many threads."""
    env = dict(os.environ)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
        xla = f"--xla_cpu_multi_thread_eigen={str(threads > 1).lower()}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {xla}".strip()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a worker: the worker is ended; ``records`` holds what it had reported."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        super().__init__()
        self.records = records


def run_worker(
    cmd: Sequence[str],
    timeout: float,
    threads: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Run a worker command; its records (each also passed to ``on_record`` as it arrives)
    and, when it failed, timed out or printed none, a short reason with its last stderr lines.
    Ctrl-C ends the worker and raises :class:`Interrupted`."""
    proc = subprocess.Popen(
        list(cmd),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(threads),
    )
    records: list[dict[str, Any]] = []
    stderr: list[str] = []

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(MARK):
                records.append(json.loads(line[len(MARK) :]))
                if on_record is not None:
                    on_record(records[-1])

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr.append(line.rstrip())
            del stderr[:-20]

    readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
    for t in readers:
        t.start()
    try:
        rc = proc.wait(timeout=max(timeout, 1.0))
        problem = "" if rc == 0 else f"exit status {rc}"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        problem = f"timed out after {timeout:.0f} s"
    except KeyboardInterrupt:
        proc.kill()
        proc.wait()
        for t in readers:
            t.join(timeout=5)
        raise Interrupted(records) from None
    for t in readers:
        t.join(timeout=5)
    if problem or not records:
        tail = " | ".join(line for line in stderr[-3:] if line.strip())
        problem = "; ".join(p for p in (problem or "no result", tail) if p)
    return records, problem


# --------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def machine_info() -> dict[str, Any]:
    """CPU, cores, load, Python and library versions, git commit and date (imports no framework)."""
    dists = (
        "polyrnn", "numpy", "array-api-compat", "jax", "jaxlib", "torch", "cupy-cuda12x",
        "cupy-cuda13x", "array-api-strict",
    )  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {d: v for d in dists if (v := _version(d)) is not None},
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def import_time(n: int = 10) -> dict[str, Any]:
    """``import polyrnn`` in a fresh interpreter: median wall time of ``n`` runs minus that of
    ``python -c pass``, and which frameworks the import pulled in (should be none)."""
    probe = (
        "import polyrnn, sys, json; print(json.dumps(sorted("
        "m for m in ('torch', 'jax', 'cupy', 'array_api_strict', 'tensorflow') if m in sys.modules)))"
    )
    times: dict[str, list[float]] = {"pass": [], "import polyrnn": []}
    for _ in range(n):
        for code, key in (("pass", "pass"), ("import polyrnn", "import polyrnn")):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], env=child_env(), check=True)
            times[key].append(time.perf_counter() - t0)
    out = subprocess.run(
        [sys.executable, "-c", probe], env=child_env(), capture_output=True, text=True, check=True
    )
    base = statistics.median(times["pass"]) * 1e3
    total = statistics.median(times["import polyrnn"]) * 1e3
    return {
        "import_ms": total - base,
        "interpreter_ms": base,
        "runs": n,
        "frameworks_imported": json.loads(out.stdout),
    }


# --------------------------------------------------------------------------- tables


def fmt_ms(v: float | None) -> str:
    """A duration in ms with about three significant digits."""
    if v is None or not math.isfinite(v):
        return "—"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_ratio(v: float | None) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table, columns padded for reading as text."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


@dataclass(frozen=True)
class Ratio:
    """A column ``numerator / denominator`` of two items' medians."""

    label: str
    numerator: str
    denominator: str


def timing_table(
    records: Sequence[dict[str, Any]],
    shapes: dict[str, tuple[int, ...]],
    modes: Sequence[str],
    columns: dict[str, str],
    ratios: Sequence[Ratio],
) -> str:
    """Rows: shape x mode; columns: each item's median ms (``columns``: item -> header),
    then the ratios.  A cell is ``—`` where the item did not run, ``skip`` or ``err``; an
    item skipped everywhere gets no column (the list of skips says why), nor its ratios."""
    cell: dict[tuple[str, str, str], dict[str, Any]] = {
        (r["shape"], r["mode"], r["item"]): r for r in records
    }
    ran = {r["item"] for r in records if "skipped" not in r}
    columns = {item: label for item, label in columns.items() if item in ran}
    ratios = [r for r in ratios if r.numerator in columns and r.denominator in columns]

    def median(shape: str, mode: str, item: str) -> float | None:
        r = cell.get((shape, mode, item))
        return None if r is None else r.get("median_ms")

    header = ["shape (T,B,D,H)", "mode", *columns.values(), *(r.label for r in ratios)]
    rows = []
    for shape, dims in shapes.items():
        for mode in modes:
            text = "x".join(map(str, dims))
            row = [shape if shape == text else f"{shape} {','.join(map(str, dims))}", mode]
            for item in columns:
                r = cell.get((shape, mode, item))
                if r is None:
                    row.append("—")
                elif "median_ms" in r:
                    row.append(fmt_ms(r["median_ms"]))
                else:
                    row.append("err" if "error" in r else "skip")
            for ratio in ratios:
                a, b = median(shape, mode, ratio.numerator), median(shape, mode, ratio.denominator)
                row.append(fmt_ratio(a / b) if a is not None and b else "—")
            if any(c not in ("—", "skip") for c in row[2:]):
                rows.append(row)
    return markdown(header, rows)


def spread_table(records: Sequence[dict[str, Any]], labels: dict[str, str]) -> str:
    """Every measurement: median, each round's median (or the quartiles of a single round),
    min-max, repetitions, first call (compile)."""
    several = any(len(r.get("round_medians_ms", ())) > 1 for r in records)
    spread = "round medians ms" if several else "IQR ms"
    header = ["item", "shape", "mode", "median ms", spread, "min–max ms", "reps", "first call ms"]
    rows = [
        [
            labels.get(r["item"], r["item"]),
            r["shape"],
            r["mode"],
            fmt_ms(r["median_ms"]),
            " / ".join(fmt_ms(m) for m in r["round_medians_ms"])
            if len(r.get("round_medians_ms", ())) > 1
            else f"{fmt_ms(r['q1_ms'])}–{fmt_ms(r['q3_ms'])}",
            f"{fmt_ms(r['min_ms'])}–{fmt_ms(r['max_ms'])}",
            str(r["reps"]),
            fmt_ms(r.get("first_ms")),
        ]
        for r in records
        if "median_ms" in r
    ]
    return markdown(header, rows)
