"""Saving and loading language models: one backend-neutral ``.npz`` file.

The file holds every parameter as a NumPy array (``embed``, ``layers.<i>.<field>``,
``w_out``, ``b_out``) and a JSON document ``meta``: the format name and version, the
architecture, the vocabulary, the dtype and free-form ``info`` (training
hyper-parameters, metrics).  It is written atomically: to a temporary file in the same
directory, then renamed over the target, so a reader never sees half a file and a failed
write leaves the previous file as it was.  It loads on any backend, without pickle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import stat
import tempfile
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from .backend import DTYPES, Backend, get_backend
from .data import Vocab
from .errors import DataError, ModelFileError
from .evaluation import Metrics
from .model import LanguageModel, LMParams, ModelConfig, init_params
from .optim import AdamState
from .train import Checkpoint, RunProgress, Trainer

__all__ = ["FORMAT", "VERSION", "load", "resume_training", "save", "save_training", "write_atomic"]

TRAINING_PREFIXES = ("adam.m.", "adam.v.", "state.", "best.")
"""The names of a checkpoint's arrays that are not the model's parameters."""

TEMPORARY_PREFIX = ".polyrnn-"
"""The temporary files of :func:`write_atomic` are ``.polyrnn-XXXXXXXX.tmp``, short
whatever the target's name."""

FORMAT = "polyrnn.lm"
"""The ``format`` field of the metadata."""
VERSION = 1
"""The version of the file layout this code writes and reads."""


def _named_arrays(params: LMParams, to_numpy: Any) -> dict[str, np.ndarray]:
    arrays = {"embed": to_numpy(params.embed)}
    for i, layer in enumerate(params.layers):
        for name, a in zip(layer._fields, layer, strict=True):
            arrays[f"layers.{i}.{name}"] = to_numpy(a)
    arrays["w_out"] = to_numpy(params.w_out)
    arrays["b_out"] = to_numpy(params.b_out)
    return arrays


def save(lm: LanguageModel, path: str | os.PathLike[str]) -> None:
    """Write ``lm`` to ``path`` (an ``.npz`` file), atomically.

    Parameters
    ----------
    lm : LanguageModel
    path : str or path-like
        The file to create or replace.  Its directory must exist.

    Raises
    ------
    ModelFileError
        If the parameters are not what :func:`load` accepts (NaN or infinite values, a
        shape other than the architecture's): nothing is written.
    OSError
        If the file cannot be written; the file at ``path``, if any, is then unchanged
        and no temporary file is left behind.

    Examples
    --------
    >>> import os, tempfile
    >>> trainer = polyrnn.lm.Trainer("abcd" * 100, config=polyrnn.lm.TrainConfig(batch=2, seq_len=8),
    ...                              model=polyrnn.lm.ModelConfig(embed_size=4, hidden_size=8))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> polyrnn.lm.save(trainer.lm, path)
    >>> polyrnn.lm.load(path).vocab.chars
    ('a', 'b', 'c', 'd')
    """
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": lm.config.to_dict(),
        "vocab": list(lm.vocab.chars),
        "dtype": lm.backend.dtype_name,
        "info": lm.info,
    }
    arrays: dict[str, Any] = _named_arrays(lm.params, lm.backend.to_numpy)
    _check_arrays(os.fspath(path), lm.config, lm.vocab, arrays, lm.backend.dtype_name)
    arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
    write_atomic(path, lambda f: np.savez(f, **arrays))


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> None:
    """Create or replace ``path`` with what ``write(f)`` writes to a binary file ``f``.

    Through a temporary file in the same directory, ``fsync`` and a rename: an interrupted
    write leaves the old file (or none), never half a file.  A replaced file keeps its mode;
    a new one gets the mode ``open`` would give it (``0o666`` less the umask).  A symbolic
    link is followed: its target is replaced and the link kept.  An :class:`OSError` names
    ``path``, not the temporary file.
    """
    path = os.path.realpath(path)  # a symbolic link stays one: its target is written
    directory = os.path.dirname(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=".tmp", dir=directory)
    except OSError as e:
        raise OSError(e.errno, e.strerror, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror, path) from None
        raise


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and the arrays of a model file, or a :class:`ModelFileError`."""
    if os.path.isfile(path) and not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path!r} is not a polyrnn model file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except FileNotFoundError:
        raise ModelFileError(f"model file {path!r} does not exist") from None
    except IsADirectoryError:
        raise ModelFileError(f"model file {path!r} is a directory") from None
    except MemoryError:
        raise ModelFileError(f"{path!r} declares arrays too large to load") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(
            f"{path!r} is not a readable polyrnn model file (corrupt or not .npz: {e})"
        ) from None
    if not isinstance(arrays, dict) or "meta" not in arrays:
        raise ModelFileError(f"{path!r} is an .npz file but not a polyrnn model (no metadata)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError as e:
        raise ModelFileError(f"{path!r} has corrupt metadata ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path!r} is an .npz file but not a polyrnn language model")
    if type(meta.get("version")) is not int or meta["version"] != VERSION:
        raise ModelFileError(
            f"{path!r} has format version {meta.get('version')!r}; this polyrnn reads "
            f"version {VERSION} (save the model again with a matching polyrnn)"
        )
    return meta, arrays


def _metadata(path: str, meta: dict[str, Any]) -> tuple[ModelConfig, Vocab, str, dict[str, Any]]:
    """The architecture, vocabulary, dtype and info of a model file's metadata."""

    def invalid(why: str) -> ModelFileError:
        return ModelFileError(f"{path!r} has invalid metadata ({why})")

    for key, kind in (("model", dict), ("vocab", list), ("dtype", str)):
        if key not in meta:
            raise invalid(f"no {key!r} field")
        if not isinstance(meta[key], kind):
            raise invalid(f"{key!r} must be a JSON {kind.__name__}, got {meta[key]!r:.60}")
    info = meta.get("info") or {}
    if not isinstance(info, dict):
        raise invalid(f"'info' must be a JSON dict, got {info!r:.60}")
    names = sorted(f.name for f in dataclasses.fields(ModelConfig))
    if sorted(meta["model"]) != names:
        raise invalid(f"'model' must have the fields {names}, got {sorted(meta['model'])}")
    try:
        config = ModelConfig(**meta["model"])
        vocab = Vocab(meta["vocab"])
    except (TypeError, ValueError, DataError) as e:
        raise invalid(str(e)) from None
    if list(vocab.chars) != meta["vocab"]:
        raise invalid("'vocab' must list distinct characters in code-point order")
    if meta["dtype"] not in DTYPES:
        raise invalid(f"dtype {meta['dtype']!r}; expected one of {DTYPES}")
    return config, vocab, meta["dtype"], info


