"""Every bad input raises a clear error naming the argument, the expected and the received."""

from __future__ import annotations

import math

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


def _flag_calls():
    """Each public function with boolean options: a valid call taking those options."""
    rnn, gru, lstm = (
        f(3, 4, dtype="float64") for f in (polyrnn.init_rnn, polyrnn.init_gru, polyrnn.init_lstm)
    )
    mgru, mlstm = (
        polyrnn.init_min_gru(3, 4, dtype="float64"),
        polyrnn.init_min_lstm(3, 4, dtype="float64"),
    )
    a, b = np.full((2, 5, 4), 0.5), np.ones((2, 5, 4))
    scores, targets = np.zeros((2, 5, 6)), np.zeros((2, 5), dtype=np.int64)
    scan_flags = ("time_major", "reverse")
    return {
        "scan": (
            lambda **k: polyrnn.scan(lambda c, x: (c, x), np.zeros(()), np.ones(3), **k),
            ("reverse",),
        ),
        "rnn_scan": (lambda **k: polyrnn.rnn_scan(XS, rnn, **k), scan_flags),
        "gru_scan": (lambda **k: polyrnn.gru_scan(XS, gru, **k), ("reset_after", *scan_flags)),
        "lstm_scan": (lambda **k: polyrnn.lstm_scan(XS, lstm, **k), scan_flags),
        "min_gru_scan": (lambda **k: polyrnn.min_gru_scan(XS, mgru, **k), scan_flags),
        "min_lstm_scan": (lambda **k: polyrnn.min_lstm_scan(XS, mlstm, **k), scan_flags),
        "rnn_scan_vjp": (lambda **k: polyrnn.rnn_scan_vjp(XS, rnn, **k)[0], scan_flags),
        "gru_scan_vjp": (
            lambda **k: polyrnn.gru_scan_vjp(XS, gru, **k)[0],
            ("reset_after", *scan_flags),
        ),
        "lstm_scan_vjp": (lambda **k: polyrnn.lstm_scan_vjp(XS, lstm, **k)[0], scan_flags),
        "min_gru_scan_vjp": (lambda **k: polyrnn.min_gru_scan_vjp(XS, mgru, **k)[0], scan_flags),
        "min_lstm_scan_vjp": (lambda **k: polyrnn.min_lstm_scan_vjp(XS, mlstm, **k)[0], scan_flags),
        "linear_scan": (lambda **k: polyrnn.linear_scan(a, b, **k), scan_flags),
        "linear_scan_vjp": (lambda **k: polyrnn.linear_scan_vjp(a, b, **k)[0], scan_flags),
        "associative_scan": (
            lambda **k: polyrnn.associative_scan(np.add, np.ones(4), **k),
            ("reverse",),
        ),
        "gru_cell": (
            lambda **k: polyrnn.gru_cell(gru, np.zeros((2, 4)), np.ones((2, 3)), **k),
            ("reset_after",),
        ),
        "logsumexp": (lambda **k: polyrnn.logsumexp(scores, **k), ("keepdims",)),
        "log_perplexity": (
            lambda **k: polyrnn.log_perplexity(scores, targets, **k),
            ("per_sequence",),
        ),
        "perplexity": (lambda **k: polyrnn.perplexity(scores, targets, **k), ("per_sequence",)),
        "to_keras_gru": (
            lambda **k: polyrnn.interop.to_keras_gru(gru, **{"reset_after": False, **k}),
            ("reset_after",),
        ),
        "from_keras_gru": (
            lambda **k: polyrnn.interop.from_keras_gru(
                polyrnn.interop.to_keras_gru(gru, reset_after=False), **{"reset_after": False, **k}
            ),
            ("reset_after",),
        ),
    }


@pytest.mark.parametrize("name", sorted(_flag_calls()))
@pytest.mark.parametrize("bad", ["no", "False", 0, 1, None, np.array(True)])
def test_boolean_options_reject_non_booleans(name, bad):
    """A truthy "no" must not switch an option on: every boolean option takes True or
    False (Python's or NumPy's) and names itself otherwise."""
    call, flags = _flag_calls()[name]
    for flag in flags:
        if name == "from_keras_gru" and bad is None:
            continue  # None there means "as the layer says"
        with pytest.raises(TypeError, match=rf"^{name}: {flag} must be True or False, got "):
            call(**{flag: bad})
        np.testing.assert_equal(call(**{flag: np.False_}), call(**{flag: False}))


def test_to_torch_checks_batch_first():
    pytest.importorskip("torch")
    with pytest.raises(TypeError, match="to_torch: batch_first must be True or False, got 'no'"):
        polyrnn.interop.to_torch(polyrnn.init_gru(3, 4), batch_first="no")


