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
from .model import LanguageModel, LMParams, ModelConfig, init_params

__all__ = ["FORMAT", "VERSION", "load", "save", "write_atomic"]

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
    arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
    write_atomic(path, lambda f: np.savez(f, **arrays))


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], Any]) -> None:
    """Create or replace ``path`` with what ``write(f)`` writes to a binary file ``f``.

    Through a temporary file in the same directory, ``fsync`` and a rename: an interrupted
    write leaves the old file (or none), never half a file.  A replaced file keeps its mode;
    a new one gets the mode ``open`` would give it (``0o666`` less the umask).  An
    :class:`OSError` names ``path``, not the temporary file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
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
    if meta.get("version") != VERSION:
        raise ModelFileError(
            f"{path!r} has format version {meta.get('version')!r}; this polyrnn reads "
            f"version {VERSION} (save the model again with a matching polyrnn)"
        )
    return meta, arrays


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
    try:
        config = ModelConfig(**meta["model"])
        vocab = Vocab(meta["vocab"])
        saved_dtype = meta["dtype"]
        info = dict(meta.get("info") or {})
    except (KeyError, TypeError, ValueError, DataError) as e:
        raise ModelFileError(f"{path!r} has invalid metadata ({e})") from None
    if saved_dtype not in DTYPES:
        raise ModelFileError(
            f"{path!r} has invalid metadata (dtype {saved_dtype!r}; expected one of {DTYPES})"
        )
    b = backend if isinstance(backend, Backend) else get_backend(backend, dtype or saved_dtype)
    # The expected names and shapes, from a fresh model of the same architecture.
    template = init_params(config, len(vocab), get_backend("numpy", "float64"))
    expected = _named_arrays(template, np.asarray)
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ModelFileError(
            f"{path!r} does not match its own architecture {config}: "
            f"missing arrays {missing}, unexpected arrays {extra}"
        )
    for name, ref in expected.items():
        a = arrays[name]
        if a.shape != ref.shape or not np.issubdtype(a.dtype, np.floating):
            raise ModelFileError(
                f"{path!r}: array {name!r} has shape {a.shape} and dtype {a.dtype}, "
                f"expected shape {ref.shape} and a floating dtype"
            )
        if not np.isfinite(a).all():
            raise ModelFileError(
                f"{path!r}: array {name!r} holds {int((~np.isfinite(a)).sum())} NaN or "
                "infinite values (the parameters of a diverged run); it cannot predict"
            )
    layers = tuple(
        type(layer)(*(b.asarray(arrays[f"layers.{i}.{f}"]) for f in layer._fields))
        for i, layer in enumerate(template.layers)
    )
    params = LMParams(
        b.asarray(arrays["embed"]), layers, b.asarray(arrays["w_out"]), b.asarray(arrays["b_out"])
    )
    return LanguageModel(config, vocab, params, b, info)
