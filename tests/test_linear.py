"""Linear recurrences, the associative scan, minGRU and minLSTM on every backend.

Everything is compared with the NumPy float64 reference of ``tests/reference.py``, written
straight from the equations (a loop over time, one sequence at a time, ``1 - z`` and
``f / (f + i)`` as the paper writes them, the latter in log space with a stable logistic),
with mathematical identities (associativity with a non-commutative operation, reverse =
flip-scan-flip, split-and-carry) and, for the gradients, with complex-step derivatives of
that reference (exact to float64 rounding), ``jax.vjp`` and torch autograd.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import reference
from array_api_compat import array_namespace
from array_libs import Backend, assert_close

import polyrnn
from polyrnn._compat import device
from polyrnn.linear import associative_scan, linear_scan, linear_scan_vjp
from polyrnn.minrnn import (
    MinGRUParams,
    MinLSTMParams,
    init_min_gru,
    init_min_lstm,
    min_gru_cell,
    min_gru_scan,
    min_gru_scan_vjp,
    min_lstm_cell,
    min_lstm_scan,
    min_lstm_scan_vjp,
)

METHODS = ["sequential", "parallel", "auto"]
SCANS = {"gru": min_gru_scan, "lstm": min_lstm_scan}
VJPS = {"gru": min_gru_scan_vjp, "lstm": min_lstm_scan_vjp}
CELLS = {"gru": min_gru_cell, "lstm": min_lstm_cell}
PARAMS = {"gru": MinGRUParams, "lstm": MinLSTMParams}
GATES = {"gru": 2, "lstm": 3}


# --- the NumPy float64 reference (tests/reference.py, from the equations) ----------------------


ref_linear = reference.linear_scan
sigmoid = reference.sigmoid


def ref_scan(kind, p, xs, h0=None, *, lengths=None, reverse=False):
    """Batch-first ``xs (..., T, D)``; a sequence of length L is cut at L (zeros after)."""
    return reference.scan(f"min_{kind}", p, xs, h0, lengths=lengths, reverse=reverse)


# --- problems -----------------------------------------------------------------------------------


def coefficients(seed, shape):
    """``a`` in (0, 1) like minGRU's ``1 - z``, ``b`` standard normal, ``h0``."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.05, 1.0, shape)
    b = rng.normal(size=shape)
    h0 = rng.normal(size=shape[:-2] + shape[-1:])
    return a, b, h0


def problem(seed, kind, batch, T, D, H):
    """Params ``(D, G*H)``, ``(G*H,)``, inputs ``(*batch, T, D)`` and ``h0 (*batch, H)``."""
    rng = np.random.default_rng(seed)
    g = GATES[kind]
    p = PARAMS[kind](rng.normal(0, 0.7, (D, g * H)), rng.normal(0, 0.5, (g * H,)))
    return p, rng.normal(size=(*batch, T, D)), rng.normal(size=(*batch, H))


def conv(backend: Backend, tree, dtype="float64"):
    if tree is None:
        return None
    if isinstance(tree, tuple):
        parts = [conv(backend, t, dtype) for t in tree]
        return type(tree)(*parts) if hasattr(tree, "_fields") else tuple(parts)
    return backend.asarray(tree, dtype)


def rounded(tree, dtype):
    """What the backend sees of ``tree`` in ``dtype``, back in float64."""
    if isinstance(tree, tuple):
        parts = [rounded(t, dtype) for t in tree]
        return type(tree)(*parts) if hasattr(tree, "_fields") else tuple(parts)
    return np.asarray(tree).astype(dtype).astype(np.float64)


# --- linear_scan --------------------------------------------------------------------------------


LIN = (2, 3, 13, 4)
"""The shape (batch..., T, H) of most linear-scan tests: few shapes, few JAX compilations."""


