"""The layer-normalised GRU and LSTM (:mod:`polyrnn.lnrnn`).

Outside anchors, none of which shares code with polyrnn: the NumPy float64 loops of
``tests/reference.py`` written from the equations (``ln_gru_step``, ``ln_lstm_step``:
forward at 1e-12 relative), the complex-step derivatives of those loops (the hand-written
VJPs, along random directions), ``jax.vjp`` and torch autograd through the forward scans
(equal to the hand-written VJP), and two identities of layer normalisation: adding the
same number to every pre-activation of a gate changes nothing (exactly), and scaling a
gate's pre-activations by ``c > 0`` changes nothing but the ε's weight (``LN_ε(c a) =
LN_{ε/c²}(a)``), so two large scales give the same outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference
from array_libs import assert_close

import polyrnn
from polyrnn import LNGRUParams, LNLSTMParams, cells, scans, vjp

D, H = 3, 4
CELLS = {
    "ln_gru": (LNGRUParams, polyrnn.ln_gru_scan, polyrnn.ln_gru_scan_vjp, 3),
    "ln_lstm": (LNLSTMParams, polyrnn.ln_lstm_scan, polyrnn.ln_lstm_scan_vjp, 4),
}


def _params(kind, rng):
    """Random parameters (gains around 1, shifts around 0) as NumPy float64."""
    cls, _, _, g = CELLS[kind]
    shapes = {"w_x": (D, g * H), "w_h": (H, g * H), "g_c": (H,), "b_c": (H,)}
    arrays = []
    for name in cls._fields:
        a = rng.normal(scale=0.7, size=shapes.get(name, (g * H,)))
        arrays.append(a + 1.0 if name.startswith("g_") else a)
    return cls(*arrays)


def _state(kind, rng, batch):
    """A non-zero initial state: ``h0``, or ``(h0, c0)`` for the LSTM."""
    if kind == "ln_lstm":
        return rng.normal(size=(*batch, H)), rng.normal(size=(*batch, H))
    return rng.normal(size=(*batch, H))


def _lib(backend, kind, p, state):
    cls = CELLS[kind][0]
    p = cls(*map(backend.asarray, p))
    if state is None:
        return p, None
    if kind == "ln_lstm":
        return p, tuple(map(backend.asarray, state))
    return p, backend.asarray(state)


def _flat(kind, hs, last):
    """``hs`` and every part of the final state, as a list."""
    return [hs, *last] if kind == "ln_lstm" else [hs, last]


LAYOUTS = [
    # batch shape, T, options, with a given initial state
    ((), 5, {}, False),
    ((3,), 6, {"lengths": [6, 2, 0], "reverse": True}, True),
    ((2, 3), 4, {"time_major": True, "lengths": [[4, 1, 3], [0, 4, 2]]}, True),
    ((2,), 5, {"reverse": True, "time_major": True}, False),
]


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize(("batch", "steps", "options", "with_state"), LAYOUTS)
def test_scan_matches_the_reference(backend, kind, batch, steps, options, with_state):
    """Outputs and final state against the NumPy loop, every layout, on every backend."""
    rng = np.random.default_rng(len(batch) + steps)
    p = _params(kind, rng)
    time_major = options.get("time_major", False)
    shape = (steps, *batch, D) if time_major and batch else (*batch, steps, D)
    xs = rng.normal(size=shape)
    state = _state(kind, rng, batch) if with_state else None
    lengths = options.get("lengths")
    lengths = None if lengths is None else np.asarray(lengths)
    kw = {k: v for k, v in options.items() if k != "lengths"}
    want = reference.scan(kind, p, xs, state, lengths=lengths, **kw)
    want = _flat(kind, want[0], want[1])

    _, scan, scan_vjp, _ = CELLS[kind]
    lib_p, lib_state = _lib(backend, kind, p, state)
    lib_len = None if lengths is None else backend.asarray(lengths)
    hs, last = scan(backend.asarray(xs), lib_p, lib_state, lengths=lib_len, **kw)
    (hs2, last2), _ = scan_vjp(backend.asarray(xs), lib_p, lib_state, lengths=lib_len, **kw)
    for got in (_flat(kind, hs, last), _flat(kind, hs2, last2)):
        for g, w in zip(got, want, strict=True):
            assert_close(backend, g, w, dtype="float64")


def test_one_step_cells_match_the_reference(backend):
    """``ln_gru_cell`` and ``ln_lstm_cell`` on a batch ``(2, 3)`` against the reference step."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 3, D))
    p = _params("ln_gru", rng)
    h = rng.normal(size=(2, 3, H))
    want = np.stack(
        [reference.ln_gru_step(p, h[i, j], x[i, j]) for i in range(2) for j in range(3)]
    )
    lib_p, lib_h = _lib(backend, "ln_gru", p, h)
    got = polyrnn.ln_gru_cell(lib_p, lib_h, backend.asarray(x))
    assert_close(backend, got, want.reshape(2, 3, H), dtype="float64")

    p = _params("ln_lstm", rng)
    h, c = rng.normal(size=(2, 3, H)), rng.normal(size=(2, 3, H))
    pairs = [
        reference.ln_lstm_step(p, (h[i, j], c[i, j]), x[i, j]) for i in range(2) for j in range(3)
    ]
    lib_p, (lib_h, lib_c) = _lib(backend, "ln_lstm", p, (h, c))
    got_h, got_c = polyrnn.ln_lstm_cell(lib_p, (lib_h, lib_c), backend.asarray(x))
    assert_close(backend, got_h, np.stack([a for a, _ in pairs]).reshape(2, 3, H), dtype="float64")
    assert_close(backend, got_c, np.stack([b for _, b in pairs]).reshape(2, 3, H), dtype="float64")