def _check_arrays(
    path: str, config: ModelConfig, vocab: Vocab, arrays: dict[str, np.ndarray], dtype: str
) -> LMParams:
    """The arrays are those of ``config``'s architecture, floating, finite and within
    ``dtype``'s range; returns a template of the architecture (float64, NumPy).  The sizes
    are checked against the arrays the file holds before the template is built, so
    metadata claiming a huge model fails fast."""
    v = len(vocab)
    layers = {n.split(".")[1] for n in arrays if n.startswith("layers.")}
    if len(layers) != config.layers or layers != {str(i) for i in range(config.layers)}:
        raise ModelFileError(
            f"{path!r} does not match its own architecture {config}: it holds the arrays "
            f"of {len(layers)} layer{'' if len(layers) == 1 else 's'}"
        )
    sizes = {"embed": (v, config.embed_size), "w_out": (config.hidden_size, v), "b_out": (v,)}
    for name, shape in sizes.items():
        if name in arrays:  # a missing one is named below
            _check_array(path, name, arrays[name], shape, dtype)
    template = init_params(config, v, get_backend("numpy", "float64"))
    expected = _named_arrays(template, np.asarray)
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{path!r} does not match its own architecture {config}: "
            f"missing arrays {missing}, unexpected arrays {extra}"
        )
    for name, ref in expected.items():
        _check_array(path, name, arrays[name], ref.shape, dtype)
    return template


def _check_array(path: str, name: str, a: np.ndarray, shape: tuple[int, ...], dtype: str) -> None:
    """``a`` has ``shape``, a floating dtype, and finite values within ``dtype``'s range."""
    if a.shape != shape or not np.issubdtype(a.dtype, np.floating):
        raise ModelFileError(
            f"{path!r}: array {name!r} has shape {a.shape} and dtype {a.dtype}, "
            f"expected shape {shape} and a floating dtype"
        )
    if not np.isfinite(a).all():
        raise ModelFileError(
            f"{path!r}: array {name!r} holds {int((~np.isfinite(a)).sum())} NaN or "
            "infinite values (the parameters of a diverged run); it cannot predict"
        )
    if a.size and float(np.abs(a).max()) > float(np.finfo(dtype).max):
        raise ModelFileError(
            f"{path!r}: array {name!r} holds values beyond the range of {dtype} "
            f"(largest {float(np.abs(a).max()):.3g}); it cannot predict in {dtype}"
        )


