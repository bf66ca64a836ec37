"""A cell is one record: a new cell, defined here and nowhere in polyrnn, runs through the
generic scan and scan-VJP on every backend.

The cell is a leaky RNN, ``h' = (1 - a) h + a tanh(x W_x + b_x + h W_h + b_h)`` with the
leak ``a`` an option.  Its outside anchors are a NumPy loop written from that equation
(forward, float64, 1e-12) and the complex-step derivative of that loop (gradients,
along a random direction of all inputs at once).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
from array_libs import assert_close

from polyrnn._cell import Cell
from polyrnn.layers import cell_layers
from polyrnn.scans import cell_scan
from polyrnn.vjp import cell_scan_vjp

B, T, D, H, LEAK = 2, 6, 3, 4, 0.3


class LeakyParams(NamedTuple):
    w_x: object
    w_h: object
    b_x: object
    b_h: object


def _flat(xp, a):
    return xp.reshape(a, (math.prod(a.shape[:-1]), a.shape[-1]))


def _bias(xp, p, *, leak):
    return p.b_x + p.b_h


def _step(xp, p, logistic, *, leak):
    def step(carry, gx):
        (h,) = carry
        return ((1.0 - leak) * h + leak * xp.tanh(gx + h @ p.w_h),)

    return step


def _vjp(xp, p, logistic, *, leak):
    w_h_t = p.w_h.T

    def step(carry, gx):
        (h,) = carry
        y = xp.tanh(gx + h @ p.w_h)
        return ((1.0 - leak) * h + leak * y,), (h, y)

    def back(res, d):
        _, y = res
        (dh,) = d
        da = dh * leak * (1.0 - y * y)
        return (dh * (1.0 - leak) + da @ w_h_t,), (da,)

    def finish(res, grads, d_b):
        return {"w_h": _flat(xp, res[0]).T @ _flat(xp, grads[0]), "b_h": d_b}

    return step, back, finish


LEAKY = Cell("leaky_rnn", LeakyParams, 1, ("h",), _bias, _step, _vjp, ("leak",))


def reference(xs, p, h0, leak):
    """The leaky RNN as a NumPy loop (complex inputs too): ``hs (B, T, H)``, ``h``."""
    h, hs = h0, []
    for t in range(xs.shape[1]):
        h = (1.0 - leak) * h + leak * np.tanh(xs[:, t] @ p.w_x + p.b_x + h @ p.w_h + p.b_h)
        hs.append(h)
    return np.stack(hs, axis=1), h


def _inputs(seed):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(B, T, D))
    p = LeakyParams(*(rng.normal(scale=0.5, size=s) for s in [(D, H), (H, H), (H,), (H,)]))
    return xs, p, rng.normal(size=(B, H))


def test_a_new_cell_scans_on_every_backend(backend):
    xs, p, h0 = _inputs(0)
    hs_ref, h_ref = reference(xs, p, h0, LEAK)
    args = (backend.asarray(xs), LeakyParams(*map(backend.asarray, p)), backend.asarray(h0))
    hs, (h,) = cell_scan(LEAKY, *args, leak=LEAK)
    assert_close(backend, hs, hs_ref, dtype="float64")
    assert_close(backend, h, h_ref, dtype="float64")
    (hs_tm, _), _ = cell_scan_vjp(
        LEAKY, backend.asarray(np.moveaxis(xs, 1, 0)), *args[1:], time_major=True, leak=LEAK
    )
    assert_close(backend, hs_tm, np.moveaxis(hs_ref, 1, 0), dtype="float64")


def test_its_vjp_is_the_derivative_of_the_reference(backend):
    """``<backward(d_hs, d_h), v>`` equals the complex-step derivative of
    ``<d_hs, hs> + <d_h, h>`` of the NumPy loop along a random direction ``v``."""
    xs, p, h0 = _inputs(1)
    rng = np.random.default_rng(2)
    d_hs, d_h = rng.normal(size=(B, T, H)), rng.normal(size=(B, H))
    v_xs, v_h0 = rng.normal(size=xs.shape), rng.normal(size=h0.shape)
    v_p = LeakyParams(*(rng.normal(size=a.shape) for a in p))
    eps = 1e-30

    def objective(xs, p, h0):
        hs, h = reference(xs, p, h0, LEAK)
        return np.sum(d_hs * hs) + np.sum(d_h * h)

    shifted = objective(
        xs + 1j * eps * v_xs,
        LeakyParams(*(a + 1j * eps * v for a, v in zip(p, v_p, strict=True))),
        h0 + 1j * eps * v_h0,
    )
    expected = shifted.imag / eps

    args = (backend.asarray(xs), LeakyParams(*map(backend.asarray, p)), backend.asarray(h0))
    (hs, (h,)), backward = cell_scan_vjp(LEAKY, *args, leak=LEAK)
    hs_ref, h_ref = reference(xs, p, h0, LEAK)
    assert_close(backend, hs, hs_ref, dtype="float64")
    assert_close(backend, h, h_ref, dtype="float64")
    d_xs, d_p, (d_h0,) = backward(backend.asarray(d_hs), (backend.asarray(d_h),))
    assert isinstance(d_p, LeakyParams)
    got = (
        np.sum(backend.to_numpy(d_xs) * v_xs)
        + sum(np.sum(backend.to_numpy(g) * v) for g, v in zip(d_p, v_p, strict=True))
        + np.sum(backend.to_numpy(d_h0) * v_h0)
    )
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_it_stacks_bidirectionally_through_the_layers_engine(backend):
    """Two bidirectional layers of the record, against the NumPy loop composed by hand:
    the backward direction reads time flipped, the halves concatenate forward first and
    layer 1 reads layer 0's ``2H`` outputs."""
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(B, T, D))

    def params(d_in):
        return LeakyParams(
            *(rng.normal(scale=0.5, size=s) for s in [(d_in, H), (H, H), (H,), (H,)])
        )

    layers = [(params(D), params(D)), (params(2 * H), params(2 * H))]
    h0 = rng.normal(size=(4, B, H))
    x, finals = xs, []
    for i, (fwd, bwd) in enumerate(layers):
        hs_f, h_f = reference(x, fwd, h0[2 * i], LEAK)
        hs_b, h_b = reference(x[:, ::-1], bwd, h0[2 * i + 1], LEAK)
        x = np.concatenate([hs_f, hs_b[:, ::-1]], axis=-1)
        finals += [h_f, h_b]

    on = [
        (LeakyParams(*map(backend.asarray, f)), LeakyParams(*map(backend.asarray, b)))
        for f, b in layers
    ]
    hs, (h_n,) = cell_layers(
        LEAKY, backend.asarray(xs), on, backend.asarray(h0), bidirectional=True, leak=LEAK
    )
    assert_close(backend, hs, x, dtype="float64")
    assert_close(backend, h_n, np.stack(finals), dtype="float64")
