"""``polyrnn.nn.flax.SimpleRNN/GRU/LSTM`` against independent references.

- flax's own ``nnx.RNN`` over ``nnx.SimpleCell``, ``nnx.GRUCell`` and ``nnx.LSTMCell``
  (two ``nnx.Bidirectional`` layers) with the same parameters (:func:`from_flax` and
  :func:`to_flax`): outputs, final carries, sequence lengths, every parameter's gradient
  under ``nnx.grad``, ``nnx.jit`` training steps with optax, ``nnx.vmap`` over a batch
  and over an ensemble of models;
- polyrnn's layers on NumPy (another backend, fed the module's weights) and finite
  differences for what flax lacks: the ``reset_after=False`` GRU and ``b_hn``;
- for polyrnn's other cells (``cell="ln_gru"``, ``"min_gru"``, ``"min_lstm"``,
  ``"ln_lstm"``), polyrnn's NumPy float64 single-layer scans and their VJPs, fed the
  module's parameters as documented: outputs and carries (eager and under ``nnx.jit``)
  and every parameter's gradient under ``nnx.grad``;
- the seed notebook's printed numbers (``tests/test_seed.py``'s), for its GRU as a module;
- the documented dropout masks, drawn again here from the same ``nnx.Rngs``.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
pf = pytest.importorskip("polyrnn.nn.flax")

import jax.numpy as jnp
from flax import nnx
from other_cells import OTHER_CELLS, OTHER_IDS, OTHERS
from test_seed import (
    DATA,
    GOLDEN_ATOL,
    PRINTED_FEATURES,
    SCAN_GRU_Y,
    STEP_GRU_H,
    STEP_GRU_Y,
    _printed,
)

import polyrnn
from polyrnn import interop

KINDS = ["SimpleRNN", "GRU", "LSTM"]
CELLS = {"SimpleRNN": nnx.SimpleCell, "GRU": nnx.GRUCell, "LSTM": nnx.LSTMCell}
TOL = {"float32": 2e-5, "float64": 1e-10}
"""Against flax: the same operations in another order (measured up to ~3e-7 in float32)."""
DTYPES = ["float32", "float64"]
D, H, L, B, T = 3, 4, 2, 3, 6
LENGTHS = np.array([6, 2, 4])


def need(dtype: str) -> Any:
    if dtype == "float64" and not jax.config.jax_enable_x64:
        pytest.skip("JAX runs without float64 here (jax_enable_x64 is off)")
    return jnp.dtype(dtype)


def normal(seed: int, shape: tuple[int, ...], dtype: Any) -> Any:
    return jax.random.normal(jax.random.key(seed), shape, dtype)


@functools.cache
def _stack(kind: str, dtype: Any, seed: int, cell: tuple[tuple[str, Any], ...]) -> Any:
    rngs = nnx.Rngs(seed)
    init = nnx.initializers.normal(0.5)  # for every weight: orthogonal ones compile QRs
    inits = {"kernel_init": init, "recurrent_kernel_init": init, "bias_init": init}
    out = []
    for layer in range(L):
        n_in = D if layer == 0 else 2 * H

        def make(n_in: int = n_in) -> Any:
            c = CELLS[kind](
                n_in, H, dtype=dtype, param_dtype=dtype, rngs=rngs, **inits, **dict(cell)
            )
            return nnx.RNN(c)

        out.append(nnx.Bidirectional(make(), make()))
    return nnx.List(out)


def flax_stack(kind: str, dtype: Any, seed: int = 1, **cell: Any) -> Any:
    """Two bidirectional flax layers of ``kind`` with random weights and biases, in an
    ``nnx.List`` (made once, copied for each test)."""
    return nnx.clone(_stack(kind, dtype, seed, tuple(sorted(cell.items()))))


def flax_run(stack: Any, x: Any, carry: Any = None, lengths: Any = None) -> tuple[Any, Any]:
    """``(carry, outputs)`` of flax's layers in turn, carries stacked as polyrnn's."""
    carries = []
    for i, layer in enumerate(stack):
        init = None
        if carry is not None:  # a pair of arrays for the LSTM: (c[k], h[k]), flax's carry
            init = tuple(jax.tree.map(lambda a, k=k: a[k], carry) for k in (2 * i, 2 * i + 1))
        (fwd, bwd), x = layer(x, initial_carry=init, seq_lengths=lengths, return_carry=True)
        carries += [fwd, bwd]
    return jax.tree.map(lambda *a: jnp.stack(a), *carries), x


flax_jit = nnx.jit(flax_run)
"""flax's layers compiled: run eagerly, ``nnx.RNN`` traces its scan at every call."""


