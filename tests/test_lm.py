"""The character-level language model (:mod:`polyrnn.lm`).

References, each independent of the code under test: the NumPy float64 reference model
of ``tests/reference.py`` (every cell) and its complex-step gradients, a NumPy float64
training run with the hand-written gradient (for every other library and dtype), models
built from ``torch.nn`` layers (GRU, LSTM, RNN) and trained with ``torch.optim.Adam``,
``torch.optim.Adam`` itself, the sampling distribution ``softmax(log p / T)`` with a
binomial bound, the learning-rate schedule's formula,
:func:`polyrnn.metrics.log_perplexity` over plain full-length forward passes, and direct
slicing of the text.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import sys
import zipfile

import numpy as np
import pytest
import reference
from array_libs import assert_close
from tolerances import tolerance

import polyrnn
from polyrnn import lm
from polyrnn.lm import model as lm_model

TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness.\n"
) * 4
"""About 900 characters, 30 distinct."""

TINY = lm.ModelConfig(embed_size=6, hidden_size=10, layers=2)
"""Small enough for seconds-long runs on every backend."""


def _single_thread(torch):
    """Tiny models gain nothing from threads, and two threads on a busy 2-core machine
    make torch's CPU kernels ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    return threads


@pytest.fixture(autouse=True)
def _torch_single_thread():
    """One torch thread during each test that finds torch loaded; restored after it."""
    torch = sys.modules.get("torch")
    threads = None if torch is None else _single_thread(torch)
    yield
    if threads is not None:
        torch.set_num_threads(threads)


@pytest.fixture
def torch():
    """torch (the test skips without it), with one thread during the test."""
    module = pytest.importorskip("torch")
    threads = _single_thread(module)
    yield module
    module.set_num_threads(threads)


RUN = lm.TrainConfig(batch=4, seq_len=8, lr=1e-2, warmup=5, final_lr=0.2, clip_norm=0.5)
STEPS = 20


def _losses(backend: str, dtype: str, cell: str) -> list[float]:
    layers = 2 if cell == "gru" else 1  # fewer scans to compile for the other cells
    trainer = lm.Trainer(
        TEXT, model=lm.ModelConfig(6, 10, layers, cell), config=RUN, backend=backend, dtype=dtype
    )
    return trainer.run(steps=STEPS, evals=0).losses


@functools.cache
def _numpy_reference(cell: str) -> list[float]:
    return _losses("numpy", "float64", cell)


# ---------------------------------------------------------------- the same run everywhere


@pytest.mark.parametrize(
    ("cell", "dtype"),
    [
        ("gru", "float64"),
        ("gru", "float32"),
        ("lstm", "float64"),
        ("rnn", "float64"),
        ("min_gru", "float64"),
        ("min_lstm", "float64"),
        ("ln_gru", "float64"),
        ("ln_lstm", "float64"),
    ],
)
def test_same_training_run_on_every_backend(backend, cell, dtype):
    """20 steps of Adam give the losses of the NumPy float64 run with hand-written BPTT
    (a two-layer GRU; one layer of the other cells)."""
    losses = _losses(backend.name, dtype, cell)
    reference = _numpy_reference(cell)
    assert len(losses) == STEPS
    # A run that actually learns; the layer-normalised LSTM starts slower (its loss fell by
    # 0.17 in these 20 steps, the others' by 0.28 to 0.40).
    assert reference[-1] < reference[0] - (0.1 if cell == "ln_lstm" else 0.2)
    rtol, _ = tolerance(dtype, long=True)  # 20 steps of training: a long computation
    np.testing.assert_allclose(losses, reference, rtol=rtol, atol=0)


@pytest.mark.parametrize("engine", ["autodiff", "by_hand"])
@pytest.mark.parametrize("cell", ["gru", "ln_gru", "ln_lstm"])
def test_gradient_matches_numpy_by_hand(backend, cell, engine):
    """Autodiff (JAX, torch) and the hand-written gradient on another library (jitted on
    JAX) equal the hand-written NumPy float64 gradient of a two-layer model from a
    non-zero state, leaf by leaf."""
    if backend.name == "numpy":
        pytest.skip("NumPy is the reference here; the reference model checks it below")
    if engine == "autodiff" and backend.name not in ("jax", "torch"):
        pytest.skip(f"{backend.name} has no autodiff")
    config = lm.ModelConfig(6, 10, 2, cell)
    vocab = lm.Vocab.from_text(TEXT)
    ref_b = lm.get_backend("numpy", "float64")
    b = lm.get_backend(backend.name, "float64")
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, len(vocab), size=(3, 7))
    targets = rng.integers(0, len(vocab), size=(3, 7))
    state = [[rng.normal(size=(3, 10)) for _ in range(lm.CELLS[cell].n_states)] for _ in "ab"]

    def run(bk):
        params = lm.init_params(config, len(vocab), bk, seed=3)
        carried = tuple(tuple(bk.asarray(s) for s in layer) for layer in state)
        engine_of = engine if bk is b else "by_hand"
        (value, _), grads = bk.jit(lm.value_and_grad(bk, cell, engine_of))(
            params, bk.asarray(tokens), bk.asarray(targets), carried
        )
        leaves = polyrnn._tree.flatten(grads)[0]
        return float(value), [bk.to_numpy(g) for g in leaves]

    value, grads = run(b)
    ref_value, ref_grads = run(ref_b)
    assert value == pytest.approx(ref_value, rel=1e-12)
    assert len(grads) == len(ref_grads)
    for g, r in zip(grads, ref_grads, strict=True):
        scale = max(1.0, float(np.max(np.abs(r))))
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * scale)


def test_evaluation_and_sampling_agree_across_backends(backend):
    """The same weights give NumPy float64's validation loss and greedy sample."""
    vocab = lm.Vocab.from_text(TEXT)

    def run(name):
        b = lm.get_backend(name, "float64")
        model = lm.LanguageModel(TINY, vocab, lm.init_params(TINY, len(vocab), b, seed=4), b)
        metrics = lm.evaluate(model, TEXT[:300], streams=4, seq_len=32)
        return metrics.loss, lm.sample(model, "it was", 20, temperature=0.0)

    loss, text = run(backend.name)
    ref_loss, ref_text = run("numpy")
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert text == ref_text


