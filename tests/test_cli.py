"""The ``polyrnn`` command: its numbers, its files and its messages for bad input.

The numbers are checked against identities (perplexity = exp(loss)), the uniform model
(perplexity = vocabulary size), the library functions run directly on the same files,
and the step-0 evaluation of the same run.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import polyrnn
from polyrnn import _tree, cli, lm

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 12
"""About 1,900 characters, 33 distinct."""

SMALL = ["--embed", "8", "--hidden", "32", "--batch", "4", "--seq-len", "16", "--lr", "1e-2"]
SMALL += ["--warmup", "0", "--dropout", "0", "--beta2", "0.999", "--weight-decay", "0"]
"""A model and run small enough for a second on NumPy, with the library's ``TrainConfig``
defaults where the command's differ (no dropout or weight decay, Adam's usual beta2), so
that it compares with the library."""


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def _train(capsys, text_file, *extra):
    code = cli.main(["train", "--text", text_file, *SMALL, "--json", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_eval_and_sample(capsys, tmp_path, text_file):
    model, history = str(tmp_path / "m.npz"), str(tmp_path / "h.json")
    code, out, err = _train(
        capsys, text_file, "--steps", "40", "--evals", "2", "--out", model, "--history", history
    )
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1  # ONE line of JSON on stdout; the progress goes to stderr
    result = json.loads(lines[0])
    assert result["steps"] == 40 and result["backend"] == "numpy"
    assert result["vocab_size"] == len(set(TEXT))
    assert result["val_perplexity"] == pytest.approx(math.exp(result["val_loss"]), rel=1e-12)
    assert result["val_loss"] < 0.8 * math.log(result["vocab_size"])  # learnt something
    # tokens/s * seconds = the tokens trained on, up to the rounding of both printed numbers
    # (seconds to 1 ms, tokens/s to 0.1)
    rounding = 0.0005 * result["tokens_per_s"] + 0.05 * result["seconds"]
    assert abs(result["tokens_per_s"] * result["seconds"] - 40 * 4 * 16) <= rounding * 1.001
    assert "val loss" in err

    with open(history, encoding="utf-8") as f:
        curve = json.load(f)
    steps = [r["step"] for r in curve["history"]]
    assert steps == [0, 20, 40]
    assert curve["history"][0]["val_loss"] > curve["history"][-1]["val_loss"] + 0.5
    # val_loss is the best validation's (the saved model's), final_val_loss the last's
    assert min(r["val_loss"] for r in curve["history"]) == result["val_loss"]
    assert curve["history"][-1]["val_loss"] == result["final_val_loss"]
    assert curve["final"] == result

    loaded = lm.load(model)
    assert loaded.info["val_loss"] == result["val_loss"]
    assert cli.main(["eval", "--model", model, "--text", text_file, "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    direct = lm.evaluate(loaded, TEXT)
    assert scores["loss"] == pytest.approx(direct.loss, rel=1e-12)
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]), rel=1e-12)
    assert scores["characters"] == len(TEXT) - 1

    args = ["sample", "--model", model, "--prompt", "All:", "--length", "50", "--seed", "3"]
    assert cli.main(args) == 0
    sampled = capsys.readouterr().out
    assert sampled == "All:" + lm.sample(loaded, "All:", 50, temperature=0.8, seed=3) + "\n"
    assert cli.main(args) == 0
    assert capsys.readouterr().out == sampled  # seeded


class _Stop(Exception):
    """Ends a run at a chosen step, raised from ``on_step``."""


def test_out_keeps_the_lowest_validation_loss(backend, capsys, tmp_path, text_file):
    """A constant learning rate too high for TEXT: the validation loss falls for about 20
    steps, then rises.  --out holds the parameters of the lowest validation, exactly those
    of a library run of the same seed stopped at that step; --json's val_loss is the
    history's lowest, final_val_loss its last."""
    if backend.name == "cupy":
        pytest.skip("covered by the CUDA run")
    model, history = str(tmp_path / "m.npz"), str(tmp_path / "h.json")
    argv = [*SMALL, "--final-lr", "1", "--steps", "60", "--evals", "6", "--dtype", "float64"]
    argv[argv.index("--lr") + 1] = "0.1"
    code, out, err = _train(
        capsys, text_file, *argv, "--backend", backend.name, "--out", model, "--history", history
    )
    assert code == 0, err
    result = json.loads(out)
    with open(history, encoding="utf-8") as f:
        records = json.load(f)["history"]
    losses = [r["val_loss"] for r in records]
    assert [r["step"] for r in records] == [0, 10, 20, 30, 40, 50, 60]  # every validation
    k = losses.index(min(losses))
    assert 0 < k < len(losses) - 1 and losses[-1] > losses[k] + 0.3  # down, then up
    assert result["val_loss"] == losses[k]
    assert result["final_val_loss"] == losses[-1]
    assert result["best_step"] == records[k]["step"]
    assert result["best_seconds"] == round(records[k]["seconds"], 3)
    assert result["val_perplexity"] == pytest.approx(math.exp(losses[k]), rel=1e-12)
    assert f"saved the model of step {records[k]['step']}, the lowest validation loss" in err

    config = lm.TrainConfig(batch=4, seq_len=16, lr=0.1, warmup=0, final_lr=1.0)
    reference = lm.Trainer(
        TEXT, model=lm.ModelConfig(8, 32), config=config, backend=backend.name, dtype="float64"
    )

    def stop(progress):
        if progress.step == result["best_step"]:
            raise _Stop

    with pytest.raises(_Stop):
        reference.run(steps=60, evals=0, on_step=stop)
    expected = [reference.lm.backend.to_numpy(a) for a in _tree.flatten(reference.lm.params)[0]]
    saved = lm.load(model)
    for a, e in zip(_tree.flatten(saved.params)[0], expected, strict=True):
        np.testing.assert_array_equal(a, e)
    assert saved.info["val_loss"] == result["val_loss"]
    val_text = lm.split_text(TEXT, 0.1)[1]
    assert lm.evaluate(saved, val_text).loss == pytest.approx(result["val_loss"], rel=1e-12)