def load(
    path: str | os.PathLike[str], *, backend: str | Backend = "numpy", dtype: str | None = None
) -> LanguageModel:
    """Read a model written by :func:`save`.

    Parameters
    ----------
    path : str or path-like
    backend : str or Backend
        The array library to load the parameters into.
    dtype : {"float32", "float64"}, optional
        The parameters' dtype; the saved one by default.  Ignored when ``backend`` is a
        :class:`~polyrnn.lm.Backend`.

    Returns
    -------
    LanguageModel

    Raises
    ------
    ModelFileError
        If the file is missing, not an ``.npz`` file, corrupt, not a polyrnn language
        model, of another format version, or inconsistent (an unknown dtype; a missing,
        extra or misshapen array; NaN or infinite parameters).
    BackendUnavailableError
        If the backend's library is missing.
    """
    path = os.fspath(path)
    meta, arrays = _read(path)
    config, vocab, saved_dtype, info = _metadata(path, meta)
    if "training" in meta:  # a checkpoint: its model is the last parameters
        arrays = {k: a for k, a in arrays.items() if not k.startswith(TRAINING_PREFIXES)}
    b = backend if isinstance(backend, Backend) else get_backend(backend, dtype or saved_dtype)
    template = _check_arrays(path, config, vocab, arrays, b.dtype_name)
    layers = tuple(
        type(layer)(*(b.asarray(arrays[f"layers.{i}.{f}"]) for f in layer._fields))
        for i, layer in enumerate(template.layers)
    )
    params = LMParams(
        b.asarray(arrays["embed"]), layers, b.asarray(arrays["w_out"]), b.asarray(arrays["b_out"])
    )
    return LanguageModel(config, vocab, params, b, info)


def save_training(trainer: Trainer, path: str | os.PathLike[str]) -> None:
    """Write a checkpoint of ``trainer`` to ``path``, atomically: the last parameters (a
    model file :func:`load` reads) and what :func:`resume_training` needs to continue the
    run of ``trainer.progress`` exactly (see the module's description).  With
    ``trainer.group``, or a ``mesh`` over several JAX processes, every process must call
    it (the state of the streams is gathered) and rank 0 (process 0) writes.

    Raises
    ------
    OSError
        As :func:`save`; the previous file is then unchanged.
    """
    lm, b = trainer.lm, trainer.lm.backend
    arrays: dict[str, Any] = _named_arrays(lm.params, b.to_numpy)
    _check_arrays(os.fspath(path), lm.config, lm.vocab, arrays, b.dtype_name)
    for name, tree in (("adam.m.", trainer.opt_state.m), ("adam.v.", trainer.opt_state.v)):
        arrays.update({name + k: a for k, a in _named_arrays(tree, b.to_numpy).items()})
    for i, carry in enumerate(trainer.full_state()):  # with a group: collective
        for k, a in enumerate(carry):
            arrays[f"state.{i}.{k}"] = a
    if trainer.group is not None and trainer.group.rank != 0:
        return  # rank 0 writes
    if trainer.parallel is not None and not trainer.parallel.writes:
        return  # JAX's process 0 writes
    best = trainer.best
    if best is not None:
        arrays.update({"best." + k: a for k, a in _named_arrays(best.params, np.asarray).items()})
    progress = trainer.progress
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": lm.config.to_dict(),
        "vocab": list(lm.vocab.chars),
        "dtype": b.dtype_name,
        "info": lm.info,
        "training": {
            "config": trainer.config.to_dict(),
            "text_sha256": trainer.text_digest,
            "steps_done": trainer.steps_done,
            "seconds": trainer.seconds,
            "adam_count": int(b.to_numpy(trainer.opt_state.count)),
            "progress": None if progress is None else progress.to_dict(),
            "best": None
            if best is None
            else {
                "metrics": list(best.metrics),
                "step": best.step,
                "seconds": best.seconds,
            },
        },
    }
    arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
    write_atomic(path, lambda f: np.savez(f, **arrays))


