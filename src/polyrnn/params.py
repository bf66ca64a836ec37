"""Parameter containers and their initialisers.

Every container is a :class:`typing.NamedTuple` of arrays, so it is a JAX pytree,
a tuple PyTorch optimisers can iterate, and a plain record everywhere else.  Weights
use the row-vector convention ``y = x @ w`` with the gates stacked along the last axis
in the order of :class:`torch.nn.GRU` / :class:`torch.nn.LSTM`:

=========== ===== ================ ================ ==========================
container     G   ``w_x``          ``w_h``          ``b_x``, ``b_h``
=========== ===== ================ ================ ==========================
RNNParams     1   ``(D, H)``       ``(H, H)``       ``(H,)``
GRUParams     3   ``(D, 3H)``      ``(H, 3H)``      ``(3H,)``, gates (r, z, n)
LSTMParams    4   ``(D, 4H)``      ``(H, 4H)``      ``(4H,)``, gates (i, f, g, o)
=========== ===== ================ ================ ==========================

The layer-normalised cells of :mod:`polyrnn.lnrnn` add gains to these fields, and their
``b_x``, ``b_h`` are the shifts of the layer normalisations: :class:`LNGRUParams` (G = 3)
and :class:`LNLSTMParams` (G = 4, and the gain and shift of the cell state's
normalisation, ``(H,)`` each).

The linear cells of :mod:`polyrnn.minrnn` have no recurrent weights: :class:`MinGRUParams`
(G = 2, gates ``(z, h̃)``) and :class:`MinLSTMParams` (G = 3, gates ``(f, i, h̃)``) hold
``w_x (D, G H)`` and ``b_x (G H,)`` only.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np

from ._compat import Array, Namespace, array_namespace

__all__ = [
    "GRUParams",
    "LNGRUParams",
    "LNLSTMParams",
    "LSTMParams",
    "MinGRUParams",
    "MinLSTMParams",
    "RNNParams",
    "init_gru",
    "init_lstm",
    "init_rnn",
]


class RNNParams(NamedTuple):
    """Vanilla (Elman) RNN weights: ``h' = act(x w_x + b_x + h w_h + b_h)``."""

    w_x: Array
    """Input weights, ``(D, H)``."""
    w_h: Array
    """Recurrent weights, ``(H, H)``."""
    b_x: Array
    """Input bias, ``(H,)``."""
    b_h: Array
    """Recurrent bias, ``(H,)``."""


class GRUParams(NamedTuple):
    """GRU weights, gates ``(r, z, n)`` stacked along the last axis."""

    w_x: Array
    """Input weights, ``(D, 3H)``."""
    w_h: Array
    """Recurrent weights, ``(H, 3H)``."""
    b_x: Array
    """Input bias, ``(3H,)``."""
    b_h: Array
    """Recurrent bias, ``(3H,)``."""


class LSTMParams(NamedTuple):
    """LSTM weights, gates ``(i, f, g, o)`` stacked along the last axis."""

    w_x: Array
    """Input weights, ``(D, 4H)``."""
    w_h: Array
    """Recurrent weights, ``(H, 4H)``."""
    b_x: Array
    """Input bias, ``(4H,)``."""
    b_h: Array
    """Recurrent bias, ``(4H,)``."""


class LNGRUParams(NamedTuple):
    """Layer-normalised GRU weights, gates ``(r, z, n)`` stacked along the last axis, see
    :func:`~polyrnn.ln_gru_scan`."""

    w_x: Array
    """Input weights, ``(D, 3H)``."""
    w_h: Array
    """Recurrent weights, ``(H, 3H)``."""
    b_x: Array
    """Shift of the input contribution's normalisation, ``(3H,)``."""
    b_h: Array
    """Shift of the recurrent contribution's normalisation, ``(3H,)``."""
    g_x: Array
    """Gain of the input contribution's normalisation, ``(3H,)``."""
    g_h: Array
    """Gain of the recurrent contribution's normalisation, ``(3H,)``."""