@nnx.jit
def ours_jit(m: Any, x: Any, carry: Any = None, lengths: Any = None) -> tuple[Any, Any]:
    return m(x, initial_carry=carry, seq_lengths=lengths, return_carry=True)


def close(actual: Any, expected: Any, dtype: Any) -> None:
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert a.dtype == e.dtype and a.shape == e.shape
        tol = TOL[str(a.dtype)]
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=tol, atol=tol)


def carry_of(kind: str, dtype: Any, batch: tuple[int, ...] = (B,)) -> Any:
    h = normal(7, (2 * L, *batch, H), dtype)
    return (normal(8, h.shape, dtype), h) if kind == "LSTM" else h


def params_of(module: Any) -> dict[str, Any]:
    return nnx.to_pure_dict(nnx.state(module, nnx.Param))


# --------------------------------------------------------------------------- flax's numbers


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_same_outputs_and_carry_as_flax(kind: str, dtype: str) -> None:
    dt = need(dtype)
    stack = flax_stack(kind, dt)
    ours = pf.from_flax(list(stack))
    assert type(ours).__name__ == kind and ours.num_layers == L and ours.bidirectional
    x, h0 = normal(0, (B, T, D), dt), carry_of(kind, dt)
    close(ours_jit(ours, x, h0), flax_jit(stack, x, h0), dt)
    # sequence lengths: flax runs on past them; its outputs there are not compared
    lengths = jnp.asarray(LENGTHS)
    carry, out = ours_jit(ours, x, h0, lengths)
    carry_ref, out_ref = flax_jit(stack, x, h0, lengths)
    valid = (jnp.arange(T)[None, :] < lengths[:, None])[..., None]
    close(carry, carry_ref, dt)
    close(jnp.where(valid, out, 0), jnp.where(valid, out_ref, 0), dt)
    assert bool((jnp.where(valid, 0, out) == 0).all())
    # and back: flax's very parameters
    for mine, theirs in zip(pf.to_flax(ours), stack, strict=True):
        jax.tree.map(np.testing.assert_array_equal, params_of(mine), params_of(theirs))


@pytest.mark.parametrize("kind", KINDS)
def test_eager_time_major_and_unbatched_as_flax(kind: str) -> None:
    """Eager calls (the others are compiled), time-major and unbatched inputs."""
    dt = need("float64")
    stack = flax_stack(kind, dt)
    ours = pf.from_flax(list(stack), time_major=True)
    x = normal(0, (T, B, D), dt)  # (T, B, D)
    ref = nnx.jit(lambda s, x: s[1](s[0](x, time_major=True), time_major=True))(stack, x)
    close(ours(x), ref, dt)
    x1, h1 = x[:, 0], carry_of(kind, dt, batch=())  # unbatched (T, D), carry (2L, H)
    close(ours(x1, initial_carry=h1, return_carry=True), flax_jit(stack, x1, h1), dt)


def test_relu_and_sigmoid_simple_cells_as_flax() -> None:
    dt = need("float64")
    x = normal(0, (B, T, D), dt)
    for fn, name in ((nnx.relu, "relu"), (nnx.sigmoid, "sigmoid")):
        stack = flax_stack("SimpleRNN", dt, activation_fn=fn)
        ours = pf.from_flax(list(stack))
        assert ours.activation == name
        close(ours_jit(ours, x), flax_jit(stack, x), dt)


