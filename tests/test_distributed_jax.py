"""Data-parallel training on JAX (``polyrnn.lm.distributed_jax``): the same numbers as one device.

JAX fixes its devices when it starts, so every run here is a subprocess of its own: one
process with 4 simulated CPU devices, and 2 processes on 127.0.0.1 joined by
:func:`jax.distributed.initialize` (one device each, collectives through gloo).  Each is
compared with the plain single-device run of the same command, to 1e-5 relative in
float32 (the sharded sums of the loss and the gradients only round in another order).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("jax")

TEXT = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
) * 12
"""About 1,900 characters, 33 distinct."""

RUN = ["--hidden", "32", "--seq-len", "16", "--batch", "8", "--steps", "10", "--seed", "0"]
RUN += ["--evals", "2", "--json", "--backend", "jax"]
"""The command of the issue (with a validation half-way, so the history has three); a
later ``--steps``/``--evals`` overrides its own."""

METRICS = ("train_loss", "val_loss", "val_perplexity", "final_val_loss")
ENV = dict(os.environ, OMP_NUM_THREADS="1", JAX_PLATFORMS="cpu")
ENV.pop("XLA_FLAGS", None)
TIMEOUT = 120


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_text(TEXT, encoding="utf-8")
    return str(path)


def _start(text_file, history, *extra):
    cmd = [sys.executable, "-m", "polyrnn", "train", "--text", text_file, *RUN, *extra]
    if history is not None:
        cmd += ["--history", str(history)]
    return _popen(cmd)


def _popen(cmd):
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def _finish(proc):
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    return out, err


def _result(out):
    """The JSON line (gloo prints a line of its own on stdout when it connects)."""
    return json.loads(out.strip().splitlines()[-1])


LENGTHS = [10, pytest.param(400, marks=pytest.mark.slow)]
"""Steps of the equality tests: 10 in CI, 400 on demand (``pytest -m slow``)."""

_SINGLE: dict[int, tuple[dict, list]] = {}


def _single(text_file, tmp_path_factory, steps):
    """The run of ``steps`` steps on one device: its metrics and history (run once)."""
    if steps not in _SINGLE:
        history = tmp_path_factory.mktemp("single") / "h.json"
        out, _ = _finish(_start(text_file, history, *_length(steps)))
        _SINGLE[steps] = _result(out), json.loads(history.read_text())["history"]
    return _SINGLE[steps]


def _length(steps):
    return ["--steps", str(steps), "--evals", "2"]


@pytest.fixture(scope="module")
def single(text_file, tmp_path_factory):
    """The run of the issue's 10 steps on one device."""
    return _single(text_file, tmp_path_factory, 10)


def _agree(result, history, single, steps):
    expected, expected_history = single
    assert result["steps"] == expected["steps"] == steps
    for key in METRICS:
        assert result[key] == pytest.approx(expected[key], rel=1e-5), key
    assert len(history) == len(expected_history) == 3
    for got, want in zip(history, expected_history, strict=True):
        assert got["step"] == want["step"]
        for key in ("train_loss", "val_loss"):
            if want[key] is None:  # no training loss before the first step
                assert got[key] is None
            else:
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=0), (got["step"], key)


@pytest.mark.parametrize("steps", LENGTHS)
def test_four_devices_give_the_metrics_of_one(text_file, tmp_path, tmp_path_factory, steps):
    history = tmp_path / "h.json"
    out, _ = _finish(_start(text_file, history, *_length(steps), "--devices", "4"))
    single = _single(text_file, tmp_path_factory, steps)
    _agree(_result(out), json.loads(history.read_text())["history"], single, steps)


