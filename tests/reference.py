"""An independent NumPy float64 reference of the cells, scans and language model.

Written straight from the equations, one sequence at a time, with none of the library's
tricks (no hoisted projection, no bias folding, no masking: a sequence of length L is
simply cut at L, and ``reverse`` walks it backwards).  The library must agree with it.

Two things make it serve beyond the easy cases:

- **A numerically stable logistic** (:func:`sigmoid`, :func:`log_sigmoid`): it never
  evaluates ``e^x`` for ``x > 0``, so gates driven to ±50 or ±1e4 give their exact
  limits (0, 1) instead of overflowing, and minLSTM's ``f / (f + i)`` is taken in log
  space, finite where both gates underflow.
- **Complex-step differentiation** (:func:`gradient`): every function here is analytic
  and accepts complex inputs, so ``Im f(x + i h e_k) / h`` with ``h = 1e-30`` is the
  derivative with respect to ``x_k`` to float64 precision -- no subtraction, hence no
  cancellation and no step-size trade-off as in finite differences.  The hand-written
  VJPs and the frameworks' autodiff are checked against these gradients at 1e-12.
  (Branches look at the real part only; ``relu`` is ``where(Re x > 0, x, 0)``.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

STEP = 1e-30
"""The complex step ``h``: far below float64's resolution of the real part, so
``f(x + i h)`` has the real part ``f(x)`` and the imaginary part ``h f'(x)``."""


def _arr(a: Any) -> np.ndarray:
    """``a`` as float64, or complex128 when it carries a complex step."""
    return np.asarray(a, np.complex128 if np.iscomplexobj(a) else np.float64)  # no copy if so


def sigmoid(x: Any) -> np.ndarray:
    """``1 / (1 + e^{-x})``, from ``e^{-|x|}`` only: exact limits in both tails."""
    x = _arr(x)
    pos = x.real >= 0
    e = np.exp(np.where(pos, -x, x))  # real part <= 0: never overflows
    return np.where(pos, 1.0 / (1.0 + e), e / (1.0 + e))


def log_sigmoid(x: Any) -> np.ndarray:
    """``log σ(x) = -log(1 + e^{-x})``, from ``e^{-|x|}`` only."""
    x = _arr(x)
    pos = x.real >= 0
    tail = -np.log1p(np.exp(np.where(pos, -x, x)))
    return np.where(pos, tail, x + tail)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.where(x.real > 0, x, 0.0)


ACT = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": _relu}


def rnn_step(p, h, x, activation="tanh"):
    w_x, w_h, b_x, b_h = (_arr(a) for a in p)
    return ACT[activation](x @ w_x + b_x + h @ w_h + b_h)


def gru_step(p, h, x, reset_after=False, m=1.0):
    """``m``: the recurrent-dropout multiplier of ``h`` where it meets ``W_h`` (Keras'
    ``recurrent_dropout``); the update ``(1 - z) n + z h`` reads ``h`` itself."""
    w_x, w_h, b_x, b_h = (_arr(a) for a in p)
    H = h.shape[-1]
    hm = h * m
    gi = x @ w_x + b_x
    r = sigmoid(gi[:H] + hm @ w_h[:, :H] + b_h[:H])
    z = sigmoid(gi[H : 2 * H] + hm @ w_h[:, H : 2 * H] + b_h[H : 2 * H])
    if reset_after:
        n = np.tanh(gi[2 * H :] + r * (hm @ w_h[:, 2 * H :] + b_h[2 * H :]))
    else:
        n = np.tanh(gi[2 * H :] + (r * hm) @ w_h[:, 2 * H :] + b_h[2 * H :])
    return (1.0 - z) * n + z * h


def lstm_step(p, carry, x):
    w_x, w_h, b_x, b_h = (_arr(a) for a in p)
    h, c = carry
    H = h.shape[-1]
    g = x @ w_x + b_x + h @ w_h + b_h
    i, f, gg, o = (
        sigmoid(g[:H]),
        sigmoid(g[H : 2 * H]),
        np.tanh(g[2 * H : 3 * H]),
        sigmoid(g[3 * H :]),
    )
    c = f * c + i * gg
    return o * np.tanh(c), c