def test_init_draws_nnx_grucells_weights() -> None:
    """``GRU(D, H, rngs=nnx.Rngs(s))`` draws what ``nnx.GRUCell(D, H, rngs=nnx.Rngs(s))``
    draws, so a seed gives flax's model."""
    ours = pf.GRU(D, H, rngs=nnx.Rngs(3))
    cell = nnx.GRUCell(D, H, rngs=nnx.Rngs(3))
    w = ours.layers[0].forward
    np.testing.assert_array_equal(w.kernel[...], cell.dense_i.kernel[...])
    np.testing.assert_array_equal(w.recurrent_kernel[...], cell.dense_h.kernel[...])
    x = normal(0, (B, T, D), jnp.float32)
    close(ours(x), nnx.RNN(cell)(x), jnp.float32)


# --------------------------------------------------------------------------- transforms


def weights_of(seed: int, out: Any) -> Any:
    """A fixed random weighting of every output (so each one's gradient counts)."""
    leaves, tree = jax.tree.flatten(out)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return tree.unflatten(
        [jax.random.normal(k, a.shape, a.dtype) for k, a in zip(keys, leaves, strict=True)]
    )


def weighted(out: Any, w: Any) -> Any:
    return sum(
        jnp.sum(a * b) for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(w), strict=True)
    )


NOT_B_HN = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("recurrent_bias")))
"""Every parameter but the GRU's ``b_hn``, which flax's GRUCell does not have."""


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [("SimpleRNN", "float64"), ("GRU", "float32"), ("GRU", "float64"), ("LSTM", "float64")],
)
def test_gradients_under_nnx_grad_as_flax(kind: str, dtype: str) -> None:
    """Every parameter's gradient, and the inputs' and initial carry's, under ``nnx.grad``
    (compiled); the GRU's ``b_hn``, which flax lacks, against a central difference."""
    dt = need(dtype)
    stack = flax_stack(kind, dt)
    ours = pf.from_flax(list(stack))
    x, h0 = normal(0, (B, T, D), dt), carry_of(kind, dt)
    w = weights_of(3, flax_jit(stack, x, h0))

    def loss_ours(m: Any, x: Any, h0: Any) -> Any:
        return weighted(m(x, initial_carry=h0, return_carry=True), w)

    def loss_flax(layers: Any, x: Any, h0: Any) -> Any:
        return weighted(flax_run(layers, x, h0), w)

    g_ours, gx_ours, gh_ours = nnx.jit(nnx.grad(loss_ours, argnums=(0, 1, 2)))(ours, x, h0)
    g_flax, gx_flax, gh_flax = nnx.jit(nnx.grad(loss_flax, argnums=(0, 1, 2)))(stack, x, h0)
    close(gx_ours, gx_flax, dt)
    close(gh_ours, gh_flax, dt)
    # flax's gradients in polyrnn's layout: a module whose "parameters" are flax's gradients
    graph, _, rest = nnx.split(stack, nnx.Param, ...)
    as_ours = pf.from_flax(list(nnx.merge(graph, g_flax, rest)))
    mine = nnx.to_pure_dict(nnx.filter_state(g_ours, NOT_B_HN))
    close(mine, nnx.to_pure_dict(nnx.state(as_ours, NOT_B_HN)), dt)
    if kind == "GRU" and dtype == "float64":  # b_hn: ours' only, flax has none
        b = ours.layers[1].backward.recurrent_bias
        v, base, eps = normal(9, b.shape, dt), b[...], 1e-6
        loss = nnx.jit(loss_ours)
        f = []
        for sign in (1, -1):
            b[...] = base + sign * eps * v
            f.append(loss(ours, x, h0))
        grad = g_ours["layers"][1]["backward"]["recurrent_bias"][...]
        np.testing.assert_allclose(jnp.vdot(grad, v), (f[0] - f[1]) / (2 * eps), rtol=1e-7)


def adam_losses(model: Any, run: Any, x: Any, y: Any, wrt: Any, steps: int = 5) -> list[float]:
    optax = pytest.importorskip("optax")
    opt = nnx.Optimizer(model, optax.adam(0.05), wrt=wrt)

    @nnx.jit
    def step(model: Any, opt: Any, x: Any, y: Any) -> Any:
        def loss_fn(model: Any) -> Any:
            return jnp.mean((run(model, x) - y) ** 2)

        loss, grads = nnx.value_and_grad(loss_fn, argnums=nnx.DiffState(0, wrt))(model)
        opt.update(model, grads)
        return loss

    with jax.numpy_dtype_promotion("standard"):  # optax mixes Python floats and int32
        return [float(step(model, opt, x, y)) for _ in range(steps)]