VJP_LAYOUTS = [
    ((2,), 5, {"lengths": [5, 3], "reverse": True}),
    ((2, 2), 4, {"time_major": True, "lengths": [[4, 0], [2, 3]]}),
    ((), 6, {}),
]


@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize(("batch", "steps", "options"), VJP_LAYOUTS)
def test_vjp_is_the_derivative_of_the_reference(backend, kind, batch, steps, options):
    """``<backward(d_hs, d_last), v>`` equals the complex-step derivative of ``<d_hs, hs> +
    <d_last, last>`` of the reference loop along a random direction ``v`` of every input
    (``xs``, each parameter field, the initial state)."""
    rng = np.random.default_rng(11 + steps)
    p = _params(kind, rng)
    time_major = options.get("time_major", False)
    xs = rng.normal(size=(steps, *batch, D) if time_major and batch else (*batch, steps, D))
    state = _state(kind, rng, batch)
    lengths = options.get("lengths")
    lengths = None if lengths is None else np.asarray(lengths)
    kw = {k: v for k, v in options.items() if k != "lengths"}
    hs0, last0 = reference.scan(kind, p, xs, state, lengths=lengths, **kw)
    cots = [rng.normal(size=a.shape) for a in _flat(kind, hs0, last0)]
    inputs = [xs, *p, *(state if kind == "ln_lstm" else (state,))]
    direction = [rng.normal(size=np.shape(a)) for a in inputs]
    n_p = len(p)

    def objective(*arrays):
        xs_, p_, st = arrays[0], arrays[1 : 1 + n_p], arrays[1 + n_p :]
        st = tuple(st) if kind == "ln_lstm" else st[0]
        hs, last = reference.scan(kind, CELLS[kind][0](*p_), xs_, st, lengths=lengths, **kw)
        return sum(np.sum(c * a) for c, a in zip(cots, _flat(kind, hs, last), strict=True))

    expected = reference.directional_derivative(objective, inputs, direction)

    _, _, scan_vjp, _ = CELLS[kind]
    lib_p, lib_state = _lib(backend, kind, p, state)
    lib_len = None if lengths is None else backend.asarray(lengths)
    (hs, _), backward = scan_vjp(backend.asarray(xs), lib_p, lib_state, lengths=lib_len, **kw)
    assert_close(backend, hs, hs0, dtype="float64")
    lib_cots = [backend.asarray(c) for c in cots]
    if kind == "ln_lstm":
        d_xs, d_p, d_state = backward(lib_cots[0], tuple(lib_cots[1:]))
    else:
        d_xs, d_p, d_h0 = backward(lib_cots[0], lib_cots[1])
        d_state = (d_h0,)
    assert isinstance(d_p, CELLS[kind][0])
    grads = [d_xs, *d_p, *d_state]
    got = sum(float(np.sum(backend.to_numpy(g) * v)) for g, v in zip(grads, direction, strict=True))
    norm = np.sqrt(sum(float(np.sum(backend.to_numpy(g) ** 2)) for g in grads))
    scale = norm * np.sqrt(sum(float(np.sum(v * v)) for v in direction))
    assert abs(got - expected) <= 1e-12 * max(1.0, scale), (got, expected)


RECORDS = {"ln_gru": cells.LN_GRU, "ln_lstm": cells.LN_LSTM}


