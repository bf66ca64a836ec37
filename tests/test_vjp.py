"""The hand-written VJPs of the scans (:mod:`polyrnn.vjp`).

References, each independent of the code under test: ``jax.vjp`` and torch autograd of
the public scans, and the NumPy float64 reference (``tests/reference.py``) with its
complex-step derivatives, for every backend (which proves the VJP uses only the standard).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest
import reference
from array_libs import Backend, assert_close, tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

import polyrnn
from polyrnn.vjp import gru_scan_vjp, lstm_scan_vjp, rnn_scan_vjp

CLS = {"rnn": polyrnn.RNNParams, "gru": polyrnn.GRUParams, "lstm": polyrnn.LSTMParams}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
SCAN = {"rnn": polyrnn.rnn_scan, "gru": polyrnn.gru_scan, "lstm": polyrnn.lstm_scan}
VJP = {"rnn": rnn_scan_vjp, "gru": gru_scan_vjp, "lstm": lstm_scan_vjp}
NUMPY = Backend("numpy", np)


@dataclass
class Case:
    """One scan call and the cotangents of its outputs, all NumPy float64.

    ``state`` is ``None``, ``h0`` or ``(h0, c0)``; ``d_last`` is ``None``, an array, or
    a pair of arrays and ``None``s for the LSTM.
    """

    kind: str
    opts: dict[str, Any]
    xs: np.ndarray
    params: Any
    state: Any
    lengths: np.ndarray | None
    time_major: bool
    reverse: bool
    d_hs: np.ndarray | None
    d_last: Any
    batch: tuple[int, ...] = field(default=())

    def kwargs(self, conv: Any = np.asarray) -> dict[str, Any]:
        lengths = None if self.lengths is None else conv(self.lengths)
        return dict(self.opts, time_major=self.time_major, reverse=self.reverse, lengths=lengths)

    @property
    def hidden(self) -> int:
        return int(self.params.w_h.shape[0])

    def state_or_zeros(self) -> Any:
        """The initial state, zeros in place of ``None``."""
        if self.state is not None:
            return self.state
        zeros = np.zeros((*self.batch, self.hidden))
        return (zeros, zeros.copy()) if self.kind == "lstm" else zeros

    def cotangents(self) -> tuple[np.ndarray, Any]:
        """``(d_hs, d_last)`` with zeros in place of every ``None``."""
        hs_shape = (
            (self.xs.shape[0], *self.batch, self.hidden)
            if self.time_major
            else (*self.batch, self.xs.shape[-2], self.hidden)
        )
        zeros = np.zeros((*self.batch, self.hidden))
        d_hs = np.zeros(hs_shape) if self.d_hs is None else self.d_hs
        if self.kind != "lstm":
            return d_hs, zeros if self.d_last is None else self.d_last
        d_last = (None, None) if self.d_last is None else self.d_last
        return d_hs, tuple(zeros if a is None else a for a in d_last)


def make_case(
    kind: str,
    *,
    seed: int,
    batch: tuple[int, ...],
    steps: int,
    n_in: int,
    n_h: int,
    time_major: bool = False,
    reverse: bool = False,
    with_state: bool = True,
    with_lengths: bool = False,
    none_d_hs: bool = False,
    none_last: tuple[bool, bool] = (False, False),
    **opts: Any,
) -> Case:
    rng = np.random.default_rng(seed)
    g = GATES[kind] * n_h
    params = CLS[kind](*(rng.normal(scale=0.6, size=s) for s in ((n_in, g), (n_h, g), (g,), (g,))))
    xs_shape = (steps, *batch, n_in) if time_major else (*batch, steps, n_in)
    hs_shape = (steps, *batch, n_h) if time_major else (*batch, steps, n_h)
    xs = rng.normal(size=xs_shape)
    state: Any = None
    if with_state:
        state = rng.normal(size=(*batch, n_h))
        if kind == "lstm":
            state = (state, rng.normal(size=(*batch, n_h)))
    lengths = rng.integers(0, steps + 1, size=batch) if with_lengths else None
    if lengths is not None:
        lengths = np.asarray(lengths)
    d_hs = None if none_d_hs else rng.normal(size=hs_shape)
    parts = [None if none else rng.normal(size=(*batch, n_h)) for none in none_last]
    d_last: Any = tuple(parts) if kind == "lstm" else parts[0]
    return Case(kind, opts, xs, params, state, lengths, time_major, reverse, d_hs, d_last, batch)


@st.composite
def cases(draw: st.DrawFn, kind: str) -> Case:
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    opts: dict[str, Any] = {}
    if kind == "rnn":
        opts["activation"] = draw(st.sampled_from(["tanh", "sigmoid", "relu"]))
    elif kind == "gru":
        opts["reset_after"] = draw(st.booleans())
    return make_case(
        kind,
        seed=draw(st.integers(0, 2**32 - 1)),
        batch=batch,
        steps=draw(st.integers(1, 6)),
        n_in=draw(st.integers(1, 5)),
        n_h=draw(st.integers(1, 5)),
        time_major=draw(st.booleans()),
        reverse=draw(st.booleans()),
        with_state=draw(st.booleans()),
        with_lengths=draw(st.booleans()),
        none_d_hs=draw(st.booleans()),
        none_last=(draw(st.booleans()), draw(st.booleans())),
        **opts,
    )


any_case = st.sampled_from(sorted(CLS)).flatmap(cases)


def run_vjp(case: Case, conv: Any = np.asarray) -> tuple[list[Any], list[Any]]:
    """The VJP on arrays made by ``conv``: flat ``(outputs, [d_xs, *d_params, *d_state])``."""

    def tree(a: Any) -> Any:
        if a is None:
            return None
        if isinstance(a, tuple):
            return tuple(tree(x) for x in a)
        return conv(a)

    params = CLS[case.kind](*(conv(a) for a in case.params))
    out, backward = VJP[case.kind](conv(case.xs), params, tree(case.state), **case.kwargs(conv))
    d_xs, d_p, d_state = backward(tree(case.d_hs), tree(case.d_last))
    assert type(d_p) is CLS[case.kind]
    hs, last = out
    outputs = [hs, *last] if case.kind == "lstm" else [hs, last]
    states = list(d_state) if case.kind == "lstm" else [d_state]
    return outputs, [d_xs, *d_p, *states]


def assert_all_close(actual: list[Any], expected: list[Any]) -> float:
    """Each pair close at the float64 tolerance relative to the array's scale; returns the
    largest error."""
    tol = tolerance("float64")[0]
    worst = 0.0
    assert len(actual) == len(expected)
    for act, exp in zip(actual, expected, strict=True):
        a, e = np.asarray(act), np.asarray(exp)
        assert a.shape == e.shape, (a.shape, e.shape)
        scale = max(1.0, float(np.max(np.abs(e)))) if e.size else 1.0
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * scale)
        if e.size:
            worst = max(worst, float(np.max(np.abs(a - e))) / scale)
    return worst


# --- against real autodiff ---------------------------------------------------------------


# Every example compiles XLA programs for new shapes (seconds each on 2 cores), so JAX gets
# a few examples; torch autograd and the finite differences run the full profile.
@settings(max_examples=8)
@given(case=any_case)
def test_matches_jax_vjp(case: Case) -> None:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy

    kwargs = case.kwargs(jnp.asarray)

    def f(xs: Any, params: Any, state: Any) -> Any:
        return SCAN[case.kind](xs, params, state, **kwargs)

    primals = jax.tree_util.tree_map(
        jnp.asarray, (case.xs, CLS[case.kind](*case.params), case.state_or_zeros())
    )
    out, backward = jax.vjp(f, *primals)
    d_hs, d_last = jax.tree_util.tree_map(jnp.asarray, case.cotangents())
    d_xs, d_p, d_state = backward((d_hs, d_last))
    expected = [d_xs, *d_p, *(d_state if case.kind == "lstm" else (d_state,))]

    outputs, grads = run_vjp(case)
    assert_all_close(outputs, jax.tree_util.tree_leaves(out))
    assert_all_close(grads, expected)


@given(case=any_case)
def test_matches_torch_autograd(case: Case) -> None:
    torch = pytest.importorskip("torch")

    def leaf(a: np.ndarray) -> Any:
        return torch.from_numpy(np.array(a)).requires_grad_()

    xs = leaf(case.xs)
    params = CLS[case.kind](*(leaf(a) for a in case.params))
    state0 = case.state_or_zeros()
    state = tuple(leaf(a) for a in state0) if case.kind == "lstm" else leaf(state0)
    inputs = [xs, *params, *(state if case.kind == "lstm" else (state,))]
    lengths = None if case.lengths is None else torch.from_numpy(case.lengths)
    kwargs = dict(case.kwargs(), lengths=lengths)
    hs, last = SCAN[case.kind](xs, params, state, **kwargs)
    out = [hs, *last] if case.kind == "lstm" else [hs, last]
    d_hs, d_last = case.cotangents()
    cots = [d_hs, *d_last] if case.kind == "lstm" else [d_hs, d_last]
    expected = torch.autograd.grad(
        out,
        inputs,
        [torch.from_numpy(np.array(c)) for c in cots],
        allow_unused=True,
        materialize_grads=True,
    )

    outputs, grads = run_vjp(case)
    assert_all_close(outputs, [o.detach().numpy() for o in out])
    assert_all_close(grads, [e.numpy() for e in expected])


# --- against the NumPy float64 reference and its complex-step derivatives ----------------


def reference_outputs(case: Case, xs: Any, params: Any, state: Any) -> list[Any]:
    """``reference.scan`` of the case at these inputs (complex ones carry a step)."""
    hs, last = reference.scan(
        case.kind,
        params,
        xs,
        state,
        lengths=case.lengths,
        reverse=case.reverse,
        time_major=case.time_major,
        **case.opts,
    )
    return [hs, *last] if case.kind == "lstm" else [hs, last]


def reference_loss(case: Case) -> tuple[Any, list[np.ndarray]]:
    """``f(xs, *params, *state) = <d_hs, hs> + <d_last, last>`` of the reference, and its
    inputs at the case's values."""
    d_hs, d_last = case.cotangents()
    cots = [d_hs, *d_last] if case.kind == "lstm" else [d_hs, d_last]
    state0 = case.state_or_zeros()
    inputs = [case.xs, *case.params, *(state0 if case.kind == "lstm" else (state0,))]

    def f(xs: Any, *rest: Any) -> Any:
        state = tuple(rest[4:]) if case.kind == "lstm" else rest[4]
        outs = reference_outputs(case, xs, rest[:4], state)
        return sum(np.sum(c * o) for c, o in zip(cots, outs, strict=True))

    return f, inputs


