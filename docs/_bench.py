"""The GRU benchmark's results, read from ``benchmarks/results/bench.json``.

The one source of the figures that the Performance page shows and the README quotes
(``docs/tests/test_figures.py`` checks the README against it).  Nothing here is part of
polyrnn; ``benchmarks/bench.py`` writes the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "results" / "bench.json"

PEERS = {
    "JAX / hand-written `lax.scan`": ("jax", "jax.lax.scan"),
    "torch / `torch.nn.GRU`": ("torch", "torch.nn.GRU"),
    "NumPy / `torch.nn.GRU`": ("numpy", "torch.nn.GRU"),
}
"""polyrnn on a library / its peer: below 1, polyrnn is faster.  Targets: 1.10, 1.10, 1.25."""

SPEED_UPS = {"NumPy": "numpy", "JAX": "jax", "torch": "torch"}
"""The seed notebook's loop, in eager ``jax.numpy`` as the notebook ran it, / polyrnn on
each library, at the seed shape, forward: polyrnn's speed-up."""

MODES = {"fwd": "forward", "fwd+bwd": "forward + backward"}


def load(path: Path = BENCH) -> dict[str, Any]:
    return json.loads(path.read_text())


def medians(bench: dict[str, Any]) -> dict[tuple[str, str, str], float]:
    """``(shape, mode, item) -> median ms`` of every item that ran."""
    return {
        (r["shape"], r["mode"], r["item"]): r["median_ms"]
        for r in bench["results"]
        if r.get("median_ms") is not None
    }


def ratios(bench: dict[str, Any]) -> list[tuple[str, str, dict[str, float | None]]]:
    """``(shape, mode, {peer column: ratio or None})`` for every shape and mode."""
    ms = medians(bench)
    rows = []
    for shape in bench["shapes"]:
        for mode in MODES:
            row: dict[str, float | None] = {}
            for label, (ours, peer) in PEERS.items():
                a, b = ms.get((shape, mode, ours)), ms.get((shape, mode, peer))
                row[label] = a / b if a is not None and b is not None else None
            rows.append((shape, mode, row))
    return rows


def speed_ups(bench: dict[str, Any]) -> dict[str, float]:
    """The seed notebook's loop / polyrnn, by library, at the seed shape, forward."""
    ms = medians(bench)
    loop = ms[("seed", "fwd", "seed-loop")]
    return {name: loop / ms[("seed", "fwd", item)] for name, item in SPEED_UPS.items()}


def machine(bench: dict[str, Any]) -> str:
    """Where and when the benchmark ran, and with what."""
    m = bench["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    load_avg = max(m["load_average"])
    return (
        f"{m['cpu']}, {m['cores_usable']} cores, load average up to {load_avg:.1f} at the "
        f"start; Python {m['python']}, {versions}; {m['date'][:10]}; "
        f"{bench['rounds']} rounds, {bench['run_seconds'] / 60:.0f} minutes"
    )
