"""An independent NumPy float64 reference of the cells and scans.

Written straight from the equations, one sequence at a time, with none of the library's
tricks (no hoisted projection, no bias folding, no masking: a sequence of length L is
simply cut at L, and ``reverse`` walks it backwards).  The library must agree with it.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


ACT = {"tanh": np.tanh, "sigmoid": sigmoid, "relu": lambda x: np.maximum(x, 0.0)}


def rnn_step(p, h, x, activation="tanh"):
    w_x, w_h, b_x, b_h = (np.asarray(a, np.float64) for a in p)
    return ACT[activation](x @ w_x + b_x + h @ w_h + b_h)


def gru_step(p, h, x, reset_after=False):
    w_x, w_h, b_x, b_h = (np.asarray(a, np.float64) for a in p)
    H = h.shape[-1]
    gi = x @ w_x + b_x
    r = sigmoid(gi[:H] + h @ w_h[:, :H] + b_h[:H])
    z = sigmoid(gi[H : 2 * H] + h @ w_h[:, H : 2 * H] + b_h[H : 2 * H])
    if reset_after:
        n = np.tanh(gi[2 * H :] + r * (h @ w_h[:, 2 * H :] + b_h[2 * H :]))
    else:
        n = np.tanh(gi[2 * H :] + (r * h) @ w_h[:, 2 * H :] + b_h[2 * H :])
    return (1.0 - z) * n + z * h


def lstm_step(p, carry, x):
    w_x, w_h, b_x, b_h = (np.asarray(a, np.float64) for a in p)
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


def _one(kind, p, xs, state, length, reverse, opts):
    """One sequence ``xs (T, D)``; returns ``hs (T, H)`` (zero past ``length``) and the state."""
    T = xs.shape[0]
    H = np.asarray(p[1]).shape[0]
    hs = np.zeros((T, H))
    order = range(length - 1, -1, -1) if reverse else range(length)
    for t in order:
        if kind == "rnn":
            state = rnn_step(p, state, xs[t], **opts)
            hs[t] = state
        elif kind == "gru":
            state = gru_step(p, state, xs[t], **opts)
            hs[t] = state
        else:
            state = lstm_step(p, state, xs[t])
            hs[t] = state[0]
    return hs, state


def scan(kind, p, xs, state0=None, *, lengths=None, reverse=False, time_major=False, **opts):
    """Reference ``*_scan``: ``xs`` as the library takes it, NumPy float64 out."""
    xs = np.asarray(xs, np.float64)
    if time_major and xs.ndim > 2:
        xs = np.moveaxis(xs, 0, -2)
    batch, (T, _) = xs.shape[:-2], xs.shape[-2:]
    H = np.asarray(p[1]).shape[0]
    n = int(np.prod(batch))
    flat = xs.reshape(n, T, xs.shape[-1])
    lens = np.full(n, T) if lengths is None else np.asarray(lengths).reshape(-1)
    if state0 is None:
        state0 = (
            (np.zeros((*batch, H)), np.zeros((*batch, H)))
            if kind == "lstm"
            else np.zeros((*batch, H))
        )
    if kind == "lstm":
        s0 = [np.asarray(s, np.float64).reshape(n, H) for s in state0]
    else:
        s0 = np.asarray(state0, np.float64).reshape(n, H)
    hs = np.zeros((n, T, H))
    last = [np.zeros((n, H)), np.zeros((n, H))] if kind == "lstm" else np.zeros((n, H))
    for b in range(n):
        init = (s0[0][b], s0[1][b]) if kind == "lstm" else s0[b]
        hs[b], state = _one(kind, p, flat[b], init, int(lens[b]), reverse, opts)
        if kind == "lstm":
            last[0][b], last[1][b] = state
        else:
            last[b] = state
    hs = hs.reshape(*batch, T, H)
    if time_major and hs.ndim > 2:
        hs = np.moveaxis(hs, -2, 0)
    if kind == "lstm":
        return hs, (last[0].reshape(*batch, H), last[1].reshape(*batch, H))
    return hs, last.reshape(*batch, H)
