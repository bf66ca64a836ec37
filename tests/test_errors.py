"""Every bad input raises a clear error naming the argument, the expected and the received."""

from __future__ import annotations

import numpy as np
import pytest

import polyrnn


@pytest.fixture
def gru():
    return polyrnn.init_gru(3, 4, dtype="float64")


XS = np.ones((2, 5, 3))


def test_wrong_feature_size(gru):
    with pytest.raises(
        ValueError, match=r"gru_scan: params\.w_x must have shape \(2, 12\).*got \(3, 12\)"
    ):
        polyrnn.gru_scan(np.ones((2, 5, 2)), gru)


def test_wrong_h0_shape(gru):
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\).*got \(3, 4\)"):
        polyrnn.gru_scan(XS, gru, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\).*got \(4,\)"):
        polyrnn.gru_scan(XS, gru, np.zeros(4))  # no silent broadcast over the batch


def test_mismatched_batch_in_cell(gru):
    with pytest.raises(ValueError, match=r"gru_cell: h must have shape \(2, 4\).*got \(1, 4\)"):
        polyrnn.gru_cell(gru, np.zeros((1, 4)), np.ones((2, 3)))


@pytest.mark.parametrize("dtype", [np.int64, np.bool_])
def test_non_floating_inputs(gru, dtype):
    with pytest.raises(TypeError, match=r"xs must have a real floating dtype, got (int64|bool)"):
        polyrnn.gru_scan(XS.astype(dtype), gru)


def test_dtype_mismatch(gru):
    with pytest.raises(
        TypeError, match=r"params\.w_x must have dtype float32 \(the dtype of xs\), got float64"
    ):
        polyrnn.gru_scan(XS.astype(np.float32), gru)


def test_params_of_another_cell(gru):
    with pytest.raises(
        TypeError, match="lstm_scan: params must be LSTMParams, got polyrnn.params.GRUParams"
    ):
        polyrnn.lstm_scan(XS, gru)
    with pytest.raises(ValueError, match=r"params\.w_h must have shape \(H, 1\*H\), got \(4, 12\)"):
        polyrnn.rnn_scan(XS, tuple(gru))


def test_not_an_array(gru):
    with pytest.raises(TypeError, match="gru_scan: xs must be an array, got builtins.list"):
        polyrnn.gru_scan([[1.0, 2.0, 3.0]], gru)


def test_two_libraries(gru):
    torch = pytest.importorskip("torch")
    with pytest.raises(
        TypeError, match=r"one library, but xs is torch\.Tensor and params\.w_x is numpy\.ndarray"
    ):
        polyrnn.gru_scan(torch.ones(2, 5, 3, dtype=torch.float64), gru)


def test_lengths_out_of_range(gru):
    with pytest.raises(
        ValueError, match=r"lengths must lie in \[0, T=5\], got values from -1 to 6"
    ):
        polyrnn.gru_scan(XS, gru, lengths=np.array([-1, 6]))
    with pytest.raises(ValueError, match=r"lengths must have shape \(2,\).*got \(3,\)"):
        polyrnn.gru_scan(XS, gru, lengths=np.array([1, 2, 3]))
    with pytest.raises(TypeError, match="lengths must have an integer dtype, got float64"):
        polyrnn.gru_scan(XS, gru, lengths=np.array([1.0, 2.0]))


def test_unknown_activation():
    p = polyrnn.init_rnn(3, 4)
    with pytest.raises(
        ValueError, match=r"activation must be one of \['relu', 'sigmoid', 'tanh'\], got 'gelu'"
    ):
        polyrnn.rnn_scan(XS, p, activation="gelu")


def test_bad_xs_rank(gru):
    with pytest.raises(ValueError, match=r"xs must have shape \(\.\.\., T, D\), got \(3,\)"):
        polyrnn.gru_scan(np.ones(3), gru)


def test_bad_lstm_state(gru):
    p = polyrnn.init_lstm(3, 4, dtype="float64")
    with pytest.raises(TypeError, match="state0 must be a pair"):
        polyrnn.lstm_scan(XS, p, np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"state0\[1\] must have shape \(2, 4\).*got \(2, 5\)"):
        polyrnn.lstm_scan(XS, p, (np.zeros((2, 4)), np.zeros((2, 5))))


def test_bad_init_arguments():
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        polyrnn.init_gru(3, 0)
    with pytest.raises(TypeError, match="dtype must be a real floating dtype"):
        polyrnn.init_gru(3, 2, dtype="int32")


def test_generic_scan_errors():
    with pytest.raises(ValueError, match="same leading length 3, but leaf 1 has shape"):
        polyrnn.scan(lambda c, x: (c, c), np.zeros(()), (np.ones(3), np.ones(2)))
    with pytest.raises(ValueError, match="xs has length 0"):
        polyrnn.scan(lambda c, x: (c, c), np.zeros(()), np.ones(0))


def test_two_devices():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device to place arrays on two devices")
    p = polyrnn.init_gru(3, 4, xp=torch, device="cuda")
    with pytest.raises(ValueError, match="one device"):
        polyrnn.gru_scan(torch.ones(2, 5, 3), p)
