"""polyrnn.metrics on every backend: a NumPy float64 reference, perplexity's identities,
gradients, torchmetrics, and the errors of bad input.

Inputs are drawn as NumPy (``strategies``) and converted per backend; references are
computed in float64 from the values the backend actually saw (``rounded``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import polyrnn.metrics as M
from array_libs import Backend, assert_close, tolerance
from strategies import (
    LMBatch,
    as_backend,
    axes,
    batch_shapes,
    float_dtypes,
    lm_batches,
    real_arrays,
    rounded,
)

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
    nll = ref_token_nll(scores, targets)
    if not per_sequence:
        return float(nll[keep].sum() / keep.sum())
    n_t = targets.shape[-1]
    sums = np.where(keep, nll, 0.0).reshape(-1, n_t).sum(axis=1)
    counts = keep.reshape(-1, n_t).sum(axis=1)
    has = counts > 0
    return float(np.mean(sums[has] / counts[has]))


def value(backend: Backend, a: Any) -> np.ndarray:
    """A backend result as NumPy float64."""
    return np.asarray(backend.to_numpy(a), dtype=np.float64)


def assert_close_inf(backend: Backend, actual: Any, expected: np.ndarray, *, dtype: str) -> None:
    """``assert_close`` for results that may hold infinities: those must sit at the same
    places with the same sign; the finite rest is compared with the usual tolerances."""
    got = value(backend, actual)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_array_equal(got[~finite], expected[~finite])
    xp = array_namespace(actual)
    mask = backend.asarray(finite)
    assert_close(
        backend, xp.where(mask, actual, xp.zeros_like(actual)), np.where(finite, expected, 0.0),
        dtype=dtype,
    )


def close_to(backend: Backend, actual: Any, expected: Any, dtype: str, scale: float = 1.0) -> None:
    """Two values (backend or NumPy) equal to the tolerance of ``dtype``."""
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(
        value(backend, actual) if not isinstance(actual, float) else actual,
        value(backend, expected) if not isinstance(expected, float) else expected,
        rtol=rtol * scale, atol=atol * scale,
    )


@st.composite
def with_ignore_index(draw: st.DrawFn, **kwargs: Any) -> tuple[LMBatch, int | None, np.ndarray]:
    """An :class:`LMBatch` whose targets may carry an ``ignore_index`` (returned, or
    ``None``), and the positions kept by mask and ignore_index together (at least one)."""
    batch = draw(lm_batches(**kwargs))
    if not draw(st.booleans()):
        return batch, None, batch.keep
    ignore = draw(st.sampled_from([-100, -1, batch.vocab, 0]))
    hit = draw(hnp.arrays(np.bool_, batch.targets.shape))
    targets = np.where(hit, ignore, batch.targets)
    keep = batch.keep & (targets != ignore)
    assume(keep.any())
    return LMBatch(batch.scores, targets, batch.mask), ignore, keep


def _differentiable(backend: Backend) -> None:
    if backend.name not in {"jax", "torch"}:
        pytest.skip(f"{backend.name} has no automatic differentiation")


def gradient(backend: Backend, fn: Any, scores: Any) -> np.ndarray:
    """d fn(scores) / d scores, as NumPy float64, by the backend's autodiff."""
    if backend.name == "jax":
        import jax

        return value(backend, jax.grad(fn)(scores))
    scores = scores.detach().clone().requires_grad_(True)
    fn(scores).backward()
    return value(backend, scores.grad)


# ------------------------------------------------------------------ logsumexp, log_softmax


@given(data=st.data())
def test_logsumexp_matches_reference(backend: Backend, data: st.DataObject) -> None:
    shape = data.draw(batch_shapes(min_dims=1, max_dims=3))
    neg_inf = data.draw(hnp.arrays(np.bool_, shape))  # whole slices of -inf are common
    x = np.where(neg_inf, -np.inf, data.draw(real_arrays(shape, low=-30, high=30)))
    axis = data.draw(axes(len(shape)))
    keepdims, dtype = data.draw(st.booleans()), data.draw(float_dtypes())
    with np.errstate(divide="ignore"):
        expected = np.log(np.sum(np.exp(rounded(x, dtype)), axis=axis, keepdims=keepdims))
    out = M.logsumexp(backend.asarray(x, dtype), axis=axis, keepdims=keepdims)
    assert_close_inf(backend, out, expected, dtype=dtype)


@given(x=real_arrays(batch_shapes(min_dims=1, max_dims=2)), dtype=float_dtypes())
def test_logsumexp_does_not_overflow(backend: Backend, x: np.ndarray, dtype: str) -> None:
    big = 100.0 if dtype == "float32" else 720.0  # exp(x + big) overflows the dtype
    shifted = rounded(x + big, dtype)
    with np.errstate(over="ignore"):
        assert not np.any(np.isfinite(np.exp(shifted.astype(dtype))))
    expected = np.log(np.sum(np.exp(shifted - big), axis=-1)) + big
    out = M.logsumexp(backend.asarray(x + big, dtype), axis=-1)
    assert_close(backend, out, expected, dtype=dtype)