def _problem(cell, seed=0, *, batch=2, steps=6, vocab=9, layers=2):
    """A small model's config, NumPy float64 params (seed 1), tokens, targets and a
    non-zero state per layer."""
    config = lm.ModelConfig(5, 7, layers, cell)
    rng = np.random.default_rng(seed)
    params = lm.init_params(config, vocab, lm.get_backend("numpy", "float64"), seed=1)
    tokens = rng.integers(0, vocab, size=(batch, steps))
    targets = rng.integers(0, vocab, size=(batch, steps))
    n_states = lm.CELLS[cell].n_states
    state = tuple(
        tuple(rng.normal(size=(batch, 7)) for _ in range(n_states)) for _ in range(layers)
    )
    return config, params, tokens, targets, state


def _reference_args(params):
    """``LMParams`` as the reference model takes them: plain NumPy arrays and tuples."""
    return (
        np.asarray(params.embed),
        tuple(tuple(np.asarray(a) for a in layer) for layer in params.layers),
        np.asarray(params.w_out),
        np.asarray(params.b_out),
    )


@pytest.mark.parametrize("cell", list(lm.CELLS))
def test_forward_and_loss_match_the_reference(backend, cell):
    """Log-probabilities, final states and loss of every cell's two-layer model, on every
    backend, against the NumPy reference model (embedding, reference scans, log-softmax),
    from a carried non-zero state.  Only the GRU also has a torch.nn twin below."""
    _, params, tokens, targets, state = _problem(cell)
    b = lm.get_backend(backend.name, "float64")
    lib_params = polyrnn._tree.map_(b.asarray, params)
    lib_state = tuple(tuple(b.asarray(s) for s in layer) for layer in state)
    log_probs, new_state = lm.forward(lib_params, b.asarray(tokens), lib_state, cell=cell)
    want, want_state = reference.lm_forward(*_reference_args(params), tokens, state, cell=cell)
    assert_close(backend, log_probs, want, dtype="float64")
    for got_layer, want_layer in zip(new_state, want_state, strict=True):
        for g, w in zip(got_layer, want_layer, strict=True):
            assert_close(backend, g, w, dtype="float64")
    value, _ = lm.loss(lib_params, b.asarray(tokens), b.asarray(targets), lib_state, cell=cell)
    want_loss = reference.lm_loss(*_reference_args(params), tokens, targets, state, cell=cell)
    assert_close(backend, value, np.float64(want_loss), dtype="float64")


@pytest.mark.parametrize("cell", list(lm.CELLS))
def test_gradient_by_hand_matches_the_reference(cell):
    """The full model's hand-written gradient, along random directions, against the
    complex-step derivative of the reference model's loss (NumPy float64, two layers, a
    carried non-zero state), relative to ``|grad| |v|``, which bounds the rounding."""
    _, params, tokens, targets, state = _problem(cell)
    (value, _), grads = lm.loss_and_grad(params, tokens, targets, state, cell=cell)
    leaves, rebuild = polyrnn._tree.flatten(params)
    g_leaves = polyrnn._tree.flatten(grads)[0]

    def ref_loss(*moved):
        return reference.lm_loss(
            *_reference_args(rebuild(list(moved))), tokens, targets, state, cell=cell
        )

    assert float(value) == pytest.approx(float(ref_loss(*leaves)), rel=1e-12)
    rng = np.random.default_rng(1)
    for _ in range(3):
        direction = [rng.normal(size=a.shape) for a in leaves]
        exact = reference.directional_derivative(ref_loss, leaves, direction)
        analytic = sum(float(np.sum(g * d)) for g, d in zip(g_leaves, direction, strict=True))
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in g_leaves))
        bound = norm * math.sqrt(sum(float(np.sum(d * d)) for d in direction))
        assert abs(analytic - exact) <= 1e-12 * max(1.0, bound), (analytic, exact)


