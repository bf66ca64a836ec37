"""Every scan and its VJP at the edges of its shapes, on every backend, against the reference.

Batch 0, ``T = 0``, ``D = 0`` (no input features: each step sees the biases alone),
``H = 1``, lengths of 0 and ``T`` in one batch, and gates driven to saturation.  Values
are compared with ``reference.scan`` and gradients with complex-step derivatives of it
(``reference.gradient``), both NumPy float64 written from the equations, at the float64
tolerance.  ``gru_scan`` with ``D = 0`` once crashed here with a raw reshape error on
NumPy, torch and array-api-strict (and JAX): ``reshape(xs, (-1, 0))`` has no answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import reference
from array_libs import Backend, assert_close

import polyrnn
from polyrnn import vjp as polyrnn_vjp
from polyrnn.minrnn import MinGRUParams, MinLSTMParams, min_gru_scan_vjp, min_lstm_scan_vjp

KINDS = {
    # name: (reference kind, params class, scan, vjp, options)
    "rnn-tanh": ("rnn", polyrnn.RNNParams, polyrnn.rnn_scan, polyrnn_vjp.rnn_scan_vjp,
                 {"activation": "tanh"}),
    "rnn-relu": ("rnn", polyrnn.RNNParams, polyrnn.rnn_scan, polyrnn_vjp.rnn_scan_vjp,
                 {"activation": "relu"}),
    "gru": ("gru", polyrnn.GRUParams, polyrnn.gru_scan, polyrnn_vjp.gru_scan_vjp,
            {"reset_after": False}),
    "gru-ra": ("gru", polyrnn.GRUParams, polyrnn.gru_scan, polyrnn_vjp.gru_scan_vjp,
               {"reset_after": True}),
    "lstm": ("lstm", polyrnn.LSTMParams, polyrnn.lstm_scan, polyrnn_vjp.lstm_scan_vjp, {}),
    "min_gru": ("min_gru", MinGRUParams, polyrnn.min_gru_scan, min_gru_scan_vjp, {}),
    "min_lstm": ("min_lstm", MinLSTMParams, polyrnn.min_lstm_scan, min_lstm_scan_vjp, {}),
}  # fmt: skip

EDGES = {
    # name: (batch, T, D, H, lengths)
    "batch0": ((0,), 3, 2, 2, None),
    "batch2x0-lengths": ((2, 0), 3, 2, 2, np.zeros((2, 0), np.int64)),
    "T0": ((2,), 0, 2, 2, None),
    "D0": ((2,), 3, 0, 2, None),
    "D0-unbatched-H1": ((), 3, 0, 1, None),
    "H1-lengths-0-and-T": ((3,), 4, 2, 1, np.array([0, 4, 2])),
    "D0-lengths-reverse": ((3,), 4, 0, 2, np.array([4, 0, 1])),
}


def problem(kind: str, batch, T, D, H, *, seed=0, scale=0.6):
    """Float64 params (of ``scale``), inputs ``(*batch, T, D)``, a non-zero state and the
    cotangents of ``hs`` and of the final state."""
    ref_kind, cls, *_ = KINDS[kind]
    rng = np.random.default_rng(seed)
    G = reference.GATES[ref_kind]
    if ref_kind.startswith("min"):
        p = cls(rng.normal(0, scale, (D, G * H)), rng.normal(0, scale, (G * H,)))
    else:
        p = cls(*(rng.normal(0, scale, s) for s in ((D, G * H), (H, G * H), (G * H,), (G * H,))))
    xs = rng.normal(size=(*batch, T, D))
    n_states = 2 if ref_kind == "lstm" else 1
    state = [rng.normal(size=(*batch, H)) for _ in range(n_states)]
    d_hs = rng.normal(size=(*batch, T, H))
    d_last = [rng.normal(size=(*batch, H)) for _ in range(n_states)]
    return p, xs, state, d_hs, d_last


def _state(ref_kind: str, state: list[Any]) -> Any:
    return tuple(state) if ref_kind == "lstm" else state[0]


def _flat_last(ref_kind: str, last: Any) -> list[Any]:
    return list(last) if ref_kind == "lstm" else [last]


def reference_outputs(kind, p, xs, state, lengths, reverse):
    ref_kind, _, _, _, opts = KINDS[kind]
    hs, last = reference.scan(
        ref_kind, p, xs, _state(ref_kind, state), lengths=lengths, reverse=reverse, **opts
    )
    return [hs, *_flat_last(ref_kind, last)]


def reference_gradients(kind, p, xs, state, d_hs, d_last, lengths, reverse):
    """Gradients of ``<d_hs, hs> + <d_last, last>`` w.r.t. ``(xs, *params, *state)``."""
    cls = KINDS[kind][1]
    n_p = len(p)

    def f(xs, *rest):
        outs = reference_outputs(kind, cls(*rest[:n_p]), xs, list(rest[n_p:]), lengths, reverse)
        return sum(np.sum(c * o) for c, o in zip([d_hs, *d_last], outs, strict=True))

    return reference.gradient(f, [xs, *p, *state])


def _run(backend: Backend, kind: str, edge: str, reverse: bool):
    ref_kind, cls, scan, vjp, opts = KINDS[kind]
    batch, T, D, H, lengths = EDGES[edge]
    p, xs, state, d_hs, d_last = problem(kind, batch, T, D, H)
    conv = backend.asarray
    lib_p = cls(*(conv(a) for a in p))
    lib_state = _state(ref_kind, [conv(s) for s in state])
    kw = dict(opts, reverse=reverse, lengths=None if lengths is None else conv(lengths))
    return ref_kind, scan, vjp, p, xs, state, d_hs, d_last, lengths, lib_p, lib_state, kw


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_scan_at_the_edges(backend: Backend, kind: str, edge: str, reverse: bool) -> None:
    ref_kind, scan, _, p, xs, state, _, _, lengths, lib_p, lib_state, kw = _run(
        backend, kind, edge, reverse
    )
    hs, last = scan(backend.asarray(xs), lib_p, lib_state, **kw)
    want = reference_outputs(kind, p, xs, state, lengths, reverse)
    for got, exp in zip([hs, *_flat_last(ref_kind, last)], want, strict=True):
        assert_close(backend, got, exp, dtype="float64")


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.parametrize("kind", list(KINDS))
def test_vjp_at_the_edges(backend: Backend, kind: str, edge: str) -> None:
    """The hand-written VJPs (pure Array API, so on every backend) against complex-step
    gradients of the reference; ``D = 0`` still has a bias gradient, batch 0 none."""
    reverse = "reverse" in edge
    ref_kind, _, vjp, p, xs, state, d_hs, d_last, lengths, lib_p, lib_state, kw = _run(
        backend, kind, edge, reverse
    )
    (hs, last), backward = vjp(backend.asarray(xs), lib_p, lib_state, **kw)
    cot_last = _state(ref_kind, [backend.asarray(c) for c in d_last])
    d_xs, d_p, d_state = backward(backend.asarray(d_hs), cot_last)
    got = [d_xs, *d_p, *_flat_last(ref_kind, d_state)]
    want = reference_gradients(kind, p, xs, state, d_hs, d_last, lengths, reverse)
    outs = reference_outputs(kind, p, xs, state, lengths, reverse)
    for g, exp in zip([hs, *_flat_last(ref_kind, last), *got], [*outs, *want], strict=True):
        assert_close(backend, g, exp, dtype="float64")


SATURATING = [0.6, 50.0, 1e4]
"""Weight scales: ordinary, gates saturated (|pre-activation| ~ 100), and far beyond, where
``e^x`` overflows float64 and only a stable logistic gives the limits."""


@pytest.mark.parametrize("scale", SATURATING)
@pytest.mark.parametrize("kind", list(KINDS))
def test_saturated_gates_match_the_reference(backend: Backend, kind: str, scale: float) -> None:
    """Values and VJPs with weights scaled up to 1e4 (float64: in float32 the gates'
    pre-activations of ~100 carry rounding errors of ~1e-5, which the sigmoid passes on
    where a gate is in transition: that is the input's conditioning, not the library).
    Nothing may be NaN; the gradient through a saturated gate is exactly what the
    complex-step derivative of the stable reference says."""
    ref_kind, cls, scan, vjp, opts = KINDS[kind]
    p, xs, state, d_hs, d_last = problem(kind, (2,), 5, 3, 2, seed=11, scale=scale)
    lengths = np.array([5, 3])
    conv = backend.asarray
    lib_p = cls(*(conv(a) for a in p))
    lib_state = _state(ref_kind, [conv(s) for s in state])
    kw = dict(opts, lengths=conv(lengths))
    (hs, last), backward = vjp(conv(xs), lib_p, lib_state, **kw)
    fwd_hs, fwd_last = scan(conv(xs), lib_p, lib_state, **kw)
    d_xs, d_p, d_state = backward(conv(d_hs), _state(ref_kind, [conv(c) for c in d_last]))
    outs = reference_outputs(kind, p, xs, state, lengths, False)
    want = reference_gradients(kind, p, xs, state, d_hs, d_last, lengths, False)
    got_outs = [hs, *_flat_last(ref_kind, last)]
    for g, exp in zip([fwd_hs, *_flat_last(ref_kind, fwd_last)], outs, strict=True):
        assert_close(backend, g, exp, dtype="float64")
    for g, exp in zip(
        [*got_outs, d_xs, *d_p, *_flat_last(ref_kind, d_state)], [*outs, *want], strict=True
    ):
        assert np.isfinite(backend.to_numpy(g)).all()
        assert_close(backend, g, exp, dtype="float64")
