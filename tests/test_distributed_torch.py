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
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("torch.distributed")

from polyrnn import cli, lm

TEXT = ("the cat sat on the mat; the dog ran after the cat. " * 40)[:1900]

TRAIN = ["--embed", "8", "--hidden", "16", "--batch", "4", "--seq-len", "16", "--lr", "1e-2"]
TRAIN += ["--warmup", "2", "--dropout", "0.2", "--dtype", "float64", "--json"]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread here too, as the workers have (``OMP_NUM_THREADS=1``): the tiny
    models' PyTorch steps run several times slower with more on a shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def _straight(capsys, *argv):
    code = cli.main(["train", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _arrays(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files if k != "meta"}


TIMES = {"seconds", "tokens_per_s", "best_seconds"}


@pytest.mark.parametrize("steps", [8, pytest.param(300, marks=pytest.mark.slow)])
@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_training_on_two_processes_equals_one(capsys, tmp_path, text_file, backend, steps):
    """Two processes, each stepping 2 of the 4 streams with all-reduced gradients, print
    the metrics of one process stepping all 4 (float64, to 1e-12 relative: the sums are
    only grouped differently) and save the same parameters (to 1e-12); rank 0 alone
    writes and prints.  8 steps in CI, 300 on demand (``-m slow``)."""
    run = ["--text", text_file, *TRAIN, "--steps", str(steps), "--evals", "2"]
    run += ["--backend", backend]
    one = _straight(capsys, *run, "--out", str(tmp_path / "one.npz"))
    two = _torchrun(2, "train", *run, "--out", str(tmp_path / "two.npz"))
    assert two.returncode == 0, two.stderr
    (line,) = two.stdout.splitlines()
    result = json.loads(line)
    assert result.keys() == one.keys()
    for key, value in one.items():
        if key in TIMES:
            continue
        if isinstance(value, float):
            assert result[key] == pytest.approx(value, rel=1e-12, abs=0), key
        else:
            assert result[key] == value, key
    assert "process 0 of 2 steps streams 0-1" in two.stderr
    assert "process 1 of 2" not in two.stderr
    a, b = _arrays(tmp_path / "one.npz"), _arrays(tmp_path / "two.npz")
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-12, err_msg=name)


DDP_SCRIPT = """
import json, sys
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel
from polyrnn import _tree, lm
from polyrnn.lm.distributed_torch import FlatAllReduce

group = lm.TorchGroup.from_env(30.0)
text, model, config, steps = open(sys.argv[1]).read(), *map(json.loads, sys.argv[2:])
out = {}
for engine in ("autodiff", "by_hand"):
    trainer = lm.Trainer(
        text, model=lm.ModelConfig(**model), config=lm.TrainConfig(**config),
        backend="torch", dtype="float64", group=group, engine=engine,
    )
    elements = []  # the gradient elements DDP's hook all-reduces, bucket by bucket
    if engine == "autodiff":
        assert isinstance(trainer.reducer.ddp, DistributedDataParallel), trainer.reducer
        def counted(state, bucket):
            elements.append(bucket.buffer().numel())
            return allreduce_hook(state, bucket)
        trainer.reducer.ddp.register_comm_hook(None, counted)
    else:  # the hand-written gradient: no autograd for DDP's hooks
        assert isinstance(trainer.reducer, FlatAllReduce), trainer.reducer
    losses = [trainer.train_step(1e-2) for _ in range(steps)]
    leaves = _tree.flatten(trainer.lm.params)[0]
    params = [trainer.lm.backend.to_numpy(a).tolist() for a in leaves]
    out[engine] = {"losses": losses, "elements": elements, "params": params}
if group.rank == 0:
    print(json.dumps(out))
group.close()
"""


def test_ddp_reduces_the_torch_gradients_and_an_odd_batch_equals_one_process(tmp_path, text_file):
    """On PyTorch with autograd, two processes sum their gradients through
    DistributedDataParallel: its communication hook sees every parameter element once a
    step (with engine="by_hand", the flat all-reduce does).  With B = 5 rows cut 3 + 2,
    the losses and the parameters after 6 steps (2 layers, dropout) equal one process's
    to 1e-12 in float64, by either engine."""
    from polyrnn import _tree

    steps = 6
    model = {"embed_size": 8, "hidden_size": 16, "layers": 2}
    config = {"batch": 5, "seq_len": 16, "warmup": 2, "dropout": 0.2}
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT, encoding="utf-8")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]
    cmd += [str(script), text_file, json.dumps(model), json.dumps(config), str(steps)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)

    one = lm.Trainer(
        TEXT,
        model=lm.ModelConfig(**model),
        config=lm.TrainConfig(**config),
        backend="torch",
        dtype="float64",
    )
    losses = [one.train_step(1e-2) for _ in range(steps)]
    leaves = [one.lm.backend.to_numpy(a) for a in _tree.flatten(one.lm.params)[0]]
    size = sum(a.size for a in leaves)
    assert [sum(r["elements"]) for r in results.values()] == [steps * size, 0]
    for engine, result in results.items():
        assert result["losses"] == pytest.approx(losses, rel=1e-12, abs=0), engine
        assert len(result["params"]) == len(leaves)
        for got, want in zip(result["params"], leaves, strict=True):
            np.testing.assert_allclose(np.array(got), want, rtol=0, atol=1e-12, err_msg=engine)


