"""Every converter of :mod:`polyrnn.interop` against the real framework, number for number.

PyTorch, Keras 3 and Flax are each skipped cleanly when not installed.  Keras runs on
its JAX backend (``KERAS_BACKEND`` is set before the first import unless already set).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import polyrnn
from polyrnn import interop

RNG_SIZES = [  # (T, B, D, H)
    (1, 1, 1, 1),
    (5, 3, 4, 2),
    (7, 2, 3, 5),
    (4, 4, 8, 3),
]


def _rng(*key: Any) -> np.random.Generator:
    """A generator seeded by ``key``, the same in every process (unlike ``hash``)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _random_gru(d_in: int, n_h: int, rng: np.random.Generator) -> polyrnn.GRUParams:
    """GRU params with every bias non-zero, so each bias path is exercised."""
    shapes = ((d_in, 3 * n_h), (n_h, 3 * n_h), (3 * n_h,), (3 * n_h,))
    return polyrnn.GRUParams(*(rng.normal(size=s) for s in shapes))


def test_import_loads_no_framework() -> None:
    """``import polyrnn.interop`` imports none of torch, jax, keras, flax."""
    code = (
        "import sys, polyrnn.interop; "
        "print(sorted(m for m in ('torch', 'jax', 'keras', 'flax') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ============================================================================ PyTorch


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip("torch")


def _torch_module(torch: Any, kind: str, d_in: int, n_h: int, **kwargs: Any) -> Any:
    torch.manual_seed(d_in * 100 + n_h)
    if kind == "gru":
        return torch.nn.GRU(d_in, n_h, dtype=torch.float64, **kwargs)
    if kind == "lstm":
        return torch.nn.LSTM(d_in, n_h, dtype=torch.float64, **kwargs)
    return torch.nn.RNN(d_in, n_h, nonlinearity=kind.split("_")[1], dtype=torch.float64, **kwargs)


def _polyrnn_run(kind: str, xs: Any, params: Any, h0: Any, c0: Any, time_major: bool) -> Any:
    """(hs, h_last, c_last or None) from the polyrnn scan matching a torch module."""
    if kind == "gru":
        hs, h = polyrnn.gru_scan(xs, params, h0, reset_after=True, time_major=time_major)
        return hs, h, None
    if kind == "lstm":
        state = None if h0 is None else (h0, c0)
        hs, (h, c) = polyrnn.lstm_scan(xs, params, state, time_major=time_major)
        return hs, h, c
    hs, h = polyrnn.rnn_scan(xs, params, h0, activation=kind.split("_")[1], time_major=time_major)
    return hs, h, None


KINDS = ["gru", "lstm", "rnn_tanh", "rnn_relu"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", RNG_SIZES, ids=str)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("on", ["torch", "numpy"])
def test_from_torch_matches_module(
    torch: Any, kind: str, size: tuple[int, ...], batch_first: bool, with_h0: bool, on: str
) -> None:
    """polyrnn with ``from_torch(m)`` computes ``m(xs, h0)``: every h_t and the last state.

    ``on="torch"`` runs polyrnn on the returned torch tensors, ``on="numpy"`` on copies.
    """
    n_t, n_b, d_in, n_h = size
    m = _torch_module(torch, kind, d_in, n_h, batch_first=batch_first)
    rng = _rng(kind, size, batch_first, with_h0)
    xs_np = rng.normal(size=(n_b, n_t, d_in) if batch_first else (n_t, n_b, d_in))
    h0_np = rng.normal(size=(n_b, n_h)) if with_h0 else None
    c0_np = rng.normal(size=(n_b, n_h)) if with_h0 else None
    xs = torch.from_numpy(xs_np)
    if with_h0:
        h0, c0 = torch.from_numpy(h0_np)[None], torch.from_numpy(c0_np)[None]
        ref, state = m(xs, (h0, c0) if kind == "lstm" else h0)
    else:
        ref, state = m(xs)
    ref_h = state[0][0] if kind == "lstm" else state[0]

    params = interop.from_torch(m)
    assert type(params) is {"gru": polyrnn.GRUParams, "lstm": polyrnn.LSTMParams}.get(
        kind, polyrnn.RNNParams
    )
    if on == "numpy":
        params = type(params)(*(p.detach().numpy() for p in params))
        args: tuple[Any, ...] = (xs_np, h0_np, c0_np)
    else:
        args = (xs, *(None if a is None else torch.from_numpy(a) for a in (h0_np, c0_np)))
    hs, h, c = _polyrnn_run(kind, args[0], params, args[1], args[2], time_major=not batch_first)
    assert isinstance(hs, np.ndarray if on == "numpy" else torch.Tensor)
    to_np = np.asarray if on == "numpy" else (lambda t: t.detach().numpy())
    np.testing.assert_allclose(to_np(hs), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_np(h), ref_h.detach().numpy(), rtol=1e-12, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(to_np(c), state[1][0].detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_unbatched_and_without_bias(torch: Any, kind: str) -> None:
    """An unbatched ``(T, D)`` input, and ``bias=False`` modules (zero biases)."""
    m = _torch_module(torch, kind, 3, 4, bias=False)
    params = interop.from_torch(m)
    for b in (params.b_x, params.b_h):
        assert b.shape == (params.w_h.shape[1],)
        assert not b.any()
    xs = torch.from_numpy(_rng(kind).normal(size=(6, 3)))
    ref, _ = m(xs)
    hs, _, _ = _polyrnn_run(kind, xs, params, None, None, time_major=False)
    np.testing.assert_allclose(hs.detach().numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_from_torch_keeps_autograd(torch: Any, kind: str) -> None:
    """Gradients flow from a polyrnn loss into the module's parameters, equal to torch's."""
    m = _torch_module(torch, kind, 3, 2)
    xs = torch.from_numpy(_rng(kind, "grad").normal(size=(5, 2, 3)))
    ref, _ = m(xs)
    (ref**2).sum().backward()
    expected = {name: p.grad.clone() for name, p in m.named_parameters()}
    m.zero_grad()
    hs, _, _ = _polyrnn_run(kind, xs, interop.from_torch(m), None, None, time_major=True)
    (hs**2).sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        np.testing.assert_allclose(
            p.grad.numpy(), expected[name].numpy(), rtol=1e-10, atol=1e-12, err_msg=name
        )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_to_torch_round_trip(torch: Any, kind: str, batch_first: bool) -> None:
    """``to_torch(from_torch(m))`` is ``m``: same class, options and weights."""
    m = _torch_module(torch, kind, 4, 3, batch_first=batch_first)
    nonlinearity = kind.split("_")[1] if kind.startswith("rnn") else "tanh"
    back = interop.to_torch(
        interop.from_torch(m), nonlinearity=nonlinearity, batch_first=batch_first
    )
    assert type(back) is type(m)
    assert repr(back) == repr(m)
    state, back_state = m.state_dict(), back.state_dict()
    assert list(back_state) == list(state)
    for name, value in state.items():
        assert back_state[name].dtype == torch.float64
        assert torch.equal(back_state[name], value), name
    assert back.weight_ih_l0.data_ptr() != m.weight_ih_l0.data_ptr()  # a copy


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_torch_module_computes_polyrnn(torch: Any, kind: str, dtype: str) -> None:
    """A module built from NumPy params computes what polyrnn computes with them."""
    init = {"gru": polyrnn.init_gru, "lstm": polyrnn.init_lstm}.get(kind, polyrnn.init_rnn)
    params = init(3, 4, seed=7, dtype=dtype)
    if kind == "gru":  # distinct non-zero biases everywhere
        params = polyrnn.GRUParams(*(a.astype(dtype) for a in _random_gru(3, 4, _rng(kind))))
    nonlinearity = kind.split("_")[1] if kind.startswith("rnn") else "tanh"
    m = interop.to_torch(params, nonlinearity=nonlinearity, batch_first=True)
    assert m.weight_hh_l0.dtype == getattr(torch, dtype)
    xs = _rng(kind, dtype).normal(size=(2, 6, 3)).astype(dtype)
    ref, _ = m(torch.from_numpy(xs))
    hs, _, _ = _polyrnn_run(kind, xs, params, None, None, time_major=False)
    tol = 1e-12 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(hs, ref.detach().numpy(), rtol=tol, atol=tol)


def test_from_torch_errors(torch: Any) -> None:
    with pytest.raises(ValueError, match=r"num_layers=1.*num_layers=2"):
        interop.from_torch(torch.nn.GRU(3, 2, num_layers=2))
    with pytest.raises(ValueError, match="unidirectional"):
        interop.from_torch(torch.nn.LSTM(3, 2, bidirectional=True))
    with pytest.raises(ValueError, match="proj_size=0.*proj_size=1"):
        interop.from_torch(torch.nn.LSTM(3, 2, proj_size=1))
    with pytest.raises(TypeError, match=r"torch.nn.GRU, torch.nn.LSTM or torch.nn.RNN.*Linear"):
        interop.from_torch(torch.nn.Linear(3, 2))
    with pytest.raises(TypeError, match="GRUCell"):
        interop.from_torch(torch.nn.GRUCell(3, 2))


def test_to_torch_errors(torch: Any) -> None:
    with pytest.raises(ValueError, match="'tanh' or 'relu'.*'sigmoid'"):
        interop.to_torch(polyrnn.init_rnn(3, 2), nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="RNNParams only.*GRUParams"):
        interop.to_torch(polyrnn.init_gru(3, 2), nonlinearity="relu")
    with pytest.raises(TypeError, match="RNNParams or GRUParams or LSTMParams.*tuple"):
        interop.to_torch(tuple(polyrnn.init_gru(3, 2)))
    p = polyrnn.init_gru(3, 2)
    with pytest.raises(ValueError, match=r"params.w_x must have shape \(3, 6\).*got \(3, 5\)"):
        interop.to_torch(p._replace(w_x=np.zeros((3, 5))))
    with pytest.raises(
        TypeError, match=r"params.b_h must have dtype float\d+ \(the dtype of params.w_x\)"
    ):
        interop.to_torch(p._replace(b_h=p.b_h.astype("float32")))


# ============================================================================ Keras 3


@pytest.fixture(scope="module")
def keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        # Keras's torch backend warns (NumPy 2 __array__) in ways that are no concern here.
        pytest.skip(f"these tests run Keras on its JAX backend, got {keras.backend.backend()}")
    return keras


@contextlib.contextmanager
def _jax_x64() -> Iterator[None]:
    """float64 JAX with standard promotion (the test suite may have set it to strict)."""
    import jax

    with jax.enable_x64(True), jax.numpy_dtype_promotion("standard"):
        yield


def _keras_gru(
    keras: Any, n_h: int, reset_after: bool, d_in: int, rng: np.random.Generator, **kwargs: Any
) -> Any:
    """A built float64 GRU layer with random weights (biases included).

    Its activation is ``jax.numpy.tanh`` unless given: Keras 3.15's own ``"tanh"``
    (``keras.ops.tanh``) returns float32 for a float64 input (``result_type`` maps 64-bit
    dtypes to 32-bit ones), which would limit the comparison to ~1e-7;
    :func:`test_keras_default_tanh` covers that layer at that tolerance.
    """
    import jax.numpy as jnp

    kwargs.setdefault("activation", jnp.tanh)
    layer = keras.layers.GRU(
        n_h,
        reset_after=reset_after,
        return_sequences=True,
        return_state=True,
        dtype="float64",
        kernel_initializer="zeros",
        recurrent_initializer="zeros",
        **kwargs,
    )
    layer.build((None, None, d_in))
    layer.set_weights([rng.normal(size=tuple(w.shape)) for w in layer.weights])
    return layer


def _keras_weight_list(layer: Any) -> list[np.ndarray]:
    """``layer.get_weights()`` without its NumPy 2 ``__array__`` DeprecationWarning."""
    return [np.asarray(w.value) for w in layer.weights]


KERAS_CASES = [((5, 3, 4, 2), False), ((7, 2, 3, 5), True)]  # (T, B, D, H), with h0


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize(("size", "with_h0"), KERAS_CASES, ids=str)
def test_from_keras_gru_matches_layer(
    keras: Any, reset_after: bool, size: tuple[int, ...], with_h0: bool
) -> None:
    """``gru_scan`` with ``from_keras_gru(layer)`` gives the layer's sequence and state."""
    n_t, n_b, d_in, n_h = size
    rng = _rng("keras", reset_after, size, with_h0)
    xs = rng.normal(size=(n_b, n_t, d_in))
    h0 = rng.normal(size=(n_b, n_h)) if with_h0 else None
    with _jax_x64():
        layer = _keras_gru(keras, n_h, reset_after, d_in, rng)
        seq, state = layer(xs, initial_state=None if h0 is None else [h0])
        seq, state = np.asarray(seq), np.asarray(state)
        assert seq.dtype == np.float64
        for source in (layer, _keras_weight_list(layer)):
            params = interop.from_keras_gru(source)
            assert all(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in params)
            hs, h = polyrnn.gru_scan(xs, params, h0, reset_after=reset_after)
            np.testing.assert_allclose(hs, seq, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(h, state, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_layers_match_a_keras_bidirectional_stack(keras: Any, reset_after: bool) -> None:
    """Two ``Bidirectional(GRU(return_sequences=True))`` layers, their directions' weights
    through :func:`~polyrnn.interop.from_keras_gru`: ``gru_layers(bidirectional=True)``
    gives the stack's output (Keras reverses the backward layer's sequence back and
    concatenates forward first, as torch does)."""
    import jax.numpy as jnp

    @keras.saving.register_keras_serializable(package="polyrnn_tests")
    def tanh(x: Any) -> Any:  # float64 (Keras's own is float32); Bidirectional clones by config
        return jnp.tanh(x)

    rng = _rng("keras-bidirectional", reset_after)
    n_b, n_t, d_in, n_h = 2, 6, 3, 4
    xs = rng.normal(size=(n_b, n_t, d_in))
    with _jax_x64():
        stack, x = [], xs
        for d in (d_in, 2 * n_h):
            fwd, bwd = (
                keras.layers.GRU(
                    n_h,
                    reset_after=reset_after,
                    return_sequences=True,
                    activation=tanh,
                    dtype="float64",
                    go_backwards=backwards,
                )
                for backwards in (False, True)
            )
            layer = keras.layers.Bidirectional(fwd, backward_layer=bwd, dtype="float64")
            layer.build((None, None, d))
            layer.set_weights([rng.normal(size=tuple(w.shape)) for w in layer.weights])
            x = layer(x)
            stack.append(layer)
        expected = np.asarray(x)
    layers = [
        (interop.from_keras_gru(s.forward_layer), interop.from_keras_gru(s.backward_layer))
        for s in stack
    ]
    hs, h_n = polyrnn.gru_layers(xs, layers, bidirectional=True, reset_after=reset_after)
    assert expected.shape == hs.shape == (n_b, n_t, 2 * n_h)
    np.testing.assert_allclose(hs, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n[2], hs[:, -1, :n_h], rtol=0, atol=0)  # last layer, forward


def test_keras_default_tanh(keras: Any) -> None:
    """A layer with Keras's own ``activation="tanh"``: equal up to its float32 tanh."""
    rng = _rng("keras-default")
    xs = rng.normal(size=(2, 6, 3))
    with _jax_x64():
        layer = _keras_gru(keras, 4, True, 3, rng, activation="tanh")
        seq, state = layer(xs)
    hs, h = polyrnn.gru_scan(xs, interop.from_keras_gru(layer), reset_after=True)
    np.testing.assert_allclose(hs, np.asarray(seq), rtol=0, atol=2e-6)
    np.testing.assert_allclose(h, np.asarray(state), rtol=0, atol=2e-6)


@pytest.mark.parametrize("reset_after", [True, False])
def test_to_keras_gru_layer_computes_polyrnn(keras: Any, reset_after: bool) -> None:
    """Params with distinct non-zero b_x and b_h, set into a layer, compute gru_scan's result.

    With ``reset_after=False`` all of ``b_h`` folds into Keras's single bias.
    """
    rng = _rng("to_keras", reset_after)
    params = _random_gru(3, 4, rng)
    xs = rng.normal(size=(2, 5, 3))
    weights = interop.to_keras_gru(params, reset_after=reset_after)
    assert [w.shape for w in weights] == [(3, 12), (4, 12), (2, 12) if reset_after else (12,)]
    with _jax_x64():
        layer = _keras_gru(keras, 4, reset_after, 3, rng)
        layer.set_weights(weights)
        seq, state = layer(xs)
    hs, h = polyrnn.gru_scan(xs, params, reset_after=reset_after)
    np.testing.assert_allclose(np.asarray(seq), hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(state), h, rtol=1e-12, atol=1e-12)
    # ... and back: reset_after=True is exact; False gives the folded biases.
    back = interop.from_keras_gru(weights, reset_after=reset_after)
    np.testing.assert_array_equal(back.w_x, params.w_x)
    np.testing.assert_array_equal(back.w_h, params.w_h)
    if reset_after:
        np.testing.assert_array_equal(back.b_x, params.b_x)
        np.testing.assert_array_equal(back.b_h, params.b_h)
    else:
        np.testing.assert_allclose(back.b_x, params.b_x + params.b_h, rtol=0, atol=0)
        assert not back.b_h.any()


def test_keras_cell_no_bias_and_xp(keras: Any) -> None:
    """A ``GRUCell``, a layer with ``use_bias=False``, and ``xp=jax.numpy``."""
    import jax
    import jax.numpy as jnp

    rng = _rng("keras-cell")
    xs = rng.normal(size=(3, 4))
    h = rng.normal(size=(3, 2))
    with _jax_x64():
        cell = keras.layers.GRUCell(
            2,
            dtype="float64",
            activation=jnp.tanh,
            kernel_initializer="zeros",
            recurrent_initializer="zeros",
        )
        cell.build((None, 4))
        cell.set_weights([rng.normal(size=tuple(w.shape)) for w in cell.weights])
        ref, _ = cell(xs, [h])
        nobias = _keras_gru(keras, 2, False, 4, rng, use_bias=False)
        seq, _ = nobias(xs[None])
        p = interop.from_keras_gru(cell, xp=jnp)
        assert all(isinstance(a, jax.Array) and a.dtype == jnp.float64 for a in p)
        got = polyrnn.gru_cell(p, jnp.asarray(h), jnp.asarray(xs), reset_after=True)
        np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-12, atol=1e-12)
    p = interop.from_keras_gru(nobias)
    assert not p.b_x.any()
    assert not p.b_h.any()
    hs, _ = polyrnn.gru_scan(xs[None], p, reset_after=False)
    np.testing.assert_allclose(hs, np.asarray(seq), rtol=1e-12, atol=1e-12)


def test_keras_errors(keras: Any) -> None:
    k, r = np.zeros((3, 6)), np.zeros((2, 6))
    with pytest.raises(ValueError, match=r"bias of shape \(2, 6\).*reset_after=True.*False"):
        interop.from_keras_gru([k, r, np.zeros((2, 6))], reset_after=False)
    with pytest.raises(ValueError, match=r"bias must have shape \(2, 6\).*or \(6,\).*\(5,\)"):
        interop.from_keras_gru([k, r, np.zeros(5)])
    with pytest.raises(ValueError, match=r"kernel must have shape \(D, 6\).*\(3, 7\)"):
        interop.from_keras_gru([np.zeros((3, 7)), r])
    with pytest.raises(ValueError, match="got 4 arrays"):
        interop.from_keras_gru([k, r, k, r])
    with pytest.raises(TypeError, match="kernel must have a real floating dtype"):
        interop.from_keras_gru([np.zeros((3, 6), int), r])
    with pytest.raises(TypeError, match="Keras GRU layer or cell.*int"):
        interop.from_keras_gru(3)
    with pytest.raises(TypeError, match="reset_after must be True or False"):
        interop.to_keras_gru(polyrnn.init_gru(2, 2), reset_after=None)  # type: ignore[arg-type]
    with _jax_x64():
        relu = keras.layers.GRU(2, activation="relu", recurrent_initializer="zeros")
        relu.build((None, None, 3))
        layer = keras.layers.GRU(2, reset_after=True, recurrent_initializer="zeros")
        layer.build((None, None, 3))
    with pytest.raises(ValueError, match="activation must be 'tanh'.*'relu'"):
        interop.from_keras_gru(relu)
    with pytest.raises(ValueError, match="contradicts the layer's reset_after=True"):
        interop.from_keras_gru(layer, reset_after=False)
    with pytest.raises(ValueError, match="no weights yet"):
        interop.from_keras_gru(keras.layers.GRU(2))


# ============================================================================ Flax


@pytest.fixture(scope="module")
def flax_linen() -> Any:
    return pytest.importorskip("flax.linen")


def _flax_cell_run(
    nn: Any, n_h: int, xs: np.ndarray, h0: np.ndarray | None, rng: np.random.Generator
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Random (non-zero bias) variables of a GRUCell, run step by step: (params, ys, carry)."""
    import jax
    import jax.numpy as jnp

    cell = nn.GRUCell(features=n_h, param_dtype=jnp.float64)
    carry = jnp.zeros((xs.shape[0], n_h)) if h0 is None else jnp.asarray(h0)
    # flax's own structure and shapes (traced, not computed: fast), random values
    shapes = jax.eval_shape(cell.init, jax.random.key(0), carry, jnp.asarray(xs[:, 0]))
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(rng.normal(size=a.shape)), shapes)
    step = jax.jit(cell.apply)  # one compilation, not one per operation
    ys = []
    for t in range(xs.shape[1]):
        carry, y = step(variables, carry, jnp.asarray(xs[:, t]))
        ys.append(np.asarray(y))
    return variables["params"], np.stack(ys, axis=1), np.asarray(carry)


FLAX_CASES = [((1, 1, 1, 1), False), ((4, 3, 5, 3), True)]  # (T, B, D, H), with h0


@pytest.mark.parametrize(("size", "with_h0"), FLAX_CASES, ids=str)
def test_from_flax_gru_matches_cell(flax_linen: Any, size: tuple[int, ...], with_h0: bool) -> None:
    """``gru_scan(reset_after=True)`` with ``from_flax_gru`` gives the GRUCell's steps."""
    import jax.numpy as jnp

    n_t, n_b, d_in, n_h = size
    rng = _rng("flax", size, with_h0)
    xs = rng.normal(size=(n_b, n_t, d_in))
    h0 = rng.normal(size=(n_b, n_h)) if with_h0 else None
    with _jax_x64():
        cell_params, ys, carry = _flax_cell_run(flax_linen, n_h, xs, h0, rng)
        params = interop.from_flax_gru({"params": cell_params})
        assert all(isinstance(a, type(jnp.zeros(1))) for a in params)
        hs, h = polyrnn.gru_scan(
            jnp.asarray(xs), params, None if h0 is None else jnp.asarray(h0), reset_after=True
        )
        np.testing.assert_allclose(np.asarray(hs), ys, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(h), carry, rtol=1e-12, atol=1e-12)
        # the inner dict, and NumPy out
        p_np = interop.from_flax_gru(cell_params, xp=np)
        assert all(isinstance(a, np.ndarray) for a in p_np)
        hs_np, _ = polyrnn.gru_scan(xs, p_np, h0, reset_after=True)
        np.testing.assert_allclose(hs_np, ys, rtol=1e-12, atol=1e-12)


def test_to_flax_gru_cell_computes_polyrnn(flax_linen: Any) -> None:
    """Params with non-zero b_hr, b_hz (folded by to_flax_gru) in a flax cell and an RNN."""
    import jax.numpy as jnp

    rng = _rng("to_flax")
    params = _random_gru(3, 4, rng)
    xs, h0 = rng.normal(size=(2, 6, 3)), rng.normal(size=(2, 4))
    hs, h_last = polyrnn.gru_scan(xs, params, h0, reset_after=True)
    with _jax_x64():
        variables = interop.to_flax_gru(params, xp=jnp)
        cell = flax_linen.GRUCell(features=4, param_dtype=jnp.float64)
        h, _ = cell.apply(variables, jnp.asarray(h0), jnp.asarray(xs[:, 0]))
        np.testing.assert_allclose(np.asarray(h), hs[:, 0], rtol=1e-12, atol=1e-12)
        rnn = flax_linen.RNN(cell, return_carry=True)
        carry, ys = rnn.apply(
            {"params": {"cell": variables["params"]}},
            jnp.asarray(xs),
            initial_carry=jnp.asarray(h0),
        )
        np.testing.assert_allclose(np.asarray(ys), hs, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(carry), h_last, rtol=1e-12, atol=1e-12)
        # round trip: exact up to the fold of b_hr, b_hz into the input bias
        back = interop.from_flax_gru(variables, xp=np)
        np.testing.assert_array_equal(back.w_x, params.w_x)
        np.testing.assert_array_equal(back.w_h, params.w_h)
        folded = params.b_x + np.concatenate([params.b_h[:8], np.zeros(4)])
        np.testing.assert_array_equal(back.b_x, folded)
        np.testing.assert_array_equal(back.b_h, np.concatenate([np.zeros(8), params.b_h[8:]]))
        again = interop.to_flax_gru(back)
        for name, sub in variables["params"].items():
            for leaf, value in sub.items():
                np.testing.assert_array_equal(again["params"][name][leaf], np.asarray(value))


def test_flax_errors() -> None:
    good = interop.to_flax_gru(polyrnn.init_gru(3, 2))["params"]
    with pytest.raises(ValueError, match=r"'hz' is missing"):
        interop.from_flax_gru({k: v for k, v in good.items() if k != "hz"})
    with pytest.raises(ValueError, match=r"\['hr'\] has unexpected entries \['bias'\]"):
        interop.from_flax_gru({**good, "hr": {**good["hr"], "bias": np.zeros(2)}})
    with pytest.raises(ValueError, match=r"\['iz'\]\['kernel'\] must have shape \(3, 2\)"):
        interop.from_flax_gru({**good, "iz": {**good["iz"], "kernel": np.zeros((4, 2))}})
    with pytest.raises(TypeError, match="must be the dict of a flax GRUCell"):
        interop.from_flax_gru([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="params must be GRUParams.*LSTMParams"):
        interop.to_flax_gru(polyrnn.init_lstm(3, 2))  # type: ignore[arg-type]


# ============================================================================ seed notebook


def test_seed_gru_is_the_notebook_equation() -> None:
    """from_seed_gru negates the update gate: h' = u c + (1 - u) h, step by step, float64."""
    rng = _rng("seed-gru")
    n_h, d_in = 3, 2
    ws = [rng.normal(size=(n_h, n_h + d_in)) for _ in range(3)]
    bs = [rng.normal(size=(n_h, 1)) for _ in range(3)]
    h, x = rng.normal(size=(n_h, 1)), rng.normal(size=(d_in, 1))
    sig = lambda v: 1 / (1 + np.exp(-v))
    r = sig(ws[0] @ np.vstack([h, x]) + bs[0])
    u = sig(ws[1] @ np.vstack([h, x]) + bs[1])
    c = np.tanh(ws[2] @ np.vstack([r * h, x]) + bs[2])
    expected = u * c + (1 - u) * h
    params = interop.from_seed_gru(*ws, *bs)
    got = polyrnn.gru_cell(params, h[:, 0], x[:, 0], reset_after=False)
    np.testing.assert_allclose(got, expected[:, 0], rtol=1e-13, atol=1e-14)
    # and the inverse, with the polyrnn bias split over b_x and b_h
    p2 = params._replace(b_x=params.b_x - 0.25, b_h=params.b_h + 0.25)
    for a, b in zip(interop.to_seed_gru(p2), (*ws, *bs), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)


def test_seed_converters_keep_torch_autograd(torch: Any) -> None:
    """Seed converters stay in the inputs' library, and gradients pass through them."""
    w = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 1, dtype=torch.float64)
    p = interop.from_seed_rnn(w, b)
    assert isinstance(p.w_x, torch.Tensor)
    assert p.w_x.shape == (3, 2)
    p.w_x.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.hstack([np.zeros((2, 2)), np.ones((2, 3))]))


def test_seed_errors() -> None:
    w, b = np.zeros((2, 5)), np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"w_h must have shape \(H, H \+ D\).*\(2, 2\)"):
        interop.from_seed_rnn(np.zeros((2, 2)), b)
    with pytest.raises(ValueError, match=r"b_h must have shape \(2, 1\).*\(3, 1\)"):
        interop.from_seed_rnn(w, np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"w_u must have shape \(2, 5\).*\(2, 6\)"):
        interop.from_seed_gru(w, np.zeros((2, 6)), w, b, b, b)
    with pytest.raises(TypeError, match=r"b_u must have dtype float\d+ \(the dtype of w_r\)"):
        interop.from_seed_gru(w, w, w, b, b.astype(np.float32), b)
    with pytest.raises(TypeError, match="must be an array"):
        interop.from_seed_rnn([[0.0, 0.0]], b)
    with pytest.raises(TypeError, match="params must be RNNParams"):
        interop.to_seed_rnn(polyrnn.init_gru(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        interop.to_seed_readout(np.zeros((2, 3)), np.zeros(2))