@given(case=any_case, which=st.integers(0, 6))
def test_directional_derivatives_match_the_reference(case: Case, which: int) -> None:
    """``<grad, v>`` of the hand-written VJP, along a random direction ``v`` of one input,
    equals the complex-step derivative of the NumPy reference along ``v`` (exact to
    float64 rounding, unlike central differences), relative to ``|grad| |v|``, which
    bounds the rounding of the sum."""
    _, grads = run_vjp(case)
    f, inputs = reference_loss(case)
    k = which % len(inputs)
    v = np.random.default_rng(which).normal(size=inputs[k].shape)
    exact = reference.directional_derivative(
        f, inputs, [v if i == k else None for i in range(len(inputs))]
    )
    got = float(np.sum(grads[k] * v))
    rtol, atol = tolerance("float64")
    scale = max(1.0, float(np.linalg.norm(grads[k]) * np.linalg.norm(v)))
    np.testing.assert_allclose(got, exact, rtol=rtol, atol=atol * scale)


@given(case=any_case)
def test_forward_matches_the_reference(case: Case) -> None:
    """The VJP's outputs equal the NumPy reference written from the equations."""
    outputs, _ = run_vjp(case)
    expected = reference_outputs(case, case.xs, case.params, case.state_or_zeros())
    for a, e in zip(outputs, expected, strict=True):
        assert_close(NUMPY, a, e, dtype="float64")


