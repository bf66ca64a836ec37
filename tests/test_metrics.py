"""polyrnn.metrics on every backend: a NumPy float64 reference, perplexity's identities,
gradients, torchmetrics, and the errors of bad input.

Inputs are drawn as NumPy (``strategies``) and converted per backend; references are
computed in float64 from the values the backend actually saw (``rounded``).

Eager JAX compiles each of a metric's ~35 operations once per new shape and dtype
(0.02 to 0.2 s each on two cores), so on JAX the property tests draw from one shape
(:func:`menu`) and the fixed tests reuse it: JAX then compiles a few hundred operations
in all, whatever the number of examples.  The other backends get the full menus.
The reference tests run the profile's number of examples; the identity tests at most 25
(``identity``), as their inputs span a small space that the reference tests also cover.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace
from array_libs import Backend, assert_close, tolerance
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import (
    LM_SHAPES,
    LM_VOCABS,
    LMBatch,
    as_backend,
    axes,
    bool_arrays,
    float_dtypes,
    lm_batches,
    real_arrays,
    rounded,
)

import polyrnn.metrics as M

Case = tuple[LMBatch, int | None, np.ndarray]

# ------------------------------------------------------------------------------ references


def ref_token_nll(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``-log softmax(scores)[target]`` per position, float64, by the direct formula
    ``log sum_j exp(s_j - s_target)`` (no max shift, no logsumexp): independent of
    polyrnn's algorithm, and exact enough for logits of moderate size."""
    s_t = np.take_along_axis(scores, targets[..., None], axis=-1)
    return np.log(np.sum(np.exp(scores - s_t), axis=-1))


def ref_log_perplexity(
    scores: np.ndarray, targets: np.ndarray, keep: np.ndarray, *, per_sequence: bool = False
) -> float:
    nll = ref_token_nll(scores, np.where(keep, targets, 0))
    if not per_sequence:
        return float(nll[keep].sum() / keep.sum())
    n_t = targets.shape[-1]
    sums = np.where(keep, nll, 0.0).reshape(-1, n_t).sum(axis=1)
    counts = keep.reshape(-1, n_t).sum(axis=1)
    has = counts > 0
    return float(np.mean(sums[has] / counts[has]))


# -------------------------------------------------------------------------------- helpers

identity = settings(max_examples=min(settings.default.max_examples, 25))
"""For the identity tests: at most 25 examples (the profile's number when smaller).

Their input space is small (a few shapes, a mask, a dtype) and the reference tests
already run the full number of examples over the same inputs; 25 keeps the file near
half a minute of CPU per backend."""

COMPILES_PER_SHAPE = frozenset({"jax"})
JAX_SHAPE, JAX_VOCAB = (2, 3), 5  # the one shape of the property tests on JAX


def menu(backend: Backend, **kwargs: Any) -> dict[str, Any]:
    """Options of ``lm_batches`` for ``backend``: one shape where each shape compiles."""
    if backend.name in COMPILES_PER_SHAPE:
        kwargs.update(shape=JAX_SHAPE, vocab=JAX_VOCAB)
    return kwargs


def batches(backend: Backend, **kwargs: Any) -> st.SearchStrategy[LMBatch]:
    return lm_batches(**menu(backend, **kwargs))


def small_shapes(backend: Backend) -> st.SearchStrategy[tuple[int, ...]]:
    if backend.name in COMPILES_PER_SHAPE:
        return st.just(JAX_SHAPE)
    return st.sampled_from([(5,), (2, 3), (2, 1, 3)])


def value(backend: Backend, a: Any) -> np.ndarray:
    """A backend result as NumPy float64."""
    return np.asarray(backend.to_numpy(a), dtype=np.float64)


def metric(
    backend: Backend,
    fn: Callable[..., Any],
    batch: LMBatch,
    dtype: str,
    *,
    compiled: bool = False,
    **options: Any,
) -> Any:
    """``fn`` of ``batch`` converted to ``backend`` (scores in ``dtype``).

    ``compiled``: on JAX, through one cached ``jax.jit`` per ``fn`` and ``options``; for
    tests whose arrays take many shapes but whose options few, where compiling the whole
    metric once per shape is cheaper than compiling each of its operations eagerly.
    """
    scores, targets, mask = as_backend(backend, batch, dtype)
    if compiled and backend.name in COMPILES_PER_SHAPE:
        fn = _jitted(fn, tuple(sorted(options.items())))
        return fn(scores, targets, mask=mask)
    return fn(scores, targets, mask=mask, **options)


@functools.cache
def _jitted(fn: Callable[..., Any], options: tuple[tuple[str, Any], ...]) -> Any:
    import jax

    return jax.jit(functools.partial(fn, **dict(options)))