def resume_training(trainer: Trainer, path: str | os.PathLike[str]) -> None:
    """Put the checkpoint at ``path`` (:func:`save_training`) back into ``trainer``: its
    parameters, optimiser and carried state, steps, time, best parameters and run
    progress; then ``trainer.run(resume=True)`` continues the run.

    ``trainer`` must have been built as the checkpoint's was: the same text, architecture,
    vocabulary, dtype and training hyper-parameters (the backend may differ).

    Raises
    ------
    ModelFileError
        If the file is not a checkpoint (a model saved by :func:`save` has no training
        state), is corrupt, or does not match ``trainer`` (the message names what differs).
    """
    path = os.fspath(path)
    meta, arrays = _read(path)
    config, vocab, dtype, info = _metadata(path, meta)
    training = meta.get("training")
    if not isinstance(training, dict):
        raise ModelFileError(
            f"{path!r} is a model without training state (saved by --out or "
            "polyrnn.lm.save); resume from a checkpoint (--checkpoint, "
            "polyrnn.lm.io.save_training)"
        )
    b = trainer.lm.backend
    ours = {
        **{f"model {k}": v for k, v in trainer.lm.config.to_dict().items()},
        **{f"training {k}": v for k, v in trainer.config.to_dict().items()},
        "dtype": b.dtype_name,
    }
    theirs = {
        **{f"model {k}": v for k, v in config.to_dict().items()},
        **{f"training {k}": v for k, v in (training.get("config") or {}).items()},
        "dtype": dtype,
    }
    differ = [
        f"{k} {theirs.get(k)!r} (this run: {v!r})" for k, v in ours.items() if theirs.get(k) != v
    ]
    if differ:
        raise ModelFileError(
            f"checkpoint {path!r} does not match this run: it has " + ", ".join(differ)
        )
    if training.get("text_sha256") != trainer.text_digest or vocab != trainer.lm.vocab:
        raise ModelFileError(
            f"checkpoint {path!r} was trained on another text (its SHA-256 differs); resume "
            "with the text it was trained on"
        )
    try:
        model_arrays = {k: a for k, a in arrays.items() if not k.startswith(TRAINING_PREFIXES)}
        template = _check_arrays(path, config, vocab, model_arrays, dtype)

        def tree(prefix: str, to: Callable[[np.ndarray], Any]) -> LMParams:
            named = _named_arrays(template, np.asarray)
            for name, ref in named.items():
                _check_array(path, prefix + name, arrays[prefix + name], ref.shape, dtype)
            layers = tuple(
                type(layer)(*(to(arrays[f"{prefix}layers.{i}.{f}"]) for f in layer._fields))
                for i, layer in enumerate(template.layers)
            )
            return LMParams(
                to(arrays[prefix + "embed"]),
                layers,
                to(arrays[prefix + "w_out"]),
                to(arrays[prefix + "b_out"]),
            )

        parallel = trainer.parallel  # on a mesh: replicated, the state split by rows
        to = b.asarray if parallel is None else np.asarray
        count = np.asarray(int(training["adam_count"]), dtype=np.int32)
        params = tree("", to)
        opt_state = AdamState(to(count), tree("adam.m.", to), tree("adam.v.", to))
        if parallel is not None:
            params, opt_state = parallel.replicate((params, opt_state))
        shape = (trainer.config.batch, config.hidden_size)
        for i, carry in enumerate(trainer.state):
            for k in range(len(carry)):
                a = arrays[f"state.{i}.{k}"]
                if tuple(a.shape) != shape:
                    raise ModelFileError(
                        f"{path!r}: array 'state.{i}.{k}' has shape {tuple(a.shape)}, "
                        f"expected {shape}"
                    )
        put = b.asarray if parallel is None else parallel.shard
        state = tuple(  # this process's streams
            tuple(put(arrays[f"state.{i}.{k}"][trainer.rows]) for k in range(len(carry)))
            for i, carry in enumerate(trainer.state)
        )
        best_meta = training["best"]
        best = None
        if best_meta is not None:
            best = Checkpoint(
                tree("best.", lambda a: np.array(a, dtype=dtype)),
                Metrics(*best_meta["metrics"]),
                int(best_meta["step"]),
                float(best_meta["seconds"]),
            )
        progress = training["progress"]
        run = None if progress is None else RunProgress.from_dict(progress)
        steps_done, seconds = int(training["steps_done"]), float(training["seconds"])
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{path!r} has an incomplete training state ({e!r:.80})") from None
    trainer.lm.params, trainer.opt_state, trainer.state = params, opt_state, state
    trainer.lm.info = info
    trainer.steps_done, trainer.seconds = steps_done, seconds
    trainer.best, trainer.progress = best, run