def test_generic_scan_names_what_is_wrong():
    def step(c, x):
        return c + x, c

    zero = np.zeros(())
    with pytest.raises(
        ValueError, match="^scan: xs must be stacked along axis 0, got a 0-d array$"
    ):
        polyrnn.scan(step, zero, np.asarray(1.0))
    with pytest.raises(TypeError, match="^scan: xs leaf 0 must be an array, got builtins.float$"):
        polyrnn.scan(step, zero, [1.0, 2.0])
    with pytest.raises(
        ValueError,
        match=r"^scan: step must return a carry of the structure, shapes and dtypes it was "
        r"given \(as jax.lax.scan requires\): given \['\(\) float64'\], returned "
        r"\['\(2,\) float64'\]$",
    ):
        polyrnn.scan(lambda c, x: (np.stack([c, c]), c), zero, np.arange(3.0))
    with pytest.raises(ValueError, match=r"given \['\(\) float64'\], returned \['\(\) float32'\]"):
        polyrnn.scan(lambda c, x: (np.float32(c + x), c), zero, np.arange(3.0))
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(
        TypeError,
        match=r"^scan: all arrays must come from one library, but xs is numpy.ndarray and "
        r"carry is array_api_strict",
    ):
        polyrnn.scan(step, strict.asarray(0.0), np.arange(3.0))


def test_init_names_the_function_and_argument():
    with pytest.raises(ValueError, match="^init_gru: seed must be a non-negative integer, got -1$"):
        polyrnn.init_gru(3, 2, seed=-1)
    with pytest.raises(ValueError, match="^init_min_lstm: hidden_size must be a positive integer"):
        polyrnn.init_min_lstm(3, 0)
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(
        TypeError, match=r"^init_lstm: dtype must be a real floating dtype of .*numpy.* got "
    ):
        polyrnn.init_lstm(3, 2, dtype=strict.float32)  # a dtype of another library


def test_linear_scan_names_a_not_xs():
    a = np.full((2, 5, 4), 0.5, dtype=np.float32)
    with pytest.raises(
        TypeError, match=r"^linear_scan: b must have dtype float32 \(the dtype of a\), got float64$"
    ):
        polyrnn.linear_scan(a, np.ones((2, 5, 4)))
    with pytest.raises(
        TypeError, match=r"h0 must have dtype float32 \(the dtype of a\), got float64$"
    ):
        polyrnn.linear_scan(a, np.ones((2, 5, 4), np.float32), np.zeros((2, 4)))


def test_to_torch_keeps_bfloat16():
    torch = pytest.importorskip("torch")
    p = polyrnn.GRUParams(*(torch.from_numpy(a).to(torch.bfloat16) for a in polyrnn.init_gru(3, 4)))
    m = polyrnn.interop.to_torch(p)
    assert m.weight_ih_l0.dtype == torch.bfloat16
    torch.testing.assert_close(m.weight_ih_l0, p.w_x.T, rtol=0, atol=0)
    torch.testing.assert_close(m.bias_hh_l0, p.b_h, rtol=0, atol=0)