def assert_close_inf(backend: Backend, actual: Any, expected: np.ndarray, *, dtype: str) -> None:
    """``assert_close`` for results that may hold infinities: those must sit at the same
    places with the same sign; the finite rest is compared with the dtype's tolerances.
    (``assert_close`` itself scales ``atol`` by ``max |expected|``, which is ``inf`` here.)"""
    assert array_namespace(actual) is array_namespace(backend.asarray(np.zeros(1)))
    assert actual.dtype == backend.dtype(dtype), (actual.dtype, dtype)
    assert tuple(actual.shape) == expected.shape, (tuple(actual.shape), expected.shape)
    got = value(backend, actual)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_array_equal(got[~finite], expected[~finite])
    rtol, atol = tolerance(dtype)
    scale = max(1.0, float(np.max(np.abs(expected[finite]), initial=0.0)))
    np.testing.assert_allclose(got[finite], expected[finite], rtol=rtol, atol=atol * scale)


def close_to(backend: Backend, actual: Any, expected: Any, dtype: str, scale: float = 1.0) -> None:
    """Two backend results equal to the tolerance of ``dtype`` (times ``scale``), relative
    to the larger of 1 and their magnitude."""
    got, want = value(backend, actual), value(backend, expected)
    rtol, atol = tolerance(dtype)
    size = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=rtol * scale, atol=atol * scale * size)


@st.composite
def with_ignore_index(draw: st.DrawFn, **kwargs: Any) -> Case:
    """An :class:`LMBatch` whose targets may carry an ``ignore_index`` (returned, or
    ``None``), and the positions kept by mask and ignore_index together (at least one)."""
    batch = draw(lm_batches(**kwargs))
    if not draw(st.booleans()):
        return batch, None, batch.keep
    ignore = draw(st.sampled_from([-100, -1, batch.vocab, 0]))  # 0 is a real class
    hit = draw(bool_arrays(batch.targets.shape))
    targets = np.where(hit, ignore, batch.targets)
    keep = batch.keep & (targets != ignore)
    assume(keep.any())
    return LMBatch(batch.scores, targets, batch.mask), ignore, keep


def needs_autodiff(backend: Backend) -> None:
    if backend.name not in {"jax", "torch"}:
        pytest.skip(f"{backend.name} has no automatic differentiation")


def gradient(
    backend: Backend, fn: Callable[..., Any], scores: Any, targets: Any, mask: Any, **options: Any
) -> np.ndarray:
    """d fn(scores, targets, mask=mask, **options) / d scores by the backend's autodiff."""
    if backend.name == "jax":
        return value(
            backend, _jitted_grad(fn, tuple(sorted(options.items())))(scores, targets, mask)
        )
    scores = scores.detach().clone().requires_grad_(True)
    fn(scores, targets, mask=mask, **options).backward()
    return value(backend, scores.grad)


@functools.cache
def _jitted_grad(fn: Callable[..., Any], options: tuple[tuple[str, Any], ...]) -> Any:
    import jax

    return jax.jit(jax.grad(lambda s, t, m: fn(s, t, mask=m, **dict(options))))


# ------------------------------------------------------------------ logsumexp, log_softmax


def draw_with_neg_inf(data: st.DataObject, backend: Backend) -> np.ndarray:
    """Real arrays with some entries (often whole slices) at ``-inf``."""
    shape = data.draw(small_shapes(backend))
    x = data.draw(real_arrays(shape, low=-30, high=30))
    return np.where(data.draw(bool_arrays(shape)), -np.inf, x)


@given(data=st.data(), keepdims=st.booleans(), dtype=float_dtypes())
def test_logsumexp_matches_reference(
    backend: Backend, data: st.DataObject, keepdims: bool, dtype: str
) -> None:
    x = draw_with_neg_inf(data, backend)
    axis = data.draw(axes(x.ndim))
    with np.errstate(divide="ignore"):
        expected = np.log(np.sum(np.exp(rounded(x, dtype)), axis=axis, keepdims=keepdims))
    out = M.logsumexp(backend.asarray(x, dtype), axis=axis, keepdims=keepdims)
    assert_close_inf(backend, out, expected, dtype=dtype)


@identity
@given(data=st.data(), dtype=float_dtypes())
def test_logsumexp_does_not_overflow(backend: Backend, data: st.DataObject, dtype: str) -> None:
    x = data.draw(real_arrays(small_shapes(backend)))
    big = 100.0 if dtype == "float32" else 720.0  # exp(x + big) overflows the dtype
    shifted = rounded(x + big, dtype)
    with np.errstate(over="ignore"):
        assert not np.any(np.isfinite(np.exp(shifted.astype(dtype))))
    expected = np.log(np.sum(np.exp(shifted - big), axis=-1)) + big
    assert_close(backend, M.logsumexp(backend.asarray(x + big, dtype)), expected, dtype=dtype)


def test_logsumexp_special_values(backend: Backend) -> None:
    inf = np.inf
    x = backend.asarray(np.array([[-inf, -inf, 0.0], [1.0, -inf, -inf], [inf, 0.0, 1.0]]))
    np.testing.assert_array_equal(value(backend, M.logsumexp(x)), [0.0, 1.0, inf])
    x = backend.asarray(np.array([[-inf, -inf, -inf], [inf, -inf, 2.0]]))
    np.testing.assert_array_equal(value(backend, M.logsumexp(x)), [-inf, inf])
    empty = M.logsumexp(backend.asarray(np.zeros((3, 0))), axis=-1)
    np.testing.assert_array_equal(value(backend, empty), [-inf, -inf, -inf])
    assert_close(backend, M.logsumexp(backend.asarray(np.zeros((3, 0))), axis=0), np.zeros(0))
    assert_close(
        backend,
        M.logsumexp(backend.asarray(np.zeros((2, 3))), axis=(0, 1), keepdims=True),
        np.full((1, 1), np.log(6.0)),
    )


