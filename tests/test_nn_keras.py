"""``polyrnn.nn.keras.SimpleRNN/GRU/LSTM`` against independent references.

On the Keras backend the session sets (``KERAS_BACKEND``: jax in the jax session, torch in
the torch session):

- Keras's own ``keras.layers.SimpleRNN``, ``GRU`` (both ``reset_after``) and ``LSTM``
  with the same weights: outputs and states with ``return_sequences``, ``return_state``,
  ``go_backwards``, masks (given, from ``Masking`` and ``Embedding(mask_zero=True)``),
  initial states, input dropout from the same seed, and the losses of two epochs of
  ``fit``;
- the seed notebook's printed numbers for its GRU (``reset_after=False``);
- a model saved to a ``.keras`` file and loaded again: the very same predictions;
- for polyrnn's other cells (``cell="ln_gru"``, ``"min_gru"``, ``"min_lstm"``,
  ``"ln_lstm"``), which Keras lacks: polyrnn's NumPy float64 scans with the same weights
  (outputs and states, masked, backwards) and their NumPy VJPs (the step of one ``fit``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pk = pytest.importorskip("polyrnn.nn.keras")

from other_cells import OTHER_CELLS, OTHER_IDS, OTHERS
from test_seed import GOLDEN_ATOL, PRINTED_FEATURES, SCAN_GRU_Y, _printed

import polyrnn
from polyrnn import backends, interop

TOL = 2e-5
"""float32 against Keras's layer, the brief's tolerance: the same equations summed in
another order (measured up to 5e-7 through these 6-step scans, on JAX and on torch)."""
FIT_RTOL = 1e-5
"""The losses of 2 epochs of Adam (6 steps) on both models, relative: float32 rounding
differences of the forward and backward passes, measured up to 2e-7."""
FIT_WEIGHTS_ATOL = 1e-5
"""The weights after those 6 steps, absolute (they are of order 1): measured up to 7.5e-7.
Adam divides each gradient by its running norm, so where a gradient is near zero its
float32 rounding moves a step by more than the loss shows."""
GRAD_TOL = 1e-6
"""One SGD step of ``fit`` (learning rate 1, so the step is the gradient; float32) against
the NumPy float64 VJP of polyrnn's scans, absolute (the gradients are of order 1e-2):
measured up to 8e-8 (the outputs against the float64 scans, to ``TOL``: 2.4e-7)."""
D, H = 4, 5
KERAS_NUMPY2 = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
"""Keras's own warning under NumPy 2, where ``predict`` and ``save`` turn a backend tensor
into a NumPy array."""
CASES = [
    ("SimpleRNN", {}),
    ("SimpleRNN", {"activation": "relu"}),
    ("GRU", {"reset_after": True}),
    ("GRU", {"reset_after": False}),
    ("LSTM", {}),
]
IDS = ["rnn-tanh", "rnn-relu", "gru-after", "gru-before", "lstm"]


def numpy(a: Any) -> np.ndarray:
    """A backend tensor on the host (through polyrnn: Keras's ``convert_to_numpy`` warns
    under NumPy 2 on torch tensors)."""
    return backends.to_numpy(a)


def weights(layer: Any) -> list[np.ndarray]:
    """``layer.get_weights()`` without Keras's NumPy-2 ``__array__`` warning: copies (a
    torch variable's host view would follow the training)."""
    return [numpy(v.value).copy() for v in layer.weights]


def twins(kind: str, options: dict[str, Any], **kw: Any) -> tuple[Any, Any]:
    """``(keras layer, polyrnn layer)`` of one configuration, built, with the same random
    weights (biases included, so that every bias term counts)."""
    kw = {**options, **kw}
    ref = getattr(keras.layers, kind)(H, **kw)
    ours = getattr(pk, kind)(H, **kw)
    ref.build((None, None, D))
    ours.build((None, None, D))
    rng = np.random.default_rng(0)
    ws = [(0.5 * rng.normal(size=w.shape)).astype("float32") for w in weights(ref)]
    ref.set_weights(ws)
    ours.set_weights(ws)
    return ref, ours


