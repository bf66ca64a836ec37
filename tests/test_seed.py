"""Golden tests from the seed notebook (``shared/seed/000_84e017c020fcd0f4.txt``).

The notebook's weights and inputs are stored in ``data/seed_weights.npz`` (regenerated
by ``data/make_seed_fixture.py`` with JAX).  They are converted with
:mod:`polyrnn.interop`, run through polyrnn's scans on every backend, and compared with

* the numbers the notebook printed (cells In [14], In [16], In [17]), to 2e-6;
* a line-by-line NumPy copy of the notebook's ``forward_VRNN``, ``forward_GRU`` and
  ``scan`` (column vectors and ``vstack``), over all 256 steps.
"""

from __future__ import annotations

import importlib.util
import pathlib
from typing import Any

import numpy as np
import pytest
from array_api_compat import array_namespace
from array_libs import Backend, assert_close

import polyrnn
from polyrnn import interop

DATA = pathlib.Path(__file__).parent / "data"
GOLDEN_ATOL = 2e-6
NAMES = ("w1", "w2", "w3", "w4", "b1", "b2", "b3", "b4")


@pytest.fixture(scope="module")
def seed() -> dict[str, np.ndarray]:
    with np.load(DATA / "seed_weights.npz") as f:
        return {k: f[k] for k in f.files}


# --------------------------------------------------------------------- printed values

# In [14]: forward_GRU([X[0], h_0], weights) -> (y_t, h_t), each (16, 1).
STEP_GRU_Y = [
    0.98875064,
    0.90948516,
    0.83860266,
    0.605238,
    0.8174015,
    0.8074013,
    0.9864478,
    0.19836329,
    0.23806544,
    0.03616815,
    0.9230415,
    0.897435,
    0.81876415,
    0.06574202,
    0.14956403,
    0.820773,
]
STEP_GRU_H = [
    9.9999964e-01,
    1.0000000e00,
    9.9392438e-01,
    -1.2257343e-04,
    -7.2951213e-02,
    -2.5626263e-02,
    -2.4690714e-09,
    -2.0006059e-01,
    7.9664338e-01,
    -4.0450820e-07,
    -1.1183748e-03,
    -1.2833535e-09,
    -7.8878832e-09,
    9.9999976e-01,
    9.5781153e-01,
    -7.0657270e-06,
]

# In [16] and In [17]: scan(...) -> ys of shape (256, 16, 1), printed with NumPy's
# summarisation: steps 0, 1, 2, ..., 253, 254, 255 and, of each, features 0, 1, 2 and
# 13, 14, 15.  The cell output is cut off inside step 254, after its last feature, so
# step 255 is not known.  {t: (features 0..2, features 13..15)}
SCAN_VRNN_Y = {
    0: ([0.9844214, 0.86315817, 0.808999], [0.05173129, 0.21562287, 0.7522172]),
    1: ([0.9830031, 0.8508622, 0.7086585], [0.02949953, 0.27303317, 0.9107685]),
    2: ([0.5616716, 0.42216417, 0.02124172], [0.49089074, 0.6445939, 0.0898608]),
    253: ([0.96719635, 0.3858212, 0.06641304], [0.89807695, 0.8543829, 0.7933321]),
    254: ([0.9930194, 0.75615996, 0.3213525], [0.46565428, 0.5535333, 0.7318801]),
}
SCAN_GRU_Y = {
    0: ([0.98875064, 0.90948516, 0.83860266], [0.06574202, 0.14956403, 0.820773]),
    1: ([0.99207675, 0.8274236, 0.7019363], [0.08724681, 0.2603313, 0.9303203]),
    2: ([0.96868426, 0.65789413, 0.04706543], [0.02912108, 0.76775664, 0.1878842]),
    253: ([0.99862254, 0.68557423, 0.68682545], [0.01584747, 0.6382734, 0.27868038]),
    254: ([0.9979925, 0.67977065, 0.7547641], [0.01567412, 0.54346865, 0.24606723]),
}


def _printed(rows: dict[int, tuple[list[float], list[float]]]) -> tuple[list[int], np.ndarray]:
    """The steps and a (steps, 6) array of printed features 0, 1, 2, 13, 14, 15."""
    steps = sorted(rows)
    return steps, np.array([rows[t][0] + rows[t][1] for t in steps])


PRINTED_FEATURES = [0, 1, 2, 13, 14, 15]


# --------------------------------------------------------------------- the notebook, in NumPy


def nb_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def nb_forward_vrnn(inputs: list[np.ndarray], weights: list[np.ndarray]) -> tuple[Any, Any]:
    x_t, h_t_prev = inputs
    stack = np.vstack([h_t_prev, x_t])
    w_h, _, _, w_y, b_h, _, _, b_y = weights
    h_t = nb_sigmoid(w_h @ stack + b_h)
    y_t = nb_sigmoid(w_y @ h_t + b_y)
    return y_t, h_t