SHARDING = textwrap.dedent(
    """
    import sys
    import numpy as np
    from polyrnn import _tree, lm
    from polyrnn.lm import distributed_jax

    mesh = distributed_jax.initialize(4)
    import jax

    text = open(sys.argv[1], encoding="utf-8").read()
    config = lm.TrainConfig(batch=8, seq_len=16, dropout=0.25, recurrent_dropout=0.5, seed=3)
    model = lm.ModelConfig(embed_size=8, hidden_size=16, layers=2)
    devices = set(mesh.devices.flat)
    assert len(devices) == 4

    def replicated(a):
        return a.sharding.is_fully_replicated and a.sharding.device_set == devices

    def rows(a, host):  # split by rows, each device holding its own rows only
        if a.sharding.spec != jax.sharding.PartitionSpec("data"):
            return False
        shards = sorted(a.addressable_shards, key=lambda s: s.index[0].start)
        return {s.device for s in shards} == devices and all(
            s.data.shape[0] == 2 and np.array_equal(np.asarray(s.data), host[2 * i : 2 * i + 2])
            for i, s in enumerate(shards)
        )

    plain = lm.Trainer(text, model=model, config=config, backend="jax")
    trainer = lm.Trainer(text, model=model, config=config, backend="jax", mesh=mesh)
    params, opt_state, x, y, state, lr, masks = trainer.step_inputs(1e-2)
    host_x, host_y = trainer.batches[0]
    assert rows(x, host_x) and rows(y, host_y)
    host = lm.dropout_masks(model, 0.25, 8, 16, seed=3, step=0, dtype="float32", recurrent=0.5)
    assert len(masks.outputs) == 3 and all(map(rows, masks.outputs, host.outputs))
    assert len(masks.recurrent) == 2 and all(map(rows, masks.recurrent, host.recurrent))
    assert all(rows(s, np.zeros((8, 16), np.float32)) for s in _tree.flatten(state)[0])
    assert all(map(replicated, _tree.flatten((params, opt_state, lr))[0]))
    hlo = trainer._step.lower(params, opt_state, x, y, state, lr, masks).compile().as_text()
    assert "all-reduce" in hlo  # the gradients are summed inside the compiled step

    for step in range(2):  # the same losses as one device, dropout included
        a, b = plain.train_step(1e-2), trainer.train_step(1e-2)
        assert abs(a - b) <= 1e-5 * abs(a), (step, a, b)
    assert all(map(replicated, _tree.flatten((trainer.lm.params, trainer.opt_state))[0]))
    assert all(rows(s, np.asarray(s)) for s in _tree.flatten(trainer.state)[0])
    for p, q in zip(_tree.flatten(plain.lm.params)[0], _tree.flatten(trainer.lm.params)[0]):
        np.testing.assert_allclose(np.asarray(q), np.asarray(p), rtol=1e-5, atol=1e-6)
    assert abs(plain.evaluate().loss - trainer.evaluate().loss) <= 1e-5 * plain.evaluate().loss

    try:
        lm.Trainer(text, model=model, config=lm.TrainConfig(batch=6), backend="jax", mesh=mesh)
    except lm.LMError as e:
        assert "divisible by the 4 devices" in str(e) and "got 6" in str(e), e
    else:
        raise AssertionError("a batch of 6 on 4 devices was accepted")
    print("ok")
    """
)


def test_step_inputs_are_split_by_rows_and_parameters_replicated(text_file):
    cmd = [sys.executable, "-c", SHARDING, text_file]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=ENV, timeout=TIMEOUT, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("steps", LENGTHS)
def test_two_processes_give_the_metrics_of_one(text_file, tmp_path, tmp_path_factory, steps):
    """jax.distributed on 127.0.0.1, one CPU device per process: process 0 alone reports
    and writes the history; the other prints nothing of its own."""
    join = ["--num-processes", "2", "--coordinator-address", f"127.0.0.1:{_free_port()}"]
    join += _length(steps)
    history = tmp_path / "h.json"
    procs = [_start(text_file, history, *join, "--process-id", str(rank)) for rank in (1, 0)]
    try:
        (out1, _), (out0, _) = map(_finish, procs)
    finally:
        for proc in procs:
            proc.kill()
    single = _single(text_file, tmp_path_factory, steps)
    _agree(_result(out0), json.loads(history.read_text())["history"], single, steps)
    assert "{" not in out1