@pytest.mark.parametrize("kind", list(CELLS))
def test_recurrent_dropout_matches_the_reference_and_its_derivative(backend, kind):
    """A recurrent-dropout mask ``(..., H)`` (``cell_scan`` / ``cell_scan_vjp``'s
    ``recurrent_mask``, as the layers pass it) multiplies ``h_{t-1}`` where it meets
    ``W_h`` alone: the outputs of the reference loop given the same mask, and the
    complex-step derivative of that loop along a random direction of every input."""
    rng = np.random.default_rng(31)
    p = _params(kind, rng)
    xs = rng.normal(size=(3, 5, D))
    state = _state(kind, rng, (3,))
    lengths = np.array([5, 2, 0])
    mask = (rng.random((3, H)) >= 0.3) / 0.7
    hs0, last0 = reference.scan(
        kind, p, xs, state, lengths=lengths, reverse=True, recurrent_mask=mask
    )
    cots = [rng.normal(size=a.shape) for a in _flat(kind, hs0, last0)]
    inputs = [xs, *p, *(state if kind == "ln_lstm" else (state,))]
    direction = [rng.normal(size=np.shape(a)) for a in inputs]
    n_p = len(p)

    def objective(*arrays):
        xs_, p_, st = arrays[0], arrays[1 : 1 + n_p], arrays[1 + n_p :]
        st = tuple(st) if kind == "ln_lstm" else st[0]
        hs, last = reference.scan(
            kind, CELLS[kind][0](*p_), xs_, st, lengths=lengths, reverse=True, recurrent_mask=mask
        )
        return sum(np.sum(c * a) for c, a in zip(cots, _flat(kind, hs, last), strict=True))

    expected = reference.directional_derivative(objective, inputs, direction)
    lib_p, lib_state = _lib(backend, kind, p, state)
    kw = {
        "lengths": backend.asarray(lengths),
        "reverse": True,
        "recurrent_mask": backend.asarray(mask),
    }
    hs, last = scans.cell_scan(RECORDS[kind], backend.asarray(xs), lib_p, lib_state, **kw)
    (hs2, last2), backward = vjp.cell_scan_vjp(
        RECORDS[kind], backend.asarray(xs), lib_p, lib_state, **kw
    )
    want = _flat(kind, hs0, last0)
    for got in ([hs, *last], [hs2, *last2]):
        for g, w in zip(got, want, strict=True):
            assert_close(backend, g, w, dtype="float64")
    d_xs, d_p, d_state = backward(backend.asarray(cots[0]), tuple(map(backend.asarray, cots[1:])))
    grads = [d_xs, *d_p, *d_state]
    got = sum(float(np.sum(backend.to_numpy(g) * v)) for g, v in zip(grads, direction, strict=True))
    norm = np.sqrt(sum(float(np.sum(backend.to_numpy(g) ** 2)) for g in grads))
    scale = norm * np.sqrt(sum(float(np.sum(v * v)) for v in direction))
    assert abs(got - expected) <= 1e-12 * max(1.0, scale), (got, expected)


def _autodiff_case(kind):
    rng = np.random.default_rng(5)
    p = _params(kind, rng)
    xs = rng.normal(size=(2, 5, D))
    state = _state(kind, rng, (2,))
    lengths = np.asarray([5, 3])
    hs, last = reference.scan(kind, p, xs, state, lengths=lengths, reverse=True)
    cots = [rng.normal(size=a.shape) for a in _flat(kind, hs, last)]
    _, backward = CELLS[kind][2](xs, p, state, lengths=lengths, reverse=True)
    if kind == "ln_lstm":
        d_xs, d_p, d_state = backward(cots[0], tuple(cots[1:]))
    else:
        d_xs, d_p, d_h0 = backward(cots[0], cots[1])
        d_state = (d_h0,)
    return p, xs, state, lengths, cots, [d_xs, *d_p, *d_state]