def nb_forward_gru(inputs: list[np.ndarray], weights: list[np.ndarray]) -> tuple[Any, Any]:
    x_t, h_t_prev = inputs
    stack = np.vstack([h_t_prev, x_t])
    w_r, w_u, w_h, w_y, b_r, b_u, b_h, b_y = weights
    t_r = nb_sigmoid(w_r @ stack + b_r)
    t_u = nb_sigmoid(w_u @ stack + b_u)
    c_t = np.tanh(w_h @ np.vstack((t_r * h_t_prev, x_t)) + b_h)
    h_t = t_u * c_t + (1 - t_u) * h_t_prev
    y_t = nb_sigmoid(w_y @ h_t + b_y)
    return y_t, h_t


def nb_scan(fn: Any, elems: np.ndarray, weights: list[np.ndarray], h_0: np.ndarray) -> Any:
    """The notebook's ``scan``, also returning every hidden state."""
    h_t = h_0
    ys, hs = [], []
    for x in elems:
        y, h_t = fn([x, h_t], weights)
        ys.append(y)
        hs.append(h_t)
    return np.array(ys), np.array(hs)


def nb_weights(seed: dict[str, np.ndarray], dtype: str) -> tuple[list[np.ndarray], np.ndarray]:
    return [seed[k].astype(dtype) for k in NAMES], seed["X"].astype(dtype)


# --------------------------------------------------------------------- polyrnn on a backend


def _sigmoid(xp: Any, v: Any) -> Any:
    return 1.0 / (1.0 + xp.exp(-v))


def run_polyrnn(
    backend: Backend, seed: dict[str, np.ndarray], dtype: str, cell: str
) -> tuple[Any, Any]:
    """``(ys, hs)``, each ``(256, 16)``: the notebook's scan of ``cell``, done by polyrnn."""
    a = {k: backend.asarray(v, dtype) for k, v in seed.items()}
    xs = backend.asarray(seed["X"][..., 0], dtype)  # (T, D): the notebook's (T, D, 1)
    if cell == "vrnn":
        hs, _ = polyrnn.rnn_scan(xs, interop.from_seed_rnn(a["w1"], a["b1"]), activation="sigmoid")
    else:
        params = interop.from_seed_gru(a["w1"], a["w2"], a["w3"], a["b1"], a["b2"], a["b3"])
        hs, _ = polyrnn.gru_scan(xs, params, reset_after=False)
    w, b = interop.from_seed_readout(a["w4"], a["b4"])
    return _sigmoid(array_namespace(hs), hs @ w + b), hs


DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gru_single_step_matches_notebook(backend: Backend, seed: dict, dtype: str) -> None:
    """In [14]: one step of forward_GRU from h_0 = 0, both y and h."""
    a = {k: backend.asarray(v, dtype) for k, v in seed.items()}
    params = interop.from_seed_gru(a["w1"], a["w2"], a["w3"], a["b1"], a["b2"], a["b3"])
    x0 = backend.asarray(seed["X"][0, :, 0], dtype)
    h0 = backend.asarray(np.zeros(16), dtype)
    h = polyrnn.gru_cell(params, h0, x0, reset_after=False)
    w, b = interop.from_seed_readout(a["w4"], a["b4"])
    y = _sigmoid(array_namespace(h), h @ w + b)
    assert_close(backend, h, np.array(STEP_GRU_H), dtype=dtype, rtol=0, atol=GOLDEN_ATOL)
    assert_close(backend, y, np.array(STEP_GRU_Y), dtype=dtype, rtol=0, atol=GOLDEN_ATOL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("cell", "printed"), [("vrnn", SCAN_VRNN_Y), ("gru", SCAN_GRU_Y)])
def test_scan_matches_notebook_printout(
    backend: Backend, seed: dict, dtype: str, cell: str, printed: dict
) -> None:
    """In [16] (forward_VRNN) and In [17] (forward_GRU): the printed rows of ys."""
    ys, _ = run_polyrnn(backend, seed, dtype, cell)
    steps, expected = _printed(printed)
    got = backend.to_numpy(ys)[np.ix_(steps, PRINTED_FEATURES)]
    assert ys.dtype == backend.dtype(dtype)
    np.testing.assert_allclose(got, expected, rtol=0, atol=GOLDEN_ATOL)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell", ["vrnn", "gru"])
def test_scan_matches_notebook_code(backend: Backend, seed: dict, dtype: str, cell: str) -> None:
    """All 256 steps, y and h, against the notebook's own code run in NumPy float64 on the
    weights and inputs polyrnn sees (rounded to ``dtype``), at the long-scan tolerance."""
    weights, xs = nb_weights(seed, dtype)
    weights, xs = [w.astype(np.float64) for w in weights], xs.astype(np.float64)
    fn = nb_forward_vrnn if cell == "vrnn" else nb_forward_gru
    ys_ref, hs_ref = nb_scan(fn, xs, weights, np.zeros((16, 1)))
    ys, hs = run_polyrnn(backend, seed, dtype, cell)
    assert_close(backend, hs, hs_ref[..., 0], dtype=dtype, long=True)
    assert_close(backend, ys, ys_ref[..., 0], dtype=dtype, long=True)


