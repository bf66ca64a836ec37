"""Benchmark polyrnn's GRU scan on each backend against its peers.

Usage (from the repository root)::

    python benchmarks/bench.py                    # every shape, 3 rounds: ~20 min on 2 idle cores
    python benchmarks/bench.py --quick            # smoke run: seed and lm shapes, few reps, 1 round
    python benchmarks/bench.py --shapes seed,lm --items numpy,torch,torch.nn.GRU
    python benchmarks/bench.py --all              # also polyrnn on array_api_strict

Each item is measured at each shape in its own fresh process (``--worker``), so no two
frameworks' thread pools ever share one.  The same kernel measured in two processes can
differ by 20% (thread placement, memory layout), so a run makes ``--rounds`` passes over
all the jobs, interleaved, and reports the median of the rounds' medians.  The work is a float32 GRU with
``reset_after=True`` over time-major ``xs (T, B, D)``, forward (``fwd``) and forward plus
the gradient of ``sum(hs)`` with respect to ``xs`` and all weights (``fwd+bwd``); see
``_items.py`` for the items.  Results: a table on stdout, and ``bench.json``,
``bench.md`` and ``bench.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness
from _items import ITEMS, MODES, SHAPES, Skip, gru_inputs, parse_shape

RATIOS = (
    _harness.Ratio("jax/lax.scan", "jax", "jax.lax.scan"),
    _harness.Ratio("torch/nn.GRU", "torch", "torch.nn.GRU"),
    _harness.Ratio("numpy/nn.GRU", "numpy", "torch.nn.GRU"),
    _harness.Ratio("seed/numpy", "seed-loop", "numpy"),
    _harness.Ratio("seed/jax", "seed-loop", "jax"),
    _harness.Ratio("seed/torch", "seed-loop", "torch"),
)
"""Ratio columns of the table: polyrnn / its peer (lower is better), and the seed
notebook's loop / polyrnn (polyrnn's speed-up)."""

AGREEMENT_TOL = 1e-3
"""Largest relative difference of checksums between items computing the same numbers."""


# --------------------------------------------------------------------------- worker


def worker(argv: Sequence[str]) -> int:
    """``--worker ITEM SHAPES MODES``: measure one item at each shape and mode, in this process."""
    p = argparse.ArgumentParser(prog="bench.py --worker")
    p.add_argument("item", choices=sorted(ITEMS))
    p.add_argument("shapes", help="comma-separated: names of SHAPES or 'TxBxDxH'")
    p.add_argument("modes", help="comma-separated: fwd, fwd+bwd")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--budget", type=float, default=math.inf, help="seconds; skip what is left")
    for name, default in vars(_harness.DEFAULT).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(default), default=default)
    args = p.parse_args(argv)
    timing = _harness.Timing(**{k: getattr(args, k) for k in vars(_harness.DEFAULT)})
    deadline = time.monotonic() + args.budget
    for shape_text in args.shapes.split(","):
        name, dims = parse_shape(shape_text)
        inputs = gru_inputs(dims)
        for mode in args.modes.split(","):
            record: dict[str, Any] = {
                "item": args.item, "shape": name, "dims": list(dims), "mode": mode,
            }  # fmt: skip
            if time.monotonic() > deadline:
                record["skipped"] = "time budget exhausted"
            else:
                record.update(_measure_one(args.item, inputs, mode, args.device, timing))
            _harness.emit(record)
    return 0


def _measure_one(
    item: str, inputs: dict[str, Any], mode: str, device: str, timing: _harness.Timing
) -> dict[str, Any]:
    try:
        prepared = ITEMS[item].worker(inputs, mode, device)
        stats, out = _harness.measure(prepared.call, timing)
        stats.update(prepared.checksum(out))
        stats["device"] = prepared.lib.device
        return stats
    except Skip as e:
        return {"skipped": str(e)}
    except Exception as e:  # noqa: BLE001 - reported, and the run goes on
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}


# --------------------------------------------------------------------------- driver


def _progress(
    total: int,
) -> tuple[Callable[[str], None], Callable[[str], None], Callable[[], None]]:
    """``(describe the job starting, report a line, close)``: tqdm on stderr when installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        count = [0]

        def start(desc: str) -> None:
            count[0] += 1
            print(f"[{count[0]}/{total}] {desc} ...", file=sys.stderr, flush=True)

        return start, lambda line: print("    " + line, file=sys.stderr, flush=True), lambda: None
    bar = tqdm(total=total, file=sys.stderr, unit="job", dynamic_ncols=True)
    started = [False]

    def start_bar(desc: str) -> None:
        if started[0]:
            bar.update(1)
        started[0] = True
        bar.set_description(desc)

    def close() -> None:
        if started[0]:
            bar.update(1)
        bar.close()

    return start_bar, lambda line: bar.write(line, file=sys.stderr), close


def _jobs(
    items: Sequence[str], shapes: Sequence[str], modes: Sequence[str]
) -> list[tuple[str, str, list[str]]]:
    """``(shape, item, modes)`` in the order measured, one worker process each: items
    interleaved, so a change in the machine's load during the run is shared among them."""
    jobs = []
    for shape in shapes:
        for item in items:
            applicable = [m for m in modes if ITEMS[item].applies(shape, m)]
            if applicable:
                jobs.append((shape, item, applicable))
    return jobs