def test_eval_across_two_processes_equals_one(text_file, tmp_path):
    """polyrnn eval on 2 processes joined by jax.distributed: each scores half of the
    text's 64 streams, and total NLL / total characters is the single NumPy process's
    loss to 1e-12 (float64: the sums are only grouped differently); process 0 alone
    prints."""
    from polyrnn import lm

    model = str(tmp_path / "m.npz")
    train = [sys.executable, "-m", "polyrnn", "train", "--text", text_file, "--embed", "8"]
    train += ["--hidden", "16", "--batch", "4", "--seq-len", "16", "--steps", "4"]
    _finish(_popen([*train, "--dtype", "float64", "--out", model]))
    text = TEXT * 3  # 5,700 characters: 64 streams of 90, 32 for each process
    (tmp_path / "eval.txt").write_text(text, encoding="utf-8")
    single = lm.evaluate(lm.load(model), text)
    join = ["--num-processes", "2", "--coordinator-address", f"127.0.0.1:{_free_port()}"]
    run = [sys.executable, "-m", "polyrnn", "eval", "--model", model, "--json", "--backend"]
    run += ["jax", "--text", str(tmp_path / "eval.txt"), *join, "--process-id"]
    procs = [_popen([*run, rank]) for rank in ("1", "0")]
    try:
        (out1, _), (out0, _) = map(_finish, procs)
    finally:
        for proc in procs:
            proc.kill()
    result = _result(out0)
    assert result["characters"] == single.tokens == len(text) - 1
    assert result["loss"] == pytest.approx(single.loss, rel=1e-12, abs=0)
    assert result["perplexity"] == pytest.approx(single.perplexity, rel=1e-12, abs=0)
    assert "{" not in out1


def test_bad_requests_get_one_clear_line(text_file, capsys):
    import jax
    import numpy as np

    from polyrnn import cli, lm
    from polyrnn.lm import distributed_jax

    run = ["train", "--text", text_file, "--steps", "1"]
    evaluate = ["eval", "--model", text_file, "--text", text_file]
    for command, message in [
        ([*run, "--devices", "2"], "--devices needs --backend jax, got --backend numpy"),
        (
            [*evaluate, "--num-processes", "2", "--process-id", "0"],
            "--num-processes needs --backend jax, got --backend numpy",
        ),
        ([*run, "--backend", "jax", "--process-id", "1"], "need num_processes"),
        ([*run, "--backend", "jax", "--num-processes", "2", "--process-id", "2"], "in [0, 2)"),
    ]:
        assert cli.main(command) == 1
        err = capsys.readouterr().err
        assert err.startswith("polyrnn: error: ") and message in err, err
        assert len(err.splitlines()) == 1
    with pytest.raises(ValueError, match="timeout must be > 0, got 0"):
        distributed_jax.initialize(timeout=0)
    too_many = len(jax.devices()) + 1  # JAX has started: it cannot get more devices now
    with pytest.raises(
        lm.LMError, match=f"XLA_FLAGS=--xla_force_host_platform_device_count={too_many}"
    ):
        distributed_jax.data_mesh(too_many)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    with pytest.raises(lm.LMError, match="a mesh needs the backend 'jax', got 'numpy'"):
        lm.Trainer(TEXT, backend="numpy", mesh=mesh)
    with pytest.raises(lm.LMError, match="one axis 'data'"):
        distributed_jax.DataParallel(
            jax.sharding.Mesh(np.array(jax.devices()[:1]), ("x",)), "float32"
        )


RESUME = textwrap.dedent(
    """
    import sys
    from jax.sharding import PartitionSpec as P
    from polyrnn import _tree, cli, lm

    text, ck, stop = sys.argv[1], sys.argv[2], int(sys.argv[3])
    run = ["train", "--text", text, *sys.argv[4:]]
    real_step = lm.Trainer.train_step

    def stop_at(self, lr):  # Ctrl-C before step stop + 1
        if self.steps_done == stop:
            raise KeyboardInterrupt
        return real_step(self, lr)

    real_resume = lm.io.resume_training

    def resume_checked(trainer, path):  # restored onto the mesh as a fresh run places it
        real_resume(trainer, path)
        devices = set(trainer.parallel.mesh.devices.flat)
        for a in _tree.flatten((trainer.lm.params, trainer.opt_state))[0]:
            assert a.sharding.is_fully_replicated and a.sharding.device_set == devices
        for a in _tree.flatten(trainer.state)[0]:
            assert a.sharding.spec == P("data") and a.sharding.device_set == devices
        print("checked", file=sys.stderr)

    lm.Trainer.train_step = stop_at
    assert cli.main([*run, "--checkpoint", ck]) == 130
    lm.Trainer.train_step = real_step
    lm.io.resume_training = resume_checked
    assert cli.main([*run, "--resume", ck]) == 0
    """
)