@given(data=st.data(), dtype=float_dtypes())
def test_log_softmax_matches_reference(backend: Backend, data: st.DataObject, dtype: str) -> None:
    x = draw_with_neg_inf(data, backend)
    axis = data.draw(axes(x.ndim))
    xr = rounded(x, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = np.log(np.sum(np.exp(xr), axis=axis, keepdims=True))
        expected = np.where(np.isneginf(lse), -np.inf, xr - lse)  # no mass: -inf, not NaN
    out = M.log_softmax(backend.asarray(x, dtype), axis=axis)
    assert_close_inf(backend, out, expected, dtype=dtype)
    assert_close_inf(backend, M.log_softmax(out, axis=axis), expected, dtype=dtype)  # idempotent


def test_log_softmax_of_no_mass_is_minus_inf(backend: Backend) -> None:
    x = backend.asarray(np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, np.log(3.0)]]))
    expected = np.array([[-np.inf] * 3, [-np.log(4.0), -np.inf, np.log(0.75)]])
    assert_close_inf(backend, M.log_softmax(x), expected, dtype="float64")


# ------------------------------------------------------------ against the float64 reference


@given(data=st.data(), dtype=float_dtypes(), reduction=st.sampled_from(M._REDUCTIONS))
def test_cross_entropy_matches_reference(
    backend: Backend, data: st.DataObject, dtype: str, reduction: str
) -> None:
    batch, ignore, keep = data.draw(with_ignore_index(**menu(backend)))
    nll = ref_token_nll(rounded(batch.scores, dtype), np.where(keep, batch.targets, 0))
    nll = np.where(keep, nll, 0.0)
    expected = {"none": nll, "sum": nll.sum(), "mean": nll.sum() / keep.sum()}[reduction]
    out = metric(backend, M.cross_entropy, batch, dtype, ignore_index=ignore, reduction=reduction)
    assert_close(backend, out, expected, dtype=dtype)


@given(data=st.data(), dtype=float_dtypes(), per_sequence=st.booleans())
def test_perplexity_matches_reference(
    backend: Backend, data: st.DataObject, dtype: str, per_sequence: bool
) -> None:
    batch, ignore, keep = data.draw(with_ignore_index(**menu(backend)))
    expected = ref_log_perplexity(
        rounded(batch.scores, dtype), batch.targets, keep, per_sequence=per_sequence
    )
    kw = {"ignore_index": ignore, "per_sequence": per_sequence}
    lpp = metric(backend, M.log_perplexity, batch, dtype, **kw)
    assert_close(backend, lpp, np.float64(expected), dtype=dtype)
    assert_close(
        backend, metric(backend, M.perplexity, batch, dtype, **kw), np.exp(expected), dtype=dtype
    )


def test_values_on_a_fixed_batch(backend: Backend) -> None:
    """Every option at once, with an integer mask, against the reference."""
    rng = np.random.default_rng(7)
    scores = rng.normal(size=(*JAX_SHAPE, JAX_VOCAB)) * 3
    targets = rng.integers(0, JAX_VOCAB, size=JAX_SHAPE)
    mask = np.array([[1, 1, 0], [0, 0, 0]], dtype=np.int64)
    targets[0, 1] = -100
    keep = (mask == 1) & (targets != -100)
    s, t, m = backend.asarray(scores), backend.asarray(targets), backend.asarray(mask)
    for per_sequence in (False, True):
        expected = ref_log_perplexity(scores, targets, keep, per_sequence=per_sequence)
        out = M.perplexity(s, t, mask=m, ignore_index=-100, per_sequence=per_sequence)
        assert_close(backend, out, np.exp(expected), dtype="float64")
    nll = np.where(keep, ref_token_nll(scores, np.where(keep, targets, 0)), 0.0)
    out = M.cross_entropy(s, t, mask=m, ignore_index=-100, reduction="none")
    assert_close(backend, out, nll, dtype="float64")
    assert_close(
        backend,
        M.cross_entropy(s, t, mask=m, ignore_index=-100, reduction="sum"),
        nll.sum(),
        dtype="float64",
    )


# ------------------------------------------------------------------ perplexity's identities