def test_single_process_backends_are_refused_under_torchrun(tmp_path, text_file):
    done = _torchrun(2, "train", "--text", text_file, "--backend", "array_api_strict")
    assert done.returncode != 0
    assert "polyrnn: error: --backend array_api_strict trains in one process only" in done.stderr


def _children(pid):
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _rank_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    return int(env[b"RANK"])


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="finds the workers in /proc")
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_killed_process_stops_the_other_and_resume_finishes_the_run(
    capsys, tmp_path, text_file, backend
):
    """Rank 1 killed (SIGKILL) mid-run (NumPy's gradients all-reduced by gloo, PyTorch's
    by DistributedDataParallel over gloo): rank 0 exits within 60 s with one line naming
    rank 1, torchrun exits non-zero; --resume from the last checkpoint (one process)
    ends with the metrics and parameters of the uninterrupted run (float64: the
    two-process steps before the fault differ from one process's by the grouping of
    sums, 1e-12 relative at most)."""
    run = ["--text", text_file, *TRAIN, "--steps", "600", "--evals", "12", "--backend", backend]
    ck, history = str(tmp_path / "ck.npz"), tmp_path / "h.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    cmd += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]
    cmd += ["-m", "polyrnn", "train", *run, "--checkpoint", ck, "--history", str(history)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the validation after step 100
            time.sleep(0.2)
            if proc.poll() is not None:
                break
            try:
                if len(json.loads(history.read_text())["history"]) >= 3:
                    break
            except (OSError, ValueError):
                continue
        workers = {_rank_of(p): p for p in _children(proc.pid)}
        assert set(workers) == {0, 1}, proc.communicate(timeout=60)
        os.kill(workers[1], signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - killed < 60
    finally:
        proc.kill()
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("polyrnn: error:")]
    assert len(lines) == 1, err
    assert lines[0].startswith("polyrnn: error: rank 0 of 2 lost rank 1 "), err
    assert "resume from the last --checkpoint with --resume" in lines[0]

    with np.load(ck) as z:  # the last checkpoint: that of a validation before the end
        assert json.loads(str(z["meta"]))["training"]["steps_done"] in range(100, 600, 50)
    resumed = _straight(capsys, *run, "--resume", ck, "--out", str(tmp_path / "r.npz"))
    straight = _straight(capsys, *run, "--out", str(tmp_path / "s.npz"))
    for key, value in straight.items():
        if key in TIMES:
            continue
        if isinstance(value, float):
            assert resumed[key] == pytest.approx(value, rel=1e-12, abs=0), key
        else:
            assert resumed[key] == value, key
    a, b = _arrays(tmp_path / "s.npz"), _arrays(tmp_path / "r.npz")
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_the_ranks_rows_are_numpys_array_split(world):
    for n in (5, 8, 13):
        groups = [lm.TorchGroup(rank, world, store=None, timeout=1.0) for rank in range(world)]
        for group, part in zip(groups, np.array_split(np.arange(n), world), strict=True):
            assert list(range(n)[group.rows(n)]) == list(part)


def test_a_model_error_under_ddp_is_not_taken_for_a_lost_peer(monkeypatch):
    """A DDP step whose forward fails for the model's own reason (a RuntimeError, as
    PyTorch raises for a bad shape or for lack of memory) raises that error, not
    PeerLostError: the forward exchanges nothing, so only the backward and the loss's
    sum count as collectives.  One process, a group of one."""

    def fails(*args, **kwargs):
        raise RuntimeError("the model's own error")

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    group = lm.TorchGroup.from_env(timeout=5.0)
    try:
        trainer = lm.Trainer(
            TEXT,
            model=lm.ModelConfig(embed_size=8, hidden_size=16),
            config=lm.TrainConfig(batch=4, seq_len=16),
            backend="torch",
            group=group,
        )
        params, _, x, y, state, _, masks = trainer.step_inputs(1e-2)
        with monkeypatch.context() as m:
            m.setattr(lm.model, "loss", fails)
            with pytest.raises(RuntimeError, match="the model's own error") as caught:
                trainer.reducer(params, x, y, state, masks)
        assert not isinstance(caught.value, lm.PeerLostError), caught.value
        (loss, _), _ = trainer.reducer(params, x, y, state, masks)  # still usable
        assert np.isfinite(float(loss))
    finally:
        group.close()
    with pytest.raises(lm.LMError, match="process group has been closed"):
        trainer.reducer(params, x, y, state, masks)