def inputs(n: int = 3, t: int = 6) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, t, D)).astype("float32")


MASK = np.array([[1] * 6, [1] * 3 + [0] * 3, [0] * 6], dtype=bool)
"""Right-padded rows: full, half, and empty (the state stays the initial one)."""


def close(actual: Any, expected: Any, tol: float = TOL) -> None:
    actual, expected = numpy(actual), numpy(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def all_close(ours: Any, ref: Any, tol: float = TOL) -> None:
    ours = ours if isinstance(ours, tuple | list) else (ours,)
    ref = ref if isinstance(ref, tuple | list) else (ref,)
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref, strict=True):
        close(a, b, tol)


# --------------------------------------------------------------------------- the same outputs


@pytest.mark.parametrize(
    ("kind", "options", "go_backwards"),
    [(*case, backwards) for case in CASES for backwards in (False, True)],
    ids=[f"{name}-{way}" for name in IDS for way in ("fwd", "bwd")],
)
def test_same_outputs_and_states_as_keras(kind, options, go_backwards):
    ref, ours = twins(
        kind, options, return_sequences=True, return_state=True, go_backwards=go_backwards
    )
    x = inputs()
    all_close(ours(x), ref(x))
    states = 2 if kind == "LSTM" else 1
    gen = np.random.default_rng(2)
    h0 = [gen.normal(size=(3, H)).astype("float32") for _ in range(states)]
    all_close(ours(x, initial_state=h0, mask=MASK), ref(x, initial_state=h0, mask=MASK))


@pytest.mark.parametrize(("kind", "options"), CASES[2:], ids=IDS[2:])
def test_last_output_and_masked_steps_as_keras(kind, options):
    """Without ``return_sequences`` (Keras's last output, masked or not), with
    ``zero_output_for_mask``, and without biases."""
    x = inputs()
    for go_backwards, zero_output, sequences in (
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (True, True, True),
    ):
        kw = {"go_backwards": go_backwards, "zero_output_for_mask": zero_output}
        ref, ours = twins(kind, options, return_sequences=sequences, **kw)
        all_close(ours(x, mask=MASK), ref(x, mask=MASK))
    # use_bias=False against Keras's layer with zero biases (Keras's own GRU(use_bias=False,
    # reset_after=True) fails under the suite's strict JAX dtype promotion)
    ref, _ = twins(kind, options, return_state=True)
    kernel, recurrent, bias = weights(ref)
    ref.set_weights([kernel, recurrent, np.zeros_like(bias)])
    ours = getattr(pk, kind)(H, use_bias=False, return_state=True, **options)
    ours(x)
    ours.set_weights([kernel, recurrent])
    all_close(ours(x), ref(x))


@pytest.mark.parametrize(("kind", "options"), CASES[::2], ids=IDS[::2])
def test_input_dropout_as_keras_from_the_same_seed(kind, options):
    """Keras draws one input mask per call from the layer's seed; so does polyrnn's layer,
    in training only."""
    ref, ours = twins(kind, options, dropout=0.4, seed=3, return_sequences=True)
    x = inputs()
    dropped = ours(x, training=True)
    close(dropped, ref(x, training=True))
    close(ours(x), ref(x))  # inference: nothing dropped
    assert np.abs(numpy(dropped) - numpy(ours(x))).max() > 1e-3


def test_recurrent_dropout_simple_rnn_as_keras_from_the_same_seed():
    """The SimpleRNN's input and recurrent masks are Keras's (one each, the same draws)."""
    ref, ours = twins("SimpleRNN", {}, dropout=0.3, recurrent_dropout=0.4, seed=5)
    x = inputs()
    close(ours(x, training=True), ref(x, training=True))
    close(ours(x), ref(x))


