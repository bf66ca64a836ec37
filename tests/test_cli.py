"""The ``polyrnn`` command: its numbers, its files and its messages for bad input.

The numbers are checked against identities (perplexity = exp(loss)), the uniform model
(perplexity = vocabulary size), the library functions run directly on the same files,
and the step-0 evaluation of the same run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from polyrnn import _tree, cli, lm

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 12
"""About 1,900 characters, 33 distinct."""

SMALL = ["--embed", "8", "--hidden", "32", "--batch", "4", "--seq-len", "16", "--lr", "1e-2"]
SMALL += ["--warmup", "0"]
"""A model and run small enough for a second on NumPy."""


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
    assert curve["history"][-1]["val_loss"] == result["val_loss"]
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


def test_ctrl_c_saves_the_last_parameters(tmp_path, text_file):
    model = tmp_path / "m.npz"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "polyrnn", "train", "--text", text_file, *SMALL]
    cmd += ["--steps", "1000000", "--out", str(model)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the step-0 evaluation is printed, then training runs
            if line.startswith("step 0 "):
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"saved the last parameters to {model}" in err
    steps = int(err.split("interrupted after ")[1].split()[0])
    assert steps > 0
    loaded = lm.load(model)
    untrained = lm.Trainer(TEXT, model=loaded.config, config=lm.TrainConfig(batch=4, seq_len=16))
    assert lm.evaluate(loaded, TEXT).loss < untrained.evaluate().loss  # trained parameters


def test_divergence_stops_with_one_line_and_keeps_the_last_finite_parameters(
    capsys, tmp_path, text_file
):
    """A learning rate of 1e30 overflows the logits after one step: the run stops at step 2
    with status 1 and one line, and --out holds the parameters after step 1."""
    model = tmp_path / "m.npz"
    argv = ["train", "--text", text_file, *SMALL, "--steps", "20", "--out", str(model)]
    argv[argv.index("--lr") + 1] = "1e30"
    with np.errstate(over="ignore", invalid="ignore"):
        assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"stopped after 1 step; saved the last parameters to {model}" in err
    assert err.rstrip().splitlines()[-1].startswith("polyrnn: error: training diverged at step 2")
    params = lm.load(model).params
    assert all(np.isfinite(np.asarray(a)).all() for a in _tree.flatten(params)[0])


def test_demo_trains_on_pythons_docs(capsys, monkeypatch):
    topics = pytest.importorskip("pydoc_data.topics").topics
    text = "\n\n".join(topics[k] for k in sorted(topics))
    vocab = len(set(text))
    monkeypatch.setitem(cli.DEMO, "hidden_size", 32)  # keep the test short, and without
    monkeypatch.setattr(cli, "TRAINING", dataclasses.replace(cli.TRAINING, warmup=0))  # warm-up
    assert cli.main(["demo", "--minutes", "0.05"]) == 0  # even a busy machine beats uniform
    out, err = capsys.readouterr()
    assert f"a uniform guess over its {vocab} characters has perplexity {vocab}" in out
    perplexity = float(out.split("with perplexity ")[1].split()[0])
    assert 1.0 < perplexity < vocab
    assert "A sample (temperature 0.8):\n\nThe " in out
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
    assert cli.main(argv) == code
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err  # one line, no traceback
    assert err.startswith("polyrnn: error: ")
    assert message in err, err


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
    real = lm.backend.importlib.import_module

    def without_torch(name, *args):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real(name, *args)

    monkeypatch.setattr(lm.backend.importlib, "import_module", without_torch)
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
    _fails(capsys, ["sample", "--model", model, "--prompt", "Æ"], "outside the model's vocabulary")
    foreign = tmp_path / "foreign.txt"
    foreign.write_text("ÆØÅ and more")
    _fails(capsys, ["eval", "--model", model, "--text", str(foreign)], "3 characters outside")
    with open(model, "r+b") as f:  # cut the archive short
        f.truncate(os.path.getsize(model) // 2)
    _fails(capsys, ["eval", "--model", model, "--text", text_file], "not an .npz archive")