@pytest.mark.parametrize("method", ["sequential", "parallel"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linear_scan_matches_reference(backend, method, reverse, time_major, dtype):
    a, b, h0 = coefficients(1, LIN)
    tm = (lambda x: np.moveaxis(x, -2, 0)) if time_major else (lambda x: x)
    hs, h = linear_scan(
        backend.asarray(tm(a), dtype),
        backend.asarray(tm(b), dtype),
        backend.asarray(h0, dtype),
        time_major=time_major,
        reverse=reverse,
        method=method,
    )
    r = rounded((a, b, h0), dtype)
    want, want_last = ref_linear(
        np.moveaxis(r[0], -2, 0), np.moveaxis(r[1], -2, 0), r[2], reverse=reverse
    )
    assert_close(backend, hs, want if time_major else np.moveaxis(want, 0, -2), dtype=dtype)
    assert_close(backend, h, want_last, dtype=dtype)


@pytest.mark.parametrize("method", METHODS)
def test_linear_scan_short_unbatched_and_without_h0(backend, method):
    """T = 0 (h_last is h0), T = 1, no batch axes, h0 omitted (zeros)."""
    a, b, h0 = coefficients(0, (2, 0, 3))
    for reverse in (False, True):
        hs, h = linear_scan(
            *(backend.asarray(x) for x in (a, b, h0)), method=method, reverse=reverse
        )
        assert_close(backend, hs, np.zeros((2, 0, 3)), dtype="float64")
        assert_close(backend, h, h0, dtype="float64")
    for shape in ((2, 1, 3), (13, 3)):
        a, b, h0 = coefficients(2, shape)
        hs, h = linear_scan(backend.asarray(a), backend.asarray(b), method=method)
        want, last = ref_linear(np.moveaxis(a, -2, 0), np.moveaxis(b, -2, 0), 0 * h0)
        assert_close(backend, hs, np.moveaxis(want, 0, -2), dtype="float64")
        assert_close(backend, h, last, dtype="float64")


@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_long_sequences_parallel_equals_sequential_equals_reference(backend, method):
    """float32 at T = 4096 (even lengths at every level of the parallel recursion) and
    float64 at T = 4095 (odd at every level), at the long-scan tolerances."""
    for T, dtype in ((4096, "float32"), (4095, "float64")):
        a, b, h0 = coefficients(T, (2, T, 8))
        a, b = (np.ascontiguousarray(np.moveaxis(x, 1, 0)) for x in (a, b))  # time-major
        want, last = ref_linear(*rounded((a, b, h0), dtype))
        hs, h = linear_scan(
            *(backend.asarray(x, dtype) for x in (a, b, h0)), time_major=True, method=method
        )
        assert_close(backend, hs, want, dtype=dtype, long=True)
        assert_close(backend, h, last, dtype=dtype, long=True)


def test_auto_is_sequential_on_cpu(backend):
    """On a CPU ``auto`` is the sequential form (measured faster there), so it is that form
    exactly; elsewhere it is the parallel one."""
    a, b, h0 = (backend.asarray(x) for x in coefficients(3, LIN))
    auto = linear_scan(a, b, h0)[0]
    adapter = polyrnn.backends.get_adapter(array_namespace(a))
    chosen = adapter.linear_method(a, steps=13, width=24)
    on_cpu = "cpu" in str(device(a)).lower()
    assert chosen == ("sequential" if on_cpu else "parallel")
    explicit = linear_scan(a, b, h0, method=chosen)[0]
    np.testing.assert_array_equal(backend.to_numpy(auto), backend.to_numpy(explicit))


def test_reverse_is_flip_scan_flip(backend):
    a, b, h0 = coefficients(5, LIN)
    flip = functools.partial(np.flip, axis=-2)
    for method in ("sequential", "parallel"):
        args = [backend.asarray(np.ascontiguousarray(x)) for x in (a, b)]
        hs_r, h_r = linear_scan(*args, backend.asarray(h0), reverse=True, method=method)
        flipped = [backend.asarray(np.ascontiguousarray(flip(x))) for x in (a, b)]
        hs_f, h_f = linear_scan(*flipped, backend.asarray(h0), method=method)
        assert_close(backend, hs_r, flip(backend.to_numpy(hs_f)), dtype="float64")
        assert_close(backend, h_r, backend.to_numpy(h_f), dtype="float64")


@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_split_and_carry_equals_one_scan(backend, method):
    a, b, h0 = coefficients(6, LIN)
    for split in (0, 5):
        whole, last = linear_scan(
            backend.asarray(a), backend.asarray(b), backend.asarray(h0), method=method
        )
        first, mid = linear_scan(
            backend.asarray(a[..., :split, :]), backend.asarray(b[..., :split, :]),
            backend.asarray(h0), method=method,
        )  # fmt: skip
        second, end = linear_scan(
            backend.asarray(a[..., split:, :]), backend.asarray(b[..., split:, :]), mid,
            method=method,
        )  # fmt: skip
        joined = np.concatenate([backend.to_numpy(first), backend.to_numpy(second)], axis=-2)
        assert_close(backend, whole, joined, dtype="float64")
        assert_close(backend, last, backend.to_numpy(end), dtype="float64")


# --- associative_scan ---------------------------------------------------------------------------


def _matmul(x, y):
    return array_namespace(x).matmul(x, y)


def ref_prefix_products(m, reverse=False):
    out = np.empty_like(m)
    acc = None
    for k in range(m.shape[0] - 1, -1, -1) if reverse else range(m.shape[0]):
        acc = m[k] if acc is None else acc @ m[k]
        out[k] = acc
    return out


@pytest.mark.parametrize("reverse", [False, True])
def test_associative_scan_of_matrix_products(backend, reverse):
    """Associativity is all the algorithm may use: 2 x 2 matrix products (not commutative)
    come out as the ordered prefix products, for every length (odd ones included)."""
    rng = np.random.default_rng(7)
    for T in (1, 2, 13):  # 13 -> 6 -> 3 -> 1: odd and even lengths in the recursion
        m = rng.normal(size=(T, 2, 2))
        got = associative_scan(_matmul, backend.asarray(m), reverse=reverse)
        assert_close(backend, got, ref_prefix_products(m, reverse), dtype="float64")


def test_associative_scan_axis_and_pytrees(backend):
    rng = np.random.default_rng(8)
    m = rng.normal(size=(3, 6, 2, 2))  # scan along axis 1 of a batch of 3
    got = associative_scan(_matmul, backend.asarray(m), axis=1)
    want = np.stack([ref_prefix_products(x) for x in m])
    assert_close(backend, got, want, dtype="float64")
    neg = associative_scan(lambda x, y: x + y, backend.asarray(m), axis=-3)  # the same axis
    assert_close(backend, neg, np.cumsum(m, axis=1), dtype="float64")

    # A tree: the affine maps (a, b) of a linear recurrence, as a dict holding a pair.
    a, b, _ = coefficients(9, (10, 3))

    def compose(x, y):
        return {"ab": (x["ab"][0] * y["ab"][0], y["ab"][0] * x["ab"][1] + y["ab"][1])}

    out = associative_scan(compose, {"ab": (backend.asarray(a), backend.asarray(b))})
    assert_close(backend, out["ab"][1], ref_linear(a, b, np.zeros(3))[0], dtype="float64")
    assert_close(backend, out["ab"][0], np.cumprod(a, axis=0), dtype="float64")


def test_associative_scan_short_and_empty(backend):
    for T in (0, 1):
        x = backend.asarray(np.arange(float(T)))
        assert_close(
            backend, associative_scan(lambda u, v: u + v, x), np.arange(float(T)), dtype="float64"
        )


# --- minGRU and minLSTM -------------------------------------------------------------------------


MIN = ((4,), 7, 3, 4)
"""(batch, T, D, H) of most minGRU / minLSTM tests."""
LENGTHS = np.array([7, 0, 3, 5])
MIN_CASES = [
    # batch, time_major, reverse, with lengths, dtype
    ((4,), False, False, True, "float64"),
    ((4,), True, True, True, "float32"),
    ((2, 3), True, False, False, "float32"),
    ((), False, False, False, "float64"),
]


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("method", ["sequential", "parallel"])
@pytest.mark.parametrize(("batch", "time_major", "reverse", "with_lengths", "dtype"), MIN_CASES)
def test_min_scan_matches_reference(
    backend, kind, method, batch, time_major, reverse, with_lengths, dtype
):
    """Against the reference, which cuts each sequence at its length (reverse: reads it from
    its own last valid step) and leaves zeros after."""
    p, xs, h0 = problem(11, kind, batch, *MIN[1:])
    lengths = LENGTHS if with_lengths else None
    xs_in = np.moveaxis(xs, -2, 0) if time_major and batch else xs
    hs, h = SCANS[kind](
        backend.asarray(xs_in, dtype),
        conv(backend, p, dtype),
        backend.asarray(h0, dtype),
        time_major=time_major,
        reverse=reverse,
        lengths=None if lengths is None else backend.asarray(lengths),
        method=method,
    )
    want, last = ref_scan(kind, *rounded((p, xs, h0), dtype), lengths=lengths, reverse=reverse)
    assert_close(backend, hs, np.moveaxis(want, -2, 0) if time_major else want, dtype=dtype)
    assert_close(backend, h, last, dtype=dtype)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_split_and_carry_and_cells(backend, kind):
    """Two scans with the state carried, and a loop of the one-step cell, equal one scan;
    ``auto`` equals both explicit methods."""
    p, xs, h0 = problem(14, kind, *MIN)
    pb, xb, hb = conv(backend, p), backend.asarray(xs), backend.asarray(h0)
    whole, last = SCANS[kind](xb, pb, hb)
    first, mid = SCANS[kind](xb[:, :3, ...], pb, hb, method="parallel")
    second, end = SCANS[kind](xb[:, 3:, ...], pb, mid, method="parallel")
    joined = np.concatenate([backend.to_numpy(first), backend.to_numpy(second)], axis=1)
    assert_close(backend, whole, joined, dtype="float64")
    assert_close(backend, last, backend.to_numpy(end), dtype="float64")
    cell = CELLS[kind]
    if backend.name == "jax":  # one compilation instead of one per eager operation
        cell = pytest.importorskip("jax").jit(cell)
    h = hb
    for t in range(MIN[1]):
        h = cell(pb, h, xb[:, t, ...])
        assert_close(backend, h, backend.to_numpy(whole)[:, t], dtype="float64")


def test_saturated_gates(backend):
    """Gates driven far into saturation (their sigmoids round to exactly 0 or 1) keep the
    state exactly, and minLSTM with f and i both 0 -- 0/0 in the paper's f/(f+i) -- stays
    finite, at the limit f' = i' = 1/2."""
    H, big = 3, 1e4
    h0 = np.linspace(-1.0, 1.0, H)
    xs = backend.asarray(np.ones((5, 2)))

    def run(scan, p, bias):
        hs, _ = scan(xs, conv(backend, p._replace(b_x=bias)), backend.asarray(h0))
        return backend.to_numpy(hs)

    p = init_min_gru(2, H)
    bias = np.asarray(p.b_x).copy()
    bias[:H] = -big  # z = 0: h_t = h_0
    np.testing.assert_array_equal(run(min_gru_scan, p, bias), np.tile(h0, (5, 1)))

    p = init_min_lstm(2, H)
    bias = np.asarray(p.b_x).copy()
    bias[:H], bias[H : 2 * H] = 0.0, -big  # f = 1/2, i = 0: f' = 1, i' = 0
    np.testing.assert_array_equal(run(min_lstm_scan, p, bias), np.tile(h0, (5, 1)))
    bias[:H] = -big  # f = i = 0, while f / i = exp(k_f - k_i) is finite: f' = σ(k_f - k_i)
    g = np.ones(2) @ np.asarray(p.w_x) + bias
    f = sigmoid(g[:H] - g[H : 2 * H])
    want = ref_linear(np.tile(f, (5, 1)), np.tile((1 - f) * g[2 * H :], (5, 1)), h0)[0]
    assert_close(backend, backend.asarray(run(min_lstm_scan, p, bias)), want, dtype="float64")


@pytest.mark.parametrize("scale", [0.7, 60.0])
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_cells_match_reference(backend, kind, scale):
    """One step of ``min_gru_cell``/``min_lstm_cell`` from a batch of states against the
    reference step, with ordinary and saturating weights (|pre-activation| ~ 100)."""
    p, xs, h0 = problem(15, kind, (2, 3), 1, 4, 3)
    p = p._replace(w_x=p.w_x * scale)
    x = xs[..., 0, :]
    step = reference.min_gru_step if kind == "gru" else reference.min_lstm_step
    want = np.zeros(h0.shape)
    for idx in np.ndindex(h0.shape[:-1]):
        want[idx] = step(p, h0[idx], x[idx])
    got = CELLS[kind](conv(backend, p), backend.asarray(h0), backend.asarray(x))
    assert_close(backend, got, want, dtype="float64")


@pytest.mark.parametrize("init", [init_min_gru, init_min_lstm])
def test_init_same_numbers_everywhere(backend, init):
    ref = init(5, 7, seed=3, dtype="float64")
    got = init(5, 7, seed=3, xp=backend.xp, dtype="float64")
    assert type(got) is type(ref)
    for a, b in zip(got, ref, strict=True):
        assert_close(backend, a, b, dtype="float64", rtol=0, atol=0)
    values, bound = np.concatenate([np.ravel(a) for a in ref]), 1 / np.sqrt(5)
    assert values.max() <= bound and values.min() >= -bound  # like torch.nn.Linear(D, G*H)
    assert values.max() > 0.9 * bound and values.min() < -0.9 * bound
    assert ref.w_x.shape == (5, 7 * (2 if init is init_min_gru else 3))


# --- gradients ----------------------------------------------------------------------------------


def _weights(shape, seed):
    return np.cos(np.arange(int(np.prod(shape))) * 0.7 + seed).reshape(shape)


exact_grad = reference.gradient
"""The gradient of a reference loss by complex steps, exact to float64 rounding."""


GRAD_CASES = [
    ("gru", False, False),
    ("gru", True, True),
    ("lstm", False, True),
    ("lstm", True, False),
]


@functools.cache
def min_fd(kind, reverse, with_lengths):
    """Problem, cotangents and complex-step gradients of the reference, computed once."""
    p, xs, h0 = problem(21, kind, (3,), 5, 2, 2)
    lengths = np.array([5, 0, 3]) if with_lengths else None
    w_hs, w_last = _weights((3, 5, 2), 1), _weights((3, 2), 2)

    def loss(xs, h0, w, bias):
        hs, last = ref_scan(kind, PARAMS[kind](w, bias), xs, h0, lengths=lengths, reverse=reverse)
        return (hs * w_hs).sum() + (last * w_last).sum()

    return p, xs, h0, lengths, (w_hs, w_last), exact_grad(loss, [xs, h0, *p])


def backend_grads(backend, call, vjp, arrays, cotangents):
    """Gradient of ``<hs, w_hs> + <h_last, w_last>`` with respect to ``arrays`` (NumPy), by
    the library's own autodiff on JAX (``jax.jit(jax.grad(...))``) and PyTorch (autograd),
    by polyrnn's hand-written VJP elsewhere.  ``call(*arrays) -> (hs, h_last)``;
    ``vjp(*arrays) -> ((hs, h_last), backward)`` with ``backward`` returning the cotangents
    in the order of ``arrays``."""
    w_hs, w_last = (backend.asarray(w) for w in cotangents)
    if backend.name == "jax":
        jax = pytest.importorskip("jax")

        def loss(*xs):
            hs, h = call(*xs)
            return (hs * w_hs).sum() + (h * w_last).sum()

        argnums = tuple(range(len(arrays)))
        return jax.jit(jax.grad(loss, argnums=argnums))(*(backend.asarray(x) for x in arrays))
    if backend.name == "torch":
        leaves = [backend.asarray(x).requires_grad_() for x in arrays]
        hs, h = call(*leaves)
        ((hs * w_hs).sum() + (h * w_last).sum()).backward()
        return [leaf.grad for leaf in leaves]
    _, backward = vjp(*(backend.asarray(x) for x in arrays))
    return backward(w_hs, w_last)


@pytest.mark.parametrize(("kind", "reverse", "with_lengths"), GRAD_CASES)
@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_min_scan_gradients_match_the_reference(backend, kind, reverse, with_lengths, method):
    """JAX and PyTorch differentiate the scan; the other libraries use the hand-written VJP."""
    p, xs, h0, lengths, cot, want = min_fd(kind, reverse, with_lengths)
    opts = {"reverse": reverse, "method": method}
    opts["lengths"] = None if lengths is None else backend.asarray(lengths)
    cls = PARAMS[kind]

    def call(x, h, w, bias):
        return SCANS[kind](x, cls(w, bias), h, **opts)

    def vjp(x, h, w, bias):
        out, backward = VJPS[kind](x, cls(w, bias), h, **opts)
        want_hs = ref_scan(kind, p, xs, h0, lengths=lengths, reverse=reverse)[0]
        assert_close(backend, out[0], want_hs, dtype="float64")

        def reordered(*cot):
            d_xs, d_p, d_h0 = backward(*cot)
            assert type(d_p) is cls
            return d_xs, d_h0, *d_p

        return out, reordered

    got = backend_grads(backend, call, vjp, [xs, h0, *p], cot)
    for g, exp in zip(got, want, strict=True):
        assert_close(backend, g, exp, dtype="float64")


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saturated_gates_have_finite_gradients(backend, kind, dtype):
    """Gate pre-activations of ±1e4, where ``e^{±k}`` overflows, give the complex-step
    gradients of the stable NumPy reference (zero through the saturated gates), not NaN,
    on every backend and by every route (JAX and torch autodiff, the hand-written VJP
    elsewhere).  A JAX gate written as ``1 / (1 + e^k)`` differentiated to ``inf / inf``
    there, and a minGRU language model trained to NaN after five minutes."""
    n_h, big = 3, 1e4
    cls, init = PARAMS[kind], {"gru": init_min_gru, "lstm": init_min_lstm}[kind]
    p = init(2, n_h)
    bias = np.asarray(p.b_x).copy()
    bias[0], bias[1] = big, -big  # the first gate of units 0 and 1: fully open, fully shut
    p = p._replace(b_x=bias)
    rng = np.random.default_rng(3)
    xs, h0 = rng.normal(size=(6, 2)), rng.normal(size=n_h)
    cot = (rng.normal(size=(6, n_h)), rng.normal(size=n_h))
    arrays = [rounded(a, dtype) for a in (xs, h0, *p)]
    cot = [rounded(c, dtype) for c in cot]

    def loss(x, h, w, b):
        hs, last = ref_scan(kind, cls(w, b), x, h)
        return (hs * cot[0]).sum() + (last * cot[1]).sum()

    want = exact_grad(loss, arrays)
    # Independently of any code: σ' vanishes at ±1e4, so nothing flows into the saturated
    # gates' pre-activations, their bias entries and their columns of w_x.
    np.testing.assert_array_equal(want[3][:2], 0.0)
    np.testing.assert_array_equal(want[2][:, :2], 0.0)

    def call(x, h, w, b):
        return SCANS[kind](x, cls(w, b), h)

    def vjp(x, h, w, b):
        out, back = VJPS[kind](x, cls(w, b), h)

        def reordered(*c):
            g_xs, g_p, g_h0 = back(*c)
            return g_xs, g_h0, *g_p

        return out, reordered

    got = backend_grads(
        backend, call, vjp, [a.astype(dtype) for a in arrays], [c.astype(dtype) for c in cot]
    )
    for g, exp in zip(got, want, strict=True):
        assert np.isfinite(backend.to_numpy(g)).all()
        assert_close(backend, g, exp, dtype=dtype)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
def test_linear_scan_gradients_match_the_reference(backend, reverse, time_major):
    a, b, h0 = coefficients(22, (2, 4, 3))
    if time_major:
        a, b = np.moveaxis(a, 1, 0).copy(), np.moveaxis(b, 1, 0).copy()
    cot = (_weights(a.shape, 3), _weights(h0.shape, 4))

    def loss(a, b, h0):
        tm = (lambda x: x) if time_major else (lambda x: np.moveaxis(x, 1, 0))
        hs, last = ref_linear(tm(a), tm(b), h0, reverse=reverse)
        return (tm(hs) * cot[0]).sum() + (last * cot[1]).sum()

    want = exact_grad(loss, [a, b, h0])
    for method in ("sequential", "parallel"):
        opts = {"time_major": time_major, "reverse": reverse, "method": method}
        got = backend_grads(
            backend,
            functools.partial(linear_scan, **opts),
            functools.partial(linear_scan_vjp, **opts),
            [a, b, h0],
            cot,
        )
        for g, exp in zip(got, want, strict=True):
            assert_close(backend, g, exp, dtype="float64")


def test_vjp_zero_steps_none_cotangents_and_float32(backend):
    if backend.name == "jax":
        pytest.skip(
            "on JAX every eager operation of the hand-written VJP compiles per shape (slow); "
            "its gradients are jax's own, and the VJP's numbers are checked against jax.vjp"
        )
    a, b, h0 = coefficients(22, (2, 4, 3))
    _, backward = linear_scan_vjp(backend.asarray(a), backend.asarray(b))
    d_a, _, d_h0 = backward()  # no cotangents: zeros, and d_h0 although h0 was None
    assert_close(backend, d_h0, np.zeros(h0.shape), dtype="float64")
    assert_close(backend, d_a, np.zeros(a.shape), dtype="float64")
    p, xs, h0 = problem(23, "gru", (2,), 0, 3, 2)
    _, backward = min_gru_scan_vjp(backend.asarray(xs), conv(backend, p),
                                         backend.asarray(h0))  # fmt: skip
    d_xs, d_p, d_h0 = backward(None, backend.asarray(np.ones((2, 2))))
    assert_close(backend, d_xs, np.zeros((2, 0, 3)), dtype="float64")
    assert_close(backend, d_p.w_x, np.zeros((3, 4)), dtype="float64")
    assert_close(backend, d_h0, np.ones((2, 2)), dtype="float64")
    p, xs, h0 = problem(24, "lstm", (2,), 4, 3, 2)
    (hs, _), backward = min_lstm_scan_vjp(*(conv(backend, x, "float32") for x in (xs, p, h0)))
    d_xs, d_p, d_h0 = backward(conv(backend, np.ones((2, 4, 2)), "float32"))
    for g in (hs, d_xs, *d_p, d_h0):
        assert g.dtype == backend.dtype("float32")


def _jax():
    return pytest.importorskip("jax")


@pytest.mark.parametrize(("kind", "method"), [("gru", "sequential"), ("lstm", "parallel")])
def test_vjp_matches_jax_vjp(kind, method):
    """The hand-written VJP (on NumPy) against jax.vjp of the JAX scan."""
    jax = _jax()
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    p, xs, h0 = problem(25, kind, *MIN)
    opts = {"reverse": True, "method": method}

    def f(xs, params, h0):
        return SCANS[kind](xs, params, h0, lengths=jnp.asarray(LENGTHS), **opts)

    cot = (_weights((4, 7, 4), 5), _weights((4, 4), 6))
    out, jvjp = jax.vjp(f, jnp.asarray(xs), PARAMS[kind](*map(jnp.asarray, p)), jnp.asarray(h0))
    want = jvjp(tuple(map(jnp.asarray, cot)))
    (hs, _), backward = VJPS[kind](xs, p, h0, lengths=LENGTHS, **opts)
    got = backward(*cot)
    for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want), strict=True):
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hs, np.asarray(out[0]), rtol=1e-12, atol=1e-12)