@pytest.mark.parametrize(("kind", "options"), CASES[2:], ids=IDS[2:])
def test_recurrent_dropout_as_keras_with_one_mask_for_all_gates(kind, options):
    """The GRU and LSTM draw one input and one recurrent mask from the seed, where Keras
    draws one per gate: Keras's layer given those masks for every gate (its cached
    masks, which its call reads) computes what polyrnn's does."""
    ref, ours = twins(kind, options, dropout=0.3, recurrent_dropout=0.4, seed=5)
    x = inputs()
    gen = keras.random.SeedGenerator(5)  # the layer's draws, in its order
    ones = keras.ops.ones
    keep_x = keras.random.dropout(ones((3, D)), rate=0.3, seed=gen)
    keep_h = keras.random.dropout(ones((3, H)), rate=0.4, seed=gen)
    ours_out = ours(x, training=True)
    gates = ref.cell.dropout_mask_count  # 3 for the GRU, 4 for the LSTM
    ref.cell._dropout_mask = [keep_x] * gates
    ref.cell._recurrent_dropout_mask = [keep_h] * gates
    close(ours_out, ref(x, training=True))
    assert np.abs(numpy(ours_out) - numpy(ours(x))).max() > 1e-3


def sequential(layer: Any, first: Any) -> Any:
    return keras.Sequential([first, layer, keras.layers.Dense(1)])


@KERAS_NUMPY2
def test_keras_masks_become_lengths():
    """A ``Masking`` layer and an ``Embedding(mask_zero=True)`` in a model: the same
    predictions as Keras's GRU (``predict``: compiled on JAX, so the mask is traced)."""
    x = inputs()
    x[1, 3:] = 0.0
    tokens = np.array([[3, 1, 2, 2, 0, 0], [1, 0, 0, 0, 0, 0]], dtype="int32")
    for first, data in (
        (lambda: keras.layers.Masking(0.0), x),
        (lambda: keras.layers.Embedding(4, D, mask_zero=True), tokens),
    ):
        models = []
        for lib in (keras.layers, pk):
            model = sequential(lib.GRU(H, return_sequences=True, reset_after=False), first())
            model(data[:1])
            models.append(model)
        models[1].set_weights(weights(models[0]))
        all_close(models[1].predict(data, verbose=0), models[0].predict(data, verbose=0))


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("GRU", {"reset_after": True}), ("LSTM", {})),
        (("GRU", {"reset_after": False}), ("SimpleRNN", {})),
    ],
    ids=["gru-after+lstm", "gru-before+rnn"],
)
def test_fit_follows_keras_losses(first, second):
    """Two epochs of ``fit`` (Adam, batches of 4, no shuffling) of two stacked layers, the
    first with input dropout from one seed, from the same weights: the same losses, to
    ``FIT_RTOL``, and the same weights after (the same dropout masks: Keras's draws)."""
    keras.utils.set_random_seed(0)  # Keras's initial weights
    gen = np.random.default_rng(0)
    x = gen.normal(size=(12, 6, D)).astype("float32")
    y = np.sin(x[..., 0].cumsum(axis=1))[:, -1:].astype("float32")  # needs memory
    histories, models = [], []
    for lib in (keras.layers, pk):
        layers = [
            keras.Input((6, D)),
            getattr(lib, first[0])(H, return_sequences=True, dropout=0.3, seed=1, **first[1]),
            getattr(lib, second[0])(H, **second[1]),
            keras.layers.Dense(1),
        ]
        models.append(keras.Sequential(layers))
    start = weights(models[0])
    models[1].set_weights(start)
    for model in models:
        model.compile(optimizer=keras.optimizers.Adam(0.02), loss="mse")
        fit = model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        histories.append(fit.history["loss"])
    np.testing.assert_allclose(histories[1], histories[0], rtol=FIT_RTOL, atol=0)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(weights(models[1]), start, strict=True))
    for a, b in zip(weights(models[1]), weights(models[0]), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=FIT_WEIGHTS_ATOL)


