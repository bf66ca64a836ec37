"""The seed notebook's GRU loop (cell In [12]), verbatim up to formatting.

The notebook's ``np`` is ``trax.fastmath.numpy``, which is ``jax.numpy``; here it is the
namespace ``xp`` of any array library, and ``np.array(ys)`` is its ``stack``.

A timing peer for the benchmarks and the tutorial (``docs/_seed_timing.py``): eager
operations, column vectors, ``vstack`` of ``[h; x]``, a Python loop appending each step's
output and stacking them at the end.  Its GRU is the ``reset_after=False`` kind and it
also computes the readout ``y_t``; it shares no code with polyrnn.
"""

from typing import Any


def notebook(xp: Any, stack: Any) -> Any:
    """The notebook's ``lambda X, weights, h_0: scan(forward_GRU, X, weights, h_0)`` on ``xp``."""

    def sigmoid(x):
        return 1.0 / (1.0 + xp.exp(-x))

    def forward_GRU(inputs, weights):
        x_t, h_t_prev = inputs
        stack_ = xp.vstack([h_t_prev, x_t])
        w_r, w_u, w_h, w_y, b_r, b_u, b_h, b_y = weights
        T_r = sigmoid(w_r @ stack_ + b_r)
        T_u = sigmoid(w_u @ stack_ + b_u)
        c_t = xp.tanh(w_h @ xp.vstack((T_r * h_t_prev, x_t)) + b_h)
        h_t = T_u * c_t + (1 - T_u) * h_t_prev
        y_t = sigmoid(w_y @ h_t + b_y)
        return y_t, h_t

    def scan(fn, elems, weights, h_0=None):
        h_t = h_0
        ys = []
        for x in elems:
            y, h_t = fn([x, h_t], weights)
            ys.append(y)
        return stack(ys), h_t

    return lambda X, weights, h_0: scan(forward_GRU, X, weights, h_0)