def test_jax_transforms():
    """jit, grad and vmap through both methods (the parallel one is lax.associative_scan)."""
    jax = _jax()
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    p, xs, h0 = problem(26, "gru", *MIN)
    pj, xj, hj = MinGRUParams(*map(jnp.asarray, p)), jnp.asarray(xs), jnp.asarray(h0)
    (hs, _), backward = min_gru_scan_vjp(xs, p, h0)
    d_xs = backward(None, np.ones((4, 4)))[0]  # gradient of h_last.sum()
    for method in ("sequential", "parallel"):

        def f(x, m=method):
            hs, h = min_gru_scan(x, pj, hj, method=m)
            return h.sum(), hs

        (_, got), grad = jax.jit(jax.value_and_grad(f, has_aux=True))(xj)
        np.testing.assert_allclose(np.asarray(got), hs, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(grad), d_xs, rtol=1e-12, atol=1e-12)
    mapped = jax.vmap(lambda x, h: min_gru_scan(x, pj, h, method="parallel")[0])(xj, hj)
    np.testing.assert_allclose(np.asarray(mapped), hs, rtol=1e-12, atol=1e-12)


def _torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("method", ["sequential", "parallel"])
@pytest.mark.parametrize("reverse", [False, True])
def test_vjp_matches_torch_autograd(kind, method, reverse):
    """Autograd through the torch path (on the CPU: the NumPy loop inside an autograd
    Function for ``sequential``, torch ops for ``parallel``) and the hand-written VJP both
    equal the complex-step gradients of the reference.  (The sequential CPU path's
    backward *is* the hand-written linear-scan VJP, so comparing the two with each other
    would prove nothing there.)"""
    torch = _torch()
    p, xs, h0 = problem(27, kind, (3,), 6, 2, 3)
    lengths = np.array([6, 2, 0])
    leaves = [torch.tensor(x, requires_grad=True) for x in (xs, *p, h0)]
    hs, h = SCANS[kind](
        leaves[0], PARAMS[kind](*leaves[1:3]), leaves[3], lengths=torch.tensor(lengths),
        reverse=reverse, method=method,
    )  # fmt: skip
    w_hs, w_last = _weights((3, 6, 3), 7), _weights((3, 3), 8)
    ((hs * torch.tensor(w_hs)).sum() + (h * torch.tensor(w_last)).sum()).backward()
    (_, _), backward = VJPS[kind](xs, p, h0, lengths=lengths, reverse=reverse, method=method)
    d_xs, d_p, d_h0 = backward(w_hs, w_last)

    def loss(x, w, b, h):
        out, last = ref_scan(kind, PARAMS[kind](w, b), x, h, lengths=lengths, reverse=reverse)
        return (out * w_hs).sum() + (last * w_last).sum()

    want = exact_grad(loss, [xs, *p, h0])
    numpy = Backend("numpy", np)
    for leaf, mine, exp in zip(leaves, (d_xs, *d_p, d_h0), want, strict=True):
        assert_close(numpy, leaf.grad.numpy(), exp, dtype="float64")
        assert_close(numpy, mine, exp, dtype="float64")