def _merge_rounds(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per item, shape and mode: the median of the rounds' medians (each round's
    median in ``round_medians_ms``), min and max over every call, repetitions summed, the
    checksum of the first round.  A measurement that failed in some rounds but not in all is
    kept from the rounds it passed, with the failures in ``round_errors``."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["item"], r["shape"], r["mode"]), []).append(r)
    merged = []
    for group in groups.values():
        timed = [r for r in group if "median_ms" in r]
        if not timed:
            merged.append(group[0])
            continue
        record = {
            **timed[0],
            "median_ms": statistics.median(r["median_ms"] for r in timed),
            "round_medians_ms": [r["median_ms"] for r in timed],
            "min_ms": min(r["min_ms"] for r in timed),
            "max_ms": max(r["max_ms"] for r in timed),
            "reps": sum(r["reps"] for r in timed),
        }
        if len(timed) > 1:  # one round's quartiles would not bracket the merged median
            del record["q1_ms"], record["q3_ms"]
        failed = [r["error"] for r in group if "error" in r]
        if failed:
            record["round_errors"] = failed
        merged.append(record)
    return merged


def _agreement(records: Sequence[dict[str, Any]]) -> list[str]:
    """Anomalies: items that should compute the same numbers but whose checksums differ."""
    notes = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if "checksum" in r and ITEMS[r["item"]].same_numbers:
            groups.setdefault((r["shape"], r["mode"]), []).append(r)
    for (shape, mode), group in groups.items():
        ref = next((r for r in group if r["item"] == "torch.nn.GRU"), group[0])
        scale = max(ref["checksum_scale"], 1e-30)
        for r in group:
            rel = abs(r["checksum"] - ref["checksum"]) / scale
            if rel > AGREEMENT_TOL:
                notes.append(
                    f"{r['item']} at {shape} {mode}: checksum {r['checksum']:.6g} differs from "
                    f"{ref['item']}'s {ref['checksum']:.6g} (relative {rel:.1e})"
                )
    return notes


