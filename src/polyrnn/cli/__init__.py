"""The ``polyrnn`` command (also ``python -m polyrnn``).

Subcommands: ``demo`` (the default: train a small model on Python's own documentation
for about a minute), ``train``, ``eval``, ``sample`` and ``check``.  Every failure the
user can cause prints one line, ``polyrnn: error: ...``, on stderr: a malformed option
exits with status 2, anything else (a missing text, an uninstalled backend, a corrupt
model file, a diverged run) with 1.  ``train --out`` saves the parameters with the lowest
validation loss of the run (the attribute ``best`` of :class:`polyrnn.lm.Trainer`), not the last ones; an
interrupted or diverged run saves them too (the last parameters when it had validated
none) before it exits, with 130 when interrupted.  ``train --checkpoint`` saves the
*last* state (parameters, Adam's moments, the run's progress) after every validation,
at the end and when stopped; ``train --resume`` continues such a checkpoint to the result
the run would have had without the stop.  The command never writes over its
inputs: ``--out``, ``--history`` and ``--text`` must be three different files, and the
output paths are checked before training starts.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import __version__, backends, gru_scan, init_gru, lm
from ._common import file_path, jax_mesh, number, positive, reports, shown, to_json, torch_group
from ._train import EVALS, MINUTES, MODEL, TRAINING, Run, train, train_run


def check(args: argparse.Namespace) -> int:
    """Run one GRU scan on every installed array library and compare with NumPy float64
    (asking JAX for float64 turns on its ``jax_enable_x64``)."""
    T, B, D, H = 64, 4, 16, 32
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(B, T, D))
    ref, _ = gru_scan(xs, init_gru(D, H))
    print(f"polyrnn {__version__}: gru_scan on (B={B}, T={T}, D={D}, H={H}), float64")
    print(f"{'library':<18}{'version':<14}{'max |diff| vs NumPy':>20}{'ms':>9}")
    worst = 0.0
    found = backends.installed("float64")
    for name, adapter in found.items():
        xp = adapter.xp
        params = init_gru(D, H, xp=xp, dtype="float64")
        x = xp.asarray(xs)
        gru_scan(x, params)  # warm up (JIT compilation)
        start = time.perf_counter()
        hs, _ = gru_scan(x, params)
        diff = float(np.max(np.abs(adapter.to_numpy(hs) - ref)))
        ms = (time.perf_counter() - start) * 1e3
        version = getattr(sys.modules[name], "__version__", "?")
        print(f"{name:<18}{version:<14}{diff:>20.2e}{ms:>9.2f}")
        worst = max(worst, diff)
    agree = worst < 1e-10
    missing = [n for n in backends.LIBRARIES if n not in found]
    if not agree:
        print(f"MISMATCH: {worst:.3e} > 1e-10")
    elif len(found) == 1:
        print("only numpy is installed here: nothing to compare it with")
    else:
        print(f"all {len(found)} libraries agree")
    if missing:
        hints = ", ".join(f"{n} ({backends.LIBRARIES[n].install})" for n in missing)
        print(f"not checked (not installed or no device): {hints}")
    return 0 if agree else 1


DEMO: dict[str, Any] = {"embed_size": 32, "hidden_size": 128, "minutes": 1.0}
"""What ``polyrnn demo`` changes from the library's defaults (:class:`polyrnn.lm.ModelConfig`,
:class:`polyrnn.lm.TrainConfig`): a smaller model NumPy trains in a minute."""


def evaluate(args: argparse.Namespace) -> int:
    """Cross-entropy and perplexity of a saved model on a text file; under torchrun or
    jax.distributed, the text's streams are shared among the processes and their sums
    combined."""
    from ..lm import distributed_torch

    mesh = jax_mesh(args)  # joins the other JAX processes, before JAX first computes
    model = lm.load(args.model, backend=args.backend)
    tokens = model.vocab.encode(lm.read_text(args.text))
    with torch_group(args.timeout) as group:
        if mesh is not None:
            from ..lm import distributed_jax

            metrics = distributed_jax.evaluate_tokens(model, tokens)
        elif group is not None:
            metrics = distributed_torch.evaluate_tokens(model, tokens, group)
        else:
            metrics = lm.evaluate_tokens(model, tokens)
    if not reports(args):
        return 0
    if args.json:
        print(
            to_json(
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
            f"{metrics.tokens:,} characters: {shown(metrics.loss, 4)} nats/char "
            f"({shown(metrics.bits_per_char, 4)} bits/char), "
            f"perplexity {shown(metrics.perplexity, 3)}"
        )
    return 0


def sample(args: argparse.Namespace) -> int:
    """Generate text from a saved model, continuing a prompt."""
    model = lm.load(args.model, backend=args.backend)
    prompt = args.prompt
    if prompt is None:  # a character the model knows
        prompt = "\n" if "\n" in model.vocab.chars else model.vocab.chars[0]
    out = lm.sample(model, prompt, args.length, temperature=args.temperature, seed=args.seed)
    print(prompt + out)
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
    run = Run(
        source="Python's documentation (pydoc_data)",
        model=lm.ModelConfig(embed_size=DEMO["embed_size"], hidden_size=DEMO["hidden_size"]),
        config=lm.TrainConfig(seed=args.seed),
        backend=args.backend,
        dtype=args.dtype,
        steps=args.steps,
        minutes=args.minutes,
        evals=1,
        out=None,
        history=None,
        command=args.command_line,
    )
    trainer, report = train_run(text, run)
    if report is None:
        return 130
    assert report.val is not None
    vocab = len(trainer.lm.vocab)
    print(
        f"After {report.seconds:.0f} s ({report.steps} steps, {report.tokens_per_s:,.0f} "
        f"characters/s) the model predicts the held-out last 10% of Python's documentation "
        f"with perplexity {shown(report.val.perplexity, 2)} "
        f"({shown(report.val.loss, 3)} nats/char); "
        f"a uniform guess over its {vocab} characters has perplexity {vocab}."
    )
    prompt = "The "
    print(f"\nA sample (temperature 0.8):\n\n{prompt}", end="")
    print(lm.sample(trainer.lm, prompt, 400, temperature=0.8, seed=args.seed))
    return 0


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it has none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Reports a malformed command line in one line, ``polyrnn: error: ...``, status 2."""

    def error(self, message: str) -> Any:
        self.exit(2, f"polyrnn: error: {message} (see '{self.prog} --help')\n")


