"""``polyrnn train --checkpoint`` / ``--resume``: a run stopped and resumed ends exactly
where the same run uninterrupted ends (NumPy float64: the same operations on the same
numbers, so equal to the last bit), and a checkpoint of another run is refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polyrnn import _tree, cli, lm

TEXT = ("the cat sat on the mat; the dog ran after the cat. " * 40)[:1900]

RUN = ["--embed", "8", "--hidden", "16", "--batch", "4", "--seq-len", "16", "--lr", "1e-2"]
RUN += ["--warmup", "3", "--dropout", "0.2", "--dtype", "float64", "--json"]
RUN += ["--steps", "10", "--evals", "4"]

TIMES = {"seconds", "tokens_per_s", "best_seconds"}
"""What depends on the clock, not on the numbers."""


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def _run(capsys, *argv):
    code = cli.main(["train", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "meta"}


def _history(path):
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    return [{k: v for k, v in r.items() if k != "seconds"} for r in document["history"]]


@pytest.mark.parametrize("stop", [1, 5, 8])  # before, at and between validations (2.5, 5, 7.5)
def test_a_resumed_run_ends_as_the_uninterrupted_one(
    capsys, tmp_path, text_file, monkeypatch, stop
):
    base = ["--text", text_file, *RUN]
    code, out, err = _run(
        capsys, *base, "--out", str(tmp_path / "a.npz"), "--history", str(tmp_path / "a.json")
    )
    assert code == 0, err
    straight = json.loads(out)

    real_step = lm.Trainer.train_step

    def stop_at(self, lr):  # Ctrl-C before step `stop + 1`
        if self.steps_done == stop:
            raise KeyboardInterrupt
        return real_step(self, lr)

    ck = str(tmp_path / "ck.npz")
    with monkeypatch.context() as m:
        m.setattr(lm.Trainer, "train_step", stop_at)
        code, _, err = _run(
            capsys, *base, "--checkpoint", ck, "--history", str(tmp_path / "b.json")
        )
    assert code == 130, err
    assert lm.io.load(ck).params.size() == lm.load(str(tmp_path / "a.npz")).params.size()

    out_b = str(tmp_path / "b.npz")
    history = ["--history", str(tmp_path / "b.json")]
    code, out, err = _run(
        capsys, *base, "--out", out_b, "--checkpoint", ck, "--resume", ck, *history
    )
    assert code == 0, err
    assert f"resumed after step {stop} from {ck}" in err
    resumed = json.loads(out)
    assert {k: v for k, v in resumed.items() if k not in TIMES} == {
        k: v for k, v in straight.items() if k not in TIMES
    }
    a, b = _arrays(tmp_path / "a.npz"), _arrays(out_b)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)  # bit for bit
    assert _history(tmp_path / "b.json") == _history(tmp_path / "a.json")


def test_a_checkpoint_holds_the_last_state(tmp_path):
    """The checkpoint loads as a model of the *last* parameters; restored into a fresh
    trainer, every array and count equals the trainer's that wrote it."""
    config = lm.TrainConfig(batch=4, seq_len=16, lr=1e-2, dropout=0.1)
    arch = lm.ModelConfig(embed_size=8, hidden_size=16, layers=2, cell="lstm")
    trainer = lm.Trainer(TEXT, model=arch, config=config, dtype="float64")
    trainer.run(steps=6, evals=2)
    path = tmp_path / "ck.npz"
    lm.io.save_training(trainer, path)
    for x, y in zip(
        _tree.flatten(lm.load(path).params)[0], _tree.flatten(trainer.lm.params)[0], strict=True
    ):
        np.testing.assert_array_equal(x, y)
    fresh = lm.Trainer(TEXT, model=arch, config=config, dtype="float64")
    lm.io.resume_training(fresh, path)
    trees = ("lm.params", "opt_state", "state", "best.params")
    for what in trees:
        ours, theirs = fresh, trainer
        for attr in what.split("."):
            ours, theirs = getattr(ours, attr), getattr(theirs, attr)
        for x, y in zip(_tree.flatten(ours)[0], _tree.flatten(theirs)[0], strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=what)
    assert (fresh.steps_done, fresh.seconds) == (trainer.steps_done, trainer.seconds)
    assert fresh.progress == trainer.progress
    assert fresh.best is not None and trainer.best is not None
    assert (fresh.best.metrics, fresh.best.step) == (trainer.best.metrics, trainer.best.step)


def test_a_checkpoint_of_another_run_is_refused(capsys, tmp_path, text_file):
    ck, model = str(tmp_path / "ck.npz"), str(tmp_path / "m.npz")
    base = ["--text", text_file, *RUN]
    assert _run(capsys, *base, "--checkpoint", ck, "--out", model)[0] == 0
    other = tmp_path / "other.txt"
    other.write_text(TEXT.replace("dog", "cow"), encoding="utf-8")
    cases = [
        (["--hidden", "32"], "model hidden_size 16 (this run: 32)"),
        (["--cell", "lstm"], "model cell 'gru' (this run: 'lstm')"),
        (["--lr", "0.02"], "training lr 0.01 (this run: 0.02)"),
        (["--steps", "12"], "--steps 12 differs from the checkpoint's run (--steps 10)"),
        (["--text", str(other)], "was trained on another text"),
    ]
    for extra, message in cases:
        code, _, err = _run(capsys, *base, *extra, "--resume", ck)
        assert code == 1
        assert err.startswith("polyrnn: error: ") and message in err, err
        assert err.count("\n") == 1
    code, _, err = _run(capsys, *base, "--resume", model)
    assert code == 1 and "is a model without training state" in err, err