def _plot(
    records: Sequence[dict[str, Any]], shapes: Sequence[str], modes: Sequence[str], path: Path
) -> None:
    """Grouped bars per shape, one panel per mode, log-scale ms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cell = {(r["shape"], r["mode"], r["item"]): r["median_ms"] for r in records if "median_ms" in r}
    items = [i for i in ITEMS if any(k[2] == i for k in cell)]
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    width = 0.8 / max(len(items), 1)
    for ax, mode in zip(axes[0], modes, strict=True):
        for k, item in enumerate(items):
            xs = [i + (k - (len(items) - 1) / 2) * width for i in range(len(shapes))]
            ys = [cell.get((s, mode, item), float("nan")) for s in shapes]
            ax.bar(xs, ys, width, label=ITEMS[item].label)
        ax.set_yscale("log")
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels([f"{s}\n{SHAPES[s]}" for s in shapes], fontsize=8)
        ax.set_ylabel("median ms per call (log)")
        ax.set_title(f"GRU {mode}, float32")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:
        return worker(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few reps, seed and lm shapes only")
    p.add_argument("--shapes", help=f"comma-separated, of {','.join(SHAPES)}")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: fwd, fwd+bwd")
    p.add_argument("--items", help=f"comma-separated, of {','.join(ITEMS)}")
    p.add_argument("--all", action="store_true", help="also the optional items (array_api_strict)")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    p.add_argument("--timeout", type=float, default=None, help="seconds per measurement")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per framework (OMP/BLAS/XLA); default: each framework's own choice",
    )
    p.add_argument(
        "--rounds", type=int, default=None, help="passes over all jobs (default 3; --quick: 1)"
    )
    p.add_argument("--no-import-time", action="store_true")
    args = p.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if rounds < 1:
        p.error(f"--rounds must be at least 1, got {rounds}")

    timing = _harness.QUICK if args.quick else _harness.DEFAULT
    timeout = args.timeout or (180.0 if args.quick else 300.0)
    shapes = (args.shapes or ("seed,lm" if args.quick else ",".join(SHAPES))).split(",")
    modes = args.modes.split(",")
    if args.items:
        items = args.items.split(",")
    else:
        items = [name for name, it in ITEMS.items() if args.all or not it.optional]
    for value, known, what in (
        (shapes, SHAPES, "shape"),
        (items, ITEMS, "item"),
        (modes, MODES, "mode"),
    ):
        unknown = [v for v in value if v not in known]
        if unknown:
            p.error(f"unknown {what} {unknown}; choose from {list(known)}")

    info = _harness.machine_info()
    print(f"# polyrnn GRU benchmark — {info['cpu']}, {info['cores']} cores, "
          f"load {info['load_average']}, {info['date']}", file=sys.stderr)  # fmt: skip
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    jobs = _jobs(items, shapes, modes) * rounds
    start, report, close = _progress(len(jobs))
    t_start = time.monotonic()
    interrupted = ""

    def show(r: dict[str, Any]) -> None:
        where = f"{r['item']:>14} {r['shape']:>5} {r['mode']:<7}"
        if "median_ms" in r:
            report(f"{where} {_harness.fmt_ms(r['median_ms']):>8} ms  ({r['reps']} reps)")
        elif "error" in r:
            report(f"{where} ERROR {r['error'].splitlines()[0]}")

    for shape, item, item_modes in jobs:
        start(f"{item} {shape}")
        base = {"item": item, "shape": shape, "dims": list(SHAPES[shape])}
        if importlib.util.find_spec(ITEMS[item].requires) is None:
            why = f"{ITEMS[item].requires} is not installed"
            found = [{**base, "mode": m, "skipped": why} for m in item_modes]
        else:
            cmd = [sys.executable, __file__, "--worker", item, shape, ",".join(item_modes)]
            cmd += [f"--device={args.device}", *timing.as_args()]
            try:
                found, problem = _harness.run_worker(
                    cmd, timeout * len(item_modes), threads=args.threads, on_record=show
                )
            except _harness.Interrupted as e:  # Ctrl-C: keep what was measured, write it out
                records += e.records
                interrupted = f"interrupted by the user during {item} {shape}"
                break
            done = {r["mode"] for r in found}
            missing = [{**base, "mode": m, "error": problem} for m in item_modes if m not in done]
            for r in missing:
                show(r)
            found += missing
        records += found
    close()
    run_s = time.monotonic() - t_start
    records = _merge_rounds(records)

    imports = None if args.no_import_time or interrupted else _harness.import_time()
    skips = sorted({f"{ITEMS[r['item']].label}: {r['skipped']}" for r in records if "skipped" in r})
    errors = [f"{ITEMS[r['item']].label} {r['shape']} {r['mode']}: {r['error']}"
              for r in records if "error" in r]  # fmt: skip
    notes += [interrupted] if interrupted else []
    notes += _agreement(records)
    notes += [
        f"{r['item']} {r['shape']} {r['mode']} failed in {len(r['round_errors'])} of {rounds} "
        f"rounds (the others are reported): {r['round_errors'][0].splitlines()[0]}"
        for r in records
        if "round_errors" in r
    ]
    load_end = _harness.machine_info()["load_average"]
    cores = info["cores_usable"] or info["cores"] or 1
    if max(info["load_average"][0], load_end[0]) > cores + 0.5:
        notes.append(
            f"machine busy: load average {info['load_average'][0]:.1f} at start, "
            f"{load_end[0]:.1f} at end, on {cores} cores; timings are inflated and noisy"
            + (
                ""
                if args.threads
                else " (try --threads 1: OpenMP pools spin badly when oversubscribed)"
            )
        )

    columns = {i: ITEMS[i].label for i in items}
    shape_dims = {s: SHAPES[s] for s in shapes}
    table = _harness.timing_table(records, shape_dims, modes, columns, RATIOS)
    spread = _harness.spread_table(records, columns)
    lines = [
        f"# polyrnn GRU benchmark ({'quick' if args.quick else 'default'} run)",
        "",
        f"{info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f"; git {info['git_commit']}{' (dirty)' if info['git_dirty'] else ''}; {info['date']}; "
        f"run took {run_s:.0f} s.",
        "",
        (
            f"Median ms per call (median of {rounds} rounds' medians), float32 GRU "
            "(reset_after=True), time-major, one process per item, shape and round.  Ratios: polyrnn / peer (lower is better); seed/x = the seed "
            "notebook's eager loop / polyrnn on x (polyrnn's speed-up)."
        ),
        "",
        table,
        "",
    ]
    if imports:
        lines.append(
            f"`import polyrnn`: {imports['import_ms']:.0f} ms (median of {imports['runs']} fresh "
            f"interpreters, minus {imports['interpreter_ms']:.0f} ms for `python -c pass`); "
            f"frameworks imported: {imports['frameworks_imported'] or 'none'}."
        )
        lines.append("")
    for title, entries in (("Skipped", skips), ("Errors", errors), ("Anomalies", notes)):
        if entries:
            lines += [f"{title}:", *(f"- {e}" for e in entries), ""]
    lines += ["## Spread", "", spread, ""]
    text = "\n".join(lines)
    print("\n".join(lines[: lines.index("## Spread")]))

    args.out.mkdir(parents=True, exist_ok=True)
    _harness.write_atomic(args.out / "bench.md", text)
    payload = {
        "machine": info,
        "load_average_end": load_end,
        "run_seconds": run_s,
        "quick": args.quick,
        "device": args.device,
        "timing": vars(timing),
        "threads": args.threads,
        "rounds": rounds,
        "shapes": shape_dims,
        "import": imports,
        "results": records,
        "skipped": skips,
        "errors": errors,
        "anomalies": notes,
    }
    _harness.write_atomic(args.out / "bench.json", json.dumps(payload, indent=1))
    try:
        _plot(records, shapes, modes, args.out / "bench.png")
    except Exception as e:  # noqa: BLE001 - the plot is a convenience: keep the numbers
        print(f"plot failed: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"wrote {args.out / 'bench.md'}, bench.json, bench.png", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