def min_gru_step(p, h, x):
    """minGRU (Feng et al. 2024): ``z = σ(x W_z + b_z)``, ``h̃ = x W_h + b_h``,
    ``h' = (1 - z) h + z h̃``."""
    w_x, b_x = (_arr(a) for a in p)
    H = h.shape[-1]
    g = x @ w_x + b_x
    z = sigmoid(g[:H])
    return (1.0 - z) * h + z * g[H:]


def min_lstm_step(p, h, x):
    """minLSTM: ``f, i = σ(k_f), σ(k_i)``, ``h' = f/(f+i) h + i/(f+i) h̃``.

    ``f / (f + i) = 1 / (1 + i/f) = σ(log f - log i)``: the paper's ratio, taken in log
    space so that it stays finite (and exact) where both gates underflow to 0.
    """
    w_x, b_x = (_arr(a) for a in p)
    H = h.shape[-1]
    g = x @ w_x + b_x
    d = log_sigmoid(g[:H]) - log_sigmoid(g[H : 2 * H])
    return sigmoid(d) * h + sigmoid(-d) * g[2 * H :]


LN_EPS = 1e-5
"""ε of the layer normalisations (Ba, Kiros & Hinton 2016; torch.nn.LayerNorm's)."""


def layer_norm(a, gain, shift):
    """``gain (a - mean a) / sqrt(var a + ε) + shift`` over the last axis, biased variance:
    one gate's ``H`` pre-activations (complex steps pass through: every operation is
    analytic)."""
    mu = np.mean(a, axis=-1, keepdims=True)
    var = np.mean((a - mu) ** 2, axis=-1, keepdims=True)
    return gain * (a - mu) / np.sqrt(var + LN_EPS) + shift


def _ln_gates(a, gain, shift, gates):
    """Each of the ``gates`` blocks of ``a (G H,)`` layer-normalised on its own."""
    H = a.shape[-1] // gates
    return np.concatenate(
        [
            layer_norm(
                a[k * H : (k + 1) * H], gain[k * H : (k + 1) * H], shift[k * H : (k + 1) * H]
            )
            for k in range(gates)
        ]
    )


def ln_gru_step(p, h, x, m=1.0):
    """Layer-normalised GRU (reset after the recurrent product), per-gate statistics:
    ``u = LN(x W_x; g_x, b_x)``, ``v = LN((h m) W_h; g_h, b_h)``, ``r, z = σ(u + v)``,
    ``n = tanh(u_n + r v_n)``, ``h' = (1 - z) n + z h``; ``m`` as in :func:`gru_step`."""
    w_x, w_h, b_x, b_h, g_x, g_h = (_arr(a) for a in p)
    H = h.shape[-1]
    u = _ln_gates(x @ w_x, g_x, b_x, 3)
    v = _ln_gates((h * m) @ w_h, g_h, b_h, 3)
    r = sigmoid(u[:H] + v[:H])
    z = sigmoid(u[H : 2 * H] + v[H : 2 * H])
    n = np.tanh(u[2 * H :] + r * v[2 * H :])
    return (1.0 - z) * n + z * h


def ln_lstm_step(p, carry, x):
    """Layer-normalised LSTM (Ba et al. eq. 20-22), per-gate statistics:
    ``a = LN(x W_x; g_x, b_x) + LN(h W_h; g_h, b_h)``, ``c' = σ(a_f) c + σ(a_i) tanh(a_g)``,
    ``h' = σ(a_o) tanh(LN(c'; g_c, b_c))``."""
    w_x, w_h, b_x, b_h, g_x, g_h, g_c, b_c = (_arr(a) for a in p)
    h, c = carry
    H = h.shape[-1]
    a = _ln_gates(x @ w_x, g_x, b_x, 4) + _ln_gates(h @ w_h, g_h, b_h, 4)
    i, f, gg, o = (
        sigmoid(a[:H]),
        sigmoid(a[H : 2 * H]),
        np.tanh(a[2 * H : 3 * H]),
        sigmoid(a[3 * H :]),
    )
    c = f * c + i * gg
    return o * np.tanh(layer_norm(c, g_c, b_c)), c


