"""The ``polyrnn train`` command (and the training run of ``polyrnn demo``): the defaults
of the measured recipe, the progress on stderr, the checked output files, the best and the
last states saved, and the data-parallel runs of ``torchrun`` and ``jax.distributed``."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .. import lm
from ._common import jax_faults, jax_mesh, reports, shown, to_json, torch_group

MODEL = lm.ModelConfig(hidden_size=384)
"""The architecture ``polyrnn train`` builds by default (see :class:`polyrnn.lm.ModelConfig`):
the recipe measured on the documentation's Training page."""
TRAINING = lm.TrainConfig(seq_len=64, lr=3e-3, beta2=0.99, weight_decay=0.1, dropout=0.15)
"""The training hyper-parameters of ``polyrnn train`` by default (see
:class:`polyrnn.lm.TrainConfig`, whose own defaults drop and decay nothing): the recipe of
the Training page, with dropout and weight decay so that a fast machine's extra epochs do
not overfit."""
MINUTES = 10.0
"""The training time of ``polyrnn train`` when neither --steps nor --minutes is given."""
EVALS = 10
"""The validations of a ``polyrnn train`` run when --evals is not given."""


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
        stats = f"loss {shown(p.loss, 4)}, {p.tokens_per_s:,.0f} tok/s, lr {p.lr:.2e}"
        if self.bar is not None:
            self.bar.update((p.step if self.total_steps is not None else p.seconds) - self.bar.n)
            self.bar.set_postfix_str(stats, refresh=False)
        elif time.perf_counter() - self.last_line >= self.interval:
            self.last_line = time.perf_counter()
            self.write(f"step {p.step} ({p.fraction:.0%}, {p.seconds:.0f} s): {stats}")

    def eval(self, record: dict[str, Any]) -> None:
        train = record["train_loss"]
        train_text = "" if train is None else f"train loss {shown(train, 4)}, "
        self.write(
            f"step {record['step']} ({record['seconds']:.0f} s): {train_text}"
            f"val loss {shown(record['val_loss'], 4)} nats/char, "
            f"perplexity {shown(record['val_perplexity'], 3)}"
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
    text = to_json(document, indent=1) + "\n"
    lm.io.write_atomic(path, lambda f: f.write(text.encode("utf-8")))


@dataclass(frozen=True)
class Run:
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


def train_run(text: str, run: Run) -> tuple[lm.Trainer, lm.TrainReport | None]:
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
                where = f"to {run.out}, the best validated (loss {shown(best.loss, 4)})"
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
                f"loss ({shown(summary['val_loss'], 4)}), to {run.out}"
            )
        if run.history is not None:
            document["final"] = summary
            _write_json(run.history, document)
    return trainer, report


def _budget(trainer: lm.Trainer, run: Run) -> tuple[int | None, float | None]:
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


def train(args: argparse.Namespace) -> int:
    """Train a character-level language model on a text file."""
    mesh = jax_mesh(args)
    writes = reports(args)
    if writes:  # the others would race it for the probe's file
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
    with torch_group(args.timeout, args.backend) as group, jax_faults(mesh):
        if not writes:
            args.out = args.history = None
        return _train_command(args, text, group, mesh)


def _train_command(args: argparse.Namespace, text: str, group: Any, mesh: Any) -> int:
    main = not args.process_id  # the other processes of jax.distributed are quiet
    run = Run(
        source=args.text,
        model=lm.ModelConfig(args.embed, args.hidden, args.layers, args.cell),
        config=lm.TrainConfig(
            batch=args.batch,
            seq_len=args.seq_len,
            lr=args.lr,
            warmup=args.warmup,
            final_lr=args.final_lr,
            beta2=args.beta2,
            clip_norm=args.clip or None,
            weight_decay=args.weight_decay,
            seed=args.seed,
            dropout=args.dropout,
            recurrent_dropout=args.recurrent_dropout,
        ),
        backend=args.backend,
        dtype=args.dtype,
        steps=args.steps,
        minutes=args.minutes,
        evals=args.evals,
        out=args.out,
        history=args.history,
        command=args.command_line,
        checkpoint=args.checkpoint,  # every process gathers the state, process 0 writes
        resume=args.resume,
        group=group,
        mesh=mesh,
    )
    if not main:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
            return 0 if train_run(text, run)[1] is not None else 130
    trainer, report = train_run(text, run)
    if report is None:
        return 130
    summary = _summary(trainer, report)
    if group is not None and group.rank != 0:
        return 0
    if args.json:
        print(to_json(summary))
    else:
        print(
            f"{report.steps} steps in {report.seconds:.1f} s ({report.tokens_per_s:,.0f} tok/s): "
            f"train loss {shown(report.train_loss, 4)}, "
            f"best val loss {shown(summary['val_loss'], 4)} nats/char at step "
            f"{summary['best_step']} (final {shown(summary['final_val_loss'], 4)}), "
            f"val perplexity {shown(summary['val_perplexity'], 3)} "
            f"(uniform over the vocabulary: {summary['vocab_size']})"
        )
    return 0