def test_backward_is_reusable_and_h0_none_gives_d_h0() -> None:
    case = make_case(
        "gru",
        seed=1,
        batch=(2,),
        steps=4,
        n_in=3,
        n_h=2,
        with_state=False,
        with_lengths=True,
        reset_after=True,
    )
    (_, _), backward = gru_scan_vjp(case.xs, case.params, **case.kwargs())
    first = backward(case.d_hs, case.d_last)
    second = backward(case.d_hs, case.d_last)
    np.testing.assert_array_equal(first[0], second[0])
    for a, b in zip(first[1], second[1], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[2], second[2])
    assert first[2].shape == (2, 2)
    # with the zero state given explicitly the gradient is the same
    (_, _), explicit = gru_scan_vjp(case.xs, case.params, np.zeros((2, 2)), **case.kwargs())
    np.testing.assert_array_equal(explicit(case.d_hs, case.d_last)[2], first[2])


@pytest.mark.parametrize("kind", sorted(CLS))
def test_zero_steps(kind: str) -> None:
    """``T = 0``: the state passes straight through, every other cotangent is zero."""
    case = make_case(kind, seed=2, batch=(2,), steps=0, n_in=3, n_h=2)
    outputs, grads = run_vjp(case)
    assert outputs[0].shape == (2, 0, 2)
    d_last = case.d_last if kind == "lstm" else (case.d_last,)
    for a in grads[: 1 + 4]:
        assert not np.any(a)
    for a, e in zip(grads[5:], d_last, strict=True):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("kind", sorted(CLS))