GATES = {"rnn": 1, "gru": 3, "lstm": 4, "min_gru": 2, "min_lstm": 3, "ln_gru": 3, "ln_lstm": 4}
"""Gate blocks G of each cell: ``w_x`` is ``(D, G*H)``."""


def hidden_size(kind: str, p: Sequence[Any]) -> int:
    return int(np.asarray(p[0]).shape[1]) // GATES[kind]


def _step(kind, p, state, x, opts, m=1.0):
    """One step; returns ``(new state, output h)``.  ``m`` multiplies ``h`` where it meets
    ``W_h`` (recurrent dropout; the linear cells have no ``W_h``)."""
    if kind == "rnn":
        h = rnn_step(p, state * m, x, **opts)
        return h, h
    if kind == "gru":
        h = gru_step(p, state, x, m=m, **opts)
        return h, h
    if kind in ("lstm", "ln_lstm"):
        h, c = (lstm_step if kind == "lstm" else ln_lstm_step)(p, (state[0] * m, state[1]), x)
        return (h, c), h
    if kind == "ln_gru":
        h = ln_gru_step(p, state, x, m)
        return h, h
    assert np.all(np.asarray(m) == 1.0), "a linear cell has no recurrent dropout"
    h = (min_gru_step if kind == "min_gru" else min_lstm_step)(p, state, x)
    return h, h


def _one(kind, p, xs, state, length, reverse, opts, dtype, m=1.0):
    """One sequence ``xs (T, D)``; returns ``hs (T, H)`` (zero past ``length``) and the state."""
    T = xs.shape[0]
    hs = np.zeros((T, hidden_size(kind, p)), dtype)
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        state, hs[t] = _step(kind, p, state, xs[t], opts, m)
    return hs, state


def scan(
    kind, p, xs, state0=None, *, lengths=None, reverse=False, time_major=False,
    recurrent_mask=None, **opts,
):  # fmt: skip
    """Reference ``*_scan`` (``kind`` one of :data:`GATES`): ``xs`` as the library takes it.

    NumPy float64 out (complex128 when an input carries a complex step).  The state of
    ``"lstm"`` and ``"ln_lstm"`` is a pair ``(h, c)``; every other state is ``h``.
    ``recurrent_mask (..., H)``: each sequence's multiplier of ``h_{t-1}`` where it meets
    ``W_h``, the same at every step (recurrent dropout).
    """
    xs = _arr(xs)
    p = [_arr(a) for a in p]
    if time_major and xs.ndim > 2:
        xs = np.moveaxis(xs, 0, -2)
    batch, (T, D) = xs.shape[:-2], xs.shape[-2:]
    H = hidden_size(kind, p)
    n = int(np.prod(batch, dtype=np.int64))
    flat = xs.reshape(n, T, D)
    lens = np.full(n, T) if lengths is None else np.asarray(lengths).reshape(n)
    pair = kind in ("lstm", "ln_lstm")
    if state0 is None:
        state0 = (np.zeros((*batch, H)), np.zeros((*batch, H))) if pair else np.zeros((*batch, H))
    s0 = [_arr(s).reshape(n, H) for s in state0] if pair else _arr(state0).reshape(n, H)
    dtype = np.result_type(xs, *p, *(s0 if pair else [s0]))
    # One dtype throughout: NumPy multiplies complex by real matrices without BLAS, 200x slower.
    flat, p = flat.astype(dtype), [a.astype(dtype) for a in p]
    s0 = [s.astype(dtype) for s in s0] if pair else s0.astype(dtype)
    masks = np.ones((n, H)) if recurrent_mask is None else _arr(recurrent_mask).reshape(n, H)
    hs = np.zeros((n, T, H), dtype)
    last = [np.zeros((n, H), dtype), np.zeros((n, H), dtype)] if pair else np.zeros((n, H), dtype)
    for b in range(n):
        init = (s0[0][b], s0[1][b]) if pair else s0[b]
        hs[b], state = _one(kind, p, flat[b], init, int(lens[b]), reverse, opts, dtype, masks[b])
        if pair:
            last[0][b], last[1][b] = state
        else:
            last[b] = state
    hs = hs.reshape(*batch, T, H)
    if time_major and hs.ndim > 2:
        hs = np.moveaxis(hs, -2, 0)
    if pair:
        return hs, (last[0].reshape(*batch, H), last[1].reshape(*batch, H))
    return hs, last.reshape(*batch, H)


