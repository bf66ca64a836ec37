"""The errors of :mod:`polyrnn.lm`: one base class, so a caller (the ``polyrnn`` command)
can report every expected failure in one line and let real bugs raise."""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "DataError",
    "DivergedError",
    "LMError",
    "ModelFileError",
    "PeerLostError",
]


class LMError(Exception):
    """Base class of the expected failures of :mod:`polyrnn.lm`: bad input, not bugs."""


class DataError(LMError, ValueError):
    """A text that cannot be used: unreadable, empty, too short, or with unknown characters."""


class ModelFileError(LMError, ValueError):
    """A model file that is not a polyrnn language model, is corrupt, or is of another version."""


class BackendUnavailableError(LMError, ImportError):
    """An unknown backend name, or a known one whose array library is not installed."""


class DivergedError(LMError, FloatingPointError):
    """Numbers became NaN or infinite: in training (a loss, a gradient, an updated parameter
    or the validation loss; the step was not applied) or in a model's predictions."""


class PeerLostError(LMError, RuntimeError):
    """Another process of a distributed run stopped or cannot be reached (a collective of
    :mod:`torch.distributed` or of JAX's multi-process runtime failed)."""


def lost_peers(noun: str, me: int, world: int, gone: list[int] | None, host: str, how: str) -> str:
    """The one line of a :class:`PeerLostError`: ``noun`` (``"rank"``, ``"process"``) ``me``
    of ``world`` stopped ``how``; ``gone`` lists the peers that did not answer, ``None``
    when ``host`` (the process holding the runtime's coordination) is itself gone."""
    if gone is None:
        who = host
    elif gone:
        who = noun + ("s " if len(gone) > 1 else " ") + ", ".join(map(str, gone))
    else:
        who = f"a peer (every {noun} is still registered)"
    return (
        f"{noun} {me} of {world} lost {who} {how}; resume from the last --checkpoint with --resume"
    )