def test_torch_paths_agree_and_gradcheck():
    """The host loop (plain CPU tensors), torch's own loop (under torch.func) and the parallel
    form give the same values and gradients; gradcheck of the host-loop Function."""
    torch = _torch()
    from polyrnn.backends.torch import _HostLinearScan

    a, b, h0 = coefficients(28, (2, 4, 2))
    a, b = (torch.tensor(np.moveaxis(x, 1, 0).copy()) for x in (a, b))
    h0 = torch.tensor(h0)
    for reverse in (False, True):
        args = tuple(x.clone().requires_grad_() for x in (a, b, h0))
        assert torch.autograd.gradcheck(
            lambda a, b, h0, r=reverse: _HostLinearScan.apply(a, b, h0, r), args
        )

    def loss(a, b, h0, method):
        hs, h = linear_scan(a, b, h0, time_major=True, method=method)
        return (hs * torch.tensor(_weights((4, 2, 2), 9))).sum() + h.sum()

    want = torch.func.grad(loss, argnums=(0, 1, 2))(a, b, h0, "sequential")  # torch's own loop
    for method in ("sequential", "parallel"):
        args = tuple(x.clone().requires_grad_() for x in (a, b, h0))
        loss(*args, method).backward()
        for x, w in zip(args, want, strict=True):
            torch.testing.assert_close(x.grad, w, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # no graph: the host loop's result is a plain tensor
        hs, _ = linear_scan(a, b, h0, time_major=True)
    assert not hs.requires_grad
    half = linear_scan(a.bfloat16(), b.bfloat16(), h0.bfloat16(), time_major=True)[0]
    assert half.dtype == torch.bfloat16  # no NumPy bfloat16: torch's own loop
    torch.testing.assert_close(half.float(), hs.float(), rtol=3e-2, atol=3e-2)


# --- errors -------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    a = np.ones((2, 5, 3))
    with pytest.raises(ValueError, match=r"method must be one of .*'fast'"):
        linear_scan(a, a, method="fast")
    with pytest.raises(ValueError, match=r"b must have shape \(2, 5, 3\)"):
        linear_scan(a, np.ones((2, 5, 4)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 3\)"):
        linear_scan(a, a, np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(5, 3\)"):
        linear_scan(a, a, np.ones((2, 3)), time_major=True)
    with pytest.raises(ValueError, match=r"a must have shape \(\.\.\., T, H\)"):
        linear_scan(np.ones(3), np.ones(3))
    with pytest.raises(TypeError, match="b must have dtype float64"):
        linear_scan(a, a.astype(np.float32))
    with pytest.raises(TypeError, match="a must have a real floating dtype"):
        linear_scan(np.ones((5, 3), dtype=int), np.ones((5, 3), dtype=int))
    with pytest.raises(TypeError, match="b must be an array"):
        linear_scan(a, [[1.0]])

    with pytest.raises(TypeError, match="fn must be callable"):
        associative_scan(None, a)
    with pytest.raises(ValueError, match="at least one array"):
        associative_scan(np.add, ())
    with pytest.raises(ValueError, match=r"axis must be an integer in \[-3, 3\)"):
        associative_scan(np.add, a, axis=3)
    with pytest.raises(ValueError, match="leaf 1 has shape"):
        associative_scan(lambda x, y: x, (a, np.ones((3, 5))))
    with pytest.raises(ValueError, match="fn must return a tree with the 2 leaves"):
        associative_scan(lambda x, y: x[0], (a, a))

    p = init_min_gru(3, 4)
    xs = np.ones((2, 5, 3))
    with pytest.raises(TypeError, match="params must be MinGRUParams, got GRUParams"):
        min_gru_scan(xs, polyrnn.init_gru(3, 4))
    with pytest.raises(TypeError, match="params must be MinLSTMParams, got MinGRUParams"):
        min_lstm_scan(xs, p)
    with pytest.raises(ValueError, match=r"params.w_x must have shape \(D, 2\*H\) with D=2"):
        min_gru_scan(np.ones((2, 5, 2)), p)
    with pytest.raises(ValueError, match=r"params.b_x must have shape \(8,\)"):
        min_gru_scan(xs, p._replace(b_x=np.ones(6)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\)"):
        min_gru_scan(xs, p, np.ones(4))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T=5\]"):
        min_gru_scan(xs, p, lengths=np.array([6, 1]))
    with pytest.raises(TypeError, match="lengths must have an integer dtype"):
        min_gru_scan(xs, p, lengths=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="method must be one of"):
        min_lstm_scan(xs, init_min_lstm(3, 4), method="log")
    with pytest.raises(TypeError, match="params.w_x must have dtype float64"):
        min_gru_scan(xs, p._replace(w_x=p.w_x.astype(np.float32)))
    with pytest.raises(ValueError, match=r"xs must have shape \(\.\.\., T, D\)"):
        min_gru_scan(np.ones(3), p)
    with pytest.raises(ValueError, match=r"h must have shape \(2, 4\)"):
        min_gru_cell(p, np.ones(4), np.ones((2, 3)))
    with pytest.raises(TypeError, match="params must be MinLSTMParams"):
        min_lstm_cell(p, np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        init_min_lstm(3, 0)

    (_, _), backward = min_gru_scan_vjp(xs, p)
    with pytest.raises(ValueError, match=r"d_hs must have shape \(2, 5, 4\)"):
        backward(np.ones((2, 5, 3)))
    with pytest.raises(TypeError, match="d_h_last must have dtype float64"):
        backward(None, np.ones((2, 4), np.float32))
    (_, _), backward = linear_scan_vjp(a, a)
    with pytest.raises(ValueError, match=r"d_h_last must have shape \(2, 3\)"):
        backward(None, np.ones(3))


def test_two_libraries_raise():
    torch = _torch()
    with pytest.raises(TypeError, match="all arrays must come from one library"):
        linear_scan(np.ones((4, 2)), torch.ones(4, 2, dtype=torch.float64))
    p = init_min_gru(3, 2)
    with pytest.raises(TypeError, match="all arrays must come from one library"):
        min_gru_scan(torch.ones(4, 3, dtype=torch.float64), p)