@pytest.mark.parametrize("kind", list(CELLS))
def test_jax_autodiff_equals_the_hand_written_vjp(kind):
    """``jax.vjp`` of the forward scan (its ``lax.scan`` under ``jit``) gives the NumPy
    hand-written VJP's gradients of every input."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    p, xs, state, lengths, cots, by_hand = _autodiff_case(kind)
    cls, scan, _, _ = CELLS[kind]

    def f(xs, p, state):
        return scan(xs, p, state, lengths=jnp.asarray(lengths), reverse=True)

    primals = jax.tree_util.tree_map(jnp.asarray, (xs, cls(*p), state))
    out, vjp = jax.vjp(f, *primals)
    structure = jax.tree_util.tree_structure(out)
    d_out = jax.tree_util.tree_unflatten(structure, [jnp.asarray(c) for c in cots])
    expected = jax.tree_util.tree_leaves(vjp(d_out))
    assert len(expected) == len(by_hand)
    for g, e in zip(by_hand, expected, strict=True):
        np.testing.assert_allclose(g, np.asarray(e), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("kind", list(CELLS))
def test_torch_autograd_equals_the_hand_written_vjp(kind):
    """torch autograd through the forward scan gives the NumPy hand-written VJP's gradients."""
    torch = pytest.importorskip("torch")
    p, xs, state, lengths, cots, by_hand = _autodiff_case(kind)
    cls, scan, _, _ = CELLS[kind]

    def leaf(a):
        return torch.from_numpy(np.array(a)).requires_grad_()

    t_xs, t_p = leaf(xs), cls(*(leaf(a) for a in p))
    t_state = tuple(leaf(a) for a in state) if kind == "ln_lstm" else (leaf(state),)
    hs, last = scan(
        t_xs,
        t_p,
        t_state if kind == "ln_lstm" else t_state[0],
        lengths=torch.from_numpy(lengths),
        reverse=True,
    )
    expected = torch.autograd.grad(
        _flat(kind, hs, last),
        [t_xs, *t_p, *t_state],
        [torch.from_numpy(c) for c in cots],
    )
    for g, e in zip(by_hand, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-11, atol=1e-12)


# --- identities of layer normalisation ------------------------------------------------------


def _gate_constant(rng, rows, gates):
    """A ``(rows, G H)`` matrix whose columns are equal within each gate: ``x`` times it
    adds one number to every pre-activation of a gate."""
    return np.repeat(rng.normal(size=(rows, gates)), H, axis=1)


@pytest.mark.parametrize("kind", list(CELLS))
def test_a_constant_added_to_a_gate_changes_nothing(backend, kind):
    """``LN(a + s 1) = LN(a)``: adding to ``w_x`` and ``w_h`` matrices whose columns are equal
    within each gate leaves every output unchanged, to rounding (no ε involved)."""
    rng = np.random.default_rng(3)
    g = CELLS[kind][3]
    p = _params(kind, rng)
    moved = p._replace(
        w_x=p.w_x + 3.0 * _gate_constant(rng, D, g), w_h=p.w_h + 3.0 * _gate_constant(rng, H, g)
    )
    xs, state = rng.normal(size=(2, 6, D)), _state(kind, rng, (2,))
    scan = CELLS[kind][1]
    outs = []
    for params in (p, moved):
        lib_p, lib_state = _lib(backend, kind, params, state)
        outs.append(_flat(kind, *scan(backend.asarray(xs), lib_p, lib_state)))
    for a, b in zip(*outs, strict=True):
        assert_close(backend, a, backend.to_numpy(b), dtype="float64")