@pytest.mark.parametrize("kind", KINDS)
def test_jit_adam_steps_follow_flaxs_losses(kind: str) -> None:
    """Five ``nnx.jit`` training steps of optax's Adam, on both (the GRU's ``b_hn`` held
    still: flax has none), follow the same losses, and end with the same weights."""
    dt = need("float64")
    stack = nnx.List(flax_stack(kind, dt))
    ours = pf.from_flax(list(stack))
    x = normal(0, (B, T, D), dt)
    y = jnp.sin(jnp.cumsum(x, axis=1))[..., :1]
    mine = adam_losses(ours, lambda m, x: m(x)[..., :1], x, y, NOT_B_HN)
    theirs = adam_losses(stack, lambda s, x: flax_run(list(s), x)[1][..., :1], x, y, nnx.Param)
    np.testing.assert_allclose(mine, theirs, rtol=1e-10)
    assert mine[-1] < mine[0]
    close(params_of(pf.to_flax(ours)[1]), params_of(stack[1]), dt)


def test_nnx_vmap_over_a_batch_and_over_an_ensemble() -> None:
    dt = need("float64")
    stack = flax_stack("LSTM", dt)
    ours = pf.from_flax(stack)
    x = normal(0, (B, T, D), dt)
    # over the batch: one sequence (T, D) each, the module broadcast
    per_row = nnx.jit(nnx.vmap(lambda m, x: m(x), in_axes=(None, 0)))(ours, x)
    close(per_row, flax_run(stack, x)[1], dt)

    # over models: an ensemble of three, made and run under nnx.vmap
    @nnx.split_rngs(splits=3)
    @nnx.vmap(in_axes=0, out_axes=0)
    def make(rngs: nnx.Rngs) -> Any:
        init = nnx.initializers.normal(0.5)
        return pf.LSTM(D, H, num_layers=L, bidirectional=True, bias_init=init,
                       param_dtype=dt, rngs=rngs)  # fmt: skip

    ensemble = make(nnx.Rngs(0))
    ys = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(ensemble, x)
    graph, state = nnx.split(ensemble)
    for i in range(3):
        member = nnx.merge(graph, jax.tree.map(lambda a, i=i: a[i], state))
        close(ys[i], flax_run(pf.to_flax(member), x)[1], dt)
    assert float(jnp.abs(ys[0] - ys[1]).max()) > 1e-3


# --------------------------------------------------------------------------- beyond flax