class LNLSTMParams(NamedTuple):
    """Layer-normalised LSTM weights, gates ``(i, f, g, o)`` stacked along the last axis, see
    :func:`~polyrnn.ln_lstm_scan`."""

    w_x: Array
    """Input weights, ``(D, 4H)``."""
    w_h: Array
    """Recurrent weights, ``(H, 4H)``."""
    b_x: Array
    """Shift of the input contribution's normalisation, ``(4H,)``."""
    b_h: Array
    """Shift of the recurrent contribution's normalisation, ``(4H,)``."""
    g_x: Array
    """Gain of the input contribution's normalisation, ``(4H,)``."""
    g_h: Array
    """Gain of the recurrent contribution's normalisation, ``(4H,)``."""
    g_c: Array
    """Gain of the cell state's normalisation, ``(H,)``."""
    b_c: Array
    """Shift of the cell state's normalisation, ``(H,)``."""


class MinGRUParams(NamedTuple):
    """minGRU weights, gates ``(z, h̃)`` stacked along the last axis."""

    w_x: Array
    """Input weights, ``(D, 2H)``: columns ``[0, H)`` the update gate, ``[H, 2H)`` the candidate."""
    b_x: Array
    """Bias, ``(2H,)``, in the same order."""


class MinLSTMParams(NamedTuple):
    """minLSTM weights, gates ``(f, i, h̃)`` stacked along the last axis."""

    w_x: Array
    """Input weights, ``(D, 3H)``: forget gate, input gate, candidate, ``H`` columns each."""
    b_x: Array
    """Bias, ``(3H,)``, in the same order."""


GATES: dict[type, int] = {
    RNNParams: 1,
    GRUParams: 3,
    LSTMParams: 4,
    MinGRUParams: 2,
    MinLSTMParams: 3,
    LNGRUParams: 3,
    LNLSTMParams: 4,
}
"""Number of gates G of each container: ``w_x`` is ``(D, G*H)``."""

WIDTHS: dict[type, dict[str, int]] = {
    LNGRUParams: {"g_x": 3, "g_h": 3},
    LNLSTMParams: {"g_x": 4, "g_h": 4, "g_c": 1, "b_c": 1},
}
"""The vectors of a container beyond ``w_x, w_h, b_x, b_h``, by field: their length in units
of H (``g_c`` is ``(H,)``: width 1).  The input checks read it; a container not listed
here has no other fields, or vectors of ``G H`` each."""


def resolve_namespace(fn: str, xp: Any) -> Namespace:
    """The Array API namespace for a user-supplied ``xp`` (``None`` means NumPy).

    ``xp`` may be a namespace such as :mod:`numpy`, :mod:`jax.numpy`, :mod:`torch`
    or :mod:`cupy`; it is normalised through ``array_api_compat``.
    """
    if xp is None:
        xp = np
    if not hasattr(xp, "asarray"):
        raise TypeError(f"{fn}: xp must be an array namespace such as numpy or torch, got {xp!r}")
    return array_namespace(xp.asarray(0.0))


def resolve_dtype(fn: str, xp: Namespace, dtype: Any, device: Any) -> Any:
    """``dtype`` as an ``xp`` dtype: ``None`` is the namespace's default float, a str is looked up."""
    if dtype is None:
        return xp.asarray(0.0, device=device).dtype
    if isinstance(dtype, str):
        try:
            dtype = getattr(xp, dtype)
        except AttributeError:
            raise TypeError(f"{fn}: dtype {dtype!r} is not a dtype of {xp.__name__}") from None
    try:  # a dtype of another library raises, or compares unequal with a warning
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            floating = xp.isdtype(dtype, "real floating")
    except (TypeError, ValueError, AttributeError):
        floating = False
    if not floating:
        raise TypeError(
            f"{fn}: dtype must be a real floating dtype of {xp.__name__} (the namespace xp), "
            f"got {dtype!r}"
        )
    return dtype