def test_lengths_under_jit_act_as_clamped():
    """What the scans' docstrings say: a traced ``lengths`` is not checked, and values
    outside [0, T] act as clamped to it."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5, 3)).astype(np.float32))
    for scan, init in [
        (polyrnn.gru_scan, polyrnn.init_gru),
        (polyrnn.min_gru_scan, polyrnn.init_min_gru),
    ]:
        p = init(3, 4, xp=jnp, dtype="float32")
        for reverse in (False, True):
            jitted = jax.jit(
                lambda xs, n, scan=scan, p=p, r=reverse: scan(xs, p, lengths=n, reverse=r)
            )
            hs, h = jitted(xs, jnp.asarray([7, -2, 3]))
            hs_ref, h_ref = scan(xs, p, lengths=jnp.asarray([5, 0, 3]), reverse=reverse)
            np.testing.assert_array_equal(np.asarray(hs), np.asarray(hs_ref))
            np.testing.assert_array_equal(np.asarray(h), np.asarray(h_ref))


def test_language_model_arguments_are_checked():
    from polyrnn import lm

    text = "abcd" * 100
    with pytest.raises(TypeError, match="^lr must be a real number, got '0.1'$"):
        lm.TrainConfig(lr="0.1")
    with pytest.raises(ValueError, match="^lr must be finite, got inf$"):
        lm.TrainConfig(lr=math.inf)
    with pytest.raises(ValueError, match="^batch must be an integer >= 1, got 0$"):
        lm.TrainConfig(batch=0)
    with pytest.raises(TypeError, match="^warmup must be an integer, got 1.5$"):
        lm.TrainConfig(warmup=1.5)
    with pytest.raises(ValueError, match=r"^beta1 must be in \[0, 1\), got 1$"):
        lm.TrainConfig(beta1=1)
    with pytest.raises(TypeError, match="^text must be a str, got bytes$"):
        lm.Trainer(b"abcd" * 100)
    with pytest.raises(TypeError, match="^config must be a TrainConfig, got dict$"):
        lm.Trainer(text, config={"batch": 2})
    trainer = lm.Trainer(
        text, model=lm.ModelConfig(4, 8), config=lm.TrainConfig(batch=2, seq_len=8)
    )
    with pytest.raises(TypeError, match="^steps must be an integer, got 1.5$"):
        trainer.run(steps=1.5)
    with pytest.raises(TypeError, match="^evals must be an integer, got True$"):
        trainer.run(steps=1, evals=True)
    with pytest.raises(ValueError, match="^seconds must be finite, got inf$"):
        trainer.run(seconds=math.inf)
    with pytest.raises(ValueError, match="^lr must be >= 0, got -1.0$"):
        trainer.train_step(-1.0)
    model = trainer.lm
    with pytest.raises(TypeError, match="^length must be an integer, got 2.5$"):
        lm.sample(model, "ab", 2.5)
    with pytest.raises(TypeError, match="^prompt must be a str, got bytes$"):
        lm.sample(model, b"ab", 2)
    with pytest.raises(ValueError, match="^seq_len must be an integer >= 1, got -5$"):
        lm.evaluate(model, text, seq_len=-5)
    with pytest.raises(
        TypeError, match="integer character ids, got shape \\(3,\\) and dtype float64"
    ):
        lm.evaluate_tokens(model, np.array([0.5, 1.7, 2.2]))
    with pytest.raises(
        lm.DataError, match=r"ids in \[0, 4\) of the model's vocabulary, got values from 0 to 9"
    ):
        lm.evaluate_tokens(model, np.array([0, 9]))
    with pytest.raises(TypeError, match="tokens must be integer character ids, got dtype float64"):
        lm.StreamBatches(np.linspace(0, 1, 50), batch=2, seq_len=4)
    with pytest.raises(lm.DataError, match="lone surrogates"):
        lm.Vocab(["a", "\udcff"])


def test_save_refuses_what_load_would_refuse(tmp_path):
    from polyrnn import lm

    trainer = lm.Trainer(
        "abcd" * 100, model=lm.ModelConfig(4, 8), config=lm.TrainConfig(batch=2, seq_len=8)
    )
    params = trainer.lm.params
    trainer.lm.params = params._replace(b_out=np.full(4, np.nan, dtype=np.float32))
    with pytest.raises(lm.ModelFileError, match="array 'b_out' holds 4 NaN or infinite values"):
        lm.save(trainer.lm, tmp_path / "m.npz")
    trainer.lm.params = params._replace(b_out=np.zeros(3, dtype=np.float32))
    with pytest.raises(
        lm.ModelFileError,
        match=r"'b_out' has shape \(3,\) and dtype float32, expected shape \(4,\)",
    ):
        lm.save(trainer.lm, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def test_read_text_keeps_every_character(tmp_path):
    from polyrnn import lm

    path = tmp_path / "crlf.txt"
    path.write_bytes(b"one\r\ntwo\rthree\n")
    assert lm.read_text(path) == "one\r\ntwo\rthree\n"


def test_more_arguments_named():
    with pytest.raises(
        TypeError, match=r"^scan: step must be a function \(carry, x\) -> \(carry, y\), got None$"
    ):
        polyrnn.scan(None, np.zeros(()), np.ones(3))
    gru = polyrnn.init_gru(3, 4)
    with pytest.raises(TypeError, match="^gru_cell: h must be an array, got None$"):
        polyrnn.gru_cell(gru, None, np.ones((2, 3)))
    with pytest.raises(
        ValueError,
        match=r"^rnn_scan: activation must be one of \['relu', 'sigmoid', 'tanh'\], got 'gelu'$",
    ):
        polyrnn.rnn_scan(XS, polyrnn.init_rnn(3, 4), activation="gelu")
    with pytest.raises(
        ValueError,
        match=r"^associative_scan: fn must return leaves of the shapes and dtypes of its arguments: "
        r"given \['\(2,\) float64'\], returned \['\(1,\) float64'\]$",
    ):
        polyrnn.associative_scan(lambda u, v: (u + v)[:1], np.arange(5.0))