@identity
@given(data=st.data(), dtype=float_dtypes())
def test_perplexity_is_exp_of_mean_negative_log_probability(
    backend: Backend, data: st.DataObject, dtype: str
) -> None:
    """Perplexity ``exp(-(1/N) sum_k log P_k)`` and cross-entropy ``-(1/N) sum_k log P_k``
    from each kept token's probability ``P_k``, computed here by hand with Python floats
    (``math.exp`` of max-shifted logits, ``math.fsum``): no NumPy, no shared helper."""
    batch, ignore, keep = data.draw(with_ignore_index(**menu(backend)))
    scores = rounded(batch.scores, dtype).reshape(-1, batch.vocab).tolist()
    log_p = []
    for row, target, kept in zip(scores, batch.targets.reshape(-1), keep.reshape(-1), strict=True):
        if kept:
            top = max(row)
            total = math.fsum(math.exp(v - top) for v in row)
            log_p.append(math.log(math.exp(row[target] - top) / total))
    mean_nll = -math.fsum(log_p) / len(log_p)
    ce = metric(backend, M.cross_entropy, batch, dtype, ignore_index=ignore)
    pp = metric(backend, M.perplexity, batch, dtype, ignore_index=ignore)
    assert_close(backend, ce, np.float64(mean_nll), dtype=dtype)
    assert_close(backend, pp, np.float64(math.exp(mean_nll)), dtype=dtype)


@identity
@given(data=st.data(), level=st.floats(-20, 20), dtype=float_dtypes(), per_sequence=st.booleans())
def test_uniform_model_has_perplexity_vocab_size(
    backend: Backend, data: st.DataObject, level: float, dtype: str, per_sequence: bool
) -> None:
    if backend.name in COMPILES_PER_SHAPE:
        shape, vocab = JAX_SHAPE, JAX_VOCAB
    else:
        shape = data.draw(st.sampled_from(LM_SHAPES))
        vocab = data.draw(st.sampled_from([*LM_VOCABS, 50]))
    targets = np.arange(math.prod(shape)).reshape(shape) % vocab
    batch = LMBatch(np.full((*shape, vocab), level), targets, None)
    pp = metric(backend, M.perplexity, batch, dtype, per_sequence=per_sequence)
    assert_close(backend, pp, np.float64(vocab), dtype=dtype)


@identity
@given(data=st.data(), dtype=float_dtypes())
def test_perplexity_is_one_exactly_when_every_target_is_certain(
    backend: Backend, data: st.DataObject, dtype: str
) -> None:
    # logits in [-4, 4]: an uncertain token has P <= 1/(1 + e^-8), far enough from 1 for float32
    batch = data.draw(batches(backend, low=-4, high=4))
    certain = data.draw(bool_arrays(batch.targets.shape))
    is_target = np.arange(batch.vocab) == batch.targets[..., None]
    scores = np.where(certain[..., None] & ~is_target, -np.inf, batch.scores)
    pp = float(value(backend, metric(backend, M.perplexity, batch._replace(scores=scores), dtype)))
    assert pp >= 1.0
    all_certain = batch.vocab == 1 or bool(np.all(certain[batch.keep]))
    assert (pp == 1.0) == all_certain, (pp, all_certain)


@identity
@given(data=st.data(), dtype=float_dtypes())
def test_product_form_equals_log_form(backend: Backend, data: st.DataObject, dtype: str) -> None:
    batch, ignore, keep = data.draw(with_ignore_index(**menu(backend)))
    s = rounded(batch.scores, dtype)
    probs = np.exp(s) / np.sum(np.exp(s), axis=-1, keepdims=True)
    p = np.take_along_axis(probs, np.where(keep, batch.targets, 0)[..., None], axis=-1)[..., 0]
    inverse = np.prod(1.0 / p[keep])  # (prod 1/P)^(1/N), where it neither under- nor overflows
    assume(1e-300 < inverse < 1e300)
    expected = inverse ** (1.0 / keep.sum())
    pp = metric(backend, M.perplexity, batch, dtype, ignore_index=ignore)
    assert_close(backend, pp, expected, dtype=dtype)


# The identities below rearrange tokens; they are exact in real arithmetic, so float64
# tests them sharply (and keeps the number of shapes JAX compiles small).


@identity
@given(data=st.data())
def test_invariant_to_permuting_positions(backend: Backend, data: st.DataObject) -> None:
    batch = data.draw(batches(backend))
    flat = batch.tokens()
    order = np.array(data.draw(st.permutations(range(flat.targets.size))), dtype=np.int64)
    mixed = LMBatch(*(None if a is None else a[order] for a in flat))
    before = metric(backend, M.log_perplexity, batch, "float64", compiled=True)
    after = metric(backend, M.log_perplexity, mixed, "float64", compiled=True)
    close_to(backend, after, before, "float64")


@identity
@given(data=st.data())
def test_concatenation_is_token_weighted_mean(backend: Backend, data: st.DataObject) -> None:
    vocab = data.draw(st.sampled_from(LM_VOCABS))
    a = data.draw(batches(backend, vocab=vocab, mask=True)).tokens()
    b = data.draw(batches(backend, vocab=vocab, mask=True)).tokens()
    both = LMBatch(*(np.concatenate([x, y]) for x, y in zip(a, b, strict=True)))
    n_a, n_b = int(a.keep.sum()), int(b.keep.sum())
    lpp_a, lpp_b, lpp = (
        metric(backend, M.log_perplexity, x, "float64", compiled=True) for x in (a, b, both)
    )
    expected = (n_a * value(backend, lpp_a) + n_b * value(backend, lpp_b)) / (n_a + n_b)
    assert_close(backend, lpp, expected, dtype="float64")