def test_subprocess_python_m_polyrnn_train(tmp_path, text_file):
    history = tmp_path / "h.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "polyrnn", "train", "--text", text_file, *SMALL]
    cmd += ["--steps", "25", "--evals", "1", "--history", str(history), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["steps"] == 25
    assert result["val_perplexity"] == pytest.approx(math.exp(result["val_loss"]), rel=1e-12)
    first = json.loads(history.read_text())["history"][0]
    assert first["step"] == 0
    assert first["val_loss"] > result["val_loss"] + 0.3  # the loss decreased
    assert result["train_loss"] < math.log(result["vocab_size"])


AS_FROM_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'polyrnn'; runpy.run_module('polyrnn', run_name='__main__')"
)
"""``python -m polyrnn`` with Ctrl-C as a terminal delivers it, even where the test runs in
a background job, whose children start with SIGINT ignored."""


def test_ctrl_c_saves_the_last_parameters(tmp_path, text_file):
    """SIGINT once training has provably run steps (an evaluation every 5 steps prints
    "step 5 ..."), whatever the machine's speed."""
    model = tmp_path / "m.npz"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-c", AS_FROM_A_TERMINAL, "train", "--text", text_file, *SMALL]
    cmd += ["--steps", "1000000", "--evals", "200000", "--out", str(model)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("step 5 "):
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    steps = int(err.split("interrupted after ")[1].split()[0])
    assert steps >= 5
    # the parameters of the best validation (every 5 steps), the last ones when it was
    # at the step the interruption stopped at
    saved = re.search(rf"saved the (last parameters|parameters of step (\d+)) to {model}, ", err)
    assert saved is not None, err
    assert saved[2] is None or (int(saved[2]) % 5 == 0 and int(saved[2]) < steps)
    loaded = lm.load(model)
    untrained = lm.Trainer(TEXT, model=loaded.config, config=lm.TrainConfig(batch=4, seq_len=16))
    assert lm.evaluate(loaded, TEXT).loss < untrained.evaluate().loss  # trained parameters


def test_ctrl_c_during_the_save_does_not_lose_it(capsys, tmp_path, text_file, monkeypatch):
    """A second Ctrl-C, pressed while the interrupted run saves, is answered and ignored:
    the file is written whole and the run exits 130."""
    model = tmp_path / "m.npz"
    real_save, handler = lm.save, signal.getsignal(signal.SIGINT)

    def first_ctrl_c(self):  # during the step-0 evaluation
        raise KeyboardInterrupt

    def second_ctrl_c(trained, path):  # during the save itself
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # the handler runs here, at the latest
        real_save(trained, path)

    monkeypatch.setattr(lm.Trainer, "validate", first_ctrl_c)
    monkeypatch.setattr(lm, "save", second_ctrl_c)
    code, _, err = _train(capsys, text_file, "--steps", "3", "--out", str(model))
    assert code == 130, err
    assert f"polyrnn: saving the last parameters to {model}; one moment" in err
    assert f"interrupted after 0 steps; saved the last parameters to {model}" in err
    saved = lm.load(model)  # whole: it loads, and holds the initial parameters
    fresh = lm.Trainer(TEXT, model=saved.config, config=lm.TrainConfig(batch=4, seq_len=16))
    for a, b in zip(_tree.flatten(saved.params)[0], _tree.flatten(fresh.lm.params)[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert signal.getsignal(signal.SIGINT) is handler  # restored


def test_divergence_stops_with_one_line_and_keeps_the_last_finite_parameters(
    capsys, tmp_path, text_file
):
    """A learning rate of 1e308 is infinite in float32, so the first update makes the
    parameters non-finite on any machine: the run stops with status 1 and one line, and
    --out holds the initial parameters, exactly those a fresh run starts from."""
    model = tmp_path / "m.npz"
    argv = ["train", "--text", text_file, *SMALL, "--steps", "20", "--out", str(model)]
    argv[argv.index("--lr") + 1] = "1e308"
    assert cli.main(argv) == 1  # and no warning (the suite turns warnings into errors)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"stopped after 0 steps; saved the last parameters to {model}" in err
    assert err.rstrip().splitlines()[-1] == (
        "polyrnn: error: training diverged at step 1: the update (learning rate 1e+308) made "
        "parameters non-finite; the parameters are those before that step (a lower learning "
        "rate or gradient-norm clip may help)"
    )
    saved = _tree.flatten(lm.load(model).params)[0]
    fresh = lm.Trainer(
        TEXT, model=lm.ModelConfig(8, 32), config=lm.TrainConfig(batch=4, seq_len=16)
    )
    for a, b in zip(saved, _tree.flatten(fresh.lm.params)[0], strict=True):
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)


def test_a_diverged_validation_stops_the_run(capsys, tmp_path, text_file, monkeypatch):
    """A validation loss that is not finite (here an explicit inf at the second
    evaluation) stops the run as a diverged step does; the best finite parameters, those
    of the one finite validation at step 0, are saved."""
    model, history = tmp_path / "m.npz", tmp_path / "h.json"
    real, calls = lm.Trainer.evaluate, []

    def evaluate(self):
        calls.append(1)
        return real(self) if len(calls) == 1 else lm.Metrics(math.inf, math.inf, 10)

    monkeypatch.setattr(lm.Trainer, "evaluate", evaluate)
    code, out, err = _train(
        capsys,
        text_file,
        "--steps",
        "4",
        "--evals",
        "2",
        "--out",
        str(model),
        "--history",
        str(history),
    )
    assert (code, out) == (1, "")
    assert f"stopped after 2 steps; saved the parameters of step 0 to {model}, the best" in err
    assert (
        err.rstrip()
        .splitlines()[-1]
        .startswith("polyrnn: error: training diverged: the validation loss after step 2 is inf")
    )
    assert all(np.isfinite(a).all() for a in _tree.flatten(lm.load(model).params)[0])
    assert [r["step"] for r in json.loads(history.read_text())["history"]] == [0]
    fresh = lm.Trainer(
        TEXT, model=lm.ModelConfig(8, 32), config=lm.TrainConfig(batch=4, seq_len=16)
    )
    saved = _tree.flatten(lm.load(model).params)[0]
    for a, b in zip(saved, _tree.flatten(fresh.lm.params)[0], strict=True):
        np.testing.assert_array_equal(a, b)  # step 0's: the initial parameters


def test_demo_trains_on_pythons_docs(capsys, monkeypatch):
    """A step-bounded demo: the same numbers on any machine, those of the library run
    directly with the demo's settings, and better than a uniform guess."""
    topics = pytest.importorskip("pydoc_data.topics").topics
    text = "\n\n".join(topics[k] for k in sorted(topics))
    vocab = len(set(text))
    monkeypatch.setitem(cli.DEMO, "hidden_size", 32)  # keep the test short
    assert cli.main(["demo", "--steps", "30"]) == 0
    out, err = capsys.readouterr()
    assert f"a uniform guess over its {vocab} characters has perplexity {vocab}" in out
    perplexity = float(out.split("with perplexity ")[1].split()[0])
    trainer = lm.Trainer(
        text, model=lm.ModelConfig(embed_size=cli.DEMO["embed_size"], hidden_size=32)
    )
    direct = trainer.run(steps=30, evals=1).val
    assert perplexity == pytest.approx(direct.perplexity, abs=0.005)  # printed to 2 decimals
    assert 1.0 < perplexity < vocab
    sample = lm.sample(trainer.lm, "The ", 400, temperature=0.8, seed=0)
    assert f"A sample (temperature 0.8):\n\nThe {sample}\n" in out
    assert f"on Python's documentation (pydoc_data): {len(text):,} characters, {vocab} " in err


def test_no_arguments_run_the_demo(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "demo", lambda args: calls.append(args.command) or 0)
    assert cli.main([]) == 0
    assert calls == ["demo"]


def test_demo_without_pydoc_data(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)
    assert cli.main(["demo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("polyrnn: error: this Python has no pydoc_data")
    assert err.count("\n") == 1


def _fails(capsys, argv, message, code=1):
    """``argv`` fails with ``code`` (2: a malformed command line) and one line on stderr."""
    try:
        status = cli.main(argv)
    except SystemExit as e:  # argparse's way out
        status = e.code
    assert status == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err  # one line, no traceback
    assert err.startswith("polyrnn: error: ")
    assert message in err, err


# ------------------------------------------------------- the command never destroys its inputs


@pytest.mark.parametrize(
    ("option", "target"),
    [("--out", "text"), ("--history", "text"), ("--out", "symlink"), ("--history", "hardlink")],
)
def test_outputs_never_replace_the_training_text(capsys, tmp_path, text_file, option, target):
    symlink, hardlink = tmp_path / "symlink.txt", tmp_path / "hardlink.txt"
    symlink.symlink_to(text_file)
    os.link(text_file, hardlink)
    path = {"text": text_file, "symlink": str(symlink), "hardlink": str(hardlink)}[target]
    with open(text_file, "rb") as f:
        before = f.read()
    _fails(
        capsys,
        ["train", "--text", text_file, *SMALL, "--steps", "2", option, path],
        f"{option} {path!r} is the same file as --text: writing it would destroy the training text",
    )
    with open(text_file, "rb") as f:
        assert f.read() == before
    assert sorted(os.listdir(tmp_path)) == ["hardlink.txt", "symlink.txt", "tiny.txt"]


def test_out_and_history_must_differ(capsys, tmp_path, text_file):
    both = str(tmp_path / "both")
    _fails(
        capsys,
        ["train", "--text", text_file, *SMALL, "--steps", "2", "--out", both, "--history", both],
        f"--history {both!r} is the same file as --out: writing it would destroy the --out file",
    )
    assert not os.path.exists(both)


def test_output_paths_are_checked_before_training(capsys, tmp_path, text_file):
    """Each bad output path fails at once (one line, nothing trained), not after training."""
    train = ["train", "--text", text_file, *SMALL, "--steps", "2"]
    for option in ("--out", "--history"):
        _fails(
            capsys,
            [*train, option, ""],
            f"argument {option}: must be a file path, got an empty string",
            code=2,
        )
        _fails(capsys, [*train, option, str(tmp_path)], "it is a directory")
        _fails(capsys, [*train, option, os.devnull], "it is not a regular file")
    if os.path.isdir("/proc"):  # a directory that takes no new file, even for root
        _fails(capsys, [*train, "--out", "/proc/m.npz"], "cannot write --out '/proc/m.npz': ")
    assert sorted(os.listdir(tmp_path)) == ["tiny.txt"]


# ------------------------------------------------------- every bad input is one line


def _saved_model(capsys, tmp_path, text_file):
    model = str(tmp_path / "m.npz")
    code, _, err = _train(capsys, text_file, "--steps", "2", "--evals", "0", "--out", model)
    assert code == 0, err
    return model


def _rewrite(path, meta=None, arrays=None):
    """Rewrite a model file with some metadata fields or arrays replaced."""
    with np.load(path) as z:
        content = {name: z[name] for name in z.files}
    document = json.loads(str(content["meta"]))
    document.update(meta or {})
    content.update(arrays or {}, meta=np.array(json.dumps(document)))
    np.savez(path, **content)


def test_malformed_options_are_one_line_with_status_2(capsys, tmp_path, text_file):
    model = str(tmp_path / "m.npz")
    for argv, message in [
        (["train", "--text", text_file, "--seed", "-1"], "argument --seed: must be non-negative"),
        (["sample", "--model", model, "--seed", "-1"], "argument --seed: must be non-negative"),
        (["demo", "--seed", "-1"], "argument --seed: must be non-negative, got -1"),
        (["train", "--text", text_file, "--lr", "inf"], "argument --lr: must be a finite number"),
        (["train", "--text", text_file, "--lr", "nan"], "argument --lr: must be a finite number"),
        (["demo", "--minutes", "inf"], "argument --minutes: must be a finite number, got inf"),
        (["demo", "--minutes", "1", "--steps", "3"], "not allowed with argument --minutes"),
        (["sample"], "the following arguments are required: --model"),
        (
            ["train", "--text", text_file, "--steps", "0"],
            "argument --steps: must be positive, got 0",
        ),
    ]:
        _fails(capsys, argv, message, code=2)


def test_eval_of_a_one_character_text(capsys, tmp_path, text_file):
    model = _saved_model(capsys, tmp_path, text_file)
    one = tmp_path / "one.txt"
    one.write_text("F")
    _fails(
        capsys,
        ["eval", "--model", model, "--text", str(one)],
        "evaluation needs a text of at least 2 characters (one to predict from, one to "
        "predict), got 1",
    )


def test_model_files_with_bad_dtype_or_non_finite_weights(capsys, tmp_path, text_file):
    model = _saved_model(capsys, tmp_path, text_file)
    _rewrite(model, meta={"dtype": "float8"})
    for argv in (["sample", "--model", model], ["eval", "--model", model, "--text", text_file]):
        _fails(capsys, argv, "has invalid metadata (dtype 'float8'; expected one of")
    _rewrite(model, meta={"dtype": "float32"}, arrays={"b_out": np.full(33, np.nan, np.float32)})
    for argv in (["sample", "--model", model], ["eval", "--model", model, "--text", text_file]):
        _fails(capsys, argv, "array 'b_out' holds 33 NaN or infinite values")


def test_sample_prompts(capsys, tmp_path, text_file):
    """Without --prompt: a newline where the model knows one, else its first character;
    the output is the library's sample of that prompt.  A bad prompt is named as such."""
    model = _saved_model(capsys, tmp_path, text_file)
    args = ["sample", "--model", model, "--length", "20", "--seed", "1"]
    assert cli.main(args) == 0
    loaded = lm.load(model)
    assert (
        capsys.readouterr().out
        == "\n" + lm.sample(loaded, "\n", 20, temperature=0.8, seed=1) + "\n"
    )
    _fails(capsys, [*args, "--prompt", ""], "the prompt must have at least one character")
    _fails(capsys, [*args, "--prompt", "Æ"], "the prompt has 1 character outside the model's")

    flat = tmp_path / "flat.txt"  # no newline anywhere
    flat.write_text("abcab cabca " * 200, encoding="utf-8")
    flat_model = str(tmp_path / "flat.npz")
    code, _, err = _train(capsys, str(flat), "--steps", "2", "--evals", "0", "--out", flat_model)
    assert code == 0, err
    assert cli.main(["sample", "--model", flat_model, "--length", "20", "--seed", "1"]) == 0
    loaded = lm.load(flat_model)
    assert loaded.vocab.chars[0] == " "
    assert (
        capsys.readouterr().out == " " + lm.sample(loaded, " ", 20, temperature=0.8, seed=1) + "\n"
    )


def test_a_byte_order_mark_is_not_a_character(capsys, tmp_path):
    path = tmp_path / "bom.txt"
    path.write_text(TEXT, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    code, out, err = _train(capsys, str(path), "--steps", "2", "--evals", "0")
    assert code == 0, err
    assert json.loads(out)["vocab_size"] == len(set(TEXT))
    assert lm.read_text(path) == TEXT


def test_bad_input_is_one_line_and_nonzero(capsys, tmp_path, text_file, monkeypatch):
    missing = str(tmp_path / "missing.txt")
    _fails(capsys, ["train", "--text", missing], f"cannot read text file {missing!r}")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    _fails(capsys, ["train", "--text", str(empty)], "is empty")
    _fails(
        capsys,
        ["train", "--text", text_file, "--batch", "64", "--seq-len", "128"],
        "fewer than one batch needs: 64 streams x 128 characters + 1 = 8193",
    )
    _fails(
        capsys,
        ["train", "--text", text_file, "--out", str(tmp_path / "nodir" / "m.npz")],
        "does not exist",
    )
    real = importlib.import_module

    def without_torch(name, *args):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_torch)
    _fails(
        capsys,
        ["train", "--text", text_file, "--backend", "torch"],
        "backend 'torch' needs torch, which is not installed (No module named 'torch'); "
        'install it with: pip install "polyrnn[torch]"',
    )


def test_unknown_backend_is_a_usage_error(capsys, text_file):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--text", text_file, "--backend", "tensorflow"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tensorflow'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--text", text_file, "--steps", "0"])
    assert "argument --steps: must be positive, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--text", text_file, "--final-lr", "2"])
    assert "argument --final-lr: must be in [0, 1], got 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["sample", "--model", "m.npz", "--temperature", "-1"])
    assert "argument --temperature: must be non-negative, got -1" in capsys.readouterr().err


