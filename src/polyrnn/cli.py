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
import contextlib
import functools
import importlib
import importlib.util
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__, backends, gru_scan, init_gru, lm


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


# ------------------------------------------------------------------ language models

MODEL = lm.ModelConfig(hidden_size=384)
"""The architecture ``polyrnn train`` builds by default (see :class:`polyrnn.lm.ModelConfig`):
the recipe measured on the documentation's Training page."""
TRAINING = lm.TrainConfig(seq_len=64, lr=3e-3, dropout=0.2)
"""The training hyper-parameters of ``polyrnn train`` by default (see
:class:`polyrnn.lm.TrainConfig`, whose own defaults drop nothing): the recipe of the
Training page, with dropout so that a fast machine's extra epochs do not overfit."""
MINUTES = 10.0
"""The training time of ``polyrnn train`` when neither --steps nor --minutes is given."""
EVALS = 10
"""The validations of a ``polyrnn train`` run when --evals is not given."""

DEMO: dict[str, Any] = {"embed_size": 32, "hidden_size": 128, "minutes": 1.0}
"""What ``polyrnn demo`` changes from the library's defaults (:class:`polyrnn.lm.ModelConfig`,
:class:`polyrnn.lm.TrainConfig`): a smaller model NumPy trains in a minute."""


def _number(
    kind: type, low: float, high: float = math.inf, *, above: bool = False, below: bool = False
) -> Any:
    """An argparse type: a finite ``kind`` in ``[low, high]``, with ``above`` excluding
    ``low`` and ``below`` excluding ``high``; integers are at most :data:`INT_MAX`."""
    if high == math.inf:
        wanted = ("positive" if above else "non-negative") if low == 0 else f">= {low:g}"
    else:
        wanted = f"in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if (value <= low if above else value < low) or not (
            value < high if below else value <= high
        ):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        if kind is int and value > INT_MAX:
            raise argparse.ArgumentTypeError(f"must be at most {INT_MAX}, got {text:.30}")
        return value

    parse.__name__ = kind.__name__
    return parse


INT_MAX = 2**31 - 1
"""The largest count or size an option takes: beyond it nothing fits in memory."""


def _positive(kind: type) -> Any:
    return _number(kind, 0, above=True)


def _file_path(text: str) -> str:
    """An argparse type: a non-empty path."""
    if not text:
        raise argparse.ArgumentTypeError("must be a file path, got an empty string")
    return text