@pytest.mark.parametrize("reset_after", [False, True])
def test_grus_flax_lacks_against_numpy(reset_after: bool) -> None:
    """The reset-before GRU, and ``b_hn`` of the reset-after one: polyrnn's layers on
    NumPy with the module's weights."""
    dt = need("float64")
    init = nnx.initializers.normal(0.5)
    ours = pf.GRU(D, H, num_layers=L, bidirectional=True, reset_after=reset_after,
                  bias_init=init, param_dtype=dt, return_carry=True, rngs=nnx.Rngs(0))  # fmt: skip
    x, h0 = normal(0, (B, T, D), dt), carry_of("GRU", dt)
    lengths = jnp.asarray(LENGTHS)
    carry, out = ours(x, initial_carry=h0, seq_lengths=lengths)
    layers = jax.tree.map(np.asarray, ours.polyrnn_layers())
    out_np, carry_np = polyrnn.gru_layers(
        np.asarray(x), layers, np.asarray(h0), reset_after=reset_after, bidirectional=True,
        lengths=LENGTHS,
    )  # fmt: skip
    np.testing.assert_allclose(out, out_np, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(carry, carry_np, rtol=1e-12, atol=1e-12)
    # from_polyrnn gives the module back, the biases fused as polyrnn fuses them
    again = pf.GRU.from_polyrnn(ours.polyrnn_layers(), reset_after=reset_after)
    jax.tree.map(np.testing.assert_array_equal, params_of(again), params_of(ours))


@pytest.mark.parametrize("dtype", DTYPES)
def test_seed_notebooks_gru_as_a_module_prints_the_notebooks_numbers(dtype: str) -> None:
    """The notebook's GRU (Cho et al.'s, with its own weights) as ``GRU(reset_after=False)``
    reproduces what it printed: one step (In [14]) and the scan's rows (In [17])."""
    dt = need(dtype)
    with np.load(DATA / "seed_weights.npz") as f:
        seed = {k: jnp.asarray(f[k], dt) for k in f.files}
    params = interop.from_seed_gru(*(seed[k] for k in ("w1", "w2", "w3", "b1", "b2", "b3")))
    module = pf.GRU.from_polyrnn([params], reset_after=False)
    hs = module(seed["X"][..., 0])  # (T, D) unbatched: (256, 16)
    w, b = interop.from_seed_readout(seed["w4"], seed["b4"])
    ys = jax.nn.sigmoid(hs @ w + b)
    assert hs.dtype == dt
    np.testing.assert_allclose(hs[0], STEP_GRU_H, rtol=0, atol=GOLDEN_ATOL)
    np.testing.assert_allclose(ys[0], STEP_GRU_Y, rtol=0, atol=GOLDEN_ATOL)
    steps, expected = _printed(SCAN_GRU_Y)
    got = np.asarray(ys)[np.ix_(steps, PRINTED_FEATURES)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=GOLDEN_ATOL)


def test_dropout_masks_from_the_modules_rngs() -> None:
    """Training mode: one key of the ``dropout`` stream per layer but the last, the masks
    ``bernoulli(key, 1 - p, shape)``: flax's layers with those masks between them give the
    output; each call draws new masks; ``eval()`` and ``deterministic=True`` drop nothing;
    ``nnx.jit`` draws what an eager call draws."""
    dt = need("float64")
    p, n_layers = 0.4, 3
    init = nnx.initializers.normal(0.5)
    model = pf.LSTM(D, H, num_layers=n_layers, bidirectional=True, dropout=p, bias_init=init,
                    param_dtype=dt, rngs=nnx.Rngs(params=0, dropout=5))  # fmt: skip
    twin = nnx.clone(model)
    x = normal(0, (B, T, D), dt)
    out = model(x)
    stream = nnx.Rngs(params=0, dropout=5).dropout.fork()  # as the constructor forks it
    keys = [stream() for _ in range(n_layers - 1)]

    @nnx.jit
    def flax_layers(layers: Any, x: Any, keys: Any) -> Any:
        for i, layer in enumerate(layers):
            x = layer(x)
            if keys and i < n_layers - 1:
                keep = jax.random.bernoulli(keys[i], 1 - p, x.shape)
                x = x * keep.astype(dt) / (1 - p)
        return x

    theirs = nnx.List(pf.to_flax(model))
    close(out, flax_layers(theirs, x, keys), dt)
    assert float(jnp.abs(model(x) - out).max()) > 1e-3  # new masks
    close(nnx.jit(lambda m, x: m(x))(twin, x), out, dt)  # the same first draw, compiled
    no_drop = flax_layers(theirs, x, [])
    close(model(x, deterministic=True), no_drop, dt)
    model.eval()
    close(model(x), no_drop, dt)
    model.train()
    assert float(jnp.abs(model(x) - no_drop).max()) > 1e-3


def cell_module(kind: str, cell: str, dt: Any, **kw: Any) -> Any:
    """A one-layer module of ``cell`` whose every parameter (the norm scales included) is
    moved off its initial value by a random one."""
    m = getattr(pf, kind)(D, H, cell=cell, param_dtype=dt, rngs=nnx.Rngs(0), **kw)
    leaves, tree = jax.tree.flatten(nnx.state(m, nnx.Param))
    moved = [a + 0.5 * normal(20 + i, a.shape, a.dtype) for i, a in enumerate(leaves)]
    nnx.update(m, jax.tree.unflatten(tree, moved))
    return m


def reference_params(cell: str, w: Any) -> Any:
    """One direction's parameters as polyrnn's (NumPy), read as the module documents them:
    ``bias`` is ``b_x``, ``recurrent_bias`` the last block of ``b_h``, zero elsewhere."""
    a = {k: np.asarray(v) for k, v in nnx.to_pure_dict(nnx.state(w, nnx.Param)).items()}
    if cell == "min_gru":
        return polyrnn.MinGRUParams(a["kernel"], a["bias"])
    if cell == "min_lstm":
        return polyrnn.MinLSTMParams(a["kernel"], a["bias"])
    if cell == "ln_gru":
        b_h = np.concatenate([np.zeros(2 * H), a["recurrent_bias"]])
        return polyrnn.LNGRUParams(
            a["kernel"], a["recurrent_kernel"], a["bias"], b_h, a["kernel_norm_scale"],
            a["recurrent_norm_scale"],
        )  # fmt: skip
    return polyrnn.LNLSTMParams(
        a["kernel"], a["recurrent_kernel"], a["bias"], np.zeros(4 * H), a["kernel_norm_scale"],
        a["recurrent_norm_scale"], a["cell_norm_scale"], a["cell_norm_bias"],
    )  # fmt: skip


def as_scan_state(kind: str, carry: Any, k: int) -> Any:
    """Direction ``k`` of a module's carry as polyrnn's scans take it (``(h, c)``)."""
    if kind == "LSTM":
        return (np.asarray(carry[1][k]), np.asarray(carry[0][k]))
    return np.asarray(carry[k])


@pytest.mark.parametrize(("kind", "cell"), OTHER_CELLS, ids=OTHER_IDS)
def test_other_cells_as_polyrnn_numpy_scans(kind: str, cell: str) -> None:
    """A bidirectional layer from an initial carry with sequence lengths, eager and under
    ``nnx.jit``: the forward and the reversed NumPy scans, concatenated and stacked."""
    dt = need("float64")
    m = cell_module(kind, cell, dt, bidirectional=True)
    x = normal(0, (B, T, D), dt)
    carry0 = carry_of(kind, dt)
    carry0 = jax.tree.map(lambda a: a[:2], carry0)  # one layer, two directions
    lengths = jnp.asarray(LENGTHS)
    scan = OTHERS[cell].scan
    outs, lasts = [], []
    for k, (w, reverse) in enumerate(((m.layers[0].forward, False), (m.layers[0].backward, True))):
        hs, last = scan(
            np.asarray(x), reference_params(cell, w), as_scan_state(kind, carry0, k),
            reverse=reverse, lengths=LENGTHS,
        )  # fmt: skip
        outs.append(hs)
        lasts.append(last)
    out_np = np.concatenate(outs, axis=-1)
    if kind == "LSTM":  # flax's (c, h)
        carry_np: Any = (np.stack([c for _, c in lasts]), np.stack([h for h, _ in lasts]))
    else:
        carry_np = np.stack(lasts)
    for carry, out in (
        m(x, initial_carry=carry0, seq_lengths=lengths, return_carry=True),
        ours_jit(m, x, carry0, lengths),
    ):
        np.testing.assert_allclose(out, out_np, rtol=1e-12, atol=1e-12)
        for a, b in zip(jax.tree.leaves(carry), jax.tree.leaves(carry_np), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("kind", "cell"), OTHER_CELLS, ids=OTHER_IDS)
def test_other_cells_gradients_under_nnx_grad_as_numpy_vjp(kind: str, cell: str) -> None:
    """Every parameter's gradient of ``sum(outputs * y)`` (sequence lengths, an initial
    carry) under ``nnx.grad``: the NumPy VJP's, in the module's layout."""
    dt = need("float64")
    m = cell_module(kind, cell, dt)
    x, y = normal(0, (B, T, D), dt), normal(1, (B, T, H), dt)
    carry0 = jax.tree.map(lambda a: a[:1], carry_of(kind, dt))
    lengths = jnp.asarray(LENGTHS)

    def loss(module: Any) -> Any:
        return jnp.sum(module(x, initial_carry=carry0, seq_lengths=lengths) * y)

    grads = nnx.to_pure_dict(nnx.grad(loss)(m))["layers"][0]["forward"]
    w = m.layers[0].forward
    _, backward = OTHERS[cell].vjp(
        np.asarray(x), reference_params(cell, w), as_scan_state(kind, carry0, 0),
        lengths=LENGTHS,
    )  # fmt: skip
    _, d, _ = backward(np.asarray(y), None)
    expected = {"kernel": d.w_x, "bias": d.b_x}
    if cell in ("ln_gru", "ln_lstm"):
        expected |= {
            "recurrent_kernel": d.w_h,
            "kernel_norm_scale": d.g_x,
            "recurrent_norm_scale": d.g_h,
        }
    if cell == "ln_gru":
        expected["recurrent_bias"] = d.b_h[2 * H :]
    if cell == "ln_lstm":
        expected |= {"cell_norm_scale": d.g_c, "cell_norm_bias": d.b_c}
    assert sorted(grads) == sorted(expected)
    for name, grad in expected.items():
        assert np.abs(grad).max() > 1e-3  # every parameter counts
        np.testing.assert_allclose(grads[name], grad, rtol=1e-10, atol=1e-10, err_msg=name)


def test_bad_cells_are_refused_clearly() -> None:
    rngs = nnx.Rngs(0)
    with pytest.raises(
        ValueError,
        match=r"GRU: cell must be one of 'gru', 'ln_gru', 'min_gru', 'min_lstm', got 'lstm' "
        r"\('lstm' is a cell of the LSTM layers, whose state is h and c\)",
    ):
        pf.GRU(D, H, cell="lstm", rngs=rngs)
    with pytest.raises(ValueError, match=r"LSTM: cell must be one of 'lstm', 'ln_lstm', got 'gru'"):
        pf.LSTM(D, H, cell="gru", rngs=rngs)
    with pytest.raises(ValueError, match=r"SimpleRNN: cell must be one of 'rnn', got 'ln_gru'"):
        pf.SimpleRNN(D, H, cell="ln_gru", rngs=rngs)
    with pytest.raises(ValueError, match=r"reset_after=False .* cell='min_gru', which has no W_h"):
        pf.GRU(D, H, cell="min_gru", reset_after=False, rngs=rngs)
    with pytest.raises(ValueError, match=r"GRU: cell must be one of .*, got 'minGRU'"):
        pf.GRU(D, H, cell="minGRU", reset_after=False, rngs=rngs)  # the cell is checked first
    with pytest.raises(ValueError, match=r"to_flax: flax has no 'ln_lstm' cell"):
        pf.to_flax(pf.LSTM(D, H, cell="ln_lstm", rngs=rngs))
    gru = pf.GRU(D, H, rngs=rngs)
    with pytest.raises(ValueError, match=r"GRU.from_polyrnn: takes GRUParams .*cell='min_gru'"):
        pf.GRU.from_polyrnn(gru.polyrnn_layers(), cell="min_gru")


# --------------------------------------------------------------------------- errors, import


def test_conversions_refuse_what_has_no_counterpart() -> None:
    rngs = nnx.Rngs(0)
    with pytest.raises(ValueError, match="reset_after=False"):
        pf.to_flax(pf.GRU(D, H, reset_after=False, rngs=rngs))
    gru = pf.GRU(D, H, bias_init=nnx.initializers.ones_init(), rngs=rngs)
    with pytest.raises(ValueError, match=r"layers\[0\]\.forward\.recurrent_bias"):
        pf.to_flax(gru)
    custom = nnx.GRUCell(D, H, gate_fn=jnp.tanh, rngs=rngs)
    with pytest.raises(ValueError, match="gate_fn"):
        pf.from_flax(nnx.RNN(custom))
    with pytest.raises(ValueError, match="residual=True"):
        pf.from_flax(nnx.SimpleCell(D, H, residual=True, rngs=rngs))
    with pytest.raises(ValueError, match="reverse=True"):
        pf.from_flax(nnx.RNN(nnx.GRUCell(D, H, rngs=rngs), reverse=True))
    mixed = [nnx.RNN(nnx.GRUCell(D, H, rngs=rngs)), nnx.RNN(nnx.LSTMCell(H, H, rngs=rngs))]
    with pytest.raises(ValueError, match=r"layers\[1\] is a LSTM"):
        pf.from_flax(mixed)
    with pytest.raises(TypeError, match="OptimizedLSTMCell"):
        pf.from_flax(nnx.OptimizedLSTMCell(D, H, rngs=rngs))
    with pytest.raises(TypeError, match="nnx.Linear|Linear"):
        pf.from_flax(nnx.Linear(D, H, rngs=rngs))
    summed = nnx.Bidirectional(
        nnx.RNN(nnx.GRUCell(D, H, rngs=rngs)),
        nnx.RNN(nnx.GRUCell(D, H, rngs=rngs)),
        merge_fn=lambda a, b: a + b,
    )
    with pytest.raises(ValueError, match="merge"):
        pf.from_flax(summed)


def test_bad_calls_name_the_argument() -> None:
    rngs = nnx.Rngs(0)
    m = pf.LSTM(D, H, num_layers=2, rngs=rngs)
    x = jnp.zeros((B, T, D), jnp.float32)
    with pytest.raises(ValueError, match=r"inputs must have shape \(\.\.\., T, D\) with D = "):
        m(jnp.zeros((B, T, D + 1), jnp.float32))
    c = jnp.zeros((2, B, H), jnp.float32)
    with pytest.raises(ValueError, match=r"initial_carry\[1\] \(h\) must have shape"):
        m(x, initial_carry=(c, c[:1]))
    with pytest.raises(TypeError, match="initial_carry must be a pair"):
        m(x, initial_carry=c)
    with pytest.raises(ValueError, match=r"seq_lengths must have the batch shape \(3,\)"):
        m(x, seq_lengths=jnp.asarray([1, 2]))
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), got 1.0"):
        pf.GRU(D, H, dropout=1.0, rngs=rngs)
    with pytest.raises(ValueError, match="hidden_features must be a positive int, got 0"):
        pf.GRU(D, 0, rngs=rngs)
    with pytest.raises(ValueError, match="activation must be one of"):
        pf.SimpleRNN(D, H, activation="gelu", rngs=rngs)
    with pytest.raises(TypeError, match="reset_after must be True or False"):
        pf.GRU(D, H, reset_after="no", rngs=rngs)
    with pytest.raises(TypeError, match="to_flax: module must be"):
        pf.to_flax(nnx.Linear(D, H, rngs=rngs))


