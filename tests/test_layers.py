"""Stacked and bidirectional layers (:mod:`polyrnn.layers`) against independent references.

- ``torch.nn.RNN/GRU/LSTM`` with ``num_layers`` and ``bidirectional``, in float64, with
  packed sequences for ``lengths`` (their weights read here, not by the converters);
- a NumPy float64 stack of ``tests/reference.py``'s scans written in this file
  (:func:`ref_layers`), with the dropout masks drawn here as :mod:`polyrnn.layers`
  documents, for every backend, every cell variant (the ``reset_after=False`` GRU has no
  torch equivalent) and its complex-step derivatives;
- ``jax.vjp`` / ``jax.grad`` under ``jax.jit`` and torch autograd for the hand-written VJPs;
- a statistical check of the masks: a fraction ``p`` dropped and mean one, within five
  standard deviations;
- recurrent dropout (one mask per sequence on ``h_{t-1}`` where it meets ``W_h``): the
  same reference with ``reference.scan``'s ``recurrent_mask``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import reference
from array_libs import Backend, assert_close, tolerance
from hypothesis import given, settings
from hypothesis import strategies as st

import polyrnn
from polyrnn import interop

CLS = {"rnn": polyrnn.RNNParams, "gru": polyrnn.GRUParams, "lstm": polyrnn.LSTMParams}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
LAYERS = {"rnn": polyrnn.rnn_layers, "gru": polyrnn.gru_layers, "lstm": polyrnn.lstm_layers}
LAYERS_VJP = {
    "rnn": polyrnn.rnn_layers_vjp,
    "gru": polyrnn.gru_layers_vjp,
    "lstm": polyrnn.lstm_layers_vjp,
}
VARIANTS = [
    ("rnn", {"activation": "tanh"}),
    ("rnn", {"activation": "sigmoid"}),
    ("rnn", {"activation": "relu"}),
    ("gru", {"reset_after": False}),
    ("gru", {"reset_after": True}),
    ("lstm", {}),
]
NUMPY = Backend("numpy", np)


# --------------------------------------------------------------------------- references


def random_layers(
    rng: np.random.Generator, kind: str, n_layers: int, d_in: int, n_h: int, bidirectional: bool
) -> list[Any]:
    """NumPy float64 layers, chained: layer 0 reads ``d_in``, the others ``H`` or ``2H``."""
    g, dirs = GATES[kind] * n_h, 2 if bidirectional else 1
    out: list[Any] = []
    for i in range(n_layers):
        n_in = d_in if i == 0 else dirs * n_h
        entry = tuple(
            CLS[kind](*(rng.normal(0, 0.6, s) for s in ((n_in, g), (n_h, g), (g,), (g,))))
            for _ in range(dirs)
        )
        out.append(entry if bidirectional else entry[0])
    return out


def drawn_masks(seed: int, p: float, count: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    """The documented draw: ``numpy.random.default_rng(seed)``, then ``random(shape) >= p``
    for each layer but the last, in order (batch-first shape)."""
    rng = np.random.default_rng(seed)
    return [rng.random(shape) >= p for _ in range(count)]


def drawn_recurrent(
    seed: int, p: float, count: int, shape: tuple[int, ...], r: float, r_shape: tuple[int, ...]
) -> np.ndarray:
    """The documented draw of the recurrent masks: after the ``count`` dropout masks of
    :func:`drawn_masks` (none when ``p`` is 0), ``random(r_shape) >= r``, ``r_shape`` being
    ``(L * directions, ..., H)``."""
    rng = np.random.default_rng(seed)
    for _ in range(count if p else 0):
        rng.random(shape)
    return rng.random(r_shape) >= r


def ref_layers(
    kind: str,
    layers: list[Any],
    xs: Any,
    state0: Any = None,
    *,
    bidirectional: bool,
    lengths: np.ndarray | None = None,
    multipliers: list[np.ndarray] | None = None,
    recurrent: np.ndarray | None = None,
    **opts: Any,
) -> tuple[Any, Any]:
    """The stack, from ``reference.scan`` alone: batch-first ``xs (..., T, D)``; ``state0``
    ``(L*dirs, ..., H)`` (a pair for the LSTM) or ``None``; ``multipliers``: the ``L - 1``
    dropout factors (0 or 1/(1-p)) of the batch-first outputs; ``recurrent``: the
    recurrent-dropout factors ``(L*dirs, ..., H)`` of each layer and direction."""
    dirs = 2 if bidirectional else 1
    x = xs
    lasts: list[Any] = []
    for i, entry in enumerate(layers):
        outs = []
        for d, p in enumerate(entry if bidirectional else (entry,)):
            k = i * dirs + d
            s0 = None
            if state0 is not None:
                s0 = (state0[0][k], state0[1][k]) if kind == "lstm" else state0[k]
            m = None if recurrent is None else recurrent[k]
            hs, last = reference.scan(
                kind, p, x, s0, lengths=lengths, reverse=d == 1, recurrent_mask=m, **opts
            )
            outs.append(hs)
            lasts.append(last)
        x = np.concatenate(outs, axis=-1)
        if multipliers is not None and i < len(layers) - 1:
            x = x * multipliers[i]
    if kind == "lstm":
        return x, (np.stack([h for h, _ in lasts]), np.stack([c for _, c in lasts]))
    return x, np.stack(lasts)


def tree(a: Any, conv: Any) -> Any:
    """``conv`` applied to every array of nested tuples/lists/NamedTuples (``None`` kept)."""
    if a is None:
        return None
    if isinstance(a, tuple) and hasattr(a, "_fields"):
        return type(a)(*(tree(x, conv) for x in a))
    if isinstance(a, tuple | list):
        return type(a)(tree(x, conv) for x in a)
    return conv(a)


def leaves(a: Any) -> list[Any]:
    if a is None:
        return []
    if isinstance(a, tuple | list):
        return [y for x in a for y in leaves(x)]
    return [a]


def rounded(a: Any, dtype: str) -> Any:
    return tree(a, lambda x: np.asarray(x).astype(dtype).astype(np.float64))


# --------------------------------------------------------------------------- torch modules


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch")


TORCH_KINDS = {
    "gru": ("gru", {"reset_after": True}),
    "lstm": ("lstm", {}),
    "rnn_tanh": ("rnn", {"activation": "tanh"}),
    "rnn_relu": ("rnn", {"activation": "relu"}),
}


def torch_module(torch: Any, name: str, d_in: int, n_h: int, n_layers: int, bidi: bool) -> Any:
    torch.manual_seed(n_layers * 10 + bidi)
    kwargs = {
        "num_layers": n_layers,
        "bidirectional": bidi,
        "batch_first": True,
        "dtype": torch.float64,
    }
    if name == "gru":
        return torch.nn.GRU(d_in, n_h, **kwargs)
    if name == "lstm":
        return torch.nn.LSTM(d_in, n_h, **kwargs)
    return torch.nn.RNN(d_in, n_h, nonlinearity=name.split("_")[1], **kwargs)


def torch_weights(m: Any) -> list[Any]:
    """The module's layers read here from its parameter names: ``w_x = weight_ih_l{k}.T``..."""
    cls = {"GRU": polyrnn.GRUParams, "LSTM": polyrnn.LSTMParams}.get(m.mode, polyrnn.RNNParams)
    out: list[Any] = []
    for k in range(m.num_layers):
        entry = []
        for sfx in ("", "_reverse") if m.bidirectional else ("",):
            names = (f"weight_ih_l{k}{sfx}", f"weight_hh_l{k}{sfx}")
            ws = [getattr(m, n).detach().numpy().T for n in names]
            bs = [getattr(m, f"bias_{s}_l{k}{sfx}").detach().numpy() for s in ("ih", "hh")]
            entry.append(cls(*ws, *bs))
        out.append(tuple(entry) if m.bidirectional else entry[0])
    return out