def test_logsumexp_special_values(backend: Backend) -> None:
    inf = np.inf
    x = backend.asarray(np.array([[-inf, -inf], [1.0, -inf], [inf, 0.0], [inf, -inf]]))
    np.testing.assert_array_equal(value(backend, M.logsumexp(x)), [-inf, 1.0, inf, inf])
    empty = M.logsumexp(backend.asarray(np.zeros((3, 0))), axis=-1)
    np.testing.assert_array_equal(value(backend, empty), [-inf, -inf, -inf])
    assert_close(backend, M.logsumexp(backend.asarray(np.zeros((3, 0))), axis=0), np.zeros(0))


@given(data=st.data())
def test_log_softmax_matches_reference(backend: Backend, data: st.DataObject) -> None:
    shape = data.draw(batch_shapes(min_dims=1, max_dims=3))
    neg_inf = data.draw(hnp.arrays(np.bool_, shape))
    x = np.where(neg_inf, -np.inf, data.draw(real_arrays(shape, low=-30, high=30)))
    axis, dtype = data.draw(axes(len(shape))), data.draw(float_dtypes())
    xr = rounded(x, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        lse = np.log(np.sum(np.exp(xr), axis=axis, keepdims=True))
        expected = np.where(np.isneginf(lse), -np.inf, xr - lse)  # no mass: -inf, not NaN
    out = M.log_softmax(backend.asarray(x, dtype), axis=axis)
    assert_close_inf(backend, out, expected, dtype=dtype)
    # and it is idempotent
    assert_close_inf(backend, M.log_softmax(out, axis=axis), expected, dtype=dtype)


# ------------------------------------------------------------ against the float64 reference


@given(case=with_ignore_index(), dtype=float_dtypes(), reduction=st.sampled_from(M._REDUCTIONS))
def test_cross_entropy_matches_reference(
    backend: Backend, case: tuple[LMBatch, int | None, np.ndarray], dtype: str, reduction: str
) -> None:
    batch, ignore, keep = case
    scores, targets, mask = as_backend(backend, batch, dtype)
    safe = np.where(keep, batch.targets, 0)
    nll = np.where(keep, ref_token_nll(rounded(batch.scores, dtype), safe), 0.0)
    expected = {"none": nll, "sum": nll.sum(), "mean": nll.sum() / keep.sum()}[reduction]
    out = M.cross_entropy(scores, targets, mask=mask, ignore_index=ignore, reduction=reduction)
    assert_close(backend, out, expected, dtype=dtype)


@given(case=with_ignore_index(), dtype=float_dtypes(), per_sequence=st.booleans())
def test_perplexity_matches_reference(
    backend: Backend, case: tuple[LMBatch, int | None, np.ndarray], dtype: str,
    per_sequence: bool,
) -> None:
    batch, ignore, keep = case
    scores, targets, mask = as_backend(backend, batch, dtype)
    safe = np.where(keep, batch.targets, 0)
    expected = ref_log_perplexity(rounded(batch.scores, dtype), safe, keep, per_sequence=per_sequence)
    kw = {"mask": mask, "ignore_index": ignore, "per_sequence": per_sequence}
    assert_close(backend, M.log_perplexity(scores, targets, **kw), np.float64(expected), dtype=dtype)
    assert_close(backend, M.perplexity(scores, targets, **kw), np.exp(expected), dtype=dtype)


# ------------------------------------------------------------------ perplexity's identities


@given(case=with_ignore_index(), dtype=float_dtypes())
def test_perplexity_is_exp_of_mean_cross_entropy(
    backend: Backend, case: tuple[LMBatch, int | None, np.ndarray], dtype: str
) -> None:
    batch, ignore, _ = case
    scores, targets, mask = as_backend(backend, batch, dtype)
    ce = M.cross_entropy(scores, targets, mask=mask, ignore_index=ignore)
    pp = M.perplexity(scores, targets, mask=mask, ignore_index=ignore)
    assert_close(backend, pp, np.exp(value(backend, ce)), dtype=dtype)


@given(
    shape=batch_shapes(min_dims=1, max_dims=3),
    vocab=st.integers(1, 50),
    level=st.floats(-20, 20),
    dtype=float_dtypes(),
    per_sequence=st.booleans(),
)
def test_uniform_model_has_perplexity_vocab_size(
    backend: Backend, shape: tuple[int, ...], vocab: int, level: float, dtype: str,
    per_sequence: bool,
) -> None:
    scores = backend.asarray(np.full((*shape, vocab), level), dtype)
    targets = backend.asarray(np.arange(math.prod(shape)).reshape(shape) % vocab)
    pp = M.perplexity(scores, targets, per_sequence=per_sequence)
    assert_close(backend, pp, np.float64(vocab), dtype=dtype)


@given(data=st.data(), dtype=float_dtypes())
def test_perplexity_is_one_exactly_when_every_target_is_certain(
    backend: Backend, data: st.DataObject, dtype: str
) -> None:
    # logits in [-4, 4]: an uncertain token has P <= 1/(1 + e^-8), far enough from 1 for float32
    batch = data.draw(lm_batches(low=-4, high=4))
    certain = data.draw(hnp.arrays(np.bool_, batch.targets.shape))
    is_target = np.arange(batch.vocab) == batch.targets[..., None]
    scores = np.where(certain[..., None] & ~is_target, -np.inf, batch.scores)
    s, t, m = as_backend(backend, LMBatch(scores, batch.targets, batch.mask), dtype)
    pp = float(value(backend, M.perplexity(s, t, mask=m)))
    assert pp >= 1.0
    all_certain = batch.vocab == 1 or bool(np.all(certain[batch.keep]))
    assert (pp == 1.0) == all_certain, (pp, all_certain)


@given(case=with_ignore_index(), dtype=float_dtypes())
def test_product_form_equals_log_form(
    backend: Backend, case: tuple[LMBatch, int | None, np.ndarray], dtype: str
) -> None:
    batch, ignore, keep = case
    s = rounded(batch.scores, dtype)
    probs = np.exp(s) / np.sum(np.exp(s), axis=-1, keepdims=True)
    p = np.take_along_axis(probs, np.where(keep, batch.targets, 0)[..., None], axis=-1)[..., 0]
    inverse = np.prod(1.0 / p[keep])  # (prod 1/P)^(1/N), where it neither under- nor overflows
    assume(1e-300 < inverse < 1e300)
    expected = inverse ** (1.0 / keep.sum())
    scores, targets, mask = as_backend(backend, batch, dtype)
    assert_close(
        backend, M.perplexity(scores, targets, mask=mask, ignore_index=ignore), expected,
        dtype=dtype,
    )


@given(batch=lm_batches(), dtype=float_dtypes(), data=st.data())
def test_invariant_to_permuting_positions(
    backend: Backend, batch: LMBatch, dtype: str, data: st.DataObject
) -> None:
    flat = batch.tokens()
    order = np.array(data.draw(st.permutations(range(flat.targets.size))), dtype=np.int64)
    mixed = LMBatch(
        flat.scores[order], flat.targets[order], None if flat.mask is None else flat.mask[order]
    )
    before = M.log_perplexity(*as_backend(backend, batch, dtype)[:2], mask=as_backend(backend, batch, dtype)[2])
    s, t, m = as_backend(backend, mixed, dtype)
    close_to(backend, M.log_perplexity(s, t, mask=m), before, dtype)


@given(data=st.data(), dtype=float_dtypes())
def test_concatenation_is_token_weighted_mean(
    backend: Backend, data: st.DataObject, dtype: str
) -> None:
    vocab = data.draw(st.integers(1, 8))
    a = data.draw(lm_batches(vocab=vocab, mask=True)).tokens()
    b = data.draw(lm_batches(vocab=vocab, mask=True)).tokens()
    both = LMBatch(*(np.concatenate([x, y]) for x, y in zip(a, b, strict=True)))
    n_a, n_b = int(a.keep.sum()), int(b.keep.sum())
    lpp_a = value(backend, M.log_perplexity(*as_backend(backend, a, dtype)[:2],
                                            mask=as_backend(backend, a, dtype)[2]))
    lpp_b = value(backend, M.log_perplexity(*as_backend(backend, b, dtype)[:2],
                                            mask=as_backend(backend, b, dtype)[2]))
    s, t, m = as_backend(backend, both, dtype)
    expected = (n_a * lpp_a + n_b * lpp_b) / (n_a + n_b)
    assert_close(backend, M.log_perplexity(s, t, mask=m), expected, dtype=dtype)


@given(batch=lm_batches(mask=True), dtype=float_dtypes())
def test_masking_a_token_equals_deleting_it(backend: Backend, batch: LMBatch, dtype: str) -> None:
    flat = batch.tokens()
    kept = LMBatch(flat.scores[flat.keep], flat.targets[flat.keep], None)
    s, t, m = as_backend(backend, batch, dtype)
    s_kept, t_kept, _ = as_backend(backend, kept, dtype)
    for fn in (M.log_perplexity, M.perplexity):
        close_to(backend, fn(s, t, mask=m), fn(s_kept, t_kept), dtype)
    ce_sum = M.cross_entropy(s, t, mask=m, reduction="sum")
    close_to(backend, ce_sum, M.cross_entropy(s_kept, t_kept, reduction="sum"), dtype, scale=10)


@given(batch=lm_batches(), data=st.data(), dtype=float_dtypes())
def test_ignore_index_equals_masking(
    backend: Backend, batch: LMBatch, data: st.DataObject, dtype: str
) -> None:
    ignore = data.draw(st.sampled_from([-100, -1, batch.vocab, 0]))  # 0: a real class
    hit = data.draw(hnp.arrays(np.bool_, batch.targets.shape))
    targets = np.where(hit, ignore, batch.targets)
    keep = batch.keep & (targets != ignore)
    assume(keep.any())
    s, _, m = as_backend(backend, batch, dtype)
    t = backend.asarray(targets)
    by_index = M.cross_entropy(s, t, mask=m, ignore_index=ignore, reduction="none")
    safe = backend.asarray(np.where(keep, targets, 0))
    by_mask = M.cross_entropy(s, safe, mask=backend.asarray(keep), reduction="none")
    assert_close(backend, by_index, value(backend, by_mask), dtype=dtype, rtol=0, atol=0)
    close_to(
        backend, M.perplexity(s, t, mask=m, ignore_index=ignore),
        M.perplexity(s, safe, mask=backend.asarray(keep)), dtype,
    )


@given(data=st.data(), dtype=float_dtypes())
def test_adding_a_constant_to_a_position_changes_nothing(
    backend: Backend, data: st.DataObject, dtype: str
) -> None:
    batch = data.draw(lm_batches())
    shift = data.draw(real_arrays((*batch.targets.shape, 1), low=-16, high=16))
    shifted = LMBatch(batch.scores + shift, batch.targets, batch.mask)
    s, t, m = as_backend(backend, batch, dtype)
    s_shift = as_backend(backend, shifted, dtype)[0]
    close_to(backend, M.cross_entropy(s_shift, t, mask=m, reduction="none"),
             M.cross_entropy(s, t, mask=m, reduction="none"), dtype, scale=4)
    close_to(backend, M.perplexity(s_shift, t, mask=m), M.perplexity(s, t, mask=m), dtype,
             scale=4)


@given(batch=lm_batches(low=-20, high=20), dtype=float_dtypes(), per_sequence=st.booleans())
def test_logits_and_log_probabilities_agree(
    backend: Backend, batch: LMBatch, dtype: str, per_sequence: bool
) -> None:
    s, t, m = as_backend(backend, batch, dtype)
    log_probs = M.log_softmax(s)
    for fn in (M.log_perplexity, M.perplexity):
        close_to(
            backend, fn(log_probs, t, mask=m, per_sequence=per_sequence),
            fn(s, t, mask=m, per_sequence=per_sequence), dtype, scale=4,
        )


@given(case=with_ignore_index(), per_sequence=st.booleans())
def test_float32_is_close_to_float64(
    backend: Backend, case: tuple[LMBatch, int | None, np.ndarray], per_sequence: bool
) -> None:
    batch, ignore, _ = case
    kw = {"ignore_index": ignore, "per_sequence": per_sequence}
    s32, t, m = as_backend(backend, batch, "float32")
    s64 = as_backend(backend, batch, "float64")[0]
    single = M.perplexity(s32, t, mask=m, **kw)
    double = M.perplexity(s64, t, mask=m, **kw)
    assert_close(backend, single, value(backend, double), dtype="float32")


@given(case=with_ignore_index(), dtype=float_dtypes())
def test_per_sequence_is_the_mean_over_sequences(
    backend: Backend, case: tuple[LMBatch, int | None, np.ndarray], dtype: str
) -> None:
    batch, ignore, keep = case
    n_t, n_cls = batch.targets.shape[-1], batch.vocab
    rows = LMBatch(
        batch.scores.reshape(-1, n_t, n_cls), batch.targets.reshape(-1, n_t),
        None if batch.mask is None else batch.mask.reshape(-1, n_t),
    )
    per_row = []
    for i, kept in enumerate(keep.reshape(-1, n_t)):
        if kept.any():  # a sequence with no kept token is left out
            row = LMBatch(*(None if a is None else a[i] for a in rows))
            s, t, m = as_backend(backend, row, dtype)
            per_row.append(value(backend, M.log_perplexity(s, t, mask=m, ignore_index=ignore)))
    s, t, m = as_backend(backend, batch, dtype)
    out = M.log_perplexity(s, t, mask=m, ignore_index=ignore, per_sequence=True)
    assert_close(backend, out, np.mean(per_row), dtype=dtype)
    assert_close(
        backend, M.perplexity(s, t, mask=m, ignore_index=ignore, per_sequence=True),
        np.exp(np.mean(per_row)), dtype=dtype,
    )