def init_uniform(
    fn: str,
    cls: type,
    gates: int,
    input_size: int,
    hidden_size: int,
    seed: int,
    xp: Any,
    dtype: Any,
    device: Any,
    *,
    recurrent: bool = True,
) -> Any:
    """A ``cls`` of weights uniform in ``±bound``, drawn on the host (float64, from
    ``numpy.random.default_rng(seed)``) in field order, then cast and moved.

    ``w_x (D, G H)``, ``w_h (H, G H)``, ``b_x (G H,)``, ``b_h (G H,)`` with bound
    ``1/sqrt(H)`` (``torch.nn.GRU``); without ``recurrent``, ``w_x`` and ``b_x`` only, with
    bound ``1/sqrt(D)`` (``torch.nn.Linear(D, G H)``, the minGRU and minLSTM layers).
    """
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{fn}: {name} must be a positive integer, got {value!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{fn}: seed must be a non-negative integer, got {seed!r}")
    xp = resolve_namespace(fn, xp)
    dtype = resolve_dtype(fn, xp, dtype, device)
    gh = gates * hidden_size
    if recurrent:
        bound = 1.0 / math.sqrt(hidden_size)
        shapes: tuple[tuple[int, ...], ...] = ((input_size, gh), (hidden_size, gh), (gh,), (gh,))
    else:
        bound = 1.0 / math.sqrt(input_size)
        shapes = ((input_size, gh), (gh,))
    rng = np.random.default_rng(seed)
    host = [rng.uniform(-bound, bound, size=shape) for shape in shapes]
    return cls(*(xp.asarray(xp.asarray(a), dtype=dtype, device=device) for a in host))


def init_rnn(
    input_size: int,
    hidden_size: int,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> RNNParams:
    """Random :class:`RNNParams`, uniform in ``±1/sqrt(hidden_size)`` like :class:`torch.nn.RNN`.

    The numbers are drawn on the host with NumPy (``numpy.random.default_rng(seed)``,
    float64) and then cast and moved, so the same ``seed`` gives the same weights on
    every backend.

    Parameters
    ----------
    input_size, hidden_size : int
        D and H.
    seed : int
        Seed of the host generator.
    xp : namespace, optional
        Array library of the result (:mod:`numpy`, :mod:`jax.numpy`, :mod:`torch`, ...);
        NumPy by default.
    dtype : dtype or str, optional
        Floating dtype; the library's default floating dtype by default.
    device : optional
        Device of the result, in the library's own terms.

    Examples
    --------
    >>> p = polyrnn.init_rnn(3, 4)
    >>> p.w_x.shape, p.w_h.shape, p.b_x.shape
    ((3, 4), (4, 4), (4,))
    """
    return init_uniform(  # type: ignore[no-any-return]
        "init_rnn", RNNParams, GATES[RNNParams], input_size, hidden_size, seed, xp, dtype, device
    )


def init_gru(
    input_size: int,
    hidden_size: int,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> GRUParams:
    """Random :class:`GRUParams`, uniform in ``±1/sqrt(hidden_size)`` like :class:`torch.nn.GRU`.

    Same arguments and reproducibility as :func:`init_rnn`.

    Examples
    --------
    >>> p = polyrnn.init_gru(3, 4, dtype="float32")
    >>> p.w_h.shape, p.w_h.dtype
    ((4, 12), dtype('float32'))
    >>> q = polyrnn.init_gru(3, 4, xp=np, dtype=np.float64)  # any library: xp=torch, jax.numpy
    >>> bool((p.w_x == q.w_x.astype("float32")).all())  # same seed, same numbers
    True
    """
    return init_uniform(  # type: ignore[no-any-return]
        "init_gru", GRUParams, GATES[GRUParams], input_size, hidden_size, seed, xp, dtype, device
    )


def init_lstm(
    input_size: int,
    hidden_size: int,
    *,
    seed: int = 0,
    xp: Any = None,
    dtype: Any = None,
    device: Any = None,
) -> LSTMParams:
    """Random :class:`LSTMParams`, uniform in ``±1/sqrt(hidden_size)`` like :class:`torch.nn.LSTM`.

    Same arguments and reproducibility as :func:`init_rnn`.

    Examples
    --------
    >>> p = polyrnn.init_lstm(3, 4, dtype="float32")
    >>> p.w_x.shape, p.w_x.dtype
    ((3, 16), dtype('float32'))
    """
    return init_uniform(  # type: ignore[no-any-return]
        "init_lstm", LSTMParams, GATES[LSTMParams], input_size, hidden_size, seed, xp, dtype, device
    )