@identity
@given(data=st.data())
def test_masking_a_token_equals_deleting_it(backend: Backend, data: st.DataObject) -> None:
    flat = data.draw(batches(backend, min_kept=2)).tokens()
    assume(flat.keep.sum() >= 2)
    drop = data.draw(st.sampled_from(np.flatnonzero(flat.keep).tolist()))
    masked = flat._replace(mask=flat.keep & (np.arange(flat.keep.size) != drop))
    deleted = LMBatch(*(None if a is None else np.delete(a, drop, axis=0) for a in flat))
    for fn in (M.log_perplexity, M.perplexity):
        close_to(
            backend,
            metric(backend, fn, masked, "float64", compiled=True),
            metric(backend, fn, deleted, "float64", compiled=True),
            "float64",
        )


@identity
@given(data=st.data(), dtype=float_dtypes())
def test_ignore_index_equals_masking(backend: Backend, data: st.DataObject, dtype: str) -> None:
    batch, ignore, keep = data.draw(with_ignore_index(**menu(backend)))
    as_mask = LMBatch(batch.scores, np.where(keep, batch.targets, 0), keep)
    by_index = metric(backend, M.cross_entropy, batch, dtype, ignore_index=ignore, reduction="none")
    by_mask = metric(backend, M.cross_entropy, as_mask, dtype, reduction="none")
    np.testing.assert_array_equal(value(backend, by_index), value(backend, by_mask))
    close_to(
        backend,
        metric(backend, M.perplexity, batch, dtype, ignore_index=ignore),
        metric(backend, M.perplexity, as_mask, dtype),
        dtype,
    )


@identity
@given(data=st.data(), dtype=float_dtypes())
def test_adding_a_constant_to_a_position_changes_nothing(
    backend: Backend, data: st.DataObject, dtype: str
) -> None:
    batch = data.draw(batches(backend))
    shift = data.draw(real_arrays((*batch.targets.shape, 1), low=-16, high=16))
    shifted = batch._replace(scores=batch.scores + shift)
    for kw in ({"reduction": "none"}, {"reduction": "mean"}):
        close_to(
            backend,
            metric(backend, M.cross_entropy, shifted, dtype, **kw),
            metric(backend, M.cross_entropy, batch, dtype, **kw),
            dtype,
        )


@identity
@given(data=st.data(), dtype=float_dtypes(), per_sequence=st.booleans())
def test_logits_and_log_probabilities_agree(
    backend: Backend, data: st.DataObject, dtype: str, per_sequence: bool
) -> None:
    s, t, m = as_backend(backend, data.draw(batches(backend, low=-20, high=20)), dtype)
    close_to(
        backend,
        M.log_perplexity(M.log_softmax(s), t, mask=m, per_sequence=per_sequence),
        M.log_perplexity(s, t, mask=m, per_sequence=per_sequence),
        dtype,
    )


@identity
@given(data=st.data(), per_sequence=st.booleans())
def test_float32_is_close_to_float64(
    backend: Backend, data: st.DataObject, per_sequence: bool
) -> None:
    batch, ignore, _ = data.draw(with_ignore_index(**menu(backend)))
    kw = {"ignore_index": ignore, "per_sequence": per_sequence}
    single = metric(backend, M.perplexity, batch, "float32", **kw)
    double = metric(backend, M.perplexity, batch, "float64", **kw)
    assert_close(backend, single, value(backend, double), dtype="float32")


@identity
@given(data=st.data())
def test_per_sequence_is_the_mean_over_sequences(backend: Backend, data: st.DataObject) -> None:
    batch, ignore, keep = data.draw(with_ignore_index(**menu(backend)))
    n_t, n_cls = batch.targets.shape[-1], batch.vocab
    rows = LMBatch(
        batch.scores.reshape(-1, n_t, n_cls),
        batch.targets.reshape(-1, n_t),
        None if batch.mask is None else batch.mask.reshape(-1, n_t),
    )
    per_row = [
        value(
            backend,
            metric(
                backend,
                M.log_perplexity,
                LMBatch(*(None if a is None else a[i] for a in rows)),
                "float64",
                ignore_index=ignore,
                compiled=True,
            ),
        )
        for i, kept in enumerate(keep.reshape(-1, n_t))
        if kept.any()  # a sequence with no kept token is left out
    ]
    out = metric(
        backend, M.log_perplexity, batch, "float64", ignore_index=ignore, per_sequence=True
    )
    assert_close(backend, out, np.mean(per_row), dtype="float64")


def test_per_sequence_leaves_out_empty_sequences(backend: Backend) -> None:
    # a uniform model: log-perplexity log V in every sequence that has a kept token
    scores = backend.asarray(np.zeros((*JAX_SHAPE, JAX_VOCAB)))
    targets = backend.asarray(np.zeros(JAX_SHAPE, dtype=np.int64))
    mask = backend.asarray(np.array([[True, False, True], [False, False, False]]))
    out = M.perplexity(scores, targets, mask=mask, per_sequence=True)
    assert_close(backend, out, np.float64(JAX_VOCAB), dtype="float64")  # not sqrt(V)


