"""Training throughput of ``polyrnn.lm`` on NumPy, JAX and PyTorch against a torch-native model.

Each measurement runs in a fresh process (two frameworks' thread pools in one process
slow each other badly on a small machine) with the same thread count for every library.
The rounds interleave the implementations, so a noisy neighbour slows all of them
alike, and the table reports each one's median and its ratio to the torch-native model:
``torch.nn.Embedding`` + ``torch.nn.GRU`` + ``torch.nn.Linear``, ``torch.optim.Adam`` and
``clip_grad_norm_``, the same sizes, batches and carried state.

    python benchmarks/train_throughput.py --hidden 256 --batch 32 --seq-len 32 --threads 2
    python benchmarks/train_throughput.py --json docs/training_results/throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
"""Tiny Shakespeare, beside the checkout as in CI; Python's own documentation text without it."""
IMPLS = ("numpy", "jax", "jax-autodiff", "torch", "torch-native")
"""``jax`` trains by polyrnn's hand-written gradient, jitted (the default); ``jax-autodiff``
by :func:`jax.value_and_grad`."""


def _text() -> str:
    if TEXT.exists():
        return TEXT.read_text(encoding="utf-8")
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def _time_steps(step, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _polyrnn_worker(args: argparse.Namespace) -> list[float]:
    from polyrnn import lm

    backend, _, engine = args.worker.partition("-")
    trainer = lm.Trainer(
        _text(),
        model=lm.ModelConfig(args.embed, args.hidden, 1, "gru"),
        config=lm.TrainConfig(batch=args.batch, seq_len=args.seq_len),
        backend=backend,
        engine=engine or None,
    )
    return _time_steps(lambda: trainer.train_step(1e-3), args.warmup, args.steps)


def _torch_native_worker(args: argparse.Namespace) -> list[float]:
    import torch

    from polyrnn import lm

    text = _text()
    vocab = lm.Vocab.from_text(text)
    batches = lm.StreamBatches(vocab.encode(text), batch=args.batch, seq_len=args.seq_len)
    v = len(vocab)
    embed = torch.nn.Embedding(v, args.embed)
    gru = torch.nn.GRU(args.embed, args.hidden, batch_first=True)
    readout = torch.nn.Linear(args.hidden, v)
    weights = [*embed.parameters(), *gru.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(weights, lr=1e-3)
    carry = {"k": 0, "h": torch.zeros(1, args.batch, args.hidden)}

    def step() -> None:
        x, y = (torch.from_numpy(a) for a in batches[carry["k"] % len(batches)])
        out, h = gru(embed(x), carry["h"])
        carry["h"], carry["k"] = h.detach(), carry["k"] + 1
        loss = torch.nn.functional.cross_entropy(readout(out).reshape(-1, v), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, 1.0)
        opt.step()
        loss.item()

    return _time_steps(step, args.warmup, args.steps)


def worker(args: argparse.Namespace) -> None:
    if args.worker.startswith("torch"):
        import torch

        torch.set_num_threads(args.threads)
    run = _torch_native_worker if args.worker == "torch-native" else _polyrnn_worker
    times = run(args)
    median = statistics.median(times)
    tokens = args.batch * args.seq_len
    print(json.dumps({"impl": args.worker, "step_s": median, "tokens_per_s": tokens / median}))


def _environment(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    flags = env.get("XLA_FLAGS", "")
    if threads == 1:
        flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env["XLA_FLAGS"] = flags.strip()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impls", default=",".join(IMPLS), help=f"subset of {IMPLS}")
    parser.add_argument("--embed", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (JIT compilation)")
    parser.add_argument("--rounds", type=int, default=3, help="processes per implementation")
    parser.add_argument("--threads", type=int, default=1, help="threads of every library")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    sizes = [
        f"--embed={args.embed}",
        f"--hidden={args.hidden}",
        f"--batch={args.batch}",
        f"--seq-len={args.seq_len}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--threads={args.threads}",
    ]
    results: dict[str, list[float]] = {i: [] for i in impls}
    for r in range(args.rounds):
        for impl in impls:
            cmd = [sys.executable, __file__, f"--worker={impl}", *sizes]
            done = subprocess.run(
                cmd, capture_output=True, text=True, env=_environment(args.threads), check=False
            )
            if done.returncode != 0:
                sys.exit(f"{impl} failed:\n{done.stderr}")
            rate = json.loads(done.stdout.strip().splitlines()[-1])["tokens_per_s"]
            results[impl].append(rate)
            print(f"round {r + 1}/{args.rounds} {impl:<13} {rate:10,.0f} tok/s", file=sys.stderr)
    medians = {i: statistics.median(v) for i, v in results.items()}
    base = medians.get("torch-native")
    print(
        f"\nGRU LM training, E={args.embed} H={args.hidden} B={args.batch} T={args.seq_len}, "
        f"float32, {args.threads} thread(s), median of {args.rounds} processes x "
        f"{args.steps} steps\n"
    )
    print("| implementation | tokens/s | vs torch-native |")
    print("|---|---:|---:|")
    for impl, rate in medians.items():
        ratio = f"{rate / base:.2f}" if base else "-"
        print(f"| {impl} | {rate:,.0f} | {ratio} |")
    if args.json:
        document = {
            "sizes": {
                "embed": args.embed,
                "hidden": args.hidden,
                "batch": args.batch,
                "seq_len": args.seq_len,
            },
            "threads": args.threads,
            "steps": args.steps,
            "rounds": args.rounds,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "load_average": os.getloadavg(),
            "tokens_per_s": results,
            "median_tokens_per_s": medians,
        }
        Path(args.json).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
