"""The ``polyrnn`` command (also ``python -m polyrnn``).

Subcommands: ``demo`` (the default: train a small model on Python's own documentation
for about a minute), ``train``, ``eval``, ``sample`` and ``check``.  Expected failures
(a missing text, an uninstalled backend, a corrupt model file) print one line on stderr
and exit with status 1; an interrupted training run exits with 130 after saving the last
parameters when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import __version__, gru_scan, init_gru, lm

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


# ------------------------------------------------------------------ language models

TRAIN_DEFAULTS: dict[str, Any] = {
    "backend": "numpy",
    "cell": "gru",
    "embed": 64,
    "hidden": 512,
    "layers": 1,
    "seq_len": 128,
    "batch": 64,
    "lr": 3e-3,
    "warmup": 50,
    "final_lr": 0.1,
    "clip": 1.0,
    "minutes": 10.0,
    "evals": 10,
}
"""Defaults of ``polyrnn train`` (see the ``--help`` of each option for why)."""

DEMO: dict[str, Any] = {
    "embed": 32,
    "hidden": 128,
    "seq_len": 64,
    "batch": 32,
    "lr": 5e-3,
    "minutes": 1.0,
}
"""The small model ``polyrnn demo`` trains on NumPy in about a minute."""


def _number(kind: type, low: float, high: float = float("inf"), *, open_low: bool = False) -> Any:
    """An argparse type: a ``kind`` in ``[low, high]`` (``(low, high]`` with ``open_low``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not (low < value if open_low else low <= value) or not value <= high:
            if open_low and high == float("inf"):
                raise argparse.ArgumentTypeError(f"must be positive, got {text}")
            bounds = f"({low:g}" if open_low else f"[{low:g}"
            raise argparse.ArgumentTypeError(f"must be in {bounds}, {high:g}], got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _positive(kind: type) -> Any:
    return _number(kind, 0, open_low=True)


class _Progress:
    """Training progress on stderr: a tqdm bar on a terminal when tqdm is installed,
    else a plain line every ``interval`` seconds; evaluation results always get a line."""

    def __init__(self, total_steps: int | None, seconds: float | None, interval: float = 10.0):
        self.bar: Any = None
        self.interval = interval
        self.last_line = time.perf_counter()
        self.total_steps = total_steps
        if sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None:
            from tqdm import tqdm

            if total_steps is not None:
                self.bar = tqdm(total=total_steps, unit="step", file=sys.stderr, leave=False)
            else:
                fmt = "{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]"
                self.bar = tqdm(total=seconds, bar_format=fmt, file=sys.stderr, leave=False)

    def step(self, p: lm.Progress) -> None:
        stats = f"loss {p.loss:.4f}, {p.tokens_per_s:,.0f} tok/s, lr {p.lr:.2e}"
        if self.bar is not None:
            self.bar.update((p.step if self.total_steps is not None else p.seconds) - self.bar.n)
            self.bar.set_postfix_str(stats, refresh=False)
        elif time.perf_counter() - self.last_line >= self.interval:
            self.last_line = time.perf_counter()
            self.write(f"step {p.step} ({p.fraction:.0%}, {p.seconds:.0f} s): {stats}")

    def eval(self, record: dict[str, Any]) -> None:
        train = record["train_loss"]
        train_text = "" if train is None else f"train loss {train:.4f}, "
        self.write(
            f"step {record['step']} ({record['seconds']:.0f} s): {train_text}"
            f"val loss {record['val_loss']:.4f} nats/char, perplexity {record['val_perplexity']:.3f}"
        )

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_writable(path: str | None) -> None:
    """Fail before training, not after, when ``path``'s directory cannot take the file."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise lm.DataError(f"cannot write {path!r}: directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise lm.DataError(f"cannot write {path!r}: it is a directory")
    if not os.access(directory, os.W_OK):
        raise lm.DataError(f"cannot write {path!r}: directory {directory!r} is not writable")


def _write_json(path: str, document: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, ensure_ascii=False)
        f.write("\n")


def _train(
    text: str,
    args: argparse.Namespace,
    *,
    source: str,
    history_path: str | None = None,
) -> tuple[lm.Trainer, lm.TrainReport | None]:
    """Train as ``args`` say; ``report`` is ``None`` when interrupted (after saving)."""
    model = lm.ModelConfig(
        embed_size=args.embed, hidden_size=args.hidden, layers=args.layers, cell=args.cell
    )
    config = lm.TrainConfig(
        batch=args.batch,
        seq_len=args.seq_len,
        lr=args.lr,
        warmup=args.warmup,
        final_lr=args.final_lr,
        clip_norm=args.clip or None,
        seed=args.seed,
    )
    trainer = lm.Trainer(text, model=model, config=config, backend=args.backend, dtype=args.dtype)
    steps = args.steps
    seconds = None if steps is not None else 60.0 * args.minutes
    budget = f"{steps} steps" if steps is not None else f"{args.minutes:g} min"
    params = trainer.lm.params.size()
    print(
        f"training a {args.layers}-layer {args.cell.upper()} (E={args.embed}, H={args.hidden}, "
        f"{params:,} parameters) on {source}: {len(text):,} characters, "
        f"{len(trainer.lm.vocab)} distinct; backend {args.backend} {args.dtype}, "
        f"B={args.batch}, T={args.seq_len}, {budget}",
        file=sys.stderr,
    )
    document: dict[str, Any] = {
        "command": "polyrnn " + " ".join(sys.argv[1:]) if source != "demo" else "polyrnn demo",
        "text": source,
        "backend": args.backend,
        "dtype": args.dtype,
        "model": model.to_dict(),
        "train": config.to_dict(),
        "vocab_size": len(trainer.lm.vocab),
        "parameters": params,
        "history": [],
    }
    progress = _Progress(steps, seconds)

    def on_eval(record: dict[str, Any]) -> None:
        progress.eval(record)
        if history_path is not None:
            document["history"].append(record)
            _write_json(history_path, document)

    try:
        report = trainer.run(
            steps=steps, seconds=seconds, evals=args.evals, on_step=progress.step, on_eval=on_eval
        )
    except KeyboardInterrupt:
        progress.close()
        done = trainer.steps_done
        if args.out:
            lm.save(trainer.lm, args.out)
            print(
                f"interrupted after {done} steps; saved the last parameters to {args.out}",
                file=sys.stderr,
            )
        else:
            print(f"interrupted after {done} steps; nothing saved (no --out)", file=sys.stderr)
        return trainer, None
    progress.close()
    if report.val is None:  # --evals 0: still measure the result once
        report.val = trainer.evaluate()
    trainer.lm.info = {
        "text": source,
        "train": config.to_dict(),
        "steps": report.steps,
        "seconds": report.seconds,
        "train_loss": report.train_loss,
        "val_loss": report.val.loss,
        "val_perplexity": report.val.perplexity,
        "backend": args.backend,
    }
    if args.out:
        lm.save(trainer.lm, args.out)
        print(f"saved the model to {args.out}", file=sys.stderr)
    if history_path is not None:
        document["final"] = _summary(trainer, report)
        _write_json(history_path, document)
    return trainer, report


def _summary(trainer: lm.Trainer, report: lm.TrainReport) -> dict[str, Any]:
    assert report.val is not None
    return {
        "backend": trainer.lm.backend.name,
        "dtype": trainer.lm.backend.dtype_name,
        "cell": trainer.lm.config.cell,
        "steps": report.steps,
        "seconds": round(report.seconds, 3),
        "tokens_per_s": round(report.tokens_per_s, 1),
        "train_loss": report.train_loss,
        "val_loss": report.val.loss,
        "val_perplexity": report.val.perplexity,
        "val_bits_per_char": report.val.bits_per_char,
        "vocab_size": len(trainer.lm.vocab),
        "parameters": trainer.lm.params.size(),
    }


def train(args: argparse.Namespace) -> int:
    """Train a character-level language model on a text file."""
    _check_writable(args.out)
    _check_writable(args.history)
    text = lm.read_text(args.text)
    trainer, report = _train(text, args, source=args.text, history_path=args.history)
    if report is None:
        return 130
    summary = _summary(trainer, report)
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{report.steps} steps in {report.seconds:.1f} s ({report.tokens_per_s:,.0f} tok/s): "
            f"train loss {report.train_loss:.4f}, val loss {summary['val_loss']:.4f} nats/char, "
            f"val perplexity {summary['val_perplexity']:.3f} "
            f"(uniform over the vocabulary: {summary['vocab_size']})"
        )
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Cross-entropy and perplexity of a saved model on a text file."""
    model = lm.load(args.model, backend=args.backend)
    metrics = lm.evaluate(model, lm.read_text(args.text))
    if args.json:
        print(
            json.dumps(
                {
                    "loss": metrics.loss,
                    "perplexity": metrics.perplexity,
                    "bits_per_char": metrics.bits_per_char,
                    "characters": metrics.tokens,
                }
            )
        )
    else:
        print(
            f"{metrics.tokens:,} characters: {metrics.loss:.4f} nats/char "
            f"({metrics.bits_per_char:.4f} bits/char), perplexity {metrics.perplexity:.3f}"
        )
    return 0


def sample(args: argparse.Namespace) -> int:
    """Generate text from a saved model, continuing a prompt."""
    model = lm.load(args.model, backend=args.backend)
    out = lm.sample(model, args.prompt, args.length, temperature=args.temperature, seed=args.seed)
    print(args.prompt + out)
    return 0


def _python_docs() -> str:
    try:
        from pydoc_data.topics import topics
    except ImportError:
        raise lm.DataError(
            "this Python has no pydoc_data (a stripped-down install), so the demo has no "
            "text; train on your own instead: polyrnn train --text FILE"
        ) from None
    return "\n\n".join(topics[k] for k in sorted(topics))


def demo(args: argparse.Namespace) -> int:
    """Train a small model on Python's documentation for about a minute, then sample."""
    text = _python_docs()
    for name, value in TRAIN_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    for name, value in DEMO.items():
        if name != "minutes":
            setattr(args, name, value)
    args.steps = None
    args.out = None
    args.evals = 2
    trainer, report = _train(text, args, source="demo")
    if report is None:
        return 130
    assert report.val is not None
    vocab = len(trainer.lm.vocab)
    print(
        f"After {report.seconds:.0f} s ({report.steps} steps, {report.tokens_per_s:,.0f} "
        f"characters/s) the model predicts the held-out last 10% of Python's documentation "
        f"with perplexity {report.val.perplexity:.2f} ({report.val.loss:.3f} nats/char); "
        f"a uniform guess over its {vocab} characters has perplexity {vocab}."
    )
    prompt = "The "
    print(f"\nA sample (temperature 0.8):\n\n{prompt}", end="")
    print(lm.sample(trainer.lm, prompt, 400, temperature=0.8, seed=args.seed))
    return 0


def _add_backend(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--backend",
        default=default,
        choices=list(lm.BACKENDS),
        help=f"array library (default: {default}); jax and torch differentiate "
        "automatically, the others use polyrnn's hand-written backpropagation",
    )


def _parser() -> argparse.ArgumentParser:
    d = TRAIN_DEFAULTS
    parser = argparse.ArgumentParser(prog="polyrnn", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"polyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help=demo.__doc__, description=demo.__doc__)
    _add_backend(p, "numpy")
    p.add_argument("--minutes", type=_positive(float), default=DEMO["minutes"])
    p.add_argument("--dtype", default="float32", choices=lm.backend.DTYPES)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=demo)

    p = sub.add_parser("train", help=train.__doc__, description=train.__doc__)
    p.add_argument("--text", required=True, help="UTF-8 text file; its last 10%% validates")
    _add_backend(p, d["backend"])
    p.add_argument("--cell", default=d["cell"], choices=list(lm.CELLS))
    p.add_argument("--embed", type=_positive(int), default=d["embed"], help="embedding width E")
    p.add_argument("--hidden", type=_positive(int), default=d["hidden"], help="hidden width H")
    p.add_argument("--layers", type=_positive(int), default=d["layers"], help="recurrent layers")
    p.add_argument(
        "--seq-len", type=_positive(int), default=d["seq_len"], help="BPTT length T per step"
    )
    p.add_argument("--batch", type=_positive(int), default=d["batch"], help="parallel streams B")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive(int), help="train for this many steps")
    budget.add_argument(
        "--minutes",
        type=_positive(float),
        default=d["minutes"],
        help=f"or for this much training time (default: {d['minutes']:g}; evaluation excluded)",
    )
    p.add_argument("--lr", type=_positive(float), default=d["lr"], help="peak Adam learning rate")
    p.add_argument(
        "--warmup", type=_number(int, 0), default=d["warmup"], help="linear warm-up steps"
    )
    p.add_argument(
        "--final-lr",
        type=_number(float, 0, 1),
        default=d["final_lr"],
        help="final learning rate as a fraction of --lr, reached by a cosine (1: constant)",
    )
    p.add_argument(
        "--clip", type=float, default=d["clip"], help="global gradient-norm clip (0: off)"
    )
    p.add_argument("--evals", type=int, default=d["evals"], help="validations during the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float32", choices=lm.backend.DTYPES)
    p.add_argument("--out", help="save the model here (.npz), also on Ctrl-C")
    p.add_argument("--history", help="write the learning curve here (.json)")
    p.add_argument("--json", action="store_true", help="print one line of final metrics as JSON")
    p.set_defaults(run=train)

    p = sub.add_parser("eval", help=evaluate.__doc__, description=evaluate.__doc__)
    p.add_argument("--model", required=True, help=".npz file written by polyrnn train")
    p.add_argument("--text", required=True, help="UTF-8 text file to score")
    _add_backend(p, "numpy")
    p.add_argument("--json", action="store_true", help="print the metrics as one line of JSON")
    p.set_defaults(run=evaluate)

    p = sub.add_parser("sample", help=sample.__doc__, description=sample.__doc__)
    p.add_argument("--model", required=True, help=".npz file written by polyrnn train")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--length", type=_number(int, 0), default=300, help="characters to generate")
    p.add_argument(
        "--temperature",
        type=_number(float, 0),
        default=0.8,
        help="0: always the likeliest character; higher: more varied (default: 0.8)",
    )
    p.add_argument("--seed", type=int, help="seed of the sampler (default: random)")
    _add_backend(p, "numpy")
    p.set_defaults(run=sample)

    sub.add_parser("check", help=check.__doc__, description=check.__doc__).set_defaults(run=check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``polyrnn`` command with ``argv`` (``sys.argv[1:]`` by default); the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["demo"])
    try:
        return int(args.run(args))
    except lm.LMError as e:
        print(f"polyrnn: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # writing a model or history file
        name = f" {e.filename!r}" if e.filename else ""
        print(f"polyrnn: error: cannot write{name}: {e.strerror or e}", file=sys.stderr)
        return 1