TORCH_CASES = [(3, True), (2, False)]  # (num_layers, bidirectional)


@pytest.mark.parametrize("name", sorted(TORCH_KINDS))
@pytest.mark.parametrize(("n_layers", "bidi"), TORCH_CASES, ids=["3-bidi", "2-uni"])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "packed"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_matches_torch_module(backend, torch, name, n_layers, bidi, with_lengths, dtype) -> None:
    """Outputs, ``h_n`` (and ``c_n``) of the torch module, in float64 on weights, inputs and
    states rounded to ``dtype``; with ``lengths`` through ``pack_padded_sequence``
    (``enforce_sorted=False``), outputs padded with zeros."""
    kind, opts = TORCH_KINDS[name]
    n_b, n_t, d_in, n_h = 3, 5, 4, 3
    m = torch_module(torch, name, d_in, n_h, n_layers, bidi)
    with torch.no_grad():
        for prm in m.parameters():
            prm.copy_(prm.to(getattr(torch, dtype)).double())
    rng = np.random.default_rng(n_layers + 10 * with_lengths)
    xs = rounded(rng.normal(size=(n_b, n_t, d_in)), dtype)
    dirs = 2 if bidi else 1
    h0 = rounded(rng.normal(size=(n_layers * dirs, n_b, n_h)), dtype)
    c0 = rounded(rng.normal(size=(n_layers * dirs, n_b, n_h)), dtype)
    lengths = np.array([2, 5, 1]) if with_lengths else None
    hx = (torch.from_numpy(h0), torch.from_numpy(c0)) if kind == "lstm" else torch.from_numpy(h0)
    inp: Any = torch.from_numpy(xs)
    if with_lengths:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            inp, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
        )
    with torch.no_grad():
        out, state = m(inp, hx)
    if with_lengths:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=n_t)
    expected = [out.numpy(), *(s.numpy() for s in (state if kind == "lstm" else (state,)))]

    layers = torch_weights(m)
    state0 = (h0, c0) if kind == "lstm" else h0
    lib = lambda a: backend.asarray(a, dtype)
    got_hs, got_state = LAYERS[kind](
        lib(xs),
        tree(layers, lib),
        tree(state0, lib),
        bidirectional=bidi,
        lengths=None if lengths is None else backend.asarray(lengths),
        **opts,
    )
    got = [got_hs, *(got_state if kind == "lstm" else (got_state,))]
    for a, e in zip(got, expected, strict=True):
        assert_close(backend, a, e, dtype=dtype)