@pytest.mark.parametrize("kind", list(CELLS))
def test_scaling_the_weights_changes_only_epsilon(backend, kind):
    """``LN_ε(c a) = LN_{ε/c²}(a)``: with each gate's columns of ``w_x`` and ``w_h`` scaled by
    its own ``c >= 1e3``, ε weighs ``<= 1e-11`` against unit variances, so scales ``1e3``
    and ``1e5`` (different per gate) give the same outputs to ``1e-9``; at scale 1 ε
    weighs 1e-5, and the outputs differ by more than that (the test sees ε)."""
    rng = np.random.default_rng(4)
    g = CELLS[kind][3]
    p = _params(kind, rng)
    xs, state = rng.normal(size=(2, 6, D)), _state(kind, rng, (2,))
    scan = CELLS[kind][1]

    def run(cx, ch):
        scaled = p._replace(w_x=p.w_x * np.repeat(cx, H), w_h=p.w_h * np.repeat(ch, H))
        lib_p, lib_state = _lib(backend, kind, scaled, state)
        return [
            backend.to_numpy(a) for a in _flat(kind, *scan(backend.asarray(xs), lib_p, lib_state))
        ]

    big = run(1e3 * np.arange(1.0, g + 1), 1e3 * np.arange(g, 0.0, -1))
    huge = run(1e5 * np.arange(1.0, g + 1), 1e5 * np.arange(g + 1.0, 1.0, -1))
    one = run(np.ones(g), np.ones(g))
    for a, b, c in zip(big, huge, one, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
        assert np.max(np.abs(a - c)) > 1e-8  # ε matters at scale 1


# --- initialisation ---------------------------------------------------------------------------


def test_init_is_the_plain_cells_weights_with_unit_gains(backend):
    """Gains 1, shifts 0, and the weights ``init_gru`` / ``init_lstm`` draw from the seed."""
    for init, plain, n in (
        (polyrnn.init_ln_gru, polyrnn.init_gru, 6),
        (polyrnn.init_ln_lstm, polyrnn.init_lstm, 8),
    ):
        p = init(3, 5, seed=2, xp=backend.xp, dtype="float64")
        q = plain(3, 5, seed=2)
        assert len(p) == n
        np.testing.assert_array_equal(backend.to_numpy(p.w_x), q.w_x)
        np.testing.assert_array_equal(backend.to_numpy(p.w_h), q.w_h)
        for name in p._fields[2:]:
            value = 1.0 if name.startswith("g_") else 0.0
            a = backend.to_numpy(getattr(p, name))
            assert a.shape == ((5,) if name.endswith("_c") else q.b_x.shape)
            np.testing.assert_array_equal(a, np.full(a.shape, value))


# --- errors -------------------------------------------------------------------------------


def test_bad_inputs_name_the_argument():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(2, 5, D))
    p = _params("ln_gru", rng)
    q = _params("ln_lstm", rng)
    with pytest.raises(ValueError, match=r"ln_gru_scan: params\.g_x must have shape \(12,\)"):
        polyrnn.ln_gru_scan(xs, p._replace(g_x=p.g_x[:-1]))
    with pytest.raises(ValueError, match=r"ln_gru_scan_vjp: params\.g_h must have shape \(12,\)"):
        polyrnn.ln_gru_scan_vjp(xs, p._replace(g_h=np.ones((3, 4))))
    with pytest.raises(ValueError, match=r"ln_lstm_scan: params\.g_c must have shape \(4,\)"):
        polyrnn.ln_lstm_scan(xs, q._replace(g_c=np.ones(16)))
    with pytest.raises(ValueError, match=r"ln_lstm_cell: params\.b_c must have shape \(4,\)"):
        polyrnn.ln_lstm_cell(q._replace(b_c=np.ones(5)), (np.zeros(H), np.zeros(H)), xs[0, 0])
    with pytest.raises(TypeError, match=r"ln_gru_scan: params\.g_h must have dtype float64"):
        polyrnn.ln_gru_scan(xs, p._replace(g_h=p.g_h.astype(np.float32)))
    with pytest.raises(
        TypeError, match="ln_gru_scan: params must be LNGRUParams, got polyrnn.params.GRUParams"
    ):
        polyrnn.ln_gru_scan(xs, polyrnn.init_gru(D, H))
    with pytest.raises(
        TypeError,
        match=r"params must be LNLSTMParams\(w_x, w_h, b_x, b_h, g_x, g_h, g_c, b_c\), got 4 items",
    ):
        polyrnn.ln_lstm_scan(xs, tuple(q[:4]))
    with pytest.raises(
        ValueError, match=r"ln_gru_cell: params\.w_x must have shape \(4, 12\) \(D=4 from the input"
    ):
        polyrnn.ln_gru_cell(p, np.zeros(H), np.ones(4))
    with pytest.raises(TypeError, match="ln_lstm_scan: state0 must be a pair"):
        polyrnn.ln_lstm_scan(xs, q, np.zeros((2, H)))
    with pytest.raises(TypeError, match="ln_lstm_cell: carry must be a pair"):
        polyrnn.ln_lstm_cell(q, np.zeros(H), xs[0, 0])
    with pytest.raises(TypeError, match="ln_gru_scan: reverse must be True or False"):
        polyrnn.ln_gru_scan(xs, p, reverse="no")
    with pytest.raises(ValueError, match=r"ln_gru_scan: lengths must lie in \[0, T=5\]"):
        polyrnn.ln_gru_scan(xs, p, lengths=np.array([6, 1]))
    (_, _), backward = polyrnn.ln_lstm_scan_vjp(xs, q)
    with pytest.raises(TypeError, match="ln_lstm_scan_vjp: d_last must be a pair"):
        backward(None, np.zeros((2, H)))
    with pytest.raises(ValueError, match=r"ln_lstm_scan_vjp: d_c_last must have shape \(2, 4\)"):
        backward(None, (None, np.zeros((2, 5))))
    (_, _), backward = polyrnn.ln_gru_scan_vjp(xs, p)
    with pytest.raises(ValueError, match=r"ln_gru_scan_vjp: d_hs must have shape \(2, 5, 4\)"):
        backward(np.zeros((2, 5, 3)))