@given(data=st.data(), dtype=float_dtypes(), per_sequence=st.booleans())
def test_large_logits_in_every_metric(
    backend: Backend, data: st.DataObject, dtype: str, per_sequence: bool
) -> None:
    """Logits up to ±1e4, where ``exp`` overflows every float type: logsumexp,
    log_softmax, cross_entropy (each reduction), log_perplexity and perplexity against the
    max-shifted float64 formulas.  A perplexity past the dtype's largest number is
    ``inf``, as ``exp`` of the log-perplexity is in that dtype."""
    batch, ignore, keep = data.draw(with_ignore_index(**menu(backend, low=-1e4, high=1e4)))
    s = rounded(batch.scores, dtype)
    top = s.max(axis=-1, keepdims=True)
    lse = top + np.log(np.sum(np.exp(s - top), axis=-1, keepdims=True))
    scores, _, _ = as_backend(backend, batch, dtype)
    assert_close(backend, M.logsumexp(scores), lse[..., 0], dtype=dtype)
    assert_close(backend, M.log_softmax(scores), s - lse, dtype=dtype)
    picked = np.take_along_axis(s - lse, np.where(keep, batch.targets, 0)[..., None], -1)
    nll = np.where(keep, -picked[..., 0], 0.0)
    for reduction, want in (
        ("none", nll),
        ("sum", nll.sum()),
        ("mean", nll.sum() / keep.sum()),
    ):
        out = metric(
            backend, M.cross_entropy, batch, dtype, ignore_index=ignore, reduction=reduction
        )
        assert_close(backend, out, np.float64(want), dtype=dtype)
    if per_sequence:
        rows_nll = nll.reshape(-1, nll.shape[-1]).sum(axis=1)
        rows_n = keep.reshape(-1, nll.shape[-1]).sum(axis=1)
        lpp = float(np.mean(rows_nll[rows_n > 0] / rows_n[rows_n > 0]))
    else:
        lpp = float(nll.sum() / keep.sum())
    kw = {"ignore_index": ignore, "per_sequence": per_sequence}
    assert_close(backend, metric(backend, M.log_perplexity, batch, dtype, **kw), np.float64(lpp),
                 dtype=dtype)  # fmt: skip
    with np.errstate(over="ignore"):
        pp = np.exp(np.asarray(lpp, dtype)).astype(np.float64)  # inf past the dtype's range
    assert_close_inf(backend, metric(backend, M.perplexity, batch, dtype, **kw), pp, dtype=dtype)


# ----------------------------------------------------------------------------- gradients


@identity
@given(data=st.data(), dtype=float_dtypes(), reduction=st.sampled_from(["mean", "sum"]))
def test_gradient_is_softmax_minus_onehot(
    backend: Backend, data: st.DataObject, dtype: str, reduction: str
) -> None:
    needs_autodiff(backend)
    batch = data.draw(batches(backend))
    s = rounded(batch.scores, dtype)
    softmax = np.exp(s - s.max(axis=-1, keepdims=True))
    softmax /= softmax.sum(axis=-1, keepdims=True)
    onehot = np.arange(batch.vocab) == batch.targets[..., None]
    expected = (softmax - onehot) * batch.keep[..., None]
    if reduction == "mean":
        expected /= batch.keep.sum()
    scores, targets, mask = as_backend(backend, batch, dtype)
    got = gradient(backend, M.cross_entropy, scores, targets, mask, reduction=reduction)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)


def test_dropped_positions_are_never_read(backend: Backend) -> None:
    """Padding may hold NaN, -inf or junk ids: no effect on the value, zero gradient."""
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(*JAX_SHAPE, JAX_VOCAB))
    targets = rng.integers(0, JAX_VOCAB, size=JAX_SHAPE)
    mask = np.array([[True, True, False], [True, False, False]])
    dirty_scores = scores.copy()
    dirty_scores[0, 2] = np.nan
    dirty_scores[1, 1] = -np.inf
    dirty_targets = np.where(mask, targets, 99)
    clean = M.perplexity(
        backend.asarray(scores), backend.asarray(targets), mask=backend.asarray(mask)
    )
    dirty = M.perplexity(
        backend.asarray(dirty_scores), backend.asarray(dirty_targets), mask=backend.asarray(mask)
    )
    assert_close(backend, dirty, value(backend, clean), dtype="float64", rtol=0, atol=0)
    if backend.name in {"jax", "torch"}:
        grad = gradient(
            backend,
            M.cross_entropy,
            backend.asarray(dirty_scores),
            backend.asarray(dirty_targets),
            backend.asarray(mask),
        )
        assert np.all(np.isfinite(grad))
        np.testing.assert_array_equal(grad[~mask], 0.0)


# ----------------------------------------------------------------------------------- JAX