@pytest.mark.parametrize("name", sorted(TORCH_KINDS))
@pytest.mark.parametrize("bidi", [False, True])
def test_torch_converters_round_trip(torch, name, bidi) -> None:
    """``from_torch_layers`` reads what the test reads from the parameter names, keeps
    autograd, and ``to_torch_layers`` gives the module back: class, options, weights."""
    kind, opts = TORCH_KINDS[name]
    m = torch_module(torch, name, 3, 2, 3, bidi)
    got = interop.from_torch_layers(m)
    expected = torch_weights(m)
    assert len(got) == len(expected) == 3
    for g, e in zip(leaves(got), leaves(expected), strict=True):
        assert isinstance(g, torch.Tensor) and g.requires_grad
        np.testing.assert_array_equal(g.detach().numpy(), e)
    assert type(got[0][0] if bidi else got[0]) is CLS[kind]
    back = interop.to_torch_layers(
        got,
        bidirectional=bidi,
        nonlinearity=opts.get("activation", "tanh"),
        batch_first=True,
    )
    assert type(back) is type(m) and repr(back) == repr(m)
    state, back_state = m.state_dict(), back.state_dict()
    assert list(back_state) == list(state)
    for key, value in state.items():
        assert torch.equal(back_state[key], value), key
    # from NumPy arrays, and polyrnn computes what the new module computes
    host = tree(got, lambda t: t.detach().numpy())
    again = interop.to_torch_layers(host, bidirectional=bidi, **(
        {"nonlinearity": opts["activation"]} if kind == "rnn" else {}
    ))  # fmt: skip
    xs = np.random.default_rng(0).normal(size=(4, 3))  # unbatched (T, D)
    with torch.no_grad():
        ref, _ = again(torch.from_numpy(xs))
    hs, _ = LAYERS[kind](xs, host, bidirectional=bidi, **opts)
    assert_close(NUMPY, hs, ref.numpy(), dtype="float64")


def test_from_torch_layers_gradients_reach_the_module(torch) -> None:
    m = torch_module(torch, "lstm", 3, 2, 2, True)
    xs = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 4, 3)))
    ref, _ = m(xs)
    (ref**2).sum().backward()
    expected = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    hs, _ = polyrnn.lstm_layers(xs, interop.from_torch_layers(m), bidirectional=True)
    (hs**2).sum().backward()
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), expected[n].numpy(), rtol=1e-10, atol=1e-12)


def test_torch_converter_errors(torch) -> None:
    with pytest.raises(TypeError, match=r"from_torch_layers: module must be a torch.nn.GRU"):
        interop.from_torch_layers(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="proj_size=0"):
        interop.from_torch_layers(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="use from_torch_layers"):
        interop.from_torch(torch.nn.GRU(3, 2, bidirectional=True))
    gru = [polyrnn.init_gru(3, 2), polyrnn.init_gru(2, 2)]
    with pytest.raises(TypeError, match=r"to_torch_layers: layers\[0\] must be a \(forward, "):
        interop.to_torch_layers(gru, bidirectional=True)
    with pytest.raises(ValueError, match=r"to_torch_layers: layers\[1\].w_x must have shape"):
        interop.to_torch_layers([gru[0], polyrnn.init_gru(3, 2)])
    with pytest.raises(TypeError, match=r"layers\[1\] must be GRUParams"):
        interop.to_torch_layers([gru[0], polyrnn.init_lstm(2, 2)])
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        interop.to_torch_layers([polyrnn.init_rnn(3, 2)], nonlinearity="sigmoid")


# --------------------------------------------------------------------------- every backend