def test_bad_model_files(capsys, tmp_path, text_file):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00not a model")
    _fails(capsys, ["eval", "--model", str(garbage), "--text", text_file], "not an .npz archive")
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    _fails(capsys, ["sample", "--model", str(other)], "not a polyrnn model (no metadata)")
    _fails(
        capsys,
        ["eval", "--model", str(tmp_path / "none.npz"), "--text", text_file],
        "does not exist",
    )
    model = str(tmp_path / "m.npz")
    code, _, _ = _train(capsys, text_file, "--steps", "2", "--evals", "0", "--out", model)
    assert code == 0
    _fails(
        capsys, ["sample", "--model", model, "--prompt", "Æ"], "the prompt has 1 character outside"
    )
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("ÆØÅ and more")
    _fails(capsys, ["eval", "--model", model, "--text", str(foreign)], "3 characters outside")
    with open(model, "r+b") as f:  # cut the archive short
        f.truncate(os.path.getsize(model) // 2)
    _fails(capsys, ["eval", "--model", model, "--text", text_file], "not an .npz archive")


# ------------------------------------------------------- found by trying bad input on purpose


def test_output_names_long_looping_or_linked(capsys, tmp_path, text_file):
    train = ["train", "--text", text_file, *SMALL, "--steps", "2", "--evals", "0"]
    long_ok = tmp_path / ("b" * 241 + ".npz")  # its temporary file must not be longer
    code, _, err = _train(capsys, text_file, "--steps", "2", "--evals", "0", "--out", str(long_ok))
    assert code == 0, err
    assert lm.load(long_ok).vocab == lm.Vocab.from_text(TEXT)
    too_long = str(tmp_path / ("a" * 300 + ".npz"))
    _fails(capsys, [*train, "--out", too_long], "File name too long")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    _fails(capsys, [*train, "--history", str(loop)], "its symbolic links form a loop")
    target, link = tmp_path / "target.npz", tmp_path / "latest.npz"
    link.symlink_to(target)  # dangling until the run writes through it
    code, _, err = _train(capsys, text_file, "--steps", "2", "--evals", "0", "--out", str(link))
    assert code == 0, err
    assert link.is_symlink() and target.is_file()
    assert sorted(os.listdir(tmp_path)) == sorted(
        [long_ok.name, "latest.npz", "loop", "target.npz", "tiny.txt"]
    )


def test_sample_edge_cases(capsys, tmp_path, text_file):
    model = _saved_model(capsys, tmp_path, text_file)
    args = ["sample", "--model", model, "--length", "30", "--seed", "2", "--prompt", "All"]
    assert cli.main([*args, "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out
    assert cli.main([*args, "--temperature", "5e-324"]) == 0  # the argmax, without NaN
    assert capsys.readouterr().out == greedy
    _fails(capsys, [*args, "--prompt", "t\udcff"], "the prompt is not valid text")


def test_model_files_that_claim_too_much(capsys, tmp_path, text_file):
    """Metadata of a huge model fails at once, before anything that size is allocated."""
    model = _saved_model(capsys, tmp_path, text_file)
    fields = {"embed_size": 8, "hidden_size": 32, "layers": 1, "cell": "gru"}
    for change, message in [
        ({"model": {**fields, "hidden_size": 10**12}}, "'w_out' has shape (32, 33)"),
        ({"model": {**fields, "layers": 10**8}}, "it holds the arrays of 1 layer"),
        ({"model": {"embed_size": 8}}, "'model' must have the fields"),
        ({"version": True}, "has format version True"),
        ({"vocab": sorted(set(TEXT), reverse=True)}, "distinct characters in code-point order"),
        ({"info": [1]}, "'info' must be a JSON dict"),
    ]:
        _rewrite(model, meta=change)
        _fails(capsys, ["eval", "--model", model, "--text", text_file], message)
        _rewrite(
            model, meta={"model": fields, "version": 1, "vocab": sorted(set(TEXT)), "info": {}}
        )
    with np.load(model) as z:
        content = {name: z[name] for name in z.files}
    del content["meta"]
    np.savez(model, meta=np.array("{"), **content)
    _fails(capsys, ["eval", "--model", model, "--text", text_file], "corrupt metadata")


def test_weights_beyond_float32_are_refused(capsys, tmp_path, text_file):
    model = _saved_model(capsys, tmp_path, text_file)
    _rewrite(model, arrays={"b_out": np.full(33, 1e300)})  # float64 numbers, float32 model
    for argv in (["sample", "--model", model], ["eval", "--model", model, "--text", text_file]):
        _fails(
            capsys, argv, "array 'b_out' holds values beyond the range of float32 (largest 1e+300)"
        )


def test_eval_json_of_an_infinite_perplexity_is_valid_json(capsys, tmp_path, text_file):
    """A model putting log-probability -2000 on every character but the first: the loss,
    by hand from the character counts, is far above log(max float), so the perplexity is
    inf, which JSON cannot hold: it is null, and the loss is the exact number."""
    model = _saved_model(capsys, tmp_path, text_file)
    bias = np.full(33, -2000.0)
    bias[0] = 0.0
    _rewrite(model, meta={"dtype": "float64"}, arrays={"w_out": np.zeros((32, 33)), "b_out": bias})
    assert cli.main(["eval", "--model", model, "--text", text_file, "--json"]) == 0
    out = capsys.readouterr().out
    scores = json.loads(out, parse_constant=lambda c: pytest.fail(f"invalid JSON: {c}"))
    first = min(TEXT)
    expected = np.mean([0.0 if c == first else 2000.0 for c in TEXT[1:]]) + np.log1p(
        32 * np.exp(-2000.0)
    )
    assert scores["loss"] == pytest.approx(expected, rel=1e-12)
    assert scores["perplexity"] is None


def test_more_one_line_failures(capsys, tmp_path, text_file, monkeypatch):
    _fails(capsys, ["train", "--text", ""], "argument --text: must be a file path", code=2)
    _fails(
        capsys,
        ["train", "--text", text_file, "--hidden", "100000000000000000000"],
        "argument --hidden: must be at most 2147483647",
        code=2,
    )
    _fails(
        capsys,
        ["train", "--text", text_file, "--batch", "x"],
        "expected an integer, got 'x'",
        code=2,
    )

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(lm, "Trainer", out_of_memory)
    _fails(
        capsys, ["train", "--text", text_file], "out of memory: the model or the text is too large"
    )


def test_output_the_terminal_cannot_encode(tmp_path):
    text = tmp_path / "accents.txt"
    text.write_text("café crème brûlée " * 100, encoding="utf-8")
    model = tmp_path / "m.npz"
    assert (
        cli.main(
            [
                "train",
                "--text",
                str(text),
                *SMALL,
                "--steps",
                "2",
                "--evals",
                "0",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    cmd = [
        sys.executable,
        "-m",
        "polyrnn",
        "sample",
        "--model",
        str(model),
        "--prompt",
        "é",
        "--seed",
        "0",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr == (
        "polyrnn: error: the output holds characters that this terminal's encoding (ascii) "
        "cannot show; set PYTHONIOENCODING=utf-8\n"
    )


def test_check_compares_every_installed_library_with_numpy(capsys, monkeypatch):
    """Each installed library's GRU scan within 1e-10 of NumPy float64; with NumPy alone
    the command says there was nothing to compare, not that all libraries agree."""
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out[2:] if line.split()[0] in polyrnn.backends.LIBRARIES]
    assert rows[0][:3] == ["numpy", np.__version__, "0.00e+00"]
    assert all(float(row[2]) <= 1e-10 for row in rows)
    installed = polyrnn.backends.installed("float64")
    assert [row[0] for row in rows] == list(installed)
    numpy_only = {"numpy": installed["numpy"]}
    monkeypatch.setattr(polyrnn.backends, "installed", lambda dtype: numpy_only)
    assert cli.main(["check"]) == 0
    out = capsys.readouterr().out
    assert "only numpy is installed here: nothing to compare it with" in out
    assert "agree" not in out
    assert 'not checked (not installed or no device): jax ("polyrnn[jax]"), ' in out


@pytest.mark.parametrize(
    ("cell", "params"), [("ln_gru", "LNGRUParams"), ("ln_lstm", "LNLSTMParams")]
)
def test_train_a_layer_normalised_cell(capsys, tmp_path, text_file, cell, params):
    """``--cell ln_gru|ln_lstm`` trains (the loss falls), saves a model of that cell whose
    layers load as its containers, and ``eval`` gives ``lm.evaluate``'s loss of it."""
    model = str(tmp_path / "m.npz")
    code, out, err = _train(capsys, text_file, "--cell", cell, "--steps", "30", "--out", model)
    assert code == 0, err
    result = json.loads(out)
    loaded = lm.load(model)
    assert loaded.config.cell == cell
    assert {type(layer).__name__ for layer in loaded.params.layers} == {params}
    assert result["val_loss"] < math.log(result["vocab_size"]) - 0.3  # learnt something
    assert cli.main(["eval", "--model", model, "--text", text_file, "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["loss"] == pytest.approx(lm.evaluate(loaded, TEXT).loss, rel=1e-12)


def test_adam_options(capsys, tmp_path, text_file):
    """``--beta2`` and ``--weight-decay`` reach Adam: the run trains as the library's
    Trainer with those ``TrainConfig`` fields, and the history file records them; bad
    values are one-line errors (status 2)."""
    for option, value, message in [
        ("--beta2", "1", "argument --beta2: must be in [0, 1), got 1"),
        ("--weight-decay", "-1", "argument --weight-decay: must be non-negative, got -1"),
    ]:
        _fails(capsys, ["train", "--text", text_file, option, value], message, code=2)
    history = tmp_path / "h.json"
    code, out, err = _train(
        capsys, text_file, "--steps", "4", "--evals", "1", "--beta2", "0.9",
        "--weight-decay", "0.5", "--history", str(history),
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    recorded = json.loads(history.read_text())["train"]
    assert (recorded["beta2"], recorded["weight_decay"]) == (0.9, 0.5)
    config = lm.TrainConfig(batch=4, seq_len=16, lr=1e-2, warmup=0, beta2=0.9, weight_decay=0.5)
    trainer = lm.Trainer(TEXT, model=lm.ModelConfig(8, 32), config=config)
    report = trainer.run(steps=4, evals=1)
    assert result["train_loss"] == report.train_loss
    assert result["val_loss"] == trainer.best.loss
    plain = dataclasses.replace(config, weight_decay=0.0)
    undecayed = lm.Trainer(TEXT, model=lm.ModelConfig(8, 32), config=plain)
    assert undecayed.run(steps=4, evals=1).val.loss != trainer.best.loss  # the decay acts


def test_dropout_option(capsys, tmp_path, text_file):
    """``--dropout`` outside [0, 1) is a one-line error (status 2); a run with it trains
    as the library's Trainer with ``TrainConfig(dropout=...)`` does, and its --json line,
    history and saved model record it (0 when not given)."""
    for value, message in [
        ("1", "argument --dropout: must be in [0, 1), got 1"),
        ("-0.1", "argument --dropout: must be in [0, 1), got -0.1"),
        ("nan", "argument --dropout: must be a finite number, got nan"),
    ]:
        _fails(capsys, ["train", "--text", text_file, "--dropout", value], message, code=2)

    model, history = str(tmp_path / "m.npz"), str(tmp_path / "h.json")
    code, out, err = _train(
        capsys, text_file, "--steps", "3", "--evals", "1", "--dropout", "0.3",
        "--out", model, "--history", history,
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["dropout"] == 0.3
    assert "T=16, dropout 0.3, 3 steps" in err
    config = lm.TrainConfig(batch=4, seq_len=16, lr=1e-2, warmup=0, dropout=0.3)
    trainer = lm.Trainer(TEXT, model=lm.ModelConfig(8, 32), config=config)
    report = trainer.run(steps=3, evals=1)
    assert result["train_loss"] == report.train_loss
    assert result["val_loss"] == trainer.best.loss
    loaded = lm.load(model)
    assert loaded.info["train"]["dropout"] == loaded.info["dropout"] == 0.3
    with open(history, encoding="utf-8") as f:
        assert json.load(f)["train"]["dropout"] == 0.3

    code, out, err = _train(capsys, text_file, "--steps", "1", "--evals", "0")
    assert code == 0, err
    assert json.loads(out)["dropout"] == 0.0
    assert "T=16, 1 steps" in err  # no dropout in the first line