def _json(document: Any, indent: int | None = None) -> str:
    """``document`` as JSON, with non-finite numbers (a diverged loss, an infinite
    perplexity), which JSON cannot hold, as ``null``."""

    def finite(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: finite(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [finite(v) for v in x]
        return x

    return json.dumps(finite(document), indent=indent, ensure_ascii=False, allow_nan=False)


def _shown(x: float, places: int) -> str:
    """``x`` with ``places`` decimals, or in scientific notation when it is huge (a
    diverging run), not as a number of a hundred digits."""
    return f"{x:.{places}f}" if abs(x) < 1e6 or not math.isfinite(x) else f"{x:.{places}e}"


class _Progress:
    """Training progress on stderr: a tqdm bar on a terminal when tqdm is installed,
    else a plain line every ``interval`` seconds; evaluation results always get a line."""

    def __init__(
        self,
        total_steps: int | None,
        seconds: float | None,
        interval: float = 10.0,
        *,
        quiet: bool = False,
    ):
        self.bar: Any = None
        self.quiet = quiet
        self.interval = interval
        self.last_line = time.perf_counter()
        self.total_steps = total_steps
        if not quiet and sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None:
            from tqdm import tqdm

            if total_steps is not None:
                self.bar = tqdm(total=total_steps, unit="step", file=sys.stderr, leave=False)
            else:
                fmt = "{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}{postfix}]"
                self.bar = tqdm(total=seconds, bar_format=fmt, file=sys.stderr, leave=False)

    def step(self, p: lm.Progress) -> None:
        if self.quiet:
            return
        stats = f"loss {_shown(p.loss, 4)}, {p.tokens_per_s:,.0f} tok/s, lr {p.lr:.2e}"
        if self.bar is not None:
            self.bar.update((p.step if self.total_steps is not None else p.seconds) - self.bar.n)
            self.bar.set_postfix_str(stats, refresh=False)
        elif time.perf_counter() - self.last_line >= self.interval:
            self.last_line = time.perf_counter()
            self.write(f"step {p.step} ({p.fraction:.0%}, {p.seconds:.0f} s): {stats}")

    def eval(self, record: dict[str, Any]) -> None:
        train = record["train_loss"]
        train_text = "" if train is None else f"train loss {_shown(train, 4)}, "
        self.write(
            f"step {record['step']} ({record['seconds']:.0f} s): {train_text}"
            f"val loss {_shown(record['val_loss'], 4)} nats/char, "
            f"perplexity {_shown(record['val_perplexity'], 3)}"
        )

    def write(self, line: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _check_files(text: str, outputs: dict[str, str | None]) -> None:
    """Before training, not after: no output is the text or another output, and each
    output can be created (tried for real, with the save's temporary file too) where no
    directory or special file stands.  A symbolic link is written through."""
    seen = {_identity(text): "--text"}
    for option, path in outputs.items():
        if path is None:
            continue
        other = seen.setdefault(_identity(path), option)
        if other != option:
            raise lm.LMError(
                f"{option} {path!r} is the same file as {other}: writing it would destroy "
                f"the {'training text' if other == '--text' else other + ' file'}"
            )
        resolved = os.path.realpath(path)  # where the file will be written
        directory = os.path.dirname(resolved)
        if not os.path.isdir(directory):
            raise lm.LMError(
                f"cannot write {option} {path!r}: directory {directory!r} does not exist"
            )
        if os.path.islink(resolved):  # a link still, once resolved: a loop of links
            raise lm.LMError(f"cannot write {option} {path!r}: its symbolic links form a loop")
        if os.path.exists(resolved) and not os.path.isfile(resolved):
            kind = "a directory" if os.path.isdir(resolved) else "not a regular file"
            raise lm.LMError(f"cannot write {option} {path!r}: it is {kind}")
        try:  # the temporary file of the save, and the file's own name
            fd, tmp = tempfile.mkstemp(prefix=lm.io.TEMPORARY_PREFIX, dir=directory)
            os.close(fd)
            os.unlink(tmp)
            if not os.path.exists(resolved):
                with open(resolved, "xb"):
                    pass
                os.unlink(resolved)
        except OSError as e:
            raise lm.LMError(f"cannot write {option} {path!r}: {e.strerror}") from None


def _identity(path: str) -> tuple[Any, ...]:
    """What tells two paths to the same file apart: device and inode where it exists (hard
    and symbolic links included), else the resolved path."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.realpath(path))
    return ("inode", st.st_dev, st.st_ino)


@contextlib.contextmanager
def _despite_ctrl_c(what: str) -> Iterator[None]:
    """Let ``what`` (saving a file) finish when Ctrl-C is pressed during it: the signal
    is answered with a line on stderr and otherwise ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def answer(signum: int, frame: Any) -> None:
        print(f"polyrnn: {what}; one moment", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, answer)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _write_json(path: str, document: dict[str, Any]) -> None:
    text = _json(document, indent=1) + "\n"
    lm.io.write_atomic(path, lambda f: f.write(text.encode("utf-8")))


@dataclass(frozen=True)
class _Run:
    """One training run of ``train`` or ``demo``."""

    source: str
    """What the text is, for messages and the history file."""
    model: lm.ModelConfig
    config: lm.TrainConfig
    backend: str
    dtype: str
    steps: int | None
    minutes: float | None
    """``None``: :data:`MINUTES`, or the resumed run's budget."""
    evals: int | None
    """``None`` only with ``resume``: the resumed run's."""
    out: str | None
    history: str | None
    command: str
    checkpoint: str | None = None
    """Where to save the last state (:func:`polyrnn.lm.io.save_training`)."""
    resume: str | None = None
    """The checkpoint to continue."""
    group: Any = None
    """The :class:`~polyrnn.lm.distributed_torch.TorchGroup` under torchrun; only its rank
    0 writes files and messages."""
    mesh: Any = None
    """The ``jax.sharding.Mesh`` to train data-parallel over (``Trainer``'s ``mesh``)."""


def _train(text: str, run: _Run) -> tuple[lm.Trainer, lm.TrainReport | None]:
    """Train; the report is ``None`` when interrupted.  ``run.out`` gets the parameters
    with the lowest validation loss (``Trainer.best``), also when
    interrupted or diverged (:class:`~polyrnn.lm.DivergedError`, re-raised), and then the
    last, finite, parameters when none were validated."""
    m, c = run.model, run.config
    leader = run.group is None or run.group.rank == 0
    say: Any = functools.partial(print, file=sys.stderr) if leader else lambda *_: None
    trainer = lm.Trainer(
        text, model=m, config=c, backend=run.backend, dtype=run.dtype, group=run.group,
        mesh=run.mesh,
    )  # fmt: skip
    steps, seconds = _budget(trainer, run)
    budget = f"{steps} steps" if seconds is None else f"{seconds / 60:g} min"
    if run.resume:
        budget += f", resumed after step {trainer.steps_done} from {run.resume}"
    params = trainer.lm.params.size()
    vocab = len(trainer.lm.vocab)
    if run.group is not None:
        first, last = trainer.rows.start, trainer.rows.stop - 1
        budget += f"; process {run.group.rank} of {run.group.world} steps streams {first}-{last}"
    say(
        f"training a {m.layers}-layer {m.cell.upper()} (E={m.embed_size}, H={m.hidden_size}, "
        f"{params:,} parameters) on {run.source}: {len(text):,} characters, {vocab} "
        f"distinct; backend {run.backend} {run.dtype}, B={c.batch}, T={c.seq_len}, "
        + (f"dropout {c.dropout:g}, " if c.dropout else "")
        + (f"recurrent dropout {c.recurrent_dropout:g}, " if c.recurrent_dropout else "")
        + budget
    )
    document: dict[str, Any] = {
        "command": run.command,
        "text": run.source,
        "backend": run.backend,
        "dtype": run.dtype,
        "model": m.to_dict(),
        "train": c.to_dict(),
        "vocab_size": vocab,
        "parameters": params,
        "history": list(trainer.progress.history) if run.resume and trainer.progress else [],
    }
    progress = _Progress(steps, seconds, quiet=not leader)

    def save_checkpoint() -> None:
        if run.checkpoint:
            with _despite_ctrl_c(f"saving the checkpoint {run.checkpoint}"):
                lm.io.save_training(trainer, run.checkpoint)

    def on_eval(record: dict[str, Any]) -> None:
        progress.eval(record)
        if run.history is not None:
            document["history"].append(record)
            _write_json(run.history, document)
        save_checkpoint()

    try:
        report = trainer.run(
            steps=steps,
            seconds=seconds,
            evals=run.evals or 0,
            on_step=progress.step,
            on_eval=on_eval,
            resume=run.resume is not None,
        )
        if report.val is None:  # --evals 0: still measure the result once
            report.val = trainer.validate()
    except (KeyboardInterrupt, lm.DivergedError) as e:  # keep the last good parameters
        progress.close()
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else "stopped"
        save_checkpoint()
        n = trainer.steps_done
        done = f"{why} after {n} step{'' if n == 1 else 's'}"
        if run.out:
            best = trainer.best
            if best is None:
                what, model = "the last parameters", trainer.lm
                where = f"to {run.out} (none were validated)"
            else:
                what = (
                    "the last parameters"
                    if best.step == n
                    else f"the parameters of step {best.step}"
                )
                model = trainer.best_model()
                where = f"to {run.out}, the best validated (loss {_shown(best.loss, 4)})"
            with _despite_ctrl_c(f"saving {what} to {run.out}"):
                lm.save(model, run.out)
            say(f"{done}; saved {what} {where}")
        else:
            say(f"{done}; nothing saved (no --out)")
        if isinstance(e, lm.DivergedError):
            raise  # main() reports it in one line and exits with status 1
        return trainer, None
    progress.close()
    summary = _summary(trainer, report)
    trainer.lm.info = {"text": run.source, "train": c.to_dict(), **summary}
    save_checkpoint()
    with _despite_ctrl_c("saving the results"):
        if run.out:
            lm.save(trainer.best_model(), run.out)  # with trainer.lm's info
            say(
                f"saved the model of step {summary['best_step']}, the lowest validation "
                f"loss ({_shown(summary['val_loss'], 4)}), to {run.out}"
            )
        if run.history is not None:
            document["final"] = summary
            _write_json(run.history, document)
    return trainer, report


def _budget(trainer: lm.Trainer, run: _Run) -> tuple[int | None, float | None]:
    """The run's steps or seconds; with ``run.resume``, restores the checkpoint into
    ``trainer`` and returns its run's budget, which ``run.steps`` and ``run.evals``, when
    given, must repeat."""
    if run.resume is None:
        if run.steps is not None:
            return run.steps, None
        return None, 60.0 * (MINUTES if run.minutes is None else run.minutes)
    lm.io.resume_training(trainer, run.resume)
    p = trainer.progress
    if p is None:
        raise lm.ModelFileError(f"checkpoint {run.resume!r} holds no run to continue")
    given = {
        "--steps": (run.steps, p.steps),
        "--minutes": (run.minutes, None if p.seconds is None else p.seconds / 60.0),
        "--evals": (run.evals, p.evals),
    }
    for option, (value, saved) in given.items():
        if value is not None and value != saved:
            of = "no such budget" if saved is None else f"{option} {saved:g}"
            raise lm.LMError(
                f"{option} {value:g} differs from the checkpoint's run ({of}); leave it out "
                "to continue that run as it was"
            )
    return p.steps, p.seconds


def _summary(trainer: lm.Trainer, report: lm.TrainReport) -> dict[str, Any]:
    """The final metrics: what ``--json`` prints.  ``val_loss``, ``val_perplexity`` and
    ``val_bits_per_char`` are those of the best validation (the parameters ``--out``
    saves), seen at ``best_step`` after ``best_seconds`` of training; ``final_val_loss``
    is the last validation's."""
    assert report.val is not None
    assert trainer.best is not None
    best = trainer.best
    return {
        "backend": trainer.lm.backend.name,
        "dtype": trainer.lm.backend.dtype_name,
        "cell": trainer.lm.config.cell,
        "dropout": trainer.config.dropout,
        "recurrent_dropout": trainer.config.recurrent_dropout,
        "steps": report.steps,
        "seconds": round(report.seconds, 3),
        "tokens_per_s": round(report.tokens_per_s, 1),
        "train_loss": report.train_loss,
        "val_loss": best.loss,
        "val_perplexity": best.metrics.perplexity,
        "val_bits_per_char": best.metrics.bits_per_char,
        "best_step": best.step,
        "best_seconds": round(best.seconds, 3),
        "final_val_loss": report.val.loss,
        "vocab_size": len(trainer.lm.vocab),
        "parameters": trainer.lm.params.size(),
    }


def _jax_mesh(args: argparse.Namespace) -> Any:
    """The mesh of ``--devices`` and ``--num-processes`` (JAX's data parallelism, set up
    before JAX first computes), ``None`` without them."""
    given = [
        o
        for o in ("devices", "num_processes", "process_id", "coordinator_address")
        if getattr(args, o) is not None
    ]
    if not given:
        return None
    if args.backend != "jax":
        raise lm.LMError(
            f"--{given[0].replace('_', '-')} needs --backend jax, got --backend {args.backend}"
        )
    from .lm import distributed_jax  # needs JAX

    return distributed_jax.initialize(
        args.devices,
        coordinator_address=args.coordinator_address,
        num_processes=args.num_processes,
        process_id=args.process_id,
        timeout=args.timeout,
    )


def _jax_faults(mesh: Any) -> contextlib.AbstractContextManager[None]:
    """``distributed_jax.peer_faults`` when ``mesh`` spans several processes."""
    if mesh is None or len({d.process_index for d in mesh.devices.flat}) == 1:
        return contextlib.nullcontext()
    from .lm import distributed_jax

    return distributed_jax.peer_faults()


def _writes_files(args: argparse.Namespace) -> bool:
    """Whether this process writes ``train``'s files: a lone process, or process 0 of
    ``jax.distributed`` or of ``torchrun`` (known from the environment, before joining)."""
    from .lm import distributed_torch

    torch_rank = int(os.environ["RANK"]) if distributed_torch.launched() else 0
    return not args.process_id and torch_rank == 0


def train(args: argparse.Namespace) -> int:
    """Train a character-level language model on a text file."""
    mesh = _jax_mesh(args)
    if _writes_files(args):  # the others would race it for the probe's file
        outputs = {"--out": args.out, "--history": args.history, "--checkpoint": args.checkpoint}
        _check_files(args.text, outputs)
    if args.recurrent_dropout and not lm.CELLS[args.cell].cell.recurrent_dropout:
        raise lm.LMError(
            f"--recurrent-dropout needs a cell with a recurrent weight; --cell {args.cell} has "
            "none (its gates read the input alone)"
        )
    if args.resume is None and args.evals is None:
        args.evals = EVALS
    text = lm.read_text(args.text)
    with _torch_group(args.timeout, args.backend) as group, _jax_faults(mesh):
        if group is not None and group.rank != 0:  # rank 0 writes the files and the output
            args.out = args.history = None
        return _train_command(args, text, group, mesh)


def _train_command(args: argparse.Namespace, text: str, group: Any, mesh: Any) -> int:
    main = not args.process_id  # the other processes of jax.distributed are quiet
    run = _Run(
        source=args.text,
        model=lm.ModelConfig(args.embed, args.hidden, args.layers, args.cell),
        config=lm.TrainConfig(
            batch=args.batch,
            seq_len=args.seq_len,
            lr=args.lr,
            warmup=args.warmup,
            final_lr=args.final_lr,
            clip_norm=args.clip or None,
            seed=args.seed,
            dropout=args.dropout,
            recurrent_dropout=args.recurrent_dropout,
        ),
        backend=args.backend,
        dtype=args.dtype,
        steps=args.steps,
        minutes=args.minutes,
        evals=args.evals,
        out=args.out if main else None,
        history=args.history if main else None,
        command=args.command_line,
        checkpoint=args.checkpoint,  # every process gathers the state, process 0 writes
        resume=args.resume,
        group=group,
        mesh=mesh,
    )
    if not main:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            return 0 if _train(text, run)[1] is not None else 130
    trainer, report = _train(text, run)
    if report is None:
        return 130
    summary = _summary(trainer, report)
    if group is not None and group.rank != 0:
        return 0
    if args.json:
        print(_json(summary))
    else:
        print(
            f"{report.steps} steps in {report.seconds:.1f} s ({report.tokens_per_s:,.0f} tok/s): "
            f"train loss {_shown(report.train_loss, 4)}, "
            f"best val loss {_shown(summary['val_loss'], 4)} nats/char at step "
            f"{summary['best_step']} (final {_shown(summary['final_val_loss'], 4)}), "
            f"val perplexity {_shown(summary['val_perplexity'], 3)} "
            f"(uniform over the vocabulary: {summary['vocab_size']})"
        )
    return 0


@contextlib.contextmanager
def _torch_group(timeout: float, train_backend: str | None = None) -> Iterator[Any]:
    """The :class:`~polyrnn.lm.distributed_torch.TorchGroup` of a process started by
    ``torchrun`` as one of several (left at the end), else ``None``; refuses to train on
    ``train_backend`` where that is single-process."""
    from .lm import distributed_torch

    if not distributed_torch.launched():
        yield None
        return
    if train_backend is not None and train_backend not in distributed_torch.BACKENDS:
        raise distributed_torch.single_process_error(train_backend)
    group = distributed_torch.TorchGroup.from_env(timeout)

    def stopped(signum: int, frame: Any) -> None:  # torchrun stops the others of a failure
        if group.reporting:  # a failed exchange is being reported already
            return
        raise lm.PeerLostError(group.lost("and was stopped by the launcher"))

    previous = signal.signal(signal.SIGTERM, stopped)
    try:
        yield group
    finally:
        signal.signal(signal.SIGTERM, previous)
        group.close()


def evaluate(args: argparse.Namespace) -> int:
    """Cross-entropy and perplexity of a saved model on a text file; under torchrun, the
    text's streams are shared among the processes and their sums combined."""
    from .lm import distributed_torch

    model = lm.load(args.model, backend=args.backend)
    tokens = model.vocab.encode(lm.read_text(args.text))
    with _torch_group(args.timeout) as group:
        if group is None:
            metrics = lm.evaluate_tokens(model, tokens)
        else:
            metrics = distributed_torch.evaluate_tokens(model, tokens, group)
            if group.rank != 0:
                return 0
    if args.json:
        print(
            _json(
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
            f"{metrics.tokens:,} characters: {_shown(metrics.loss, 4)} nats/char "
            f"({_shown(metrics.bits_per_char, 4)} bits/char), "
            f"perplexity {_shown(metrics.perplexity, 3)}"
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
    run = _Run(
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
    trainer, report = _train(text, run)
    if report is None:
        return 130
    assert report.val is not None
    vocab = len(trainer.lm.vocab)
    print(
        f"After {report.seconds:.0f} s ({report.steps} steps, {report.tokens_per_s:,.0f} "
        f"characters/s) the model predicts the held-out last 10% of Python's documentation "
        f"with perplexity {_shown(report.val.perplexity, 2)} "
        f"({_shown(report.val.loss, 3)} nats/char); "
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
    from .lm.distributed_torch import TIMEOUT

    p.add_argument(
        "--timeout",
        type=_positive(float),
        default=TIMEOUT,
        help="under torchrun: seconds to wait for the other processes (to join, and in "
        "every exchange) before stopping with an error naming the missing ranks; with "
        "--num-processes (jax.distributed): to join, and after which a process that "
        "stopped sending heartbeats is declared dead",
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
        type=_positive(float),
        default=DEMO["minutes"],
        help="training time in minutes, evaluation excluded",
    )
    budget.add_argument("--steps", type=_positive(int), help="or train for this many steps")
    p.add_argument("--dtype", default="float32", choices=lm.backend.DTYPES, help=DTYPE_HELP)
    p.add_argument(
        "--seed", type=_number(int, 0), default=0, help="seed of the initial weights and the sample"
    )
    p.set_defaults(run=demo)

    m, t = MODEL, TRAINING
    p = sub_parser("train", help=_one_line(train), description=_one_line(train))
    p.add_argument(
        "--text", required=True, type=_file_path, help="UTF-8 text file; its last 10%% validates"
    )
    _add_backend(p, "numpy")
    p.add_argument("--cell", default=m.cell, choices=list(lm.CELLS), help="recurrent cell")
    p.add_argument("--embed", type=_positive(int), default=m.embed_size, help="embedding width E")
    p.add_argument("--hidden", type=_positive(int), default=m.hidden_size, help="hidden width H")
    p.add_argument("--layers", type=_positive(int), default=m.layers, help="recurrent layers L")
    p.add_argument(
        "--seq-len", type=_positive(int), default=t.seq_len, help="characters per step T"
    )
    p.add_argument("--batch", type=_positive(int), default=t.batch, help="parallel streams B")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive(int), help="train for this many steps")
    budget.add_argument(
        "--minutes",
        type=_positive(float),
        help=f"or for this many minutes of training, evaluation excluded ; {MINUTES:g} when "
        "neither is given, the checkpoint's with --resume",
    )
    p.add_argument("--lr", type=_positive(float), default=t.lr, help="peak Adam learning rate")
    p.add_argument(
        "--warmup", type=_number(int, 0), default=t.warmup, help="steps of linear warm-up"
    )
    p.add_argument(
        "--final-lr",
        type=_number(float, 0, 1),
        default=t.final_lr,
        help="learning rate at the end, as a fraction of --lr, reached by a cosine (1: constant)",
    )
    p.add_argument(
        "--clip", type=_number(float, 0), default=t.clip_norm, help="gradient-norm clip (0: off)"
    )
    p.add_argument(
        "--dropout",
        type=_number(float, 0, 1, below=True),
        default=t.dropout,
        help="probability of zeroing each output of the embedding and of every recurrent "
        "layer during training steps (never when validating); 0: off",
    )
    p.add_argument(
        "--recurrent-dropout",
        type=_number(float, 0, 1, below=True),
        default=t.recurrent_dropout,
        help="probability of zeroing each unit of h_{t-1} where it meets W_h, one mask per "
        "stream and step (Gal & Ghahramani 2016; not minGRU, minLSTM); 0: off",
    )
    p.add_argument(
        "--evals",
        type=_number(int, 0),
        help=f"validations during the run: {EVALS} unless given, the checkpoint's with --resume",
    )
    p.add_argument(
        "--seed",
        type=_number(int, 0),
        default=t.seed,
        help="seed of the initial weights and of the dropout masks",
    )
    p.add_argument("--dtype", default="float32", choices=lm.backend.DTYPES, help=DTYPE_HELP)
    p.add_argument(
        "--out",
        type=_file_path,
        help="save the model with the lowest validation loss here (.npz), also on Ctrl-C",
    )
    p.add_argument("--history", type=_file_path, help="write the learning curve here (.json)")
    _add_timeout(p)
    p.add_argument(
        "--checkpoint",
        type=_file_path,
        help="save the last state here (.npz: parameters, Adam's moments, the run's "
        "progress) after every validation, at the end and when stopped",
    )
    p.add_argument(
        "--resume",
        type=_file_path,
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
        type=_positive(int),
        help="devices to split the batch across (dividing --batch); on CPU, simulated; "
        "with --num-processes, all of theirs (the default there)",
    )
    g.add_argument(
        "--num-processes", type=_positive(int), help="processes to join (jax.distributed)"
    )
    g.add_argument(
        "--process-id", type=_number(int, 0), help="this process's rank, 0 to --num-processes - 1"
    )
    g.add_argument(
        "--coordinator-address",
        metavar="HOST:PORT",
        help="where process 0 listens for the others; without it, $JAX_COORDINATOR_ADDRESS",
    )
    p.set_defaults(run=train)

    p = sub_parser("eval", help=_one_line(evaluate), description=_one_line(evaluate))
    p.add_argument(
        "--model", required=True, type=_file_path, help=".npz file written by polyrnn train"
    )
    p.add_argument("--text", required=True, type=_file_path, help="UTF-8 text file to score")
    _add_backend(p, "numpy")
    p.add_argument("--json", action="store_true", help="print the metrics as one line of JSON")
    _add_timeout(p)
    p.set_defaults(run=evaluate)

    p = sub_parser("sample", help=_one_line(sample), description=_one_line(sample))
    p.add_argument(
        "--model", required=True, type=_file_path, help=".npz file written by polyrnn train"
    )
    p.add_argument(
        "--prompt",
        help="text to continue; without it, a newline (or, when the model's vocabulary has "
        "none, its first character)",
    )
    p.add_argument("--length", type=_number(int, 0), default=300, help="characters to generate")
    p.add_argument(
        "--temperature",
        type=_number(float, 0),
        default=0.8,
        help="0: always the likeliest character; higher: more varied",
    )
    p.add_argument(
        "--seed", type=_number(int, 0), help="seed of the sampler (random when not given)"
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
            from .lm import distributed_jax

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