def test_float32_keeps_dtype(kind: str) -> None:
    """float32 in, float32 gradients out, equal to the reference's gradients of the
    float32-rounded inputs at the float32 tolerance."""
    case = make_case(kind, seed=7, batch=(2,), steps=4, n_in=3, n_h=2, with_lengths=True)
    case = _rounded(case, "float32")
    f, inputs = reference_loss(case)
    expected = reference.gradient(f, inputs)
    _, grads = run_vjp(case, lambda a: np.asarray(a, np.float32) if a.dtype.kind == "f" else a)
    for a, e in zip(grads, expected, strict=True):
        assert_close(NUMPY, a, e, dtype="float32")


def _rounded(case: Case, dtype: str) -> Case:
    """The case with every float array rounded to ``dtype`` (and back to float64)."""

    def r(a: Any) -> Any:
        if a is None:
            return None
        if isinstance(a, tuple):
            parts = [r(x) for x in a]
            return type(a)(*parts) if hasattr(a, "_fields") else tuple(parts)
        return np.asarray(a).astype(dtype).astype(np.float64)

    return replace(
        case,
        xs=r(case.xs),
        params=r(case.params),
        state=r(case.state),
        d_hs=r(case.d_hs),
        d_last=r(case.d_last),
    )


# --- every backend gives the reference's numbers ------------------------------------------------

VARIANTS = [
    ("rnn", {"activation": "tanh"}),
    ("rnn", {"activation": "sigmoid"}),
    ("rnn", {"activation": "relu"}),
    ("gru", {"reset_after": False}),
    ("gru", {"reset_after": True}),
    ("lstm", {}),
]
LAYOUTS = [
    {"batch": (2,)},
    {
        "batch": (2, 3),
        "time_major": True,
        "reverse": True,
        "with_lengths": True,
        "with_state": False,
        "none_last": (False, True),
    },
    {"batch": (), "reverse": True, "with_lengths": True, "none_d_hs": True},
]
# each variant with one layout, each layout twice (JAX compiles every op for every shape)
BACKEND_CASES = [(k, o, LAYOUTS[i % len(LAYOUTS)]) for i, (k, o) in enumerate(VARIANTS)]


