"""Text as data: the character vocabulary, the train/validation split, the batches.

Training reads ``B`` parallel streams over the training text, ``T`` characters at a time
(truncated backpropagation through time): the text is cut into ``B`` contiguous pieces
of equal length, batch ``k`` holds characters ``[kT, (k+1)T)`` of every piece and the
targets are the characters one further.  Consecutive batches continue each other, so the
model's state is carried from one to the next; after the last full chunk of a piece the
streams start over (an epoch) and the state is reset.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import DataError

__all__ = ["StreamBatches", "Vocab", "read_text", "split_text"]


class Vocab:
    """The sorted set of characters of a text, and the map between characters and ids.

    Parameters
    ----------
    chars : iterable of str
        The characters (one-character strings); duplicates are dropped and the rest sorted,
        so a character's id is its rank by code point.

    Examples
    --------
    >>> v = polyrnn.lm.Vocab.from_text("hello")
    >>> v.chars, v.encode("hole"), v.decode([3, 0])
    (('e', 'h', 'l', 'o'), array([1, 3, 2, 0]), 'oe')
    """

    def __init__(self, chars: Iterable[str]) -> None:
        unique = sorted(set(chars))
        if not unique:
            raise DataError("a vocabulary needs at least one character")
        if any(not isinstance(c, str) or len(c) != 1 for c in unique):
            raise DataError("a vocabulary holds single characters")
        if any("\ud800" <= c <= "\udfff" for c in unique):
            raise DataError("a vocabulary holds characters of text, not lone surrogates")
        self.chars: tuple[str, ...] = tuple(unique)
        self._codes = np.array([ord(c) for c in unique], dtype=np.uint32)

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The vocabulary of the characters that occur in ``text``."""
        return cls(text)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"Vocab({len(self)} characters)"

    def encode(self, text: str, *, what: str = "the text") -> np.ndarray:
        """The ids of the characters of ``text``, an ``int64`` array of ``len(text)``.

        Raises
        ------
        DataError
            If ``text`` holds characters outside the vocabulary (they are listed; the
            message calls ``text`` ``what``).
        """
        if not isinstance(text, str):
            raise TypeError(f"{what} must be a str, got {type(text).__name__}")
        try:
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        except UnicodeEncodeError:  # a lone surrogate, such as bytes that were not UTF-8
            raise DataError(f"{what} is not valid text: it holds a lone surrogate") from None
        ids = np.searchsorted(self._codes, codes)
        known = self._codes[np.minimum(ids, len(self) - 1)] == codes
        if not known.all():
            unknown = sorted({text[i] for i in np.flatnonzero(~known)[:1000]})
            shown = ", ".join(repr(c) for c in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            n = int((~known).sum())
            raise DataError(
                f"{what} has {n} character{'' if n == 1 else 's'} outside the model's "
                f"vocabulary of {len(self)}: {shown}{more}"
            )
        return ids.astype(np.int64)

    def decode(self, ids: Iterable[Any]) -> str:
        """The text of a sequence of ids."""
        return "".join(self.chars[int(i)] for i in ids)


def read_text(path: str | os.PathLike[str]) -> str:
    """The UTF-8 text of the file at ``path``, character for character (``\\r\\n`` stays
    two characters), but for a leading byte-order mark, which is not text.

    Raises
    ------
    DataError
        If the file cannot be read, is not UTF-8, or is empty.
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # every character as is
            text = f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"text file {os.fspath(path)!r} is not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise DataError(f"cannot read text file {os.fspath(path)!r}: {e.strerror}") from None
    if not text:
        raise DataError(f"text file {os.fspath(path)!r} is empty")
    return text


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """The text cut in two: the first ``1 - val_fraction`` for training, the rest for validation.

    Raises
    ------
    DataError
        If either part would have fewer than two characters (one prediction needs two).
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    cut = len(text) - round(len(text) * val_fraction)
    train, val = text[:cut], text[cut:]
    if len(train) < 2 or len(val) < 2:
        raise DataError(
            f"the text has {len(text)} characters, too few to split into training and "
            f"validation parts of at least 2 characters each"
        )
    return train, val


class StreamBatches:
    """``B`` parallel streams over a token sequence, ``T`` steps at a time.

    Parameters
    ----------
    tokens : int array, shape ``(N,)``
        The encoded training text.
    batch : int
        B, the number of streams.
    seq_len : int
        T, the number of characters per batch and stream.

    Raises
    ------
    DataError
        If the text is shorter than one batch: it needs ``B * T + 1`` characters.

    Examples
    --------
    >>> batches = polyrnn.lm.StreamBatches(np.arange(11), batch=2, seq_len=2)
    >>> len(batches)
    2
    >>> batches[1]
    (array([[2, 3],
           [7, 8]]), array([[3, 4],
           [8, 9]]))
    """

    def __init__(self, tokens: np.ndarray, *, batch: int, seq_len: int) -> None:
        for name, value in (("batch", batch), ("seq_len", seq_len)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        tokens = np.asarray(tokens)
        if not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"tokens must be integer character ids, got dtype {tokens.dtype}")
        need = batch * seq_len + 1
        if tokens.ndim != 1 or tokens.shape[0] < need:
            raise DataError(
                f"the training text has {tokens.shape[0]} characters, fewer than one batch "
                f"needs: {batch} streams x {seq_len} characters + 1 = {need}; use a longer "
                f"text or a smaller batch or sequence length"
            )
        span = int(tokens.shape[0] - 1) // batch
        self.batch = batch
        self.seq_len = seq_len
        self.inputs = tokens[: batch * span].reshape(batch, span)
        self.targets = tokens[1 : batch * span + 1].reshape(batch, span)
        self._chunks = span // seq_len

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        return self._chunks

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``k`` of an epoch: ``(inputs, targets)``, each ``(B, T)``."""
        if not 0 <= k < self._chunks:
            raise IndexError(f"batch {k} out of range [0, {self._chunks})")
        cols = slice(k * self.seq_len, (k + 1) * self.seq_len)
        return self.inputs[:, cols], self.targets[:, cols]
