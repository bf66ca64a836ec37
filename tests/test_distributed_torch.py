"""polyrnn under PyTorch's own distributed runtime (``torchrun``, gloo on CPU, loopback).

Each test launches real processes with ``python -m torch.distributed.run`` (torchrun) and
an explicit rendezvous on 127.0.0.1, with timeouts so nothing can hang, and compares
their figures with the same command run in one process: the combined evaluation and the
data-parallel training see the same characters and the same global batches, so they
differ from one process by the order of float64 additions only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("torch.distributed")

from polyrnn import cli, lm

TEXT = ("the cat sat on the mat; the dog ran after the cat. " * 40)[:1900]

TRAIN = ["--embed", "8", "--hidden", "16", "--batch", "4", "--seq-len", "16", "--lr", "1e-2"]
TRAIN += ["--warmup", "2", "--dropout", "0.2", "--dtype", "float64", "--json"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ENV = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _torchrun(nproc, *argv, timeout=90):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]
    cmd += ["-m", "polyrnn", *argv]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=ENV, timeout=timeout, check=False
    )


def test_eval_across_two_processes_equals_one(capsys, tmp_path, text_file):
    """Total NLL / total characters over the two processes' streams is the one-process
    loss to 1e-12 (float64), on NumPy and on PyTorch."""
    model = str(tmp_path / "m.npz")
    train = ["train", "--text", text_file, *TRAIN, "--steps", "4", "--out", model]
    assert cli.main(train) == 0
    capsys.readouterr()
    text = TEXT * 3  # 5,700 characters: 64 streams of 90, 32 for each process
    (tmp_path / "eval.txt").write_text(text, encoding="utf-8")
    single = lm.evaluate(lm.load(model), text)
    for backend in ("numpy", "torch"):
        args = ["eval", "--model", model, "--text", str(tmp_path / "eval.txt"), "--json"]
        done = _torchrun(2, *args, "--backend", backend)
        assert done.returncode == 0, done.stderr
        (line,) = done.stdout.splitlines()  # rank 0 alone prints
        result = json.loads(line)
        assert result["characters"] == single.tokens == len(text) - 1
        assert result["loss"] == pytest.approx(single.loss, rel=1e-12, abs=0)
        assert result["perplexity"] == pytest.approx(single.perplexity, rel=1e-12, abs=0)


def test_the_parts_of_an_evaluation_sum_to_the_whole(tmp_path):
    """Cut into 1 to 70 parts (more than the 64 streams: some parts empty), the NLL sums
    and counts add up to the whole's, in float64, to 1e-12."""
    trainer = lm.Trainer(
        TEXT,
        model=lm.ModelConfig(embed_size=8, hidden_size=16),
        config=lm.TrainConfig(batch=4, seq_len=16),
        dtype="float64",
    )
    tokens = trainer.lm.vocab.encode(TEXT)
    whole = lm.evaluate_tokens(trainer.lm, tokens, seq_len=7)
    for k in (1, 2, 3, 64, 70):
        parts = [
            lm.evaluation.nll_sum(trainer.lm, tokens, seq_len=7, part=(i, k)) for i in range(k)
        ]
        assert sum(c for _, c in parts) == whole.tokens
        nll = sum(v for v, _ in parts)
        assert nll / whole.tokens == pytest.approx(whole.loss, rel=1e-12, abs=0)