def test_a_run_on_two_devices_resumes_to_the_uninterrupted_result(text_file, tmp_path, single):
    """10 steps on 2 devices, stopped after 5 (a checkpoint) and resumed: the metrics of the
    single-device run, as the uninterrupted 2-device run gives them; the restored
    parameters and Adam moments are replicated and the state split by rows again."""
    straight = _result(_finish(_start(text_file, None, "--devices", "2"))[0])
    ck = str(tmp_path / "ck.npz")
    cmd = [sys.executable, "-c", RESUME, text_file, ck, "5", *RUN, "--devices", "2"]
    out, err = _finish(_popen(cmd))
    assert "resumed after step 5" in err and "checked" in err
    resumed = _result(out)
    for key in METRICS:  # the same compiled step on the same numbers: equal to the bit
        assert resumed[key] == straight[key], key
        assert resumed[key] == pytest.approx(single[0][key], rel=1e-5), key


@pytest.mark.parametrize("victim", [1, 0])
def test_a_lost_process_stops_the_other_and_resume_finishes_the_run(text_file, tmp_path, victim):
    """SIGKILL one process mid-run (after the validation of step 100, of 3000: so long that
    a loaded machine cannot reach the end, and the exit's barrier, first).  Process 1
    killed: process 0's next step (or validation) fails (gloo's connection is reset), and
    it exits with status 1 and one line naming process 1, in seconds, not after the
    heartbeat timeout (here --timeout 30); ``--resume`` from its last checkpoint, in one process, then ends
    with the metrics of the uninterrupted single-process run (1e-5 relative: the two
    processes' steps before the fault sum in another order).  Process 0 killed (the
    coordination service with it): JAX's client aborts process 1 at once with its own log
    line, before polyrnn can say anything."""
    join = ["--num-processes", "2", "--coordinator-address", f"127.0.0.1:{_free_port()}"]
    history, ck = tmp_path / "h.json", str(tmp_path / "ck.npz")
    long = ["--steps", "3000", "--evals", "60", "--timeout", "30", "--checkpoint", ck]
    procs = {
        rank: _start(text_file, history, *join, *long, "--process-id", str(rank)) for rank in (1, 0)
    }
    survivor = procs[1 - victim]
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:  # process 0 validated after step 100: the run is under way
            assert time.monotonic() < deadline and survivor.poll() is None
            time.sleep(0.2)
            try:
                if len(json.loads(history.read_text())["history"]) >= 3:
                    break
            except (OSError, ValueError):
                continue
        procs[victim].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, err = survivor.communicate(timeout=60)
        took = time.monotonic() - killed
    finally:
        for proc in procs.values():
            proc.kill()
            proc.communicate()
    assert took < 30, took
    if victim == 0:
        assert survivor.returncode == -signal.SIGABRT, err[-2000:]
        assert "Terminating process because the JAX distributed service detected fatal" in err
        return
    assert survivor.returncode == 1, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("polyrnn: error: process 0 of 2 lost process 1 during "), last
    assert last.endswith("resume from the last --checkpoint with --resume")

    import numpy as np

    with np.load(ck) as z:
        done = json.loads(str(z["meta"]))["training"]["steps_done"]
    assert done in range(100, 3000, 50), done  # a validation's checkpoint, before the end
    out, err = _finish(_start(text_file, None, *long[:4], "--resume", ck))
    assert f"resumed after step {done}" in err
    resumed = _result(out)
    straight = _result(_finish(_start(text_file, None, *long[:4]))[0])
    assert resumed["steps"] == straight["steps"] == 3000
    for key in METRICS:
        assert resumed[key] == pytest.approx(straight[key], rel=1e-5), key


def test_two_processes_resume_to_the_uninterrupted_result(text_file, tmp_path, single):
    """jax.distributed: both processes stopped after step 5 (process 0 writes the
    checkpoint, the state gathered from both), then resumed: the single-device metrics."""
    join = ["--num-processes", "2", "--coordinator-address", f"127.0.0.1:{_free_port()}"]
    ck = str(tmp_path / "ck.npz")
    cmd = [sys.executable, "-c", RESUME, text_file, ck, "5", *RUN, *join, "--process-id"]
    procs = [_popen([*cmd, rank]) for rank in ("1", "0")]
    try:
        (out1, _), (out0, err0) = map(_finish, procs)
    finally:
        for proc in procs:
            proc.kill()
    assert "resumed after step 5" in err0 and "checked" in err0
    resumed = _result(out0)
    for key in METRICS:
        assert resumed[key] == pytest.approx(single[0][key], rel=1e-5), key
    assert "{" not in out1