def test_import_without_flax_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['flax'] = None\n"
        "import polyrnn.nn\n"
        "assert 'flax' in dir(polyrnn.nn)\n"
        "try:\n    polyrnn.nn.flax\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "polyrnn.nn.flax needs Flax" in out
    assert 'pip install "polyrnn[flax]"' in out


def test_layer_normalised_cells_start_as_polyrnns_inits() -> None:
    """The gains start at one and the normalisations' shifts at zero, as
    :func:`polyrnn.init_ln_gru` and :func:`polyrnn.init_ln_lstm` give them (the module's
    ``bias`` fuses ``b_x + b_h``)."""
    g, ls = polyrnn.init_ln_gru(D, H, seed=0), polyrnn.init_ln_lstm(D, H, seed=0)
    gru = pf.GRU(D, H, cell="ln_gru", rngs=nnx.Rngs(0)).layers[0].forward
    lstm = pf.LSTM(D, H, cell="ln_lstm", rngs=nnx.Rngs(0)).layers[0].forward
    for got, want in [
        (gru.kernel_norm_scale, g.g_x),
        (gru.recurrent_norm_scale, g.g_h),
        (gru.bias, g.b_x + g.b_h),
        (lstm.kernel_norm_scale, ls.g_x),
        (lstm.recurrent_norm_scale, ls.g_h),
        (lstm.cell_norm_scale, ls.g_c),
        (lstm.cell_norm_bias, ls.b_c),
        (lstm.bias, ls.b_x + ls.b_h),
    ]:
        np.testing.assert_array_equal(np.asarray(got[...]), want)