@pytest.mark.parametrize(
    ("kind", "opts", "layout"),
    BACKEND_CASES,
    ids=[
        f"{k}-{'-'.join(map(str, o.values()))}-{i % len(LAYOUTS)}"
        for i, (k, o, _) in enumerate(BACKEND_CASES)
    ],
)
def test_every_backend_gives_the_reference_numbers(backend, kind, opts, layout) -> None:
    """The hand-written VJP on each library against the reference's outputs and its
    complex-step gradients."""
    case = make_case(kind, seed=3, steps=5, n_in=3, n_h=4, **layout, **opts)
    f, inputs = reference_loss(case)
    expected = reference_outputs(
        case, case.xs, case.params, case.state_or_zeros()
    ) + reference.gradient(f, inputs)
    actual_out, actual_grads = run_vjp(case, backend.asarray)
    for a, e in zip(actual_out + actual_grads, expected, strict=True):
        assert_close(backend, a, e, dtype="float64")


# --- bad input -----------------------------------------------------------------------------


@pytest.fixture
def gru_backward() -> Any:
    case = make_case("gru", seed=4, batch=(2,), steps=3, n_in=3, n_h=4)
    return gru_scan_vjp(case.xs, case.params, case.state)[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (np.zeros((2, 4, 4)), None),
            r"gru_scan_vjp: d_hs must have shape \(2, 3, 4\).*got \(2, 4, 4\)",
        ),
        ((np.zeros((3, 2, 4)), None), r"d_hs must have shape \(2, 3, 4\).*got \(3, 2, 4\)"),
        ((None, np.zeros((4,))), r"d_h_last must have shape \(2, 4\).*got \(4,\)"),
        ((None, np.zeros((2, 1))), r"d_h_last must have shape \(2, 4\).*got \(2, 1\)"),
    ],
)
def test_bad_cotangent_shape(gru_backward, args, message) -> None:
    with pytest.raises(ValueError, match=message):
        gru_backward(*args)


def test_bad_cotangent_dtype_and_kind(gru_backward) -> None:
    with pytest.raises(TypeError, match="d_hs must have dtype float64"):
        gru_backward(np.zeros((2, 3, 4), np.float32), None)
    with pytest.raises(TypeError, match="d_h_last must be an array"):
        gru_backward(None, [[0.0] * 4] * 2)


def test_bad_lstm_cotangents() -> None:
    case = make_case("lstm", seed=5, batch=(), steps=3, n_in=2, n_h=3)
    backward = lstm_scan_vjp(case.xs, case.params)[1]
    with pytest.raises(ValueError, match=r"d_c_last must have shape \(3,\).*got \(2,\)"):
        backward(None, (None, np.zeros(2)))
    with pytest.raises(ValueError, match=r"d_hs must have shape \(3, 3\).*got \(3,\)"):
        backward(np.zeros(3), None)
    with pytest.raises(TypeError, match="d_last must be a pair"):
        backward(None, np.zeros(3))


@pytest.mark.parametrize("kind", sorted(CLS))
def test_bad_inputs_raise_like_the_scan(kind: str) -> None:
    case = make_case(kind, seed=6, batch=(2,), steps=3, n_in=2, n_h=3)
    name = f"{kind}_scan_vjp"
    with pytest.raises(ValueError, match=rf"{name}: lengths must lie in \[0, T=3\]"):
        VJP[kind](case.xs, case.params, lengths=np.array([1, 4]))
    with pytest.raises(ValueError, match=rf"{name}: params.w_x must have shape"):
        VJP[kind](case.xs[..., :1], case.params)
    with pytest.raises(TypeError, match=rf"{name}: xs must have a real floating dtype"):
        VJP[kind](np.zeros((2, 3, 2), np.int64), case.params)
    wrong = polyrnn.LSTMParams if kind != "lstm" else polyrnn.GRUParams
    with pytest.raises(TypeError, match=rf"{name}: params must be {CLS[kind].__name__}"):
        VJP[kind](case.xs, wrong(*case.params))
    if kind == "rnn":
        with pytest.raises(ValueError, match="activation must be one of"):
            rnn_scan_vjp(case.xs, case.params, activation="gelu")
    if kind == "lstm":
        with pytest.raises(TypeError, match="state0 must be a pair"):
            lstm_scan_vjp(case.xs, case.params, np.zeros((2, 3)))
