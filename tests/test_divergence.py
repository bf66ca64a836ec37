"""Training that diverges stops where it diverges, keeps the last finite parameters and says
so; a loss too large for ``exp`` has perplexity ``inf``.

Non-finite values are put in explicitly (a NaN or infinite learning rate, a NaN loss, an
infinite validation loss), never hoped for from a large learning rate: where a run
overflows on its own depends on the machine.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import polyrnn
from polyrnn import _tree, lm

TEXT = "the quick brown fox jumps over the lazy dog. " * 20
CONFIG = lm.TrainConfig(batch=4, seq_len=8, lr=1e-2, warmup=0, final_lr=1.0)  # constant lr
MODEL = lm.ModelConfig(embed_size=4, hidden_size=8)


def _host(trainer):
    return [np.array(trainer.lm.backend.to_numpy(a)) for a in _tree.flatten(trainer.lm.params)[0]]


def _trainer(backend):
    return lm.Trainer(TEXT, model=MODEL, config=CONFIG, backend=backend.name, dtype="float64")


@pytest.mark.parametrize("lr", [math.nan, math.inf])
def test_a_non_finite_update_is_not_applied(backend, lr):
    """Loss and gradient are finite; the update is not: the step is refused, and the
    parameters, the step count and the batches stay where they were."""
    if backend.name == "cupy":
        pytest.skip("covered by the CUDA run")
    trainer = _trainer(backend)
    trainer.train_step(1e-2)
    before = _host(trainer)
    with pytest.raises(
        lm.DivergedError,
        match=r"at step 2: the update \(learning rate (nan|inf)\) "
        r"made parameters non-finite; the parameters are those before that step",
    ):
        trainer.train_step(lr)
    assert trainer.steps_done == 1
    for a, b in zip(_host(trainer), before, strict=True):
        np.testing.assert_array_equal(a, b)
    reference = _trainer(backend)  # the same run without the refused step
    reference.train_step(1e-2)
    assert trainer.train_step(1e-2) == reference.train_step(1e-2)


def test_a_non_finite_loss_stops_the_run(monkeypatch):
    """A NaN loss at step 3 (put into the gradient function's value): ``run`` raises with
    the loss in the message and keeps the parameters of step 2, all finite."""
    real = lm.train.value_and_grad

    def poisoned(backend, cell, engine=None):
        fn, calls = real(backend, cell, engine), []

        def value_and_grad(*args):
            calls.append(1)
            (value, state), grads = fn(*args)
            return (value * math.nan if len(calls) == 3 else value, state), grads

        return value_and_grad

    monkeypatch.setattr(lm.train, "value_and_grad", poisoned)
    trainer = lm.Trainer(TEXT, model=MODEL, config=CONFIG)
    clean = lm.Trainer(TEXT, model=MODEL, config=CONFIG)
    clean.run(steps=2, evals=0)
    with pytest.raises(lm.DivergedError, match=r"training diverged at step 3: loss nan"):
        trainer.run(steps=10, evals=0)
    assert trainer.steps_done == 2
    for a, b in zip(_host(trainer), _host(clean), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_non_finite_validation_loss_stops_the_run(monkeypatch):
    calls = []
    real = lm.Trainer.evaluate

    def evaluate(self):
        calls.append(1)
        return real(self) if len(calls) < 3 else lm.Metrics(math.nan, math.nan, 5)

    monkeypatch.setattr(lm.Trainer, "evaluate", evaluate)
    trainer = lm.Trainer(TEXT, model=MODEL, config=CONFIG)
    seen = []
    with pytest.raises(lm.DivergedError, match=r"the validation loss after step 4 is nan"):
        trainer.run(steps=8, evals=4, on_eval=seen.append)
    assert [r["step"] for r in seen] == [0, 2]  # the diverged record is not reported
    assert trainer.steps_done == 4
    assert all(np.isfinite(a).all() for a in _host(trainer))


class _Stop(Exception):
    """Ends a run at a chosen step, raised from ``on_step``."""


def test_a_diverged_run_keeps_the_best_finite_parameters(backend, monkeypatch):
    """Validations of 3, 2, 2.5 and then NaN at steps 0, 2, 4 and 6: the run stops at the
    NaN, and ``best`` holds step 2's parameters (the lowest finite loss, not the last
    finite one), those of a run of the same seed stopped at step 2, while ``lm`` keeps
    step 6's."""
    if backend.name == "cupy":
        pytest.skip("covered by the CUDA run")
    script = [3.0, 2.0, 2.5, math.nan]

    def evaluate(self):
        loss = script.pop(0)
        return lm.Metrics(loss, math.exp(loss), 5)

    monkeypatch.setattr(lm.Trainer, "evaluate", evaluate)
    trainer = _trainer(backend)
    with pytest.raises(lm.DivergedError, match=r"the validation loss after step 6 is nan"):
        trainer.run(steps=8, evals=4)
    assert trainer.steps_done == 6
    assert (trainer.best.step, trainer.best.loss) == (2, 2.0)

    reference = _trainer(backend)

    def stop(progress):
        if progress.step == 2:
            raise _Stop

    with pytest.raises(_Stop):
        reference.run(steps=8, evals=0, on_step=stop)
    expected = _host(reference)
    for a, b in zip(_tree.flatten(trainer.best.params)[0], expected, strict=True):
        np.testing.assert_array_equal(a, b)
    best = trainer.best_model()
    for a, b in zip(_tree.flatten(best.params)[0], expected, strict=True):
        np.testing.assert_array_equal(backend.to_numpy(a), b)
    assert not all(np.array_equal(a, b) for a, b in zip(_host(trainer), expected, strict=True))


def test_perplexity_of_a_huge_loss_is_inf(backend):
    """A model that gives every character but the first a log-probability near -2000: the
    loss, by hand from the character counts, is far above log(max float) ~ 709.78."""
    if backend.name == "cupy":
        pytest.skip("covered by the CUDA run")
    trainer = _trainer(backend)
    model = trainer.lm
    b = model.backend
    params = model.params
    v = len(model.vocab)
    bias = np.full(v, -2000.0)
    bias[0] = 0.0
    model.params = params._replace(
        w_out=b.asarray(np.zeros(tuple(params.w_out.shape))), b_out=b.asarray(bias)
    )
    tokens = model.vocab.encode(TEXT)[1:]
    log_z = np.log1p((v - 1) * np.exp(-2000.0))  # logsumexp of the bias: 0 + tiny
    expected = float(np.mean(np.where(tokens == 0, 0.0, 2000.0) + log_z))
    metrics = lm.evaluate(model, TEXT)
    assert expected > 1000
    assert metrics.loss == pytest.approx(expected, rel=1e-12)
    assert metrics.perplexity == math.inf
    assert metrics.bits_per_char == pytest.approx(expected / math.log(2), rel=1e-12)


def test_nan_propagates_through_logsumexp_and_log_softmax(backend):
    """IEEE arithmetic: a NaN score makes its row NaN (it was -inf, which hid it)."""
    x = backend.asarray(np.array([[np.nan, 0.0], [np.nan, np.inf], [1.0, 2.0]]))
    lse = backend.to_numpy(polyrnn.logsumexp(x, axis=-1))
    assert np.isnan(lse[:2]).all()
    assert lse[2] == pytest.approx(2.0 + math.log1p(math.exp(-1.0)), rel=1e-15)
    assert np.isnan(backend.to_numpy(polyrnn.log_softmax(x))[:2]).all()