def test_notebook_code_reproduces_its_printout(seed: dict) -> None:
    """The NumPy copy of the notebook, in the notebook's float32, prints what it printed."""
    weights, xs = nb_weights(seed, "float32")
    h_0 = np.zeros((16, 1), np.float32)
    y, h = nb_forward_gru([xs[0], h_0], weights)
    np.testing.assert_allclose(y[:, 0], STEP_GRU_Y, rtol=0, atol=GOLDEN_ATOL)
    np.testing.assert_allclose(h[:, 0], STEP_GRU_H, rtol=0, atol=GOLDEN_ATOL)
    for fn, printed in ((nb_forward_vrnn, SCAN_VRNN_Y), (nb_forward_gru, SCAN_GRU_Y)):
        ys, _ = nb_scan(fn, xs, weights, h_0)
        steps, expected = _printed(printed)
        np.testing.assert_allclose(
            ys[..., 0][np.ix_(steps, PRINTED_FEATURES)], expected, rtol=0, atol=GOLDEN_ATOL
        )


def test_seed_round_trip(backend: Backend, seed: dict) -> None:
    """to_seed_* inverts from_seed_* exactly (the seed biases are the only bias)."""
    a = {k: backend.asarray(v, "float64") for k, v in seed.items()}
    gru = (a["w1"], a["w2"], a["w3"], a["b1"], a["b2"], a["b3"])
    for got, want in zip(interop.to_seed_gru(interop.from_seed_gru(*gru)), gru, strict=True):
        assert_close(backend, got, backend.to_numpy(want), dtype="float64", rtol=0, atol=0)
    w_h, b_h = interop.to_seed_rnn(interop.from_seed_rnn(a["w1"], a["b1"]))
    assert_close(backend, w_h, seed["w1"], dtype="float64", rtol=0, atol=0)
    assert_close(backend, b_h, seed["b1"], dtype="float64", rtol=0, atol=0)
    w_y, b_y = interop.to_seed_readout(*interop.from_seed_readout(a["w4"], a["b4"]))
    assert_close(backend, w_y, seed["w4"], dtype="float64", rtol=0, atol=0)
    assert_close(backend, b_y, seed["b4"], dtype="float64", rtol=0, atol=0)


def test_stacking_identity(backend: Backend) -> None:
    """In [2]-[11]: W_h [h; x] = W_hh h + W_hx x = 245; from_seed_rnn splits W_h so."""
    xp = array_namespace(backend.asarray(np.zeros(1)))
    w_hh, w_hx = backend.asarray(np.full((3, 2), 1.0)), backend.asarray(np.full((3, 3), 9.0))
    h, x = backend.asarray(np.full((2, 1), 1.0)), backend.asarray(np.full((3, 1), 9.0))
    stacked = xp.concat((w_hh, w_hx), axis=1) @ xp.concat((h, x), axis=0)
    assert_close(backend, stacked, np.full((3, 1), 245.0), dtype="float64", rtol=0, atol=0)
    assert_close(
        backend, w_hh @ h + w_hx @ x, np.full((3, 1), 245.0), dtype="float64", rtol=0, atol=0
    )
    # A recurrence needs a square W_hh: pad h with a zero, (1 + 1 + 0) + 3 * 81 = 245 again.
    w_h = np.hstack((np.full((3, 3), 1.0), np.full((3, 3), 9.0)))
    params = interop.from_seed_rnn(backend.asarray(w_h), backend.asarray(np.zeros((3, 1))))
    out = polyrnn.rnn_cell(
        params,
        backend.asarray(np.array([1.0, 1.0, 0.0])),
        backend.asarray(np.full(3, 9.0)),
        activation="relu",
    )
    assert_close(backend, out, np.full(3, 245.0), dtype="float64", rtol=0, atol=0)


def test_fixture_regenerates_with_jax(seed: dict) -> None:
    """``make_seed_fixture.py`` draws, with JAX, exactly the stored arrays."""
    pytest.importorskip("jax")
    spec = importlib.util.spec_from_file_location(
        "make_seed_fixture", DATA / "make_seed_fixture.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fresh = module.make_weights()
    assert sorted(fresh) == sorted(seed)
    for name, value in fresh.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, seed[name], err_msg=name)
    # The notebook reuses one key: equal shapes give equal draws.
    np.testing.assert_array_equal(seed["w1"], seed["w3"])
    np.testing.assert_array_equal(seed["b1"], seed["b4"])