def test_jit_matches_eager_and_skips_value_checks(backend: Backend) -> None:
    if backend.name != "jax":
        pytest.skip("jax.jit is JAX's")
    import jax

    rng = np.random.default_rng(5)
    s = backend.asarray(rng.normal(size=(*JAX_SHAPE, JAX_VOCAB)))
    t = backend.asarray(rng.integers(0, JAX_VOCAB, size=JAX_SHAPE))
    m = backend.asarray(rng.random(JAX_SHAPE) < 0.7)
    for per_sequence in (False, True):
        eager = M.perplexity(s, t, mask=m, ignore_index=3, per_sequence=per_sequence)
        jitted = jax.jit(
            functools.partial(M.perplexity, ignore_index=3, per_sequence=per_sequence)
        )(s, t, mask=m)
        assert_close(backend, jitted, value(backend, eager), dtype="float64")
    # an out-of-range target raises eagerly, but cannot be seen by a tracer
    bad = backend.asarray(np.full(JAX_SHAPE, JAX_VOCAB + 2))
    with pytest.raises(ValueError, match="targets must be class ids"):
        M.perplexity(s, bad)
    jax.jit(M.perplexity)(s, bad)  # no error; the value is unspecified


# --------------------------------------------------------------------------- torchmetrics


@identity
@given(data=st.data(), dtype=float_dtypes())
def test_matches_torchmetrics_and_torch(backend: Backend, data: st.DataObject, dtype: str) -> None:
    if backend.name != "torch":
        pytest.skip("torchmetrics takes torch tensors")
    pytest.importorskip("torchmetrics.text")
    shapes = st.sampled_from([(2, 3), (3, 1)])  # torchmetrics wants (batch, time)
    batch, ignore, keep = data.draw(with_ignore_index(shape=shapes))
    scores, _, _ = as_backend(backend, batch, dtype)
    # torchmetrics has no mask: fold ours into the ignored positions
    ignore_tm = -100 if ignore is None else ignore
    targets = backend.asarray(np.where(keep, batch.targets, ignore_tm))
    reference = _torchmetrics_perplexity(ignore_tm, dtype)
    reference.reset()
    reference.update(scores, targets)
    ours = M.perplexity(scores, targets, ignore_index=ignore_tm)
    assert_close(backend, ours, value(backend, reference.compute()), dtype=dtype)
    # and torch's own cross-entropy, which takes (N, V) and (N,)
    import torch

    n_cls = batch.vocab
    expected = torch.nn.functional.cross_entropy(
        scores.reshape(-1, n_cls), targets.reshape(-1), ignore_index=ignore_tm
    )
    ours = M.cross_entropy(scores, targets, ignore_index=ignore_tm)
    assert_close(backend, ours, value(backend, expected), dtype=dtype)


@functools.cache
def _torchmetrics_perplexity(ignore_index: int, dtype: str) -> Any:
    import torch
    from torchmetrics.text import Perplexity

    return Perplexity(ignore_index=ignore_index).set_dtype(getattr(torch, dtype))


# -------------------------------------------------------------------------------- errors


def _foreign(backend: Backend, a: np.ndarray) -> Any:
    """``a`` as an array of a library other than ``backend``'s."""
    if backend.name == "numpy":
        torch = pytest.importorskip("torch", reason="needs a second array library")
        return torch.asarray(a)
    return a


S = np.zeros((*JAX_SHAPE, JAX_VOCAB))
T = np.zeros(JAX_SHAPE, dtype=np.int64)
K = np.ones(JAX_SHAPE, dtype=bool)


def _bad(case: str, build: Callable[[Backend], Any], error: type[Exception], match: str) -> Any:
    return pytest.param(build, error, match, id=case)


