"""Cells and scans on every backend against the NumPy float64 reference, and the scan laws."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import reference
from array_api_compat import array_namespace
from array_libs import Backend, assert_close, tolerance
from hypothesis import example, given
from hypothesis import strategies as st

import polyrnn

PARAMS = {"rnn": polyrnn.RNNParams, "gru": polyrnn.GRUParams, "lstm": polyrnn.LSTMParams}
SCANS = {"rnn": polyrnn.rnn_scan, "gru": polyrnn.gru_scan, "lstm": polyrnn.lstm_scan}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
VARIANTS = [
    ("rnn", {"activation": "tanh"}),
    ("rnn", {"activation": "sigmoid"}),
    ("rnn", {"activation": "relu"}),
    ("gru", {"reset_after": False}),
    ("gru", {"reset_after": True}),
    ("lstm", {}),
]


LENGTHS = ("none", "random", "edges", "positive")
"""How a case's lengths are drawn: none; uniform in [0, T]; with a 0 and a T among them
(by construction); all in [1, T] (torch's fused kernels take those, packed)."""


def draw_problem(seed, kind, batch, T, D, H, *, with_state, with_lengths, scale=1.0):
    """NumPy float64 params (weights ``scale`` times N(0, 0.6)), inputs (batch-first),
    state and lengths (``with_lengths``: a bool or one of :data:`LENGTHS`) for one case."""
    rng = np.random.default_rng(seed)
    G = GATES[kind]
    p = PARAMS[kind](
        rng.normal(0, 0.6 * scale, (D, G * H)),
        rng.normal(0, 0.6 * scale, (H, G * H)),
        rng.normal(0, 0.5, (G * H,)),
        rng.normal(0, 0.5, (G * H,)),
    )
    xs = rng.normal(size=(*batch, T, D))
    state = None
    if with_state:
        state = rng.normal(size=(*batch, H))
        if kind == "lstm":
            state = (state, rng.normal(size=(*batch, H)))
    mode = {True: "random", False: "none"}.get(with_lengths, with_lengths)
    lengths = None
    if mode != "none":
        lengths = rng.integers(min(1, T) if mode == "positive" else 0, T + 1, size=batch)
        lengths = np.minimum(lengths, T)
        if mode == "edges" and lengths.size:
            lengths.flat[0], lengths.flat[-1] = 0, T
    return p, xs, state, lengths


def to_backend(backend: Backend, tree, dtype):
    if tree is None:
        return None
    if isinstance(tree, tuple):
        return (
            type(tree)(*(to_backend(backend, t, dtype) for t in tree))
            if hasattr(tree, "_fields")
            else tuple(to_backend(backend, t, dtype) for t in tree)
        )
    return backend.asarray(tree, dtype)


def rounded(tree, dtype):
    """``tree`` rounded to ``dtype`` and back to float64: the reference sees what the backend sees."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        parts = [rounded(t, dtype) for t in tree]
        return type(tree)(*parts) if hasattr(tree, "_fields") else tuple(parts)
    return np.asarray(tree).astype(dtype).astype(np.float64)


def run_both(backend, kind, opts, p, xs, state, lengths, dtype, *, time_major=False, reverse=False):
    if time_major and xs.ndim > 2:
        xs = np.moveaxis(xs, -2, 0)
    lib_lengths = None if lengths is None else backend.asarray(lengths)
    out = SCANS[kind](
        to_backend(backend, xs, dtype),
        to_backend(backend, p, dtype),
        to_backend(backend, state, dtype),
        time_major=time_major,
        reverse=reverse,
        lengths=lib_lengths,
        **opts,
    )
    ref = reference.scan(
        kind,
        rounded(p, dtype),
        rounded(xs, dtype),
        rounded(state, dtype),
        lengths=lengths,
        reverse=reverse,
        time_major=time_major,
        **opts,
    )
    return out, ref


def check_tree(backend, out, ref, dtype):
    if isinstance(ref, tuple):
        assert isinstance(out, tuple) and len(out) == len(ref)
        for o, r in zip(out, ref, strict=True):
            check_tree(backend, o, r, dtype)
    else:
        assert_close(backend, out, ref, dtype=dtype)


@given(
    seed=st.integers(0, 2**32 - 1),
    variant=st.sampled_from(VARIANTS),
    batch=st.sampled_from([(), (1,), (3,), (2, 3), (0,), (2, 0)]),
    T=st.integers(0, 7),
    D=st.integers(0, 4),
    H=st.integers(1, 4),
    with_state=st.booleans(),
    with_lengths=st.sampled_from(LENGTHS),
    time_major=st.booleans(),
    reverse=st.booleans(),
    dtype=st.sampled_from(["float32", "float64"]),
    scale=st.sampled_from([1.0, 1.0, 1.0, 100.0]),
)
# The edges, reached every run whatever the seed: an empty batch, no input features with a
# length-0 and a full-length sequence, H = 1, saturated gates with lengths all >= 1 (the
# packed path of torch's fused kernels).
@example(0, VARIANTS[4], (0,), 3, 2, 1, True, "none", False, False, "float32", 1.0)
@example(1, VARIANTS[0], (3,), 4, 0, 2, True, "edges", True, True, "float64", 1.0)
@example(2, VARIANTS[5], (2,), 5, 3, 1, False, "positive", False, True, "float64", 100.0)
@example(3, VARIANTS[3], (2, 0), 0, 0, 1, False, "edges", True, False, "float32", 1.0)
def test_scan_matches_reference(
    backend, seed, variant, batch, T, D, H, with_state, with_lengths, time_major, reverse, dtype,
    scale,
):  # fmt: skip
    """Against the reference (stable logistic) over shapes that include batch 0, T 0, D 0
    and H 1, and weights scaled by 100 (gates saturated, |pre-activation| ~ 100).  The
    scaled cases run in float64: float32 rounds such pre-activations by ~1e-5, which a
    gate in transition passes on -- the input's conditioning, not the library's error."""
    kind, opts = variant
    if scale > 1:
        dtype = "float64"
    p, xs, state, lengths = draw_problem(
        seed, kind, batch, T, D, H, with_state=with_state, with_lengths=with_lengths, scale=scale
    )
    out, ref = run_both(
        backend, kind, opts, p, xs, state, lengths, dtype, time_major=time_major, reverse=reverse
    )
    check_tree(backend, out, ref, dtype)


FUSED = [
    ("rnn", {"activation": "tanh"}),
    ("rnn", {"activation": "relu"}),
    ("gru", {"reset_after": True}),
    ("lstm", {}),
]
"""The variants torch runs with aten's fused kernels (``torch._VF``)."""


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(("kind", "opts"), FUSED)
def test_fused_kernels_with_lengths(backend, monkeypatch, kind, opts, reverse):
    """Every variant torch fuses, with lengths from 1 to T (packed sequences), against
    the reference; on torch the fused kernel must be what ran."""
    calls = []
    if backend.name == "torch":
        from polyrnn.backends import torch as torch_adapter

        real = torch_adapter._fused
        monkeypatch.setattr(
            torch_adapter, "_fused", lambda *a, **k: calls.append(a[0]) or real(*a, **k)
        )
    p, xs, state, _ = draw_problem(9, kind, (4,), 6, 3, 3, with_state=True, with_lengths=False)
    lengths = np.array([6, 1, 4, 2])
    out, ref = run_both(backend, kind, opts, p, xs, state, lengths, "float64", reverse=reverse)
    check_tree(backend, out, ref, "float64")
    if backend.name == "torch":
        assert calls == [opts.get("activation", kind)]


@pytest.mark.parametrize(("kind", "opts"), VARIANTS)
def test_cells_match_reference(backend, kind, opts):
    p, xs, state, _ = draw_problem(7, kind, (2, 3), 1, 4, 3, with_state=True, with_lengths=False)
    x = xs[..., 0, :]
    if kind == "lstm":
        out = polyrnn.lstm_cell(
            to_backend(backend, p, "float64"),
            to_backend(backend, state, "float64"),
            backend.asarray(x),
        )
        ref_h = np.zeros((2, 3, 3))
        ref_c = np.zeros((2, 3, 3))
        for idx in np.ndindex(2, 3):
            ref_h[idx], ref_c[idx] = reference.lstm_step(p, (state[0][idx], state[1][idx]), x[idx])
        check_tree(backend, out, (ref_h, ref_c), "float64")
    else:
        cell = polyrnn.rnn_cell if kind == "rnn" else polyrnn.gru_cell
        step = reference.rnn_step if kind == "rnn" else reference.gru_step
        out = cell(
            to_backend(backend, p, "float64"), backend.asarray(state), backend.asarray(x), **opts
        )
        ref = np.zeros((2, 3, 3))
        for idx in np.ndindex(2, 3):
            ref[idx] = step(p, state[idx], x[idx], **opts)
        assert_close(backend, out, ref, dtype="float64")


LOW_PRECISION = {
    "numpy": ["float16"],
    "torch": ["float16", "bfloat16"],
    "jax": ["float16", "bfloat16"],
}


@pytest.mark.parametrize(("kind", "opts"), VARIANTS)
def test_low_precision_dtypes(backend, kind, opts):
    """float16 and bfloat16 keep their dtype, and every output (``hs`` and the final
    states) is within the dtype's relative tolerance of the reference fed the same
    rounded inputs."""
    dtypes = LOW_PRECISION.get(backend.name, [])
    if not dtypes:
        pytest.skip(f"{backend.name} offers no float16/bfloat16 arithmetic")
    p, xs, state, _ = draw_problem(3, kind, (2,), 5, 4, 3, with_state=True, with_lengths=False)
    for dtype in dtypes:
        conv = functools.partial(to_backend, backend, dtype=dtype)
        out = SCANS[kind](conv(xs), conv(p), conv(state), **opts)
        as_float = functools.partial(rounded, dtype=dtype) if dtype != "bfloat16" else _bf16_rounded
        ref = reference.scan(kind, as_float(p), as_float(xs), as_float(state), **opts)
        hs, last = out
        outs = [hs, *last] if kind == "lstm" else [hs, last]
        refs = [ref[0], *ref[1]] if kind == "lstm" else list(ref)
        for o, r in zip(outs, refs, strict=True):
            assert o.dtype == backend.dtype(dtype)
            wide = array_namespace(o).astype(o, backend.xp.float32)
            assert_close(backend, wide, r, dtype="float32", **_low(dtype))


def _low(dtype: str) -> dict[str, float]:
    """The tolerances of ``dtype``, for its result widened to float32 to be compared."""
    rtol, atol = tolerance(dtype)
    return {"rtol": rtol, "atol": atol}


def _bf16_rounded(tree):
    """``tree`` rounded to bfloat16 (float32 with its low 16 bits rounded off, ties to
    even), back in float64: NumPy has no bfloat16."""
    if tree is None:
        return None
    if isinstance(tree, tuple):
        parts = [_bf16_rounded(t) for t in tree]
        return type(tree)(*parts) if hasattr(tree, "_fields") else tuple(parts)
    bits = np.asarray(tree, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


# --- scan laws: identities of the library itself --------------------------------------------


@given(seed=st.integers(0, 2**32 - 1), variant=st.sampled_from(VARIANTS), split=st.integers(0, 6))
def test_split_and_carry_equals_one_scan(backend, seed, variant, split):
    kind, opts = variant
    p, xs, state, _ = draw_problem(seed, kind, (2,), 6, 3, 4, with_state=True, with_lengths=False)
    p, xs, state = (to_backend(backend, a, "float64") for a in (p, xs, state))
    whole, last = SCANS[kind](xs, p, state, **opts)
    first, mid = SCANS[kind](xs[:, :split, ...], p, state, **opts)
    second, end = SCANS[kind](xs[:, split:, ...], p, mid, **opts)
    joined = np.concatenate([backend.to_numpy(first), backend.to_numpy(second)], axis=1)
    assert_close(backend, whole, joined, dtype="float64")
    check_tree(
        backend,
        last,
        tuple(backend.to_numpy(e) for e in end) if kind == "lstm" else backend.to_numpy(end),
        "float64",
    )


@given(seed=st.integers(0, 2**32 - 1), variant=st.sampled_from(VARIANTS))
def test_reverse_is_flip_scan_flip(backend, seed, variant):
    kind, opts = variant
    p, xs, state, _ = draw_problem(seed, kind, (3,), 5, 3, 2, with_state=True, with_lengths=False)
    xs_f = np.ascontiguousarray(xs[:, ::-1])
    p, xs, xs_f, state = (to_backend(backend, a, "float64") for a in (p, xs, xs_f, state))
    hs_r, last_r = SCANS[kind](xs, p, state, reverse=True, **opts)
    hs_f, _ = SCANS[kind](xs_f, p, state, **opts)
    assert_close(backend, hs_r, backend.to_numpy(hs_f)[:, ::-1], dtype="float64")
    first = last_r[0] if kind == "lstm" else last_r
    assert_close(backend, first, backend.to_numpy(hs_f)[:, -1], dtype="float64")


@given(seed=st.integers(0, 2**32 - 1), variant=st.sampled_from(VARIANTS), reverse=st.booleans())
def test_lengths_equal_truncated_runs(backend, seed, variant, reverse):
    kind, opts = variant
    p, xs, state, lengths = draw_problem(
        seed, kind, (4,), 6, 3, 2, with_state=True, with_lengths=True
    )
    pb = to_backend(backend, p, "float64")
    hs, last = SCANS[kind](
        backend.asarray(xs),
        pb,
        to_backend(backend, state, "float64"),
        lengths=backend.asarray(lengths),
        reverse=reverse,
        **opts,
    )
    hs = backend.to_numpy(hs)
    for b, L in enumerate(lengths):
        s_b = (
            None if state is None else (tuple(s[b] for s in state) if kind == "lstm" else state[b])
        )
        hs_b, last_b = SCANS[kind](
            backend.asarray(xs[b, :L]),
            pb,
            to_backend(backend, s_b, "float64"),
            reverse=reverse,
            **opts,
        )
        np.testing.assert_allclose(hs[b, :L], backend.to_numpy(hs_b), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(hs[b, L:], 0.0)
        got = backend.to_numpy(last[0] if kind == "lstm" else last)[b]
        want = backend.to_numpy(last_b[0] if kind == "lstm" else last_b)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_saturated_update_gate_keeps_state(backend):
    """A GRU whose update gate is 1 (bias +inf) copies its state: h_t = h_0."""
    p = polyrnn.init_gru(3, 4, dtype="float64")
    b_x = np.asarray(p.b_x).copy()
    b_x[4:8] = np.inf
    p = p._replace(b_x=b_x)
    h0 = np.linspace(-1, 1, 4)
    hs, h = polyrnn.gru_scan(
        backend.asarray(np.ones((5, 3))), to_backend(backend, p, "float64"), backend.asarray(h0)
    )
    assert_close(backend, hs, np.tile(h0, (5, 1)), dtype="float64")
    assert_close(backend, h, h0, dtype="float64")


def test_nan_in_nan_out(backend):
    p = polyrnn.init_gru(2, 3, dtype="float64")
    xs = np.ones((2, 4, 2))
    xs[0, 1, 0] = np.nan
    hs, _ = polyrnn.gru_scan(backend.asarray(xs), to_backend(backend, p, "float64"))
    hs = backend.to_numpy(hs)
    assert np.isnan(hs[0, 1:]).all() and not np.isnan(hs[0, 0]).any() and not np.isnan(hs[1]).any()


# --- the generic scan ------------------------------------------------------------------------


def test_scan_semantics(backend):
    xs = np.arange(1.0, 6.0)
    tree = {"a": backend.asarray(xs), "b": (backend.asarray(2 * xs),)}

    def step(c, x):
        c = c + x["a"] * x["b"][0]
        return c, (c, None)

    for reverse in (False, True):
        carry, (ys, none) = polyrnn.scan(
            step, backend.asarray(np.float64(0.0)), tree, reverse=reverse
        )
        seq = (2 * xs * xs)[::-1] if reverse else 2 * xs * xs
        expect = np.cumsum(seq)[::-1] if reverse else np.cumsum(seq)
        assert_close(backend, ys, expect, dtype="float64")
        assert_close(
            backend, carry, np.float64(expect[0] if reverse else expect[-1]), dtype="float64"
        )
        assert none is None


# --- initialisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("init", [polyrnn.init_rnn, polyrnn.init_gru, polyrnn.init_lstm])
def test_init_same_numbers_everywhere(backend, init):
    ref = init(5, 7, seed=3, dtype="float64")
    got = init(5, 7, seed=3, xp=backend.xp, dtype="float64")
    for a, b in zip(got, ref, strict=True):
        assert_close(backend, a, b, dtype="float64", rtol=0, atol=0)
    values, bound = np.concatenate([np.ravel(a) for a in ref]), 1 / np.sqrt(7)
    assert values.max() <= bound and values.min() >= -bound  # uniform in ±1/sqrt(H), like torch
    assert values.max() > 0.9 * bound and values.min() < -0.9 * bound