@KERAS_NUMPY2
def test_saved_model_reloads_with_identical_predictions(tmp_path):
    tokens = np.array([[3, 1, 2, 2, 0, 0], [1, 2, 0, 0, 0, 0]], dtype="int32")
    inner = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            keras.layers.Embedding(4, D, mask_zero=True),
            pk.GRU(H, return_sequences=True, reset_after=False, go_backwards=True),
            pk.LSTM(H, return_sequences=True, dropout=0.1, seed=4),
            pk.SimpleRNN(H, activation="sigmoid"),
            keras.layers.Dense(1),
        ]
    )
    path = tmp_path / "model.keras"
    inner.save(path)
    loaded = keras.saving.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in inner.layers]
    for a, b in zip(loaded.layers[1:4], inner.layers[1:4], strict=True):
        assert a.get_config() | {"name": None} == b.get_config() | {"name": None}
    expected = numpy(inner.predict(tokens, verbose=0))
    np.testing.assert_array_equal(numpy(loaded.predict(tokens, verbose=0)), expected)


def test_keras_configs_give_the_same_layer():
    """``from_config`` of a Keras layer's config (the drop-in of a saved architecture)."""
    x = inputs()
    for kind in ("SimpleRNN", "GRU", "LSTM"):
        ref = getattr(keras.layers, kind)(H, return_sequences=True, go_backwards=True)
        ref(x)
        ours = getattr(pk, kind).from_config(ref.get_config())
        ours(x)
        ours.set_weights(weights(ref))
        all_close(ours(x), ref(x))


def test_bidirectional_wrapper_as_keras():
    """``keras.layers.Bidirectional`` makes the backward copy from the layer's config
    (``go_backwards`` flipped): the same outputs as Keras's bidirectional LSTM, masked."""
    x = inputs()
    ref = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True))
    ours = keras.layers.Bidirectional(pk.LSTM(H, return_sequences=True))
    ref.build(x.shape)
    ours.build(x.shape)
    assert type(ours.backward_layer) is pk.LSTM and ours.backward_layer.go_backwards
    ours.set_weights(weights(ref))
    all_close(ours(x, mask=MASK), ref(x, mask=MASK))


# --------------------------------------------------------------------------- the seed notebook


def test_seed_notebook_gru_as_a_keras_layer():
    """The notebook's GRU (reset gate before the product) as ``GRU(16, reset_after=False)``
    with its converted weights reproduces the numbers it printed (In [17])."""
    with np.load(os.path.join(os.path.dirname(__file__), "data", "seed_weights.npz")) as f:
        seed = {k: f[k].astype("float32") for k in f.files}
    params = interop.from_seed_gru(*(seed[k] for k in ("w1", "w2", "w3", "b1", "b2", "b3")))
    layer = pk.GRU(16, reset_after=False, return_sequences=True)
    xs = seed["X"][None, :, :, 0]  # (1, T, D): the notebook's (T, D, 1)
    layer(xs[:, :1])
    layer.set_weights(interop.to_keras_gru(params, reset_after=False))
    hs = numpy(layer(xs))[0]
    w, b = interop.from_seed_readout(seed["w4"], seed["b4"])
    ys = 1.0 / (1.0 + np.exp(-(hs @ w + b)))
    steps, printed = _printed(SCAN_GRU_Y)
    np.testing.assert_allclose(ys[steps][:, PRINTED_FEATURES], printed, rtol=0, atol=GOLDEN_ATOL)


# --------------------------------------------------------------------------- errors


