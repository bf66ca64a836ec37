"""Generating text: feed a prompt through the model, then draw one character at a time."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from . import _checks
from .backend import Backend
from .errors import DataError, DivergedError
from .model import LanguageModel, forward, zero_state

__all__ = ["sample"]


@functools.lru_cache(maxsize=16)
def _compiled(backend: Backend, cell: str) -> Any:
    return backend.jit(functools.partial(forward, cell=cell))


def _draw(log_probs: np.ndarray, temperature: float, rng: np.random.Generator) -> int:
    """A character id from ``softmax(log_probs / temperature)``; the argmax at temperature 0."""
    if not np.isfinite(log_probs.max()):
        raise DivergedError(
            f"the model's predictions are not finite (largest log-probability "
            f"{log_probs.max()}): its parameters are NaN, infinite or too large for its dtype"
        )
    if temperature == 0.0:
        return int(np.argmax(log_probs))
    with np.errstate(over="ignore", under="ignore"):  # a tiny temperature: the argmax alone
        p = np.exp((log_probs - log_probs.max()) / temperature)
    return int(rng.choice(p.shape[0], p=p / p.sum()))


def sample(
    lm: LanguageModel,
    prompt: str,
    length: int,
    *,
    temperature: float = 1.0,
    seed: int | None = None,
) -> str:
    """Continue ``prompt`` by ``length`` characters drawn from the model.

    The prompt is run through the model in one call; then each drawn character is fed
    back with the carried state.  Characters are drawn on the host, in float64, from
    ``softmax(log P / temperature)`` with ``numpy.random.default_rng(seed)``, so a seed
    gives the same text on every backend (up to the backends' rounding).

    Parameters
    ----------
    lm : LanguageModel
    prompt : str
        At least one character, all in ``lm.vocab``.
    length : int
        The number of characters to generate, ``>= 0``.
    temperature : float
        ``> 1`` flattens the distribution, ``< 1`` sharpens it, 0 always takes the most
        likely character.
    seed : int, optional
        Seed of the random generator, ``>= 0``; fresh entropy when ``None``.

    Returns
    -------
    str
        The ``length`` generated characters (without the prompt).

    Raises
    ------
    DataError
        If the prompt is empty or has characters outside the vocabulary.
    DivergedError
        If the model's predictions are NaN or infinite.
    TypeError, ValueError
        For a length, temperature or seed that is not a number >= 0 of its kind.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if not prompt:
        raise DataError("the prompt must have at least one character")
    length = _checks.integer("length", length)
    temperature = _checks.real("temperature", temperature)
    if seed is not None:
        _checks.integer("seed", seed)
    b = lm.backend
    run = _compiled(b, lm.config.cell)
    rng = np.random.default_rng(seed)
    state = zero_state(lm.config, b, 1)
    log_probs, state = run(
        lm.params, b.asarray(lm.vocab.encode(prompt, what="the prompt")[None, :]), state
    )
    out: list[int] = []
    while len(out) < length:
        last = b.to_numpy(log_probs[0, -1, :]).astype(np.float64)
        out.append(_draw(last, temperature, rng))
        if len(out) < length:
            log_probs, state = run(lm.params, b.asarray(np.array([[out[-1]]])), state)
    return lm.vocab.decode(out)