@settings(max_examples=20)  # each example compiles new shapes on JAX (seconds on 2 cores)
@given(
    seed=st.integers(0, 2**32 - 1),
    variant=st.sampled_from(VARIANTS),
    n_layers=st.integers(1, 3),
    bidi=st.booleans(),
    batch=st.sampled_from([(), (3,), (2, 2)]),
    T=st.sampled_from([0, 1, 4]),
    sizes=st.sampled_from([(2, 3), (3, 1)]),
    with_state=st.booleans(),
    with_lengths=st.booleans(),
    time_major=st.booleans(),
    dropout=st.sampled_from([0.0, 0.0, 0.4]),
    recurrent=st.sampled_from([0.0, 0.0, 0.3]),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_every_backend_matches_the_reference(
    backend, seed, variant, n_layers, bidi, batch, T, sizes, with_state, with_lengths,
    time_major, dropout, recurrent, dtype,
):  # fmt: skip
    """The same numbers on every library: the reference stack of this file, fed the
    float-rounded inputs and the masks (recurrent ones too) drawn as documented for the
    same seed."""
    kind, opts = variant
    d_in, n_h = sizes
    rng = np.random.default_rng(seed)
    dirs = 2 if bidi else 1
    layers = rounded(random_layers(rng, kind, n_layers, d_in, n_h, bidi), dtype)
    xs = rounded(rng.normal(size=(*batch, T, d_in)), dtype)
    state0: Any = None
    if with_state:
        shape = (n_layers * dirs, *batch, n_h)
        state0 = rounded(rng.normal(size=shape), dtype)
        if kind == "lstm":
            state0 = (state0, rounded(rng.normal(size=shape), dtype))
    lengths = rng.integers(0, T + 1, size=batch) if with_lengths else None
    mask_seed = int(rng.integers(0, 2**31))
    keep = drawn_masks(mask_seed, dropout, n_layers - 1, (*batch, T, dirs * n_h))
    mult = [k / (1.0 - dropout) for k in keep] if dropout else None
    r_shape = (n_layers * dirs, *batch, n_h)
    r_keep = drawn_recurrent(
        mask_seed, dropout, n_layers - 1, (*batch, T, dirs * n_h), recurrent, r_shape
    )
    r_mult = r_keep / (1.0 - recurrent) if recurrent else None

    exp_hs, exp_state = ref_layers(
        kind, layers, xs, state0, bidirectional=bidi, lengths=lengths, multipliers=mult,
        recurrent=r_mult, **opts,
    )  # fmt: skip
    lib = lambda a: backend.asarray(a, dtype)
    lib_xs = lib(np.moveaxis(xs, -2, 0) if time_major else xs)
    hs, state = LAYERS[kind](
        lib_xs,
        tree(layers, lib),
        tree(state0, lib),
        bidirectional=bidi,
        dropout=dropout,
        recurrent_dropout=recurrent,
        seed=mask_seed if dropout or recurrent else None,
        time_major=time_major,
        lengths=None if lengths is None else backend.asarray(lengths),
        **opts,
    )
    if time_major:
        exp_hs = np.moveaxis(exp_hs, -2, 0)
    for a, e in zip(leaves((hs, state)), leaves((exp_hs, exp_state)), strict=True):
        assert_close(backend, a, e, dtype=dtype)


@pytest.mark.parametrize(("kind", "opts"), VARIANTS[2:], ids=str)
def test_explicit_masks_equal_the_seeded_draw(backend, kind, opts) -> None:
    """``masks=`` and ``recurrent_masks=`` with the documented draw give the numbers of
    ``seed=``, time-major too."""
    rng = np.random.default_rng(5)
    layers = random_layers(rng, kind, 3, 2, 3, True)
    xs = rng.normal(size=(2, 4, 2))
    keep = drawn_masks(11, 0.3, 2, (2, 4, 6))
    r_keep = backend.asarray(drawn_recurrent(11, 0.3, 2, (2, 4, 6), 0.2, (6, 2, 3)))
    lib = lambda a: backend.asarray(a, "float64")
    for time_major in (False, True):
        x = np.moveaxis(xs, 1, 0) if time_major else xs
        masks = [backend.asarray(np.moveaxis(k, 1, 0) if time_major else k) for k in keep]
        common = dict(
            bidirectional=True, dropout=0.3, recurrent_dropout=0.2, time_major=time_major, **opts
        )
        a = LAYERS[kind](lib(x), tree(layers, lib), seed=11, **common)
        b = LAYERS[kind](lib(x), tree(layers, lib), masks=masks, recurrent_masks=r_keep, **common)
        for u, v in zip(leaves(a), leaves(b), strict=True):
            np.testing.assert_array_equal(backend.to_numpy(u), backend.to_numpy(v))


# --------------------------------------------------------------------------- dropout statistics


def test_dropout_keeps_the_expectation() -> None:
    """The masks, read off exactly: layer 0 is a relu RNN with positive weights and inputs
    (outputs ``y > 0``), layer 1 a relu RNN with ``w_x = I`` and no recurrence, so the
    output is ``relu(y * m) = y * m`` and ``m = hs / y``.  Over 20 seeds and 3000 entries
    each: every ``m`` is 0 or ``1/(1-p)``; the fraction dropped is ``p`` and the mean of
    ``m`` (the expectation of the output relative to the dropout-free one) is 1, each
    within 5 standard deviations (``sqrt(p(1-p)/N)`` and ``sqrt(p/((1-p) N))``; fixed
    seeds, so the outcome does not vary between runs); and different seeds give different
    masks."""
    p, n_h = 0.3, 6
    rng = np.random.default_rng(0)
    first = polyrnn.RNNParams(
        rng.uniform(0.1, 1.0, (2, n_h)), rng.uniform(0.0, 0.1, (n_h, n_h)),
        np.full(n_h, 0.1), np.zeros(n_h),
    )  # fmt: skip
    ident = polyrnn.RNNParams(np.eye(n_h), np.zeros((n_h, n_h)), np.zeros(n_h), np.zeros(n_h))
    xs = rng.uniform(0.0, 1.0, size=(20, 25, 2))
    y, _ = polyrnn.rnn_layers(xs, [first], activation="relu")
    assert y.min() > 0
    ms = []
    for seed in range(20):
        hs, _ = polyrnn.rnn_layers(xs, [first, ident], activation="relu", dropout=p, seed=seed)
        ms.append(hs / y)
    m = np.stack(ms)
    scale = 1.0 / (1.0 - p)
    kept = np.abs(m - scale) < 1e-12
    assert np.all(kept | (m == 0.0))
    n = m.size
    assert abs((~kept).mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert abs(m.mean() - 1.0) < 5 * np.sqrt(p / ((1 - p) * n))
    assert not np.array_equal(m[0], m[1])
    np.testing.assert_array_equal(m[3] != 0, drawn_masks(3, p, 1, (*xs.shape[:-1], n_h))[0])


def test_no_dropout_after_the_last_layer_and_zero_dropout_needs_no_seed() -> None:
    rng = np.random.default_rng(2)
    layers = random_layers(rng, "gru", 1, 3, 2, False)
    xs = rng.normal(size=(2, 5, 3))
    plain = polyrnn.gru_layers(xs, layers)
    dropped = polyrnn.gru_layers(xs, layers, dropout=0.9, seed=1)
    for a, b in zip(leaves(plain), leaves(dropped), strict=True):
        np.testing.assert_array_equal(a, b)
    exp_hs, exp_h = ref_layers("gru", layers, xs, bidirectional=False)
    assert_close(NUMPY, plain[0], exp_hs, dtype="float64")
    assert_close(NUMPY, plain[1], exp_h, dtype="float64")


# --------------------------------------------------------------------------- VJPs


def vjp_case(kind: str, seed: int, *, bidi: bool, n_layers: int = 2, dropout: float = 0.0):
    """Inputs, cotangents and masks of one VJP check, NumPy float64."""
    rng = np.random.default_rng(seed)
    batch, T, d_in, n_h = (2,), 4, 3, 2
    dirs = 2 if bidi else 1
    layers = random_layers(rng, kind, n_layers, d_in, n_h, bidi)
    xs = rng.normal(size=(*batch, T, d_in))
    shape = (n_layers * dirs, *batch, n_h)
    state0: Any = rng.normal(size=shape)
    if kind == "lstm":
        state0 = (state0, rng.normal(size=shape))
    lengths = np.array([4, 2])
    d_hs = rng.normal(size=(*batch, T, dirs * n_h))
    d_last: Any = rng.normal(size=shape)
    if kind == "lstm":
        d_last = (d_last, rng.normal(size=shape))
    keep = drawn_masks(seed, dropout, n_layers - 1, (*batch, T, dirs * n_h)) if dropout else None
    return layers, xs, state0, lengths, d_hs, d_last, keep


def d_last_h(d_last: Any) -> np.ndarray:
    """The ``h`` part of a final-state cotangent (an LSTM's is a pair)."""
    return d_last[0] if isinstance(d_last, tuple) else d_last


def flat_grads(grads: Any) -> list[np.ndarray]:
    return [np.asarray(a) for a in leaves(grads)]


@pytest.mark.parametrize(("kind", "opts"), VARIANTS, ids=str)
@pytest.mark.parametrize("bidi", [False, True])
@pytest.mark.parametrize("recurrent", [0.0, 0.4])
def test_vjp_directional_derivatives_match_the_reference(kind, opts, bidi, recurrent) -> None:
    """``<grad, v>`` of the hand-written VJP (lengths, initial states, dropout and recurrent
    dropout masks included) along a random direction of all inputs, and of each input
    alone, equals the complex-step derivative of the reference stack."""
    p = 0.25
    layers, xs, state0, lengths, d_hs, d_last, keep = vjp_case(kind, 3, bidi=bidi, dropout=p)
    mult = [k / (1 - p) for k in keep]
    dirs = 2 if bidi else 1
    r_shape = (len(layers) * dirs, *xs.shape[:-2], d_last_h(d_last).shape[-1])
    r_keep = drawn_recurrent(3, p, len(layers) - 1, d_hs.shape, recurrent, r_shape)
    r_mult = r_keep / (1 - recurrent) if recurrent else None
    (hs, last), backward = LAYERS_VJP[kind](
        xs, layers, state0, bidirectional=bidi, lengths=lengths, dropout=p,
        recurrent_dropout=recurrent, seed=3, **opts,
    )  # fmt: skip
    exp_hs, exp_last = ref_layers(
        kind, layers, xs, state0, bidirectional=bidi, lengths=lengths, multipliers=mult,
        recurrent=r_mult, **opts,
    )  # fmt: skip
    for a, e in zip(leaves((hs, last)), leaves((exp_hs, exp_last)), strict=True):
        assert_close(NUMPY, a, e, dtype="float64")
    d_xs, d_layers, d_state0 = backward(d_hs, d_last)
    grads = [d_xs, *leaves(d_layers), *leaves(d_state0)]
    inputs = [xs, *leaves(layers), *leaves(state0)]
    assert [g.shape for g in grads] == [a.shape for a in inputs]
    structure = (layers, state0)

    def f(x: Any, *rest: Any) -> Any:
        it = iter(rest)
        lay, s0 = tree(structure, lambda _: next(it))
        outs = ref_layers(
            kind, lay, x, s0, bidirectional=bidi, lengths=lengths, multipliers=mult,
            recurrent=r_mult, **opts,
        )  # fmt: skip
        return sum(np.sum(c * o) for c, o in zip(leaves((d_hs, d_last)), leaves(outs), strict=True))

    rng = np.random.default_rng(4)
    vs = [rng.normal(size=a.shape) for a in inputs]
    rtol, atol = tolerance("float64")
    picks = [list(range(len(inputs))), [0], [1], [len(inputs) - 1]]
    for pick in picks:
        dirs = [vs[i] if i in pick else None for i in range(len(inputs))]
        exact = reference.directional_derivative(f, inputs, dirs)
        got = sum(float(np.sum(grads[i] * vs[i])) for i in pick)
        norm = np.sqrt(sum(np.sum(grads[i] ** 2) * np.sum(vs[i] ** 2) for i in pick))
        np.testing.assert_allclose(got, exact, rtol=rtol, atol=atol * max(1.0, norm))


@pytest.mark.parametrize(("kind", "opts"), [VARIANTS[0], VARIANTS[4], VARIANTS[5]], ids=str)
def test_vjp_matches_torch_autograd(torch, kind, opts) -> None:
    """The hand-written VJP on NumPy against torch autograd through torch's fused kernels,
    bidirectional, packed lengths, dropout masks from the same seed."""
    layers, xs, state0, lengths, d_hs, d_last, _ = vjp_case(kind, 8, bidi=True, dropout=0.5)
    kw = dict(bidirectional=True, lengths=lengths, dropout=0.5, seed=8, **opts)
    (hs, last), backward = LAYERS_VJP[kind](xs, layers, state0, **kw)
    grads = flat_grads(backward(d_hs, d_last))

    leaf = lambda a: torch.from_numpy(np.array(a)).requires_grad_()
    t_xs, t_layers, t_state0 = leaf(xs), tree(layers, leaf), tree(state0, leaf)
    t_kw = dict(kw, lengths=torch.from_numpy(lengths))
    t_hs, t_last = LAYERS[kind](t_xs, t_layers, t_state0, **t_kw)
    outs = leaves((t_hs, t_last))
    cots = [torch.from_numpy(np.array(c)) for c in leaves((d_hs, d_last))]
    inputs = [t_xs, *leaves(t_layers), *leaves(t_state0)]
    expected = torch.autograd.grad(outs, inputs, cots, allow_unused=True, materialize_grads=True)
    for a, e in zip(leaves((hs, last)), outs, strict=True):
        assert_close(NUMPY, a, e.detach().numpy(), dtype="float64")
    for a, e in zip(grads, expected, strict=True):
        assert_close(NUMPY, a, e.numpy(), dtype="float64")


@pytest.fixture(scope="module")
def jax() -> Any:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


def test_jit_grad_with_masks_from_a_jax_key(jax) -> None:
    """Inside ``jax.jit``: masks drawn with ``jax.random.bernoulli`` from a traced key,
    passed as ``masks=``; the loss and ``jax.grad`` equal the reference with those masks
    and the hand-written VJP on NumPy; another key draws other masks."""
    jnp = jax.numpy
    p, kind, opts = 0.4, "gru", {"reset_after": True}
    layers, xs, state0, lengths, d_hs, d_last, _ = vjp_case(kind, 9, bidi=True, n_layers=3)
    shape = d_hs.shape

    @jax.jit
    def loss(layers: Any, xs: Any, h0: Any, key: Any) -> Any:
        keys = jax.random.split(key, 2)
        masks = [jax.random.bernoulli(k, 1 - p, shape) for k in keys]
        hs, h_n = polyrnn.gru_layers(
            xs, layers, h0, bidirectional=True, dropout=p, masks=masks,
            lengths=jnp.asarray(lengths), **opts,
        )  # fmt: skip
        return jnp.sum(hs * d_hs) + jnp.sum(h_n * d_last), masks

    args = tree((layers, xs, state0), jnp.asarray)
    grad_fn = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)
    (value, masks), grads = grad_fn(*args, jax.random.key(0))
    (_, masks2), _ = grad_fn(*args, jax.random.key(1))
    keep = [np.asarray(m) for m in masks]
    assert keep[0].dtype == bool and 0.3 < keep[0].mean() < 0.9
    assert not np.array_equal(keep[0], np.asarray(masks2[0]))

    mult = [k / (1 - p) for k in keep]
    exp_hs, exp_h = ref_layers(
        kind, layers, xs, state0, bidirectional=True, lengths=lengths, multipliers=mult, **opts
    )
    np.testing.assert_allclose(
        float(value), np.sum(exp_hs * d_hs) + np.sum(exp_h * d_last), rtol=1e-12
    )
    (_, _), backward = polyrnn.gru_layers_vjp(
        xs, layers, state0, bidirectional=True, dropout=p, masks=keep, lengths=lengths, **opts
    )
    d_xs, d_layers, d_h0 = backward(d_hs, d_last)
    g_layers, g_xs, g_h0 = grads
    for a, e in zip([*leaves(g_layers), g_xs, g_h0], [*leaves(d_layers), d_xs, d_h0], strict=True):
        assert_close(NUMPY, np.asarray(a), e, dtype="float64")


def test_seed_works_under_jit(jax) -> None:
    """``seed=`` under ``jax.jit``: host-drawn masks, the numbers of the eager NumPy call."""
    layers, xs, *_ = vjp_case("lstm", 10, bidi=False, n_layers=2)
    f = jax.jit(lambda lay, x: polyrnn.lstm_layers(x, lay, dropout=0.5, seed=4))
    got = f(tree(layers, jax.numpy.asarray), jax.numpy.asarray(xs))
    expected = polyrnn.lstm_layers(xs, layers, dropout=0.5, seed=4)
    for a, e in zip(leaves(got), leaves(expected), strict=True):
        assert_close(NUMPY, np.asarray(a), e, dtype="float64")


@pytest.mark.parametrize(("kind", "opts"), [VARIANTS[1], VARIANTS[3], VARIANTS[5]], ids=str)
def test_vjp_on_every_backend(backend, kind, opts) -> None:
    """The hand-written VJP on each library gives NumPy's VJP, which the tests above tie to
    the reference."""
    layers, xs, state0, lengths, d_hs, d_last, _ = vjp_case(kind, 12, bidi=True, dropout=0.2)
    kw = dict(bidirectional=True, dropout=0.2, seed=5, **opts)
    (hs, last), backward = LAYERS_VJP[kind](xs, layers, state0, lengths=lengths, **kw)
    expected = leaves((hs, last)) + flat_grads(backward(d_hs, d_last))
    lib = lambda a: backend.asarray(a, "float64")
    (b_hs, b_last), b_backward = LAYERS_VJP[kind](
        lib(xs), tree(layers, lib), tree(state0, lib), lengths=backend.asarray(lengths), **kw
    )
    got = leaves((b_hs, b_last)) + leaves(b_backward(lib(d_hs), tree(d_last, lib)))
    for a, e in zip(got, expected, strict=True):
        assert_close(backend, a, e, dtype="float64")


def test_vjp_backward_is_reusable_and_none_is_zero() -> None:
    layers, xs, _, _, d_hs, d_last, _ = vjp_case("lstm", 13, bidi=True)
    (_hs, (h_n, _c_n)), backward = polyrnn.lstm_layers_vjp(xs, layers, bidirectional=True)
    first = flat_grads(backward(d_hs, (None, d_last[1])))
    second = flat_grads(backward(d_hs, (np.zeros_like(h_n), d_last[1])))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    for a in flat_grads(backward(None, None)):
        assert not a.any()


# --------------------------------------------------------------------------- bad input

GRU2 = [polyrnn.init_gru(3, 2, seed=0), polyrnn.init_gru(2, 2, seed=1)]
PAIRS = [
    (GRU2[0], polyrnn.init_gru(3, 2, seed=2)),
    (polyrnn.init_gru(4, 2), polyrnn.init_gru(4, 2)),
]
XS = np.ones((2, 5, 3))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: polyrnn.gru_layers(XS, GRU2[0]), TypeError, r"gru_layers: layers must be a list of GRUParams.*got a single GRUParams"),
        (lambda: polyrnn.gru_layers(XS, []), TypeError, r"layers must be a non-empty list"),
        (lambda: polyrnn.gru_layers(XS, GRU2, bidirectional=True), TypeError, r"gru_layers: layers\[0\] must be a \(forward, backward\) pair of GRUParams with bidirectional=True, got GRUParams"),
        (lambda: polyrnn.gru_layers(XS, [PAIRS[0], GRU2[1]], bidirectional=True), TypeError, r"layers\[1\] must be a \(forward, backward\) pair"),
        (lambda: polyrnn.gru_layers(XS, PAIRS), TypeError, r"layers\[0\] must be GRUParams with bidirectional=False, got a tuple of 2 \(GRUParams, GRUParams\) \(pairs"),
        (lambda: polyrnn.gru_layers(XS, [GRU2[0], polyrnn.init_lstm(2, 2)]), TypeError, r"layers\[1\] must be GRUParams"),
        (lambda: polyrnn.lstm_layers(XS, GRU2), TypeError, r"lstm_layers: layers\[0\] must be LSTMParams"),
        (lambda: polyrnn.gru_layers(XS, [GRU2[0], GRU2[0]]), ValueError, r"layers\[1\].w_x must have shape \(2, 6\) \(the output width of layers\[0\], H=2\), got \(3, 6\)"),
        (lambda: polyrnn.gru_layers(XS, [PAIRS[0], (GRU2[1], GRU2[1])], bidirectional=True), ValueError, r"layers\[1\]\[0\].w_x must have shape \(4, 6\) \(the output width of layers\[0\], 2H=4\)"),
        (lambda: polyrnn.gru_layers(XS, [GRU2[0], polyrnn.init_gru(2, 3)]), ValueError, r"layers\[1\].w_h must have shape \(2, 6\) \(every layer has the H=2 of layers\[0\]\)"),
        (lambda: polyrnn.gru_layers(XS[..., :2], GRU2), ValueError, r"layers\[0\].w_x must have shape \(2, 6\) \(D=2 from xs"),
        (lambda: polyrnn.gru_layers(XS, GRU2, np.zeros((1, 2, 2))), ValueError, r"gru_layers: h0 must have shape \(2, 2, 2\) \(L \* directions = 2 \* 1"),
        (lambda: polyrnn.lstm_layers(XS, [polyrnn.init_lstm(3, 2)], np.zeros((1, 2, 2))), TypeError, r"lstm_layers: state0 must be a pair \(h0, c0\)"),
        (lambda: polyrnn.gru_layers(XS.astype(np.float32), GRU2), TypeError, r"layers\[0\].w_x must have dtype float32 \(the dtype of xs\)"),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=0.5), ValueError, r"dropout=0.5 needs seed="),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=1.0, seed=0), ValueError, r"dropout must be a number in \[0, 1\), got 1.0"),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=-0.1, seed=0), ValueError, r"dropout must be a number in \[0, 1\)"),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=True, seed=0), ValueError, r"dropout must be a number"),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=0.5, seed=-1), ValueError, r"seed must be a non-negative integer"),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=0.5, seed=1, masks=[np.ones((2, 5, 2), bool)]), ValueError, r"give seed or masks, not both"),
        (lambda: polyrnn.gru_layers(XS, GRU2, masks=[np.ones((2, 5, 2), bool)]), ValueError, r"masks were given with dropout=0"),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=0.5, masks=[]), ValueError, r"masks must hold L - 1 = 1 arrays"),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=0.5, masks=[np.ones((2, 5, 2))]), TypeError, r"masks\[0\] must be a boolean array"),
        (lambda: polyrnn.gru_layers(XS, GRU2, dropout=0.5, masks=[np.ones((5, 2, 2), bool)]), ValueError, r"masks\[0\] must have shape \(2, 5, 2\)"),
        (lambda: polyrnn.gru_layers(XS, GRU2, recurrent_dropout=0.5), ValueError, r"gru_layers: recurrent_dropout=0.5 needs seed= .* or recurrent_masks= \(a boolean array \(L \* directions, ..., H\)\)"),
        (lambda: polyrnn.gru_layers(XS, GRU2, recurrent_dropout=1.5, seed=0), ValueError, r"recurrent_dropout must be a number in \[0, 1\), got 1.5"),
        (lambda: polyrnn.gru_layers(XS, GRU2, recurrent_masks=np.ones((2, 2, 2), bool)), ValueError, r"recurrent_masks were given with recurrent_dropout=0"),
        (lambda: polyrnn.gru_layers(XS, GRU2, recurrent_dropout=0.5, seed=1, recurrent_masks=np.ones((2, 2, 2), bool)), ValueError, r"give seed or recurrent_masks, not both"),
        (lambda: polyrnn.gru_layers(XS, GRU2, recurrent_dropout=0.5, recurrent_masks=np.ones((2, 2, 2))), TypeError, r"recurrent_masks must be a boolean array \(True keeps\), got dtype float64"),
        (lambda: polyrnn.gru_layers(XS, GRU2, recurrent_dropout=0.5, recurrent_masks=np.ones((2, 2), bool)), ValueError, r"gru_layers: recurrent_masks must have shape \(2, 2, 2\) \(L \* directions = 2 \* 1"),
        (lambda: polyrnn.layers.cell_layers(polyrnn.cells.MIN_GRU, XS, [polyrnn.init_min_gru(3, 2)], recurrent_dropout=0.5, seed=0, method="auto"), ValueError, r"cell_layers: the 'min_gru' cell has no recurrent dropout"),
        (lambda: polyrnn.gru_layers(XS, GRU2, lengths=np.array([1, 6])), ValueError, r"gru_layers: lengths must lie in \[0, T=5\]"),
        (lambda: polyrnn.gru_layers(XS, GRU2, bidirectional="yes"), TypeError, r"bidirectional must be True or False"),
        (lambda: polyrnn.rnn_layers(XS, [polyrnn.init_rnn(3, 2)], activation="gelu"), ValueError, r"activation must be one of"),
        (lambda: polyrnn.gru_layers_vjp(XS, GRU2)[1](np.zeros((2, 5, 3)), None), ValueError, r"gru_layers_vjp: d_hs must have shape \(2, 5, 2\)"),
        (lambda: polyrnn.gru_layers_vjp(XS, GRU2)[1](None, np.zeros((2, 2))), ValueError, r"d_h_n must have shape \(2, 2, 2\)"),
        (lambda: polyrnn.lstm_layers_vjp(XS, [polyrnn.init_lstm(3, 2)])[1](None, np.zeros(2)), TypeError, r"d_last must be a pair"),
    ],
)  # fmt: skip
def test_bad_inputs(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_mixed_libraries(torch) -> None:
    layers = [GRU2[0], polyrnn.GRUParams(*(torch.from_numpy(a) for a in GRU2[1]))]
    with pytest.raises(TypeError, match=r"gru_layers: all arrays must come from one library"):
        polyrnn.gru_layers(XS, layers)