def test_unsupported_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match=r"recurrent_dropout must be a number in \[0, 1\)"):
        pk.GRU(3, recurrent_dropout=-0.1)
    with pytest.raises(NotImplementedError, match="stateful=True is not supported"):
        pk.LSTM(3, stateful=True)
    with pytest.raises(ValueError, match=r"activation must be one of 'tanh'.*got 'relu'"):
        pk.GRU(3, activation="relu")
    with pytest.raises(ValueError, match=r"recurrent_activation must be one of 'sigmoid'"):
        pk.LSTM(3, recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1"):
        pk.SimpleRNN(3, dropout=1)
    with pytest.raises(ValueError, match="units must be a positive integer, got 0"):
        pk.GRU(0)
    with pytest.raises(TypeError, match="reset_after must be True or False, got 1"):
        pk.GRU(3, reset_after=1)


def test_bad_masks_and_states_are_refused_clearly():
    layer = pk.GRU(H)
    x = inputs()
    holes = MASK.copy()
    holes[2, 4] = True
    with pytest.raises(ValueError, match=r"right-padded.*row 2 is \[0, 0, 0, 0, 1, 0\]"):
        layer(x, mask=holes)
    with pytest.raises(ValueError, match=r"initial_state must hold 2 tensor\(s\).*got 1"):
        pk.LSTM(H)(x, initial_state=[np.zeros((3, H), dtype="float32")])


# --------------------------------------------------------------------------- imports


def test_numpy_backend_infers_as_keras(tmp_path):
    """``KERAS_BACKEND=numpy`` (inference only), in a process of its own: the weights and
    inputs of a Keras GRU here give its outputs there."""
    if keras.backend.backend() != "jax":
        pytest.skip("backend-independent: run once, in the session with KERAS_BACKEND=jax")
    ref, _ = twins("GRU", {"reset_after": False}, return_sequences=True, go_backwards=True)
    x = inputs()
    np.savez(tmp_path / "in.npz", *weights(ref), x=x, mask=MASK)
    code = (
        "import sys, numpy as np, polyrnn.nn.keras as pk\n"
        "f = np.load(sys.argv[1])\n"
        "layer = pk.GRU(5, reset_after=False, return_sequences=True, go_backwards=True)\n"
        "layer(f['x'])\n"
        "layer.set_weights([f[f'arr_{i}'] for i in range(3)])\n"
        "np.save(sys.argv[2], layer(f['x'], mask=f['mask']))\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "numpy", "PYTHONPATH": os.pathsep.join(sys.path)}
    out = tmp_path / "out.npy"
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "in.npz"), str(out)], check=True, env=env
    )
    close(np.load(out), ref(x, mask=MASK))