DTYPE_HELP = "floating-point type of the weights and the computation"


def _one_line(command: Any) -> str:
    """A command function's docstring on one line: the help and description of its
    subcommand (documentation generators keep line breaks that the terminal rewraps)."""
    return " ".join((command.__doc__ or "").split())


def _add_backend(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--backend",
        default=default,
        choices=list(lm.BACKENDS),
        help="array library; torch trains by autograd, the others by polyrnn's hand-written "
        "backpropagation (jitted on jax)",
    )


def _jax_joined() -> bool:
    """Whether this process joined others through ``jax.distributed``."""
    jax = sys.modules.get("jax")
    return jax is not None and bool(jax.distributed.is_initialized())


def _add_timeout(p: argparse.ArgumentParser) -> None:
    from ..lm.distributed_torch import TIMEOUT

    p.add_argument(
        "--timeout",
        type=positive(float),
        default=TIMEOUT,
        help="under torchrun: seconds to wait for the other processes (to join, and in "
        "every exchange) before stopping with an error naming the missing ranks; with "
        "--num-processes (jax.distributed): to join, and after which a process that "
        "stopped sending heartbeats is declared dead",
    )


def _add_jax_processes(g: Any) -> None:
    """The options by which a process joins others through ``jax.distributed``."""
    g.add_argument(
        "--num-processes", type=positive(int), help="processes to join (jax.distributed)"
    )
    g.add_argument(
        "--process-id", type=number(int, 0), help="this process's rank, 0 to --num-processes - 1"
    )
    g.add_argument(
        "--coordinator-address",
        metavar="HOST:PORT",
        help="where process 0 listens for the others; without it, $JAX_COORDINATOR_ADDRESS",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="polyrnn",
        description="Character-level recurrent language models on NumPy, JAX, PyTorch or "
        "CuPy, written once against the Array API. Without a command: demo.",
    )
    parser.add_argument("--version", action="version", version=f"polyrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub_parser = functools.partial(sub.add_parser, formatter_class=_Help)

    p = sub_parser("demo", help=_one_line(demo), description=_one_line(demo))
    _add_backend(p, "numpy")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--minutes",
        type=positive(float),
        default=DEMO["minutes"],
        help="training time in minutes, evaluation excluded",
    )
    budget.add_argument("--steps", type=positive(int), help="or train for this many steps")
    p.add_argument("--dtype", default="float32", choices=lm.backend.DTYPES, help=DTYPE_HELP)
    p.add_argument(
        "--seed", type=number(int, 0), default=0, help="seed of the initial weights and the sample"
    )
    p.set_defaults(run=demo)

    m, t = MODEL, TRAINING
    p = sub_parser("train", help=_one_line(train), description=_one_line(train))
    p.add_argument(
        "--text", required=True, type=file_path, help="UTF-8 text file; its last 10%% validates"
    )
    _add_backend(p, "numpy")
    p.add_argument("--cell", default=m.cell, choices=list(lm.CELLS), help="recurrent cell")
    p.add_argument("--embed", type=positive(int), default=m.embed_size, help="embedding width E")
    p.add_argument("--hidden", type=positive(int), default=m.hidden_size, help="hidden width H")
    p.add_argument("--layers", type=positive(int), default=m.layers, help="recurrent layers L")
    p.add_argument("--seq-len", type=positive(int), default=t.seq_len, help="characters per step T")
    p.add_argument("--batch", type=positive(int), default=t.batch, help="parallel streams B")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive(int), help="train for this many steps")
    budget.add_argument(
        "--minutes",
        type=positive(float),
        help=f"or for this many minutes of training, evaluation excluded ; {MINUTES:g} when "
        "neither is given, the checkpoint's with --resume",
    )
    p.add_argument("--lr", type=positive(float), default=t.lr, help="peak Adam learning rate")
    p.add_argument(
        "--warmup", type=number(int, 0), default=t.warmup, help="steps of linear warm-up"
    )
    p.add_argument(
        "--final-lr",
        type=number(float, 0, 1),
        default=t.final_lr,
        help="learning rate at the end, as a fraction of --lr, reached by a cosine (1: constant)",
    )
    p.add_argument(
        "--beta2",
        type=number(float, 0, 1, below=True),
        default=t.beta2,
        help="Adam's decay of its average of squared gradients",
    )
    p.add_argument(
        "--clip", type=number(float, 0), default=t.clip_norm, help="gradient-norm clip (0: off)"
    )
    p.add_argument(
        "--weight-decay",
        type=number(float, 0),
        default=t.weight_decay,
        help="decoupled weight decay λ of Adam (AdamW): each step shrinks every weight by "
        "the factor 1 - lr λ; 0: off",
    )
    p.add_argument(
        "--dropout",
        type=number(float, 0, 1, below=True),
        default=t.dropout,
        help="probability of zeroing each output of the embedding and of every recurrent "
        "layer during training steps (never when validating); 0: off",
    )
    p.add_argument(
        "--recurrent-dropout",
        type=number(float, 0, 1, below=True),
        default=t.recurrent_dropout,
        help="probability of zeroing each unit of h_{t-1} where it meets W_h, one mask per "
        "stream and step (Gal & Ghahramani 2016; not minGRU, minLSTM); 0: off",
    )
    p.add_argument(
        "--evals",
        type=number(int, 0),
        help=f"validations during the run: {EVALS} unless given, the checkpoint's with --resume",
    )
    p.add_argument(
        "--seed",
        type=number(int, 0),
        default=t.seed,
        help="seed of the initial weights and of the dropout masks",
    )
    p.add_argument("--dtype", default="float32", choices=lm.backend.DTYPES, help=DTYPE_HELP)
    p.add_argument(
        "--out",
        type=file_path,
        help="save the model with the lowest validation loss here (.npz), also on Ctrl-C",
    )
    p.add_argument("--history", type=file_path, help="write the learning curve here (.json)")
    _add_timeout(p)
    p.add_argument(
        "--checkpoint",
        type=file_path,
        help="save the last state here (.npz: parameters, Adam's moments, the run's "
        "progress) after every validation, at the end and when stopped",
    )
    p.add_argument(
        "--resume",
        type=file_path,
        help="continue the run of this --checkpoint file (same --text and options) to the "
        "result it would have had uninterrupted",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one line of final metrics as JSON (val_loss: the lowest validation "
        "loss, that of --out; final_val_loss: the last)",
    )
    g = p.add_argument_group(
        "data parallelism on JAX",
        "split each batch across devices (of one process, or of several joined by "
        "jax.distributed); process 0 alone writes files and reports",
    )
    g.add_argument(
        "--devices",
        type=positive(int),
        help="devices to split the batch across (dividing --batch); on CPU, simulated; "
        "with --num-processes, all of theirs (the default there)",
    )
    _add_jax_processes(g)
    p.set_defaults(run=train)

    p = sub_parser("eval", help=_one_line(evaluate), description=_one_line(evaluate))
    p.add_argument(
        "--model", required=True, type=file_path, help=".npz file written by polyrnn train"
    )
    p.add_argument("--text", required=True, type=file_path, help="UTF-8 text file to score")
    _add_backend(p, "numpy")
    p.add_argument("--json", action="store_true", help="print the metrics as one line of JSON")
    _add_timeout(p)
    _add_jax_processes(
        p.add_argument_group(
            "evaluation across JAX processes",
            "share the text's streams among processes joined by jax.distributed (under "
            "torchrun they are shared without these); process 0 alone reports",
        )
    )
    p.set_defaults(run=evaluate)

    p = sub_parser("sample", help=_one_line(sample), description=_one_line(sample))
    p.add_argument(
        "--model", required=True, type=file_path, help=".npz file written by polyrnn train"
    )
    p.add_argument(
        "--prompt",
        help="text to continue; without it, a newline (or, when the model's vocabulary has "
        "none, its first character)",
    )
    p.add_argument("--length", type=number(int, 0), default=300, help="characters to generate")
    p.add_argument(
        "--temperature",
        type=number(float, 0),
        default=0.8,
        help="0: always the likeliest character; higher: more varied",
    )
    p.add_argument(
        "--seed", type=number(int, 0), help="seed of the sampler (random when not given)"
    )
    _add_backend(p, "numpy")
    p.set_defaults(run=sample)

    p = sub_parser("check", help=_one_line(check), description=_one_line(check))
    p.set_defaults(run=check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``polyrnn`` command with ``argv`` (``sys.argv[1:]`` by default); the exit status."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:
        argv = ["demo"]
        args = parser.parse_args(argv)
    args.command_line = " ".join(["polyrnn", *argv])
    try:
        return int(args.run(args))
    except lm.LMError as e:
        print(f"polyrnn: error: {e}", file=sys.stderr)
        if isinstance(e, lm.PeerLostError) and _jax_joined():
            from ..lm import distributed_jax

            distributed_jax.leave(1)  # jax.distributed.shutdown would wait for the lost
        return 1
    except OSError as e:  # writing a model or history file
        name = f" {e.filename!r}" if e.filename else ""
        print(f"polyrnn: error: cannot write{name}: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside training (which saves first and returns 130)
        print("polyrnn: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(
            "polyrnn: error: out of memory: the model or the text is too large for this "
            "machine (try a smaller --hidden, --embed, --layers or --batch)",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:  # stdout closed early (| head): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except UnicodeEncodeError as e:
        print(
            f"polyrnn: error: the output holds characters that this terminal's encoding "
            f"({e.encoding}) cannot show; set PYTHONIOENCODING=utf-8",
            file=sys.stderr,
        )
        return 1