def linear_scan(a, b, h0, *, reverse=False):
    """``(hs, h_last)`` of ``h_t = a_t h_{t-1} + b_t`` over time-major ``(T, ..., H)``."""
    a, b = _arr(a), _arr(b)
    h = _arr(h0)
    hs = np.zeros(np.broadcast_shapes(a.shape, b.shape), np.result_type(a, b, h))
    for t in range(a.shape[0] - 1, -1, -1) if reverse else range(a.shape[0]):
        h = a[t] * h + b[t]
        hs[t] = h
    return hs, h


# ------------------------------------------------------------------ the language model

LM_CELLS = {
    "gru": ("gru", {"reset_after": True}),
    "lstm": ("lstm", {}),
    "rnn": ("rnn", {"activation": "tanh"}),
    "min_gru": ("min_gru", {}),
    "min_lstm": ("min_lstm", {}),
    "ln_gru": ("ln_gru", {}),
    "ln_lstm": ("ln_lstm", {}),
}
"""``polyrnn.lm`` cell name -> (reference kind, options)."""


def log_softmax(logits: Any) -> np.ndarray:
    """``logits - log sum exp(logits)`` over the last axis, shifted by the (real) maximum."""
    z = _arr(logits)
    z = z - np.max(z.real, axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def lm_forward(embed, layers, w_out, b_out, tokens, state, *, cell):
    """``log P(next | ...)`` ``(B, T, V)`` and the final state of the character-level LM:
    ``x_t = E[w_t]``, the layers' scans, ``log_softmax(h W + b)``.  ``state`` holds one
    tuple per layer, ``(h,)`` or ``(h, c)``."""
    kind, opts = LM_CELLS[cell]
    x = _arr(embed)[np.asarray(tokens)]
    new_state = []
    for p, carry in zip(layers, state, strict=True):
        pair = kind in ("lstm", "ln_lstm")
        s0 = tuple(carry) if pair else carry[0]
        x, last = scan(kind, p, x, s0, **opts)
        new_state.append(tuple(last) if pair else (last,))
    w_out, b_out = _arr(w_out), _arr(b_out)
    dtype = np.result_type(x, w_out, b_out)
    return log_softmax(x.astype(dtype) @ w_out.astype(dtype) + b_out), tuple(new_state)


def lm_loss(embed, layers, w_out, b_out, tokens, targets, state, *, cell):
    """Mean negative log-likelihood of ``targets`` in nats per character."""
    log_probs, _ = lm_forward(embed, layers, w_out, b_out, tokens, state, cell=cell)
    picked = np.take_along_axis(log_probs, np.asarray(targets)[..., None], axis=-1)
    return -np.mean(picked)


# ------------------------------------------------------------------- complex-step gradients


def gradient(f: Callable[..., Any], arrays: Sequence[Any]) -> list[np.ndarray]:
    """The gradient of the real scalar ``f(*arrays)`` with respect to each array, by
    complex steps: one call of ``f`` per element, each exact to float64 rounding."""
    arrays = [np.asarray(a, np.float64) for a in arrays]
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            moved = a.astype(np.complex128)
            moved[idx] += 1j * STEP
            g[idx] = np.imag(f(*arrays[:k], moved, *arrays[k + 1 :])) / STEP
        grads.append(g)
    return grads


def directional_derivative(
    f: Callable[..., Any], arrays: Sequence[Any], directions: Sequence[Any | None]
) -> float:
    """``sum_k <grad_k f, v_k>`` for the directions ``v_k`` (``None``: no move), by one
    complex step of ``f`` along them all."""
    moved = [
        np.asarray(a, np.float64) if v is None else np.asarray(a) + 1j * STEP * np.asarray(v)
        for a, v in zip(arrays, directions, strict=True)
    ]
    return float(np.imag(f(*moved)) / STEP)