def test_import_without_keras_names_the_extra():
    code = (
        "import sys; sys.modules['keras'] = None\n"
        "try:\n    import polyrnn.nn.keras\n"
        "except ImportError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert "polyrnn.nn.keras needs Keras 3" in done.stdout
    assert 'pip install "polyrnn[keras,jax]"' in done.stdout


# --------------------------------------------------------------------------- polyrnn's other cells


def zr(a: np.ndarray) -> np.ndarray:
    """Keras's GRU gate blocks ``(z, r, h)`` as polyrnn's ``(r, z, n)`` and back (the last
    axis)."""
    return np.concatenate([a[..., H : 2 * H], a[..., :H], a[..., 2 * H :]], axis=-1)


def cell_twin(kind: str, cell: str, **kw: Any) -> tuple[Any, Any]:
    """``(layer, float64 polyrnn parameters)``: the layer built with random weights (the
    normalisations' gains around 1), and the same numbers as polyrnn's parameters, read
    from the documented layout."""
    layer = getattr(pk, kind)(H, cell=cell, **kw)
    layer.build((None, None, D))
    rng = np.random.default_rng(0)
    ws = [
        (float("gamma" in v.name) + 0.5 * rng.normal(size=v.shape)).astype("float32")
        for v in layer.weights
    ]
    layer.set_weights(ws)
    w = [a.astype(np.float64) for a in ws]
    if cell == "min_gru":
        return layer, polyrnn.MinGRUParams(*w)
    if cell == "min_lstm":
        return layer, polyrnn.MinLSTMParams(*w)
    if cell == "ln_gru":
        kernel, recurrent, bias, g_x, g_h = w
        return layer, polyrnn.LNGRUParams(
            zr(kernel), zr(recurrent), zr(bias[0]), zr(bias[1]), zr(g_x), zr(g_h)
        )
    kernel, recurrent, bias, *norms = w
    return layer, polyrnn.LNLSTMParams(kernel, recurrent, bias, np.zeros_like(bias), *norms)


def expected(outputs: tuple[Any, Any], go_backwards: bool) -> list[np.ndarray]:
    """A scan's ``(hs, last)`` as the layer returns them (``return_sequences``,
    ``return_state``), in float32: ``hs`` in the order the steps were read."""
    hs, last = outputs
    hs = hs[:, ::-1] if go_backwards else hs
    last = list(last) if isinstance(last, tuple) else [last]
    return [a.astype(np.float32) for a in (hs, *last)]


@pytest.mark.parametrize("go_backwards", [False, True], ids=["fwd", "bwd"])
@pytest.mark.parametrize(("kind", "cell"), OTHER_CELLS, ids=OTHER_IDS)
def test_other_cells_as_polyrnn_numpy_scans(kind, cell, go_backwards):
    """Outputs and final states against polyrnn's NumPy float64 scan: plain, then masked
    (the mask as ``lengths``; ``zero_output_for_mask``: zeros on the padding, as polyrnn's
    scans) from an initial state; and the last output alone (``return_sequences=False``)."""
    layer, params = cell_twin(
        kind, cell, return_sequences=True, return_state=True, go_backwards=go_backwards,
        zero_output_for_mask=True,
    )  # fmt: skip
    scan = OTHERS[cell].scan
    x = inputs()
    x64 = x.astype(np.float64)
    all_close(layer(x), expected(scan(x64, params, reverse=go_backwards), go_backwards))
    gen = np.random.default_rng(2)
    h0 = [gen.normal(size=(3, H)).astype("float32") for _ in range(layer._states)]
    state0 = tuple(h.astype(np.float64) for h in h0)
    ref = scan(
        x64, params, state0 if len(h0) == 2 else state0[0], reverse=go_backwards,
        lengths=MASK.sum(axis=1),
    )  # fmt: skip
    all_close(layer(x, initial_state=h0, mask=MASK), expected(ref, go_backwards))
    config = {**layer.get_config(), "return_sequences": False, "return_state": False}
    last = type(layer).from_config(config)
    last.build((None, None, D))
    last.set_weights(weights(layer))
    assert last.cell == cell
    close(last(x), expected(scan(x64, params, reverse=go_backwards), go_backwards)[1])


@pytest.mark.parametrize(("kind", "cell"), OTHER_CELLS, ids=OTHER_IDS)
def test_other_cells_fit_step_follows_numpy_vjp(kind, cell):
    """One epoch of ``fit`` (SGD, learning rate 1, one batch) of a ``go_backwards`` layer
    under the mean squared error moves every weight by its gradient: that of polyrnn's
    NumPy float64 VJP, in the layer's layout."""
    layer, params = cell_twin(kind, cell, return_sequences=True, go_backwards=True)
    x = inputs()
    y = np.random.default_rng(3).normal(size=(3, 6, H)).astype("float32")
    model = keras.Sequential([keras.Input((6, D)), layer])
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="mse")
    before = weights(layer)
    model.fit(x, y, epochs=1, batch_size=3, shuffle=False, verbose=0)
    steps = [a - b for a, b in zip(before, weights(layer), strict=True)]
    (hs, _), backward = OTHERS[cell].vjp(x.astype(np.float64), params, reverse=True)
    d_out = 2.0 * (hs[:, ::-1] - y) / y.size  # the layer outputs the steps as read
    _, d, _ = backward(d_out[:, ::-1], None)
    if cell in ("min_gru", "min_lstm"):
        grads = [d.w_x, d.b_x]
    elif cell == "ln_gru":
        grads = [zr(d.w_x), zr(d.w_h), np.stack([zr(d.b_x), zr(d.b_h)]), zr(d.g_x), zr(d.g_h)]
    else:  # the layer's b_h is zero, not a weight: bias is b_x
        grads = [d.w_x, d.w_h, d.b_x, d.g_x, d.g_h, d.g_c, d.b_c]
    assert len(steps) == len(grads)
    for step, grad in zip(steps, grads, strict=True):
        assert np.abs(grad).max() > 1e-4  # every weight counts
        np.testing.assert_allclose(step, grad, rtol=0, atol=GRAD_TOL)


