"""Scans under the frameworks' transformations: jax.jit / grad / vmap, torch autograd.

Gradients are checked against complex-step derivatives of the NumPy float64 reference
(``tests/reference.py``), exact to float64 rounding, at the float64 tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference
from array_libs import Backend, assert_close
from test_scan import SCANS, VARIANTS, draw_problem

import polyrnn

NUMPY = Backend("numpy", np)


def loss_ref(kind, opts, p, xs, h0, lengths, reverse):
    """A scalar of every output of the NumPy reference, weighted so no cotangent is uniform."""
    hs, last = reference.scan(kind, p, xs, h0, lengths=lengths, reverse=reverse, **opts)
    w = np.cos(np.arange(hs.size)).reshape(hs.shape)
    last_h = last[0] if kind == "lstm" else last
    return (hs * w).sum() + (last_h**2).sum()


CASES = [
    (k, o, rev, lens) for (k, o) in VARIANTS for rev in (False, True) for lens in (False, True)
]


def _problem(kind, with_lengths):
    p, xs, h0, lengths = draw_problem(
        11, kind, (2,), 4, 3, 2, with_state=True, with_lengths=with_lengths
    )
    h0 = h0[0] if kind == "lstm" else h0  # differentiate w.r.t. h0 (c0 zero)
    return p, xs, h0, lengths


def _expected(kind, opts, p, xs, h0, lengths, reverse):
    """Complex-step gradients of the reference loss, exact to float64 rounding."""

    def f(xs, h0, *pp):
        state = (h0, np.zeros_like(h0)) if kind == "lstm" else h0
        return loss_ref(kind, opts, pp, xs, state, lengths, reverse)

    return reference.gradient(f, [xs, h0, *p])


@pytest.mark.parametrize(("kind", "opts", "reverse", "with_lengths"), CASES)
def test_jax_grad_matches_the_reference(kind, opts, reverse, with_lengths):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    p, xs, h0, lengths = _problem(kind, with_lengths)
    lens = None if lengths is None else jnp.asarray(lengths)

    @jax.jit
    def loss(xs, h0, p):
        state = (h0, jnp.zeros_like(h0)) if kind == "lstm" else h0
        hs, last = SCANS[kind](xs, p, state, lengths=lens, reverse=reverse, **opts)
        w = jnp.cos(jnp.arange(hs.size)).reshape(hs.shape)
        last_h = last[0] if kind == "lstm" else last
        return (hs * w).sum() + (last_h**2).sum()

    args = (jnp.asarray(xs), jnp.asarray(h0), type(p)(*map(jnp.asarray, p)))
    g_xs, g_h0, g_p = jax.grad(loss, argnums=(0, 1, 2))(*args)
    expected = _expected(kind, opts, p, xs, h0, lengths, reverse)
    for got, want in zip([g_xs, g_h0, *g_p], expected, strict=True):
        assert_close(NUMPY, np.asarray(got), want, dtype="float64")


@pytest.mark.parametrize(("kind", "opts", "reverse", "with_lengths"), CASES)
def test_torch_autograd_matches_the_reference(kind, opts, reverse, with_lengths):
    torch = pytest.importorskip("torch")
    p, xs, h0, lengths = _problem(kind, with_lengths)
    t = [torch.tensor(a, requires_grad=True) for a in (xs, h0, *p)]
    state = (t[1], torch.zeros_like(t[1])) if kind == "lstm" else t[1]
    lens = None if lengths is None else torch.as_tensor(lengths)
    hs, last = SCANS[kind](t[0], type(p)(*t[2:]), state, lengths=lens, reverse=reverse, **opts)
    w = torch.cos(torch.arange(hs.numel(), dtype=torch.float64)).reshape(hs.shape)
    last_h = last[0] if kind == "lstm" else last
    ((hs * w).sum() + (last_h**2).sum()).backward()
    expected = _expected(kind, opts, p, xs, h0, lengths, reverse)
    for got, want in zip(t, expected, strict=True):
        assert_close(NUMPY, got.grad.numpy(), want, dtype="float64")


def test_jax_jit_and_vmap_match_eager():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    p, xs, h0, lengths = draw_problem(5, "gru", (3,), 6, 4, 5, with_state=True, with_lengths=True)
    p = polyrnn.GRUParams(*map(jnp.asarray, p))
    xs, h0, lengths = jnp.asarray(xs), jnp.asarray(h0), jnp.asarray(lengths)
    eager = polyrnn.gru_scan(xs, p, h0, lengths=lengths, reset_after=True)
    jitted = jax.jit(lambda *a: polyrnn.gru_scan(*a[:3], lengths=a[3], reset_after=True))(
        xs, p, h0, lengths
    )
    mapped = jax.vmap(lambda x, h, n: polyrnn.gru_scan(x, p, h, lengths=n, reset_after=True))(
        xs, h0, lengths
    )
    ref = polyrnn.gru_scan(
        np.asarray(xs),
        polyrnn.GRUParams(*map(np.asarray, p)),
        np.asarray(h0),
        lengths=np.asarray(lengths),
        reset_after=True,
    )
    for out in (eager, jitted, mapped):
        for got, want in zip(out, ref, strict=True):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


def test_jax_compile_time_does_not_grow_with_T():
    """One lax.scan, not an unrolled loop: the lowered program has the same size for any T."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    p = polyrnn.init_gru(4, 8, xp=jnp, dtype="float32")

    def ops(T):
        text = (
            jax.jit(lambda xs: polyrnn.gru_scan(xs, p)[0])
            .lower(jnp.ones((2, T, 4), jnp.float32))
            .as_text()
        )
        return text.count("\n"), text.count("dot_general"), text.count("stablehlo.while")

    assert ops(10) == ops(1000)
    assert ops(10)[2] == 1