# ----------------------------------------------------------------- against torch.nn


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_follows_torch_nn_with_torch_adam(torch, cell):
    """polyrnn's GRU, LSTM and tanh-RNN LMs on the torch backend and the same models built
    from torch.nn layers (``nn.GRU``, ``nn.LSTM``, ``nn.RNN``), with the same initial
    weights and batches, trained with torch.optim.Adam and clip_grad_norm_, follow the
    same loss curve for 50 steps at float32."""
    config = lm.TrainConfig(batch=4, seq_len=10, lr=3e-3, warmup=0, final_lr=1.0, clip_norm=1.0)
    trainer = lm.Trainer(
        TEXT * 2,
        model=lm.ModelConfig(8, 24, 2, cell),
        config=config,
        backend="torch",
        dtype="float32",
    )
    p = trainer.lm.params
    v, e, h = p.embed.shape[0], p.embed.shape[1], p.w_out.shape[0]
    embed = torch.nn.Embedding(v, e)
    module = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM, "rnn": torch.nn.RNN}[cell]
    rnn = module(e, h, num_layers=2, batch_first=True)  # nn.RNN: tanh
    readout = torch.nn.Linear(h, v)
    with torch.no_grad():
        embed.weight.copy_(p.embed)
        for i, layer in enumerate(p.layers):
            getattr(rnn, f"weight_ih_l{i}").copy_(layer.w_x.T)
            getattr(rnn, f"weight_hh_l{i}").copy_(layer.w_h.T)
            getattr(rnn, f"bias_ih_l{i}").copy_(layer.b_x)
            getattr(rnn, f"bias_hh_l{i}").copy_(layer.b_h)
        readout.weight.copy_(p.w_out.T)
        readout.bias.copy_(p.b_out)
    weights = [*embed.parameters(), *rnn.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(
        weights, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps
    )
    expected = []
    state = None
    for step in range(50):
        k = step % len(trainer.batches)
        if k == 0:
            zeros = torch.zeros(2, config.batch, h)
            state = (zeros, zeros.clone()) if cell == "lstm" else zeros
        x, y = (torch.from_numpy(a) for a in trainer.batches[k])
        out, state = rnn(embed(x), state)
        state = tuple(s.detach() for s in state) if cell == "lstm" else state.detach()
        log_probs = torch.log_softmax(readout(out), dim=-1)
        loss = torch.nn.functional.nll_loss(log_probs.reshape(-1, v), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(weights, config.clip_norm)
        opt.step()
        expected.append(loss.item())
    assert len(trainer.batches) < 50  # the run crosses an epoch boundary (state reset)
    report = trainer.run(steps=50, evals=0)
    assert expected[-1] < expected[0] - 0.5
    rtol, _ = tolerance("float32", long=True)  # 50 steps of training: a long computation
    np.testing.assert_allclose(report.losses, expected, rtol=rtol, atol=0)


@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_adam_is_torch_adam_after_clip_grad_norm(torch, weight_decay):
    """Five functional Adam steps with global-norm clipping equal torch's, float64: Adam
    without weight decay, AdamW with."""
    rng = np.random.default_rng(0)
    params = {"a": rng.normal(size=(3, 4)), "b": (rng.normal(size=5),)}
    grads = [{"a": rng.normal(size=(3, 4)), "b": (rng.normal(size=5),)} for _ in range(5)]
    opt = lm.Adam(beta1=0.8, beta2=0.95, eps=1e-6, clip_norm=1.5, weight_decay=weight_decay)
    state = opt.init(params)
    mine = params
    for g in grads:
        mine, state, _ = opt.update(mine, g, state, lr=0.1)
    tensors = [torch.tensor(params["a"], requires_grad=True), torch.tensor(params["b"][0])]
    tensors[1].requires_grad_(True)
    kind = torch.optim.AdamW if weight_decay else torch.optim.Adam
    ref = kind(tensors, lr=0.1, betas=(0.8, 0.95), eps=1e-6, weight_decay=weight_decay)
    for g in grads:
        tensors[0].grad = torch.tensor(g["a"])
        tensors[1].grad = torch.tensor(g["b"][0])
        torch.nn.utils.clip_grad_norm_(tensors, 1.5)
        ref.step()
    np.testing.assert_allclose(mine["a"], tensors[0].detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(mine["b"][0], tensors[1].detach().numpy(), rtol=1e-12)
    assert int(state.count) == 5


# ----------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(("streams", "seq_len"), [(1, 5), (3, 7), (4, 100)])
def test_evaluation_is_log_perplexity_of_plain_forward_passes(streams, seq_len):
    """Chunked, batched, padded evaluation equals polyrnn.metrics.log_perplexity over one
    full-length forward pass per stream, every character scored once."""
    b = lm.get_backend("numpy", "float64")
    vocab = lm.Vocab.from_text(TEXT)
    params = lm.init_params(TINY, len(vocab), b, seed=5)
    model = lm.LanguageModel(TINY, vocab, params, b)
    tokens = vocab.encode(TEXT[:50])
    n = len(tokens) - 1
    span = -(-n // streams)
    scores, targets = [], []
    for start in range(0, n, span):
        piece = tokens[start : min(start + span, n) + 1]
        log_probs, _ = lm.forward(params, piece[None, :-1], lm.zero_state(TINY, b, 1), cell="gru")
        scores.append(log_probs[0])
        targets.append(piece[1:])
    scores, targets = np.concatenate(scores), np.concatenate(targets)
    assert targets.shape == (n,)
    metrics = lm.evaluate_tokens(model, tokens, streams=streams, seq_len=seq_len)
    assert metrics.tokens == n
    assert metrics.loss == pytest.approx(
        float(polyrnn.metrics.log_perplexity(scores, targets)), rel=1e-12
    )
    assert metrics.perplexity == pytest.approx(
        float(polyrnn.metrics.perplexity(scores, targets)), rel=1e-12
    )
    assert metrics.bits_per_char == pytest.approx(metrics.loss / math.log(2))


def test_untrained_model_is_near_uniform():
    """At initialisation the perplexity is of the order of the vocabulary size."""
    trainer = lm.Trainer(TEXT, model=TINY, config=RUN)
    v = len(trainer.lm.vocab)
    assert 0.5 * v < trainer.evaluate().perplexity < 3 * v


# ------------------------------------------------------------------------------ data


def test_vocab_encode_decode():
    vocab = lm.Vocab.from_text("hello, world")
    assert vocab.chars == tuple(sorted(set("hello, world")))
    ids = vocab.encode("world, hello")
    assert [vocab.chars[i] for i in ids] == list("world, hello")
    assert vocab.decode(ids) == "world, hello"
    assert lm.Vocab.from_text("añ€😀").encode("😀ñ").tolist() == [3, 1]
    with pytest.raises(lm.DataError, match=r"2 characters outside .* 'x', 'z'"):
        vocab.encode("xoz")


def test_split_and_stream_batches_slice_the_text():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, val = lm.split_text(text)
    assert (len(train), len(val)) == (900, 100) and train + val == text
    vocab = lm.Vocab.from_text(text)
    batches = lm.StreamBatches(vocab.encode(train), batch=3, seq_len=10)
    span = 899 // 3
    assert len(batches) == span // 10
    for k in (0, 7, len(batches) - 1):
        x, y = batches[k]
        for s in range(3):
            start = s * span + k * 10
            assert vocab.decode(x[s]) == train[start : start + 10]
            assert vocab.decode(y[s]) == train[start + 1 : start + 11]
    with pytest.raises(IndexError):
        batches[len(batches)]


def test_text_shorter_than_one_batch():
    with pytest.raises(lm.DataError, match=r"fewer than one batch needs: 8 streams x 16"):
        lm.StreamBatches(np.arange(100), batch=8, seq_len=16)
    with pytest.raises(lm.DataError, match="too few to split"):
        lm.split_text("abc")


def test_read_text_errors(tmp_path):
    with pytest.raises(lm.DataError, match="cannot read text file .*No such file"):
        lm.read_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(lm.DataError, match="is empty"):
        lm.read_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(lm.DataError, match="not UTF-8"):
        lm.read_text(tmp_path / "latin1.txt")


# ------------------------------------------------------------------ training, sampling


def test_smoke_training_learns():
    """A seconds-long NumPy run: the loss falls well below the uniform model's log V."""
    trainer = lm.Trainer(TEXT * 3, model=lm.ModelConfig(8, 32), config=RUN)
    report = trainer.run(steps=60, evals=2)
    log_v = math.log(len(trainer.lm.vocab))
    assert report.losses[0] == pytest.approx(log_v, rel=0.15)
    assert report.train_loss < 0.75 * log_v
    assert [r["step"] for r in report.history] == [0, 30, 60]
    assert report.history[0]["val_loss"] > report.history[-1]["val_loss"]
    assert report.val.loss == report.history[-1]["val_loss"] < 0.8 * log_v


OVERSHOOT_TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 12
OVERSHOOT = lm.TrainConfig(batch=4, seq_len=16, lr=0.1, warmup=0, final_lr=1.0)
"""A constant learning rate too high for ``OVERSHOOT_TEXT`` and ``ModelConfig(8, 32)``:
in float64 the validation loss falls from 3.55 to 1.33 at step 20, then rises to 1.98 at
step 60 (the same on NumPy, JAX and PyTorch)."""


class _Stop(Exception):
    """Ends a run at a chosen step, raised from ``on_step``."""


def _params_at(step, steps, *, backend, text, model, config, dtype="float64"):
    """Host copies of the parameters after ``step`` steps of a ``steps``-step run, from
    a run of its own (same seed) stopped there: the same learning-rate schedule and
    batches, no validations."""
    trainer = lm.Trainer(text, model=model, config=config, backend=backend, dtype=dtype)

    def stop(progress):
        if progress.step == step:
            raise _Stop

    if step:
        with pytest.raises(_Stop):
            trainer.run(steps=steps, evals=0, on_step=stop)
    assert trainer.steps_done == step
    return [
        np.array(trainer.lm.backend.to_numpy(a))
        for a in polyrnn._tree.flatten(trainer.lm.params)[0]
    ]


def test_best_checkpoint_is_the_lowest_validation(backend, tmp_path):
    """A run whose validation loss falls, then rises: ``Trainer.best`` holds exactly the
    parameters a run of the same seed stopped at the lowest validation has, saves and
    loads to them, and scores the recorded loss."""
    if backend.name == "cupy":
        pytest.skip("covered by the CUDA run")
    model = lm.ModelConfig(8, 32)
    trainer = lm.Trainer(
        OVERSHOOT_TEXT, model=model, config=OVERSHOOT, backend=backend.name, dtype="float64"
    )
    report = trainer.run(steps=60, evals=6)
    losses = [r["val_loss"] for r in report.history]
    k = losses.index(min(losses))
    assert 0 < k < len(losses) - 1 and losses[-1] > losses[k] + 0.3  # down, then up
    best = trainer.best
    assert best is not None and best.loss == losses[k] == report.best["val_loss"]
    assert (best.step, best.seconds) == (report.history[k]["step"], report.history[k]["seconds"])
    assert best.metrics == report.val._replace(loss=losses[k], perplexity=math.exp(losses[k]))
    assert report.val.loss == losses[-1]  # the report's val stays the last validation's

    expected = _params_at(
        best.step, 60, backend=backend.name, text=OVERSHOOT_TEXT, model=model, config=OVERSHOOT
    )
    kept = polyrnn._tree.flatten(best.params)[0]
    for a, e in zip(kept, expected, strict=True):
        assert isinstance(a, np.ndarray) and a.dtype == np.float64
        np.testing.assert_array_equal(a, e)
    last = [backend.to_numpy(a) for a in polyrnn._tree.flatten(trainer.lm.params)[0]]
    assert not all(np.array_equal(a, e) for a, e in zip(last, expected, strict=True))

    path = tmp_path / "best.npz"
    lm.save(trainer.best_model(), path)
    loaded = lm.load(path, backend=backend.name)
    for a, e in zip(polyrnn._tree.flatten(loaded.params)[0], expected, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(a), e)
    val_text = lm.split_text(OVERSHOOT_TEXT, OVERSHOOT.val_fraction)[1]
    assert lm.evaluate(loaded, val_text).loss == pytest.approx(best.loss, rel=1e-12)


class _Scripted(lm.Trainer):
    """A trainer whose validations report the losses of ``script`` in turn."""

    def __init__(self, *args, script, **kwargs):
        super().__init__(*args, **kwargs)
        self.script = list(script)

    def evaluate(self):
        loss = self.script.pop(0)
        return lm.Metrics(loss, math.exp(loss), 10)


def test_best_changes_only_on_a_strictly_lower_loss():
    """Validations of 3, 2, 2, 2.5 at steps 0, 1, 2, 3: the best is step 1's (the first of
    equal losses), its parameters those of a run stopped at step 1."""
    trainer = _Scripted(TEXT, model=TINY, config=RUN, dtype="float64", script=[3, 2, 2, 2.5])
    assert trainer.best is None
    with pytest.raises(ValueError, match="no validation yet"):
        trainer.best_model()
    report = trainer.run(steps=3, evals=3)
    assert [r["val_loss"] for r in report.history] == [3, 2, 2, 2.5]
    assert (trainer.best.step, trainer.best.loss) == (1, 2)
    assert report.best == report.history[1]
    expected = _params_at(1, 3, backend="numpy", text=TEXT, model=TINY, config=RUN)
    for a, e in zip(polyrnn._tree.flatten(trainer.best.params)[0], expected, strict=True):
        np.testing.assert_array_equal(a, e)
    model = trainer.best_model()
    assert model is not trainer.lm and model.params.embed is not trainer.best.params.embed
    assert lm.Trainer(TEXT, model=TINY, config=RUN).run(steps=1, evals=0).best is None


def test_a_non_finite_loss_stops_training_without_applying_the_step():
    trainer = lm.Trainer(TEXT, model=TINY, config=RUN)
    trainer.train_step(1e-2)
    before = (trainer.lm.params, trainer.opt_state, trainer.state)
    embed = np.array(trainer.lm.params.embed)
    embed[:] = np.nan  # every character's embedding: the loss is NaN
    trainer.lm.params = before[0]._replace(embed=embed)
    with pytest.raises(lm.DivergedError, match="diverged at step 2: loss nan, gradient norm nan"):
        trainer.train_step(1e-2)
    assert trainer.steps_done == 1
    assert trainer.opt_state is before[1] and trainer.state is before[2]
    assert trainer.lm.params.layers is before[0].layers  # not replaced by the failed update


def test_time_bounded_run_and_lr_schedule():
    config = lm.TrainConfig(lr=1.0, warmup=4, final_lr=0.1)
    assert config.lr_at(0, 0.0) == 0.25
    assert config.lr_at(3, 0.0) == 1.0
    assert config.lr_at(10, 0.5) == pytest.approx(0.55)
    assert config.lr_at(10, 1.0) == pytest.approx(0.1)
    trainer = lm.Trainer(TEXT, model=TINY, config=RUN)
    report = trainer.run(seconds=0.3, evals=0)
    assert report.steps >= 1 and report.val is None
    assert report.seconds >= 0.3
    with pytest.raises(ValueError, match="exactly one of steps and seconds"):
        trainer.run(steps=3, seconds=1.0)


def test_lr_schedule_as_run_applies_it(monkeypatch):
    """The learning rate ``Trainer.run`` hands each step is the schedule's formula --
    ``lr min(1, (k+1)/warmup) (f + (1 - f) (1 + cos(pi k / K)) / 2)`` for step ``k`` of
    ``K`` -- and the first step's Adam update moves every parameter by that rate (Adam's
    first step is ``lr g / (|g| + eps)``)."""
    config = lm.TrainConfig(batch=4, seq_len=8, lr=2e-2, warmup=4, final_lr=0.1, clip_norm=0.5)
    trainer = lm.Trainer(TEXT, model=TINY, config=config, dtype="float64")
    before = [np.array(a) for a in polyrnn._tree.flatten(trainer.lm.params)[0]]
    applied, moves = [], []
    real = trainer.train_step

    def spy(lr):
        applied.append(lr)
        out = real(lr)
        if len(applied) == 1:
            after = polyrnn._tree.flatten(trainer.lm.params)[0]
            moves.extend(np.abs(np.asarray(a) - b) for a, b in zip(after, before, strict=True))
        return out

    monkeypatch.setattr(trainer, "train_step", spy)
    steps, lr, f, warm = 12, 2e-2, 0.1, 4
    trainer.run(steps=steps, evals=0)
    expected = [
        lr * min(1.0, (k + 1) / warm) * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * k / steps)))
        for k in range(steps)
    ]
    assert applied == pytest.approx(expected, rel=1e-15, abs=0)
    largest = max(float(m.max()) for m in moves)
    assert largest == pytest.approx(expected[0], rel=1e-6)  # |g| >> eps for some entry
    assert largest <= expected[0] * (1 + 1e-12)


def test_greedy_sampling_follows_the_model():
    """At temperature 0 each generated character is the argmax of the model's prediction
    after prompt + what came before, computed afresh in one forward pass."""
    b = lm.get_backend("numpy", "float64")
    vocab = lm.Vocab.from_text(TEXT)
    model = lm.LanguageModel(TINY, vocab, lm.init_params(TINY, len(vocab), b, seed=2), b)
    prompt = "it was"
    out = lm.sample(model, prompt, 12, temperature=0.0)
    assert len(out) == 12
    ids = vocab.encode(prompt + out)
    log_probs, _ = lm.forward(model.params, ids[None, :-1], lm.zero_state(TINY, b, 1), cell="gru")
    predicted = np.argmax(log_probs[0], axis=-1)
    assert vocab.decode(predicted[len(prompt) - 1 :]) == out


@pytest.mark.parametrize("temperature", [0.5, 1.7])
def test_sampling_follows_softmax_of_log_p_over_temperature(temperature):
    """The next character drawn after a prompt, over N = 2000 seeds, has the frequencies of
    ``softmax(log p / T)``, with ``log p`` from the reference model.

    Bound: each character's count ``c_k`` is Binomial(N, q_k); ``|c_k - N q_k| <= 5 sd + 1``
    fails by chance with probability under 1e-6 per character (normal tail at 5 sd, plus
    one for the discreteness), about 3e-5 for all of them.  The seeds are fixed, so the
    outcome never varies; the same counts checked against the distribution at ``T = 1``
    must fail, which shows the test can tell temperatures apart.
    """
    b = lm.get_backend("numpy", "float64")
    vocab = lm.Vocab.from_text(TEXT)
    params = lm.init_params(TINY, len(vocab), b, seed=2)
    params = params._replace(w_out=params.w_out * 6)  # a peaked distribution: T matters
    model = lm.LanguageModel(TINY, vocab, params, b)
    prompt, n = "it was", 2000
    counts = np.zeros(len(vocab))
    for seed in range(n):
        counts[vocab.encode(lm.sample(model, prompt, 1, temperature=temperature, seed=seed))] += 1
    zeros = lm.zero_state(TINY, b, 1)
    log_p, _ = reference.lm_forward(
        *_reference_args(params), vocab.encode(prompt)[None, :], zeros, cell="gru"
    )

    def within_bound(t):
        q = np.exp(reference.log_softmax(log_p[0, -1] / t))
        return np.abs(counts - n * q) <= 5 * np.sqrt(n * q * (1 - q)) + 1

    assert within_bound(temperature).all(), (counts, within_bound(temperature))
    assert not within_bound(1.0).all()


def test_sampling_is_seeded_and_checks_its_input():
    trainer = lm.Trainer(TEXT, model=TINY, config=RUN)
    model = trainer.lm
    a = lm.sample(model, "it", 30, temperature=0.8, seed=7)
    assert a == lm.sample(model, "it", 30, temperature=0.8, seed=7)
    assert a != lm.sample(model, "it", 30, temperature=0.8, seed=8)
    assert set(a) <= set(model.vocab.chars)
    assert lm.sample(model, "it", 0) == ""
    with pytest.raises(lm.DataError, match="at least one character"):
        lm.sample(model, "", 5)
    with pytest.raises(lm.DataError, match="outside"):
        lm.sample(model, "#", 5)


# ---------------------------------------------------------------------------- files


@pytest.fixture
def trained(tmp_path):
    trainer = lm.Trainer(TEXT, model=lm.ModelConfig(6, 10, 2, "lstm"), config=RUN)
    trainer.run(steps=3, evals=0)
    trainer.lm.info = {"note": "naïve ✓", "steps": 3}
    return trainer.lm


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "model.npz"
    lm.save(trained, path)
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left
    loaded = lm.load(path)
    assert loaded.config == trained.config
    assert loaded.vocab == trained.vocab
    assert loaded.info == trained.info
    assert loaded.backend.dtype_name == "float32"
    leaves = polyrnn._tree.flatten(loaded.params)[0]
    for a, r in zip(leaves, polyrnn._tree.flatten(trained.params)[0], strict=True):
        assert a.dtype == r.dtype
        np.testing.assert_array_equal(a, r)
    assert lm.evaluate(loaded, TEXT) == lm.evaluate(trained, TEXT)
    as64 = lm.load(path, dtype="float64")
    assert as64.params.embed.dtype == np.float64
    assert lm.evaluate(as64, TEXT).loss == pytest.approx(lm.evaluate(trained, TEXT).loss, rel=1e-6)


def test_failed_save_leaves_the_old_file(trained, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    lm.save(trained, path)
    before = path.read_bytes()

    def broken(file, **arrays):
        file.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="No space left"):
        lm.save(trained, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_corrupt_or_incompatible_files(trained, tmp_path):
    path = tmp_path / "model.npz"
    lm.save(trained, path)
    data = path.read_bytes()

    def check(name, content, match):
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(lm.ModelFileError, match=match):
            lm.load(bad)

    check("text.npz", b"hello", "not an .npz archive")
    check("truncated.npz", data[: len(data) // 2], "not an .npz archive|corrupt")
    flipped = bytearray(data)
    at = data.find(np.asarray(trained.params.embed).tobytes())  # stored uncompressed
    assert at > 0
    flipped[at + 5] ^= 0xFF
    check("flipped.npz", bytes(flipped), "corrupt or not .npz: Bad CRC-32 for file 'embed.npy'")

    def rewrite(name, change):
        with np.load(path) as z:
            arrays = dict(z.items())
        change(arrays)
        out = tmp_path / name
        np.savez(out, **arrays)
        return out

    def version(arrays):
        meta = __import__("json").loads(str(arrays["meta"]))
        meta["version"] = 2
        arrays["meta"] = np.array(__import__("json").dumps(meta))

    with pytest.raises(lm.ModelFileError, match="format version 2; this polyrnn reads version 1"):
        lm.load(rewrite("v2.npz", version))
    with pytest.raises(lm.ModelFileError, match="no metadata"):
        lm.load(rewrite("nometa.npz", lambda a: a.pop("meta")))
    with pytest.raises(lm.ModelFileError, match=r"missing arrays \['w_out'\]"):
        lm.load(rewrite("missing.npz", lambda a: a.pop("w_out")))
    with pytest.raises(lm.ModelFileError, match="'b_out' has shape"):
        lm.load(rewrite("shape.npz", lambda a: a.update(b_out=np.zeros(3))))
    with pytest.raises(lm.ModelFileError, match="does not exist"):
        lm.load(tmp_path / "nothing.npz")
    assert zipfile.is_zipfile(path)  # the good file is untouched


# ------------------------------------------------------------------------- backends


def test_backend_errors(monkeypatch):
    with pytest.raises(lm.BackendUnavailableError, match="unknown backend 'tf'; choose one of"):
        lm.get_backend("tf")
    real = importlib.import_module

    def no_jax(name, *args):
        if name.startswith("jax"):
            raise ImportError("No module named 'jax'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_jax)
    with pytest.raises(lm.BackendUnavailableError, match=r'pip install "polyrnn\[jax\]"'):
        lm.get_backend("jax")
    with pytest.raises(ValueError, match="dtype must be one of"):
        lm.get_backend("numpy", "float16")


def test_cell_table_is_the_model_interface():
    """Every cell entry runs forward and by-hand backward with the state shapes it declares."""
    b = lm.get_backend("numpy", "float64")
    for name, spec in lm.CELLS.items():
        config = lm.ModelConfig(4, 5, 1, name)
        params = lm.init_params(config, 7, b)
        state = lm.zero_state(config, b, 2)
        assert [len(s) for s in state] == [spec.n_states]
        tokens = np.zeros((2, 3), dtype=np.int64)
        (value, new_state), _ = lm.loss_and_grad(params, tokens, tokens, state, cell=name)
        assert [tuple(a.shape) for a in new_state[0]] == [(2, 5)] * spec.n_states
        assert float(value) == pytest.approx(
            float(lm.loss(params, tokens, tokens, state, cell=name)[0])
        )
    with pytest.raises(ValueError, match="unknown cell 'gru2'; choose one of gru, lstm"):
        lm.ModelConfig(cell="gru2")
    assert lm_model.CELLS is lm.CELLS


# ------------------------------------------------------------------------------ dropout

DROPOUT, RECURRENT = 0.4, 0.3
DROPOUT_RUN = lm.TrainConfig(
    batch=4, seq_len=8, lr=1e-2, warmup=5, final_lr=0.2, clip_norm=0.5, dropout=DROPOUT,
    recurrent_dropout=RECURRENT,
)  # fmt: skip


def _masked_reference_loss(embed, layers, w_out, b_out, tokens, targets, state, masks, *, cell):
    """The reference model's loss (:func:`reference.lm_loss`) with the dropout multipliers
    applied where Zaremba et al. put them (the embedding's output, then each layer's) and
    the recurrent ones where Gal & Ghahramani do (``h_{t-1}`` where it meets ``W_h``)."""
    kind, opts = reference.LM_CELLS[cell]
    out, rec = masks
    x = np.asarray(embed)[np.asarray(tokens)] * out[0]
    for i, (p, carry) in enumerate(zip(layers, state, strict=True)):
        pair = kind in ("lstm", "ln_lstm")
        m = None if rec is None else rec[i]
        x, _ = reference.scan(
            kind, p, x, tuple(carry) if pair else carry[0], recurrent_mask=m, **opts
        )
        x = x * out[i + 1]
    log_probs = reference.log_softmax(x @ np.asarray(w_out) + np.asarray(b_out))
    return -np.mean(np.take_along_axis(log_probs, np.asarray(targets)[..., None], axis=-1))


def _problem_masks(config, batch, steps, *, step=3):
    """Dropout and, for the cells with a recurrent weight, recurrent dropout."""
    recurrent = RECURRENT if lm.CELLS[config.cell].cell.recurrent_dropout else 0.0
    return lm.dropout_masks(config, DROPOUT, batch, steps, seed=7, step=step, recurrent=recurrent)


@pytest.mark.parametrize("cell", list(lm.CELLS))
def test_dropout_gradient_by_hand_matches_the_reference(cell):
    """With dropout masks (recurrent ones too, but for minGRU and minLSTM), the
    hand-written loss and gradient of a two-layer model equal the masked reference model's
    loss and its complex-step directional derivatives."""
    config, params, tokens, targets, state = _problem(cell)
    masks = _problem_masks(config, *tokens.shape)
    (value, _), grads = lm.loss_and_grad(params, tokens, targets, state, cell=cell, masks=masks)
    leaves, rebuild = polyrnn._tree.flatten(params)
    g_leaves = polyrnn._tree.flatten(grads)[0]

    def ref_loss(*moved):
        args = _reference_args(rebuild(list(moved)))
        return _masked_reference_loss(*args, tokens, targets, state, masks, cell=cell)

    assert float(value) == pytest.approx(float(ref_loss(*leaves)), rel=1e-12)
    unmasked = reference.lm_loss(*_reference_args(params), tokens, targets, state, cell=cell)
    assert abs(float(value) - unmasked) > 1e-3  # the masks do change the loss
    rng = np.random.default_rng(2)
    for _ in range(3):
        direction = [rng.normal(size=a.shape) for a in leaves]
        exact = reference.directional_derivative(ref_loss, leaves, direction)
        analytic = sum(float(np.sum(g * d)) for g, d in zip(g_leaves, direction, strict=True))
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in g_leaves))
        bound = norm * math.sqrt(sum(float(np.sum(d * d)) for d in direction))
        assert abs(analytic - exact) <= 1e-12 * max(1.0, bound), (analytic, exact)


def test_masks_of_ones_are_no_dropout():
    """Multipliers of 1 give exactly the loss and gradient without masks (the
    ``dropout=0`` path, which passes no masks at all, is today's arithmetic)."""
    config, params, tokens, targets, state = _problem("lstm")
    ones = polyrnn._tree.map_(np.ones_like, _problem_masks(config, *tokens.shape))
    assert ones.recurrent is not None
    (v0, s0), g0 = lm.loss_and_grad(params, tokens, targets, state, cell="lstm")
    (v1, s1), g1 = lm.loss_and_grad(params, tokens, targets, state, cell="lstm", masks=ones)
    assert float(v0) == float(v1)
    for a, b in zip(
        polyrnn._tree.flatten((s0, g0))[0], polyrnn._tree.flatten((s1, g1))[0], strict=True
    ):
        np.testing.assert_array_equal(a, b)
    out, rec = ones
    bad = [
        (ones._replace(outputs=out[:2]), r"masks.outputs must hold L \+ 1 = 3 arrays"),
        (
            ones._replace(outputs=(out[0], out[0], out[2])),
            r"masks.outputs\[1\] must have shape \(2, 6, 7\)",
        ),
        (ones._replace(recurrent=rec[:1]), r"masks.recurrent must hold L = 2 arrays"),
        (
            ones._replace(recurrent=(rec[0], out[1])),
            r"masks.recurrent\[1\] must have shape \(2, 7\)",
        ),
    ]
    for masks, message in bad:
        with pytest.raises(ValueError, match=message):
            lm.forward(params, tokens, state, cell="lstm", masks=masks)


@pytest.mark.parametrize("engine", ["autodiff", "by_hand"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_dropout_gradient_matches_numpy_by_hand(backend, cell, engine):
    """Autodiff through the masked forward pass (JAX under jit, torch) and the hand-written
    gradient on another library equal the hand-written NumPy float64 gradient with the
    same masks, leaf by leaf."""
    if backend.name == "numpy":
        pytest.skip("NumPy is the reference here; the reference model checks it above")
    if engine == "autodiff" and backend.name not in ("jax", "torch"):
        pytest.skip(f"{backend.name} has no autodiff")
    config, params, tokens, targets, state = _problem(cell)
    masks = _problem_masks(config, *tokens.shape)

    def run(name):
        bk = lm.get_backend(name, "float64")
        put = functools.partial(polyrnn._tree.map_, bk.asarray)
        engine_of = engine if name == backend.name else "by_hand"
        (value, _), grads = bk.jit(lm.value_and_grad(bk, cell, engine_of))(
            put(params), bk.asarray(tokens), bk.asarray(targets), put(state), put(masks)
        )
        return float(value), [bk.to_numpy(g) for g in polyrnn._tree.flatten(grads)[0]]

    value, grads = run(backend.name)
    ref_value, ref_grads = run("numpy")
    assert value == pytest.approx(ref_value, rel=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        scale = max(1.0, float(np.max(np.abs(r))))
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * scale)


def _dropout_steps(backend, steps=3):
    """The losses and host parameters after each of ``steps`` training steps with dropout."""
    trainer = lm.Trainer(TEXT, model=TINY, config=DROPOUT_RUN, backend=backend, dtype="float64")
    out = []
    for _ in range(steps):
        loss = trainer.train_step(5e-3)
        params = [
            np.array(trainer.lm.backend.to_numpy(a))
            for a in polyrnn._tree.flatten(trainer.lm.params)[0]
        ]
        out.append((loss, params))
    return out


@functools.cache
def _numpy_dropout_steps():
    return _dropout_steps("numpy")


def test_dropout_training_steps_are_the_same_on_every_backend(backend):
    """Three Adam steps with dropout 0.4 and recurrent dropout 0.3: the losses and the
    updated parameters of JAX's and torch's autodiff equal those of NumPy's hand-written
    gradient (the masks are drawn on the host from the seed and the step, the same on
    every backend)."""
    if backend.name == "numpy":
        pytest.skip("NumPy is the reference here")
    got, want = _dropout_steps(backend.name), _numpy_dropout_steps()
    plain = lm.Trainer(TEXT, model=TINY, config=RUN, dtype="float64").train_step(5e-3)
    assert abs(want[0][0] - plain) > 1e-3  # dropout changes the first loss
    for (loss, params), (ref_loss, ref_params) in zip(got, want, strict=True):
        assert loss == pytest.approx(ref_loss, rel=1e-12)
        for a, r in zip(params, ref_params, strict=True):
            np.testing.assert_allclose(a, r, rtol=1e-10, atol=1e-13)


def test_a_training_step_drops_out_with_the_masks_of_its_seed_and_step():
    """The loss of step k is :func:`lm.loss` of the parameters and carried state before it,
    with ``dropout_masks(seed, k)``: recomputed here outside the trainer for k = 0, 1, 2."""
    config = lm.TrainConfig(
        batch=4, seq_len=8, lr=1e-2, dropout=0.25, recurrent_dropout=0.5, seed=3
    )
    trainer = lm.Trainer(TEXT, model=TINY, config=config, dtype="float64")
    for k in range(3):
        assert trainer.steps_done == k
        x, y = trainer.batches[k]
        masks = lm.dropout_masks(TINY, 0.25, 4, 8, seed=3, step=k, recurrent=0.5)
        want, _ = lm.loss(trainer.lm.params, x, y, trainer.state, cell="gru", masks=masks)
        assert trainer.train_step(1e-2) == pytest.approx(float(want), rel=1e-13)


def test_validation_never_drops_out():
    """A trainer with dropout validates as :func:`lm.evaluate` scores its parameters
    (copied into a model of its own), and training on does not change that."""
    trainer = lm.Trainer(TEXT, model=TINY, config=DROPOUT_RUN, dtype="float64")
    report = trainer.run(steps=4, evals=2)
    b = lm.get_backend("numpy", "float64")
    params = polyrnn._tree.map_(lambda a: np.array(a, copy=True), trainer.lm.params)
    model = lm.LanguageModel(TINY, trainer.lm.vocab, params, b)
    val_text = lm.split_text(TEXT, DROPOUT_RUN.val_fraction)[1]
    want = lm.evaluate(model, val_text).loss
    assert report.val.loss == want
    assert trainer.validate().loss == want  # twice: no hidden randomness
    assert trainer.evaluate().loss == want


def test_dropout_masks_are_bernoulli_per_seed_and_step():
    """Values are 0 and 1/(1-p) (in float32 the same draw, rounded); the share dropped is
    within 5 sigma of p over 172,800 entries, in each mask too (and of the recurrent
    probability in the recurrent masks); different steps or seeds give different masks,
    the same (seed, step) the same ones; the recurrent masks follow the others' draw."""
    config = lm.ModelConfig(embed_size=40, hidden_size=100, layers=2)
    p, batch, steps = 0.3, 20, 36
    both = lm.dropout_masks(config, p, batch, steps, seed=5, step=11, recurrent=0.5)
    masks = both.outputs
    assert [m.shape for m in both.recurrent] == [(20, 100), (20, 100)]
    rec = np.concatenate([m.ravel() for m in both.recurrent])
    assert set(np.unique(rec)) == {0.0, 2.0}
    assert abs(float(np.mean(rec == 0.0)) - 0.5) <= 5 * math.sqrt(0.25 / rec.size)
    assert [m.shape for m in masks] == [(20, 36, 40), (20, 36, 100), (20, 36, 100)]
    flat = np.concatenate([m.ravel() for m in masks])
    assert flat.dtype == np.float64 and flat.size == 172_800
    assert set(np.unique(flat)) == {0.0, 1.0 / (1.0 - p)}
    for a in (flat, *(m.ravel() for m in masks)):
        dropped = float(np.mean(a == 0.0))
        assert abs(dropped - p) <= 5 * math.sqrt(p * (1 - p) / a.size), dropped
    # the layers' masks are independent: they agree on p^2 + (1 - p)^2 of the entries
    agree = float(np.mean((masks[1] == 0) == (masks[2] == 0)))
    n = masks[1].size
    q = p**2 + (1 - p) ** 2
    assert abs(agree - q) <= 5 * math.sqrt(q * (1 - q) / n)
    again = lm.dropout_masks(config, p, batch, steps, seed=5, step=11).outputs
    assert all(np.array_equal(a, b) for a, b in zip(masks, again, strict=True))
    single = lm.dropout_masks(config, p, batch, steps, seed=5, step=11, dtype="float32").outputs
    for a, b in zip(masks, single, strict=True):  # the same draw, rounded to float32
        assert b.dtype == np.float32
        np.testing.assert_array_equal(b, a.astype(np.float32))
    for other in (
        lm.dropout_masks(config, p, batch, steps, seed=5, step=12).outputs,
        lm.dropout_masks(config, p, batch, steps, seed=6, step=11).outputs,
    ):
        for a, b in zip(masks, other, strict=True):
            assert abs(float(np.mean((a == 0) == (b == 0))) - q) <= 5 * math.sqrt(
                q * (1 - q) / a.size
            )
    assert lm.dropout_masks(config, 0.0, 2, 3, seed=0, step=0) == (None, None)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (1.0, ValueError, r"dropout must be in \[0, 1\), got 1.0"),
        (-0.1, ValueError, r"dropout must be in \[0, 1\), got -0.1"),
        (math.nan, ValueError, "dropout must be finite, got nan"),
        ("0.1", TypeError, "dropout must be a real number"),
        (True, TypeError, "dropout must be a real number"),
    ],
)
@pytest.mark.parametrize("name", ["dropout", "recurrent_dropout"])
def test_dropout_is_checked(value, error, message, name):
    with pytest.raises(error, match=message.replace("dropout", name)):
        lm.TrainConfig(**{name: value})
    assert lm.TrainConfig(**{name: 0.5}).to_dict()[name] == 0.5


def test_recurrent_dropout_needs_a_recurrent_weight():
    config = lm.TrainConfig(batch=4, seq_len=8, recurrent_dropout=0.2)
    for cell in ("min_gru", "min_lstm"):
        with pytest.raises(ValueError, match=f"recurrent_dropout needs a cell with a recurrent "
                           f"weight W_h; '{cell}' has none"):  # fmt: skip
            lm.Trainer(TEXT, model=lm.ModelConfig(8, 8, 1, cell), config=config)


def test_engine_is_checked():
    """An unknown engine, and autodiff on a library without it, are refused by name."""
    numpy = lm.get_backend("numpy", "float64")
    with pytest.raises(
        ValueError, match=r"engine must be one of \('autodiff', 'by_hand'\) or None, got 'jvp'"
    ):
        lm.value_and_grad(numpy, "gru", "jvp")
    with pytest.raises(ValueError, match=r"engine='autodiff' needs .* got 'numpy'"):
        lm.value_and_grad(numpy, "gru", "autodiff")
    with pytest.raises(ValueError, match="engine must be one of"):
        lm.Trainer("the cat sat on the mat. " * 100, engine="jvp")