BAD_INPUTS = [
    _bad(
        "scores-integer",
        lambda b: M.perplexity(b.asarray(T[..., None]), b.asarray(T)),
        TypeError,
        r"perplexity: scores must have a real floating dtype, got .*int64",
    ),
    _bad(
        "scores-0d",
        lambda b: M.perplexity(b.asarray(np.float64(1.0)), b.asarray(np.int64(0))),
        ValueError,
        r"perplexity: scores must have shape \(\.\.\., V\), class axis last, got \(\)",
    ),
    _bad(
        "scores-no-class",
        lambda b: M.log_perplexity(b.asarray(np.zeros((2, 3, 0))), b.asarray(T)),
        ValueError,
        r"log_perplexity: scores must have at least one class \(V >= 1\), got shape \(2, 3, 0\)",
    ),
    _bad(
        "targets-float",
        lambda b: M.cross_entropy(b.asarray(S), b.asarray(S[..., 0])),
        TypeError,
        r"cross_entropy: targets must have an integer dtype \(class ids\), got .*float64",
    ),
    _bad(
        "targets-bool",
        lambda b: M.perplexity(b.asarray(S), b.asarray(K)),
        TypeError,
        r"perplexity: targets must have an integer dtype \(class ids\), got .*bool",
    ),
    _bad(
        "targets-shape",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T[:, :2])),
        ValueError,
        r"perplexity: targets must have shape \(2, 3\) \(scores.shape\[:-1\].*\), got \(2, 2\)",
    ),
    _bad(
        "targets-not-array",
        lambda b: M.perplexity(b.asarray(S), [[0, 0, 0], [0, 0, 0]]),
        TypeError,
        r"perplexity: targets must be an array, got builtins.list",
    ),
    _bad(
        "target-too-large",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T + np.array([0, 5, 7]))),
        ValueError,
        (
            r"perplexity: targets must be class ids in \[0, V=5\) where kept, "
            r"got out-of-range values from 5 to 7"
        ),
    ),
    _bad(
        "target-negative",
        lambda b: M.cross_entropy(b.asarray(S), b.asarray(T - 1), ignore_index=-100),
        ValueError,
        (
            r"cross_entropy: targets must be class ids in \[0, V=5\) or ignore_index=-100 "
            r"where kept, got out-of-range values from -1 to -1"
        ),
    ),
    _bad(
        "mask-shape",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T), mask=b.asarray(K[:1])),
        ValueError,
        r"perplexity: mask must have shape \(2, 3\) .*, got \(1, 3\)",
    ),
    _bad(
        "mask-float",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T), mask=b.asarray(K, "float64")),
        TypeError,
        r"perplexity: mask must have a bool or integer \(0/1\) dtype, got .*float64",
    ),
    _bad(
        "mask-not-binary",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T), mask=b.asarray(T + 2)),
        ValueError,
        r"perplexity: an integer mask must hold only 0 and 1, got other values from 2 to 2",
    ),
    _bad(
        "mask-other-library",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T), mask=_foreign(b, K)),
        TypeError,
        r"perplexity: all arrays must come from one library, but scores is .* and mask is ",
    ),
    _bad(
        "all-masked",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T), mask=b.asarray(~K)),
        ValueError,
        r"perplexity: every token is dropped by mask/ignore_index.*\(0 kept of 6\)",
    ),
    _bad(
        "all-masked-int",
        lambda b: M.cross_entropy(b.asarray(S), b.asarray(T), mask=b.asarray(T)),
        ValueError,
        r"cross_entropy: every token is dropped by mask/ignore_index",
    ),
    _bad(
        "all-ignored",
        lambda b: M.log_perplexity(b.asarray(S), b.asarray(T - 100), ignore_index=-100),
        ValueError,
        r"log_perplexity: every token is dropped by mask/ignore_index",
    ),
    _bad(
        "all-sequences-empty",
        lambda b: M.log_perplexity(
            b.asarray(S), b.asarray(T), mask=b.asarray(~K), per_sequence=True
        ),
        ValueError,
        r"log_perplexity: every sequence has all its tokens dropped .*\(0 of 2 sequences kept\)",
    ),
    _bad(
        "no-tokens",
        lambda b: M.perplexity(b.asarray(np.zeros((0, 5))), b.asarray(np.zeros(0, np.int64))),
        ValueError,
        r"perplexity: there are no tokens \(targets has shape \(0,\)\)",
    ),
    _bad(
        "reduction",
        lambda b: M.cross_entropy(b.asarray(S), b.asarray(T), reduction="avg"),
        ValueError,
        r"cross_entropy: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'",
    ),
    _bad(
        "ignore-index-float",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T), ignore_index=-1.0),
        TypeError,
        r"perplexity: ignore_index must be an int or None, got float",
    ),
    _bad(
        "per-sequence-not-bool",
        lambda b: M.perplexity(b.asarray(S), b.asarray(T), per_sequence="yes"),
        TypeError,
        r"perplexity: per_sequence must be True or False, got 'yes'",
    ),
    _bad(
        "per-sequence-0d",
        lambda b: M.perplexity(b.asarray(S[0, 0]), b.asarray(np.int64(0)), per_sequence=True),
        ValueError,
        r"perplexity: per_sequence=True needs targets of shape \(\.\.\., T\)",
    ),
    _bad(
        "logsumexp-integer",
        lambda b: M.logsumexp(b.asarray(T)),
        TypeError,
        r"logsumexp: x must have a real floating dtype, got .*int64",
    ),
    _bad(
        "logsumexp-not-array",
        lambda b: M.logsumexp([1.0, 2.0]),
        TypeError,
        r"logsumexp: x must be an array, got builtins.list",
    ),
    _bad(
        "logsumexp-axis",
        lambda b: M.logsumexp(b.asarray(S), axis=3),
        ValueError,
        r"logsumexp: axis 3 is out of bounds for an array of 3 dimensions",
    ),
    _bad(
        "logsumexp-axis-repeated",
        lambda b: M.logsumexp(b.asarray(S), axis=(0, -3)),
        ValueError,
        r"logsumexp: axis must not repeat an axis, got \(0, -3\)",
    ),
    _bad(
        "log-softmax-axis-type",
        lambda b: M.log_softmax(b.asarray(S), axis=1.0),
        TypeError,
        r"log_softmax: axis must be an int or a tuple of ints, got 1.0",
    ),
]


@pytest.mark.parametrize(("build", "error", "match"), BAD_INPUTS)
def test_bad_input_raises_a_clear_error(
    backend: Backend, build: Callable[[Backend], Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build(backend)


def test_public_api() -> None:
    import polyrnn

    assert M.__all__ == sorted(M.__all__)
    assert all(callable(getattr(M, name)) for name in M.__all__)
    assert polyrnn.metrics is M