@KERAS_NUMPY2
def test_other_cells_saved_model_reloads_with_identical_predictions(tmp_path):
    """A model of a masked ``ln_gru`` and a ``min_lstm`` saved and loaded: the cells in the
    configs, the same weights and the very same predictions (compiled, mask traced)."""
    x = inputs()
    x[1, 3:] = 0.0
    model = keras.Sequential(
        [
            keras.Input((6, D)),
            keras.layers.Masking(0.0),
            pk.GRU(H, cell="ln_gru", return_sequences=True, dropout=0.1, seed=4),
            pk.GRU(H, cell="min_lstm", go_backwards=True),
            keras.layers.Dense(1),
        ]
    )
    path = tmp_path / "cells.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [layer.cell for layer in loaded.layers[1:3]] == ["ln_gru", "min_lstm"]
    for a, b in zip(weights(loaded), weights(model), strict=True):
        np.testing.assert_array_equal(a, b)
    expected_y = numpy(model.predict(x, verbose=0))
    np.testing.assert_array_equal(numpy(loaded.predict(x, verbose=0)), expected_y)


def test_bad_cells_are_refused_clearly():
    with pytest.raises(
        ValueError,
        match=r"GRU: cell must be one of 'gru', 'ln_gru', 'min_gru', 'min_lstm', got 'lstm'",
    ):
        pk.GRU(3, cell="lstm")
    with pytest.raises(ValueError, match=r"LSTM: cell must be one of 'lstm', 'ln_lstm', got 'gru'"):
        pk.LSTM(3, cell="gru")
    with pytest.raises(ValueError, match=r"SimpleRNN: cell must be one of 'rnn', got 'ln_gru'"):
        pk.SimpleRNN(3, cell="ln_gru")
    with pytest.raises(ValueError, match=r"reset_after=False .* cell='min_gru', which has no W_h"):
        pk.GRU(3, cell="min_gru", reset_after=False)
    with pytest.raises(
        ValueError, match=r"cell='ln_gru', which normalises h W_h whole, the reset-after form"
    ):
        pk.GRU(3, cell="ln_gru", reset_after=False)
    with pytest.raises(ValueError, match=r"cell='min_lstm' has no recurrent_kernel.*dropout=0.2"):
        pk.GRU(3, cell="min_lstm", recurrent_dropout=0.2)
    with pytest.raises(ValueError, match=r"so recurrent_regularizer cannot apply"):
        pk.GRU(3, cell="min_gru", recurrent_regularizer="l2")


@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_layer_normalised_cells_start_as_polyrnns_inits(unit_forget_bias):
    """The gains start at one and the normalisations' shifts at zero, as
    :func:`polyrnn.init_ln_gru` and :func:`polyrnn.init_ln_lstm` give them; the LSTM's
    ``unit_forget_bias`` starts its forget gate's shift at one (Keras's order i, f, c, o)."""
    gru = pk.GRU(H, cell="ln_gru")
    gru.build((None, None, D))
    lstm = pk.LSTM(H, cell="ln_lstm", unit_forget_bias=unit_forget_bias)
    lstm.build((None, None, D))
    g, ls = polyrnn.init_ln_gru(D, H, seed=0), polyrnn.init_ln_lstm(D, H, seed=0)
    got = {v.name: numpy(v.value) for v in gru.weights}
    np.testing.assert_array_equal(got["ln_gamma_kernel"], g.g_x)
    np.testing.assert_array_equal(got["ln_gamma_recurrent"], g.g_h)
    np.testing.assert_array_equal(got["bias"], np.stack([g.b_x, g.b_h]))
    got = {v.name: numpy(v.value) for v in lstm.weights}
    for name, want in [
        ("ln_gamma_kernel", ls.g_x),
        ("ln_gamma_recurrent", ls.g_h),
        ("ln_gamma_cell", ls.g_c),
        ("ln_beta_cell", ls.b_c),
    ]:
        np.testing.assert_array_equal(got[name], want, err_msg=name)
    forget = np.zeros(4 * H)
    forget[H : 2 * H] = float(unit_forget_bias)
    np.testing.assert_array_equal(got["bias"], ls.b_x + forget)
