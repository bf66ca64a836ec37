"""``polyrnn.nn.torch.RNN/GRU/LSTM`` against independent references.

- :mod:`torch.nn`'s own ``RNN``, ``GRU`` and ``LSTM`` with the same ``state_dict``:
  outputs, final states, every parameter's gradient, packed sequences (unsorted), a
  compiled model, ``DistributedDataParallel`` in one process and in two (half the batch
  each) and 20 steps of Adam;
- polyrnn's layers on NumPy (another backend, fed the module's weights) for what torch
  lacks: the ``reset_after=False`` GRU (and the seed notebook's printed numbers), the
  sigmoid RNN, and the dropout masks the module documents (drawn again here from the
  same torch seed);
- for the other cells (``cell="ln_gru"``, ``"min_gru"``, ``"min_lstm"``, ``"ln_lstm"``):
  the cells' NumPy scans, chained by hand through two bidirectional layers and
  backpropagated by their hand-written VJPs, and polyrnn's NumPy layers with lengths and
  dropout masks;
- torch's modules raising the same exception types for the same bad calls.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from other_cells import OTHERS
from test_seed import GOLDEN_ATOL, PRINTED_FEATURES, SCAN_GRU_Y, _printed

torch = pytest.importorskip("torch")
pt = pytest.importorskip("polyrnn.nn.torch")

from torch.nn.utils.rnn import (
    pack_padded_sequence,
    pad_packed_sequence,
)

import polyrnn
from polyrnn import interop
from polyrnn.cells import BUILTIN
from polyrnn.layers import cell_layers

KINDS = ["RNN", "GRU", "LSTM"]
TOL = {torch.float32: 2e-5, torch.float64: 1e-10}
"""The brief's tolerances against torch.nn: the same kernels, but the packed and
bidirectional paths sum in other orders (measured: 0 to 3e-8 in float32)."""
D, H, L = 3, 5, 2
PARAMS = {"RNN": polyrnn.RNNParams, "GRU": polyrnn.GRUParams, "LSTM": polyrnn.LSTMParams}
NUMPY_LAYERS = {"RNN": polyrnn.rnn_layers, "GRU": polyrnn.gru_layers, "LSTM": polyrnn.lstm_layers}


def pair(kind: str, dtype: Any = torch.float64, extras: Any = None, **kw: Any) -> tuple[Any, Any]:
    """``(torch.nn module, polyrnn module)`` of the same configuration, polyrnn's loaded
    from torch's ``state_dict``; ``extras``: polyrnn's own options (``reset_after``...)."""
    kw = {"num_layers": L, "bidirectional": True, "batch_first": True, "dtype": dtype, **kw}
    torch.manual_seed(1)
    ref = getattr(torch.nn, kind)(D, H, **kw)
    ours = getattr(pt, kind)(D, H, **kw, **(extras or {}))
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def states(kind: str, n: int, dtype: Any, dirs: int = 2, gen: Any = None) -> Any:
    shape = (L * dirs, n, H) if n else (L * dirs, H)
    h = torch.randn(shape, dtype=dtype, generator=gen)
    return (h, torch.randn(shape, dtype=dtype, generator=gen)) if kind == "LSTM" else h


def flat(out: Any) -> list[Any]:
    """The tensors of ``(output, h_n)`` / ``(output, (h_n, c_n))``, packed data unpacked."""
    output, last = out
    data = output.data if hasattr(output, "batch_sizes") else output
    return [data, *(last if isinstance(last, tuple) else (last,))]


def close(actual: Any, expected: Any, tol: float) -> None:
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


def backward(out: list[Any], seed: int = 3) -> None:
    """Backpropagate a random weighting of every output (so each one's gradient counts)."""
    gen = torch.Generator().manual_seed(seed)
    total = sum((t * torch.randn(t.shape, dtype=t.dtype, generator=gen)).sum() for t in out)
    total.backward()


def grads_close(ref: Any, ours: Any, tol: float) -> None:
    named = dict(ours.named_parameters())
    assert list(named) == [n for n, _ in ref.named_parameters()]
    for name, p in ref.named_parameters():
        assert p.grad is not None and named[name].grad is not None, name
        close(named[name].grad, p.grad, tol)


# --------------------------------------------------------------------------- drop-in


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_same_outputs_states_and_gradients_as_torch(kind, dtype):
    ref, ours = pair(kind, dtype)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, D, dtype=dtype, generator=gen)
    hx = states(kind, 4, dtype, gen=gen)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    hxs = [
        tuple(h.clone().requires_grad_(True) for h in hx)
        if kind == "LSTM"
        else hx.clone().requires_grad_(True)
        for _ in range(2)
    ]
    outs = [flat(m(xi, hi)) for m, xi, hi in ((ref, xs[0], hxs[0]), (ours, xs[1], hxs[1]))]
    for a, e in zip(outs[1], outs[0], strict=True):
        close(a, e, TOL[dtype])
    for out in outs:
        backward(out)
    grads_close(ref, ours, TOL[dtype])
    close(xs[1].grad, xs[0].grad, TOL[dtype])
    for a, e in zip(*(h if kind == "LSTM" else (h,) for h in (hxs[1], hxs[0])), strict=True):
        close(a.grad, e.grad, TOL[dtype])


def test_functional_call_as_torch():
    """``torch.func.functional_call`` swaps the parameters: the module reads them at each
    forward, so other weights give torch.nn's result for those weights."""
    ref, ours = pair("GRU")
    torch.manual_seed(5)
    other = {k: torch.randn_like(v) for k, v in ref.state_dict().items()}
    x = torch.randn(2, 4, D, dtype=torch.float64)
    got = torch.func.functional_call(ours, other, (x,))
    want = torch.func.functional_call(ref, other, (x,))
    for a, e in zip(flat(got), flat(want), strict=True):
        close(a, e, TOL[torch.float64])
    assert float((got[0] - ours(x)[0]).detach().abs().max()) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_time_major_unbatched_and_no_bias_as_torch(kind):
    tol = TOL[torch.float64]
    gen = torch.Generator().manual_seed(0)
    ref, ours = pair(kind, batch_first=False)
    x = torch.randn(6, 4, D, dtype=torch.float64, generator=gen)  # (T, N, D)
    for a, e in zip(flat(ours(x)), flat(ref(x)), strict=True):
        close(a, e, tol)
    x1, h1 = x[:, 0], states(kind, 0, torch.float64, gen=gen)  # unbatched (T, D), (L*2, H)
    for a, e in zip(flat(ours(x1, h1)), flat(ref(x1, h1)), strict=True):
        close(a, e, tol)
    ref, ours = pair(kind, bias=False)
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert not any("bias" in n for n in ours.state_dict())
    x = x.transpose(0, 1)
    for a, e in zip(flat(ours(x)), flat(ref(x)), strict=True):
        close(a, e, tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_packed_sequences_as_torch(kind, dtype):
    """Unsorted lengths: the output is packed with torch's batch sizes and indices, so
    ``pad_packed_sequence`` gives torch's result; gradients flow as torch's."""
    ref, ours = pair(kind, dtype)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, D, dtype=dtype, generator=gen)
    lengths = torch.tensor([2, 6, 3, 5])
    hx = states(kind, 4, dtype, gen=gen)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    packs = [pack_padded_sequence(xi, lengths, batch_first=True, enforce_sorted=False) for xi in xs]
    (out_r, last_r), (out_o, last_o) = ref(packs[0], hx), ours(packs[1], hx)
    assert type(out_o) is type(out_r)
    for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        assert torch.equal(getattr(out_o, field), getattr(out_r, field)), field
    for a, e in zip(flat((out_o, last_o)), flat((out_r, last_r)), strict=True):
        close(a, e, TOL[dtype])
    padded_o, len_o = pad_packed_sequence(out_o, batch_first=True)
    padded_r, len_r = pad_packed_sequence(out_r, batch_first=True)
    assert torch.equal(len_o, len_r)
    close(padded_o, padded_r, TOL[dtype])
    backward(flat((out_r, last_r)))
    backward(flat((out_o, last_o)))
    grads_close(ref, ours, TOL[dtype])
    close(xs[1].grad, xs[0].grad, TOL[dtype])
    # sorted packs (enforce_sorted=True: no indices) too
    order = torch.argsort(lengths, descending=True)
    pack = pack_padded_sequence(x[order], lengths[order], batch_first=True)
    out_r, out_o = ref(pack)[0], ours(pack)[0]
    assert out_o.sorted_indices is None and out_r.sorted_indices is None
    close(out_o.data, out_r.data, TOL[dtype])


@pytest.mark.parametrize("kind", KINDS)
def test_same_init_and_state_dict_both_ways(kind):
    """Under one seed the constructors draw torch's very weights; ``state_dict`` loads
    either way (strict) and the outputs then agree."""
    kw = {"num_layers": L, "bidirectional": True, "dtype": torch.float64}
    torch.manual_seed(7)
    ref = getattr(torch.nn, kind)(D, H, **kw)
    torch.manual_seed(7)
    ours = getattr(pt, kind)(D, H, **kw)
    sd_r, sd_o = ref.state_dict(), ours.state_dict()
    assert list(sd_o) == list(sd_r)
    assert all(torch.equal(sd_o[k], sd_r[k]) for k in sd_r)
    bound = 1 / H**0.5
    assert all(float(v.abs().max()) <= bound for v in sd_o.values())
    torch.manual_seed(8)
    other = getattr(pt, kind)(D, H, **kw)  # polyrnn -> torch
    ref.load_state_dict(other.state_dict())
    x = torch.randn(6, 2, D, dtype=torch.float64)
    for a, e in zip(flat(other(x)), flat(ref(x)), strict=True):
        close(a, e, TOL[torch.float64])
    torch.manual_seed(9)
    fresh = getattr(torch.nn, kind)(D, H, **kw)  # torch -> polyrnn
    ours.load_state_dict(fresh.state_dict())
    for a, e in zip(flat(ours(x)), flat(fresh(x)), strict=True):
        close(a, e, TOL[torch.float64])
    assert [[p.shape for p in ps] for ps in ours.all_weights] == [
        [p.shape for p in ps] for ps in fresh.all_weights
    ]
    assert repr(ours) == repr(fresh)


class Model(torch.nn.Module):
    """A toy regressor as torch users write one: linear, recurrent layers, linear."""

    def __init__(self, rnn: Any) -> None:
        super().__init__()
        self.inp = torch.nn.Linear(D, D, dtype=torch.float64)
        self.rnn = rnn
        self.out = torch.nn.Linear(2 * H, 1, dtype=torch.float64)

    def forward(self, x: Any) -> Any:
        hs, _ = self.rnn(torch.tanh(self.inp(x)))
        return self.out(hs).squeeze(-1)


def twins(kind: str) -> tuple[Any, Any]:
    ref, ours = pair(kind)
    torch.manual_seed(2)
    a = Model(ref)
    b = Model(ours)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("kind", KINDS)
def test_adam_follows_torchs_loss_curve(kind):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 7, D, dtype=torch.float64, generator=gen)
    y = torch.cumsum(x[..., 0], dim=1).sin()  # a target that needs memory
    curves = []
    for model in twins(kind):
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        losses = []
        for _ in range(20):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves.append(losses)
    np.testing.assert_allclose(curves[1], curves[0], rtol=1e-9, atol=0)
    assert curves[0][-1] < 0.8 * curves[0][0]  # it learned something


def TORCHS_OWN(test: Any) -> Any:
    """Warnings torch.compile raises inside torch, which pytest's ``error`` filter would turn
    into failures: inductor's use of ``torch.jit.script_method``, and dynamo's look at the
    ``.grad`` of a tensor entering the frame resumed after the module (dynamo hides that one
    itself with ``safe_grad_filter``, which an ``error`` filter pre-empts)."""
    for message in (
        "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning",
        "ignore:The .grad attribute of a Tensor that is not a leaf Tensor:UserWarning",
    ):
        test = pytest.mark.filterwarnings(message)(test)
    return test


@TORCHS_OWN
@pytest.mark.parametrize("kind", KINDS)
def test_compiled_model_as_torch_eager(kind):
    """``torch.compile`` of a model holding the module: the numbers of torch.nn's eagerly."""
    ref, ours = twins(kind)
    x = torch.randn(3, 5, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    compiled = torch.compile(ours)
    out_o, out_r = compiled(x), ref(x)
    close(out_o, out_r, TOL[torch.float64])
    backward([out_o])
    backward([out_r])
    grads_close(ref, ours, TOL[torch.float64])


@TORCHS_OWN
def test_compiled_packed_sequences_as_torch():
    ref, ours = pair("GRU")
    x = torch.randn(3, 5, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([2, 5, 4])

    def run(m: Any, x: Any) -> Any:
        pack = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, h_n = m(pack)
        return pad_packed_sequence(out, batch_first=True)[0], h_n

    for a, e in zip(torch.compile(run)(ours, x), run(ref, x), strict=True):
        close(a, e, TOL[torch.float64])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_distributed_data_parallel_one_process():
    """DDP over gloo on 127.0.0.1, one process: the gradients of torch.nn's module."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available() or dist.is_initialized():
        pytest.skip("torch.distributed is not available here, or already initialised")
    ref, ours = twins("GRU")
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{_free_port()}",
        rank=0,
        world_size=1,
        timeout=timedelta(seconds=60),
    )
    try:
        ddp = torch.nn.parallel.DistributedDataParallel(ours)
        x = torch.randn(3, 5, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        out_o, out_r = ddp(x), ref(x)
        close(out_o, out_r, TOL[torch.float64])
        backward([out_o])
        backward([out_r])
        grads_close(ref, ours, TOL[torch.float64])
    finally:
        dist.destroy_process_group()


DDP_RANK = """
import sys
from datetime import timedelta
import torch, torch.distributed as dist
import polyrnn.nn.torch as pt
port, rank, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                        world_size=2, timeout=timedelta(seconds=30))
torch.manual_seed(1)
m = pt.GRU(3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=torch.float64)
ddp = torch.nn.parallel.DistributedDataParallel(m)
gen = torch.Generator().manual_seed(0)
x = torch.randn(4, 6, 3, dtype=torch.float64, generator=gen)
w = torch.randn(4, 6, 10, dtype=torch.float64, generator=gen)
half = slice(2 * rank, 2 * rank + 2)
(ddp(x[half])[0] * w[half]).sum().backward()
torch.save({"state": m.state_dict(), "grads": {n: p.grad for n, p in m.named_parameters()}}, out)
dist.destroy_process_group()
"""


def test_distributed_data_parallel_two_processes(tmp_path):
    """DDP over gloo, two processes each running half the batch: both hold the averaged
    gradient, which is half the full batch's gradient in torch.nn.GRU with the same
    ``state_dict`` (float64)."""
    script = tmp_path / "rank.py"
    script.write_text(DDP_RANK)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(port), str(r), str(tmp_path / f"{r}.pt")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    try:
        logs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], logs
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    ref = torch.nn.GRU(D, H, num_layers=L, bidirectional=True, batch_first=True)
    ref = ref.to(torch.float64)
    ref.load_state_dict(ranks[0]["state"])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, D, dtype=torch.float64, generator=gen)
    w = torch.randn(4, 6, 2 * H, dtype=torch.float64, generator=gen)
    (0.5 * (ref(x)[0] * w).sum()).backward()
    for rank in ranks:
        assert list(rank["grads"]) == [n for n, _ in ref.named_parameters()]
        for name, p in ref.named_parameters():
            close(rank["grads"][name], p.grad, TOL[torch.float64])


# --------------------------------------------------------------------------- beyond torch


def numpy_layers(module: Any) -> list[Any]:
    """The module's weights as polyrnn's NumPy layers, read here (``w_x = weight_ih.T``)."""
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    cls = PARAMS[type(module).__name__]
    out = []
    for i in range(module.num_layers):
        entry = tuple(
            cls(
                sd[f"weight_ih_l{i}{s}"].T,
                sd[f"weight_hh_l{i}{s}"].T,
                sd[f"bias_ih_l{i}{s}"],
                sd[f"bias_hh_l{i}{s}"],
            )
            for s in ("", "_reverse")[: 2 if module.bidirectional else 1]
        )
        out.append(entry if module.bidirectional else entry[0])
    return out


@pytest.mark.parametrize(
    ("kind", "options", "numpy_options"),
    [
        ("GRU", {"reset_after": False}, {"reset_after": False}),
        ("RNN", {"nonlinearity": "sigmoid"}, {"activation": "sigmoid"}),
    ],
)
def test_cells_torch_lacks_against_numpy(kind, options, numpy_options):
    """The GRU of Cho et al. and the sigmoid RNN, against polyrnn's layers on NumPy (an
    independent backend: the NumPy adapter's loop, not aten), packed and unpacked."""
    _, ours = pair(kind, extras=options)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, D, dtype=torch.float64, generator=gen)
    h0 = torch.randn(2 * L, 3, H, dtype=torch.float64, generator=gen)
    layers = numpy_layers(ours)
    run = NUMPY_LAYERS[kind]
    kw = {"bidirectional": True, **numpy_options}
    out, h_n = ours(x, h0)
    ref_out, ref_h = run(x.numpy(), layers, h0.numpy(), **kw)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h, rtol=1e-12, atol=1e-12)
    lengths = torch.tensor([4, 6, 1])
    pack = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, h_n = ours(pack, h0)
    padded, _ = pad_packed_sequence(out, batch_first=True, total_length=6)
    ref_out, ref_h = run(x.numpy(), layers, h0.numpy(), lengths=lengths.numpy(), **kw)
    np.testing.assert_allclose(padded.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h_n.detach().numpy(), ref_h, rtol=1e-12, atol=1e-12)
    if kind == "GRU":  # another function of the same weights than torch's GRU
        ref, _ = pair(kind)
        assert float((ref(x, h0)[0] - ours(x, h0)[0]).detach().abs().max()) > 1e-3


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_masks_from_torchs_generator(kind, batch_first):
    """In train mode: the masks the module documents, drawn here again from the same
    seed, given to polyrnn's layers on NumPy, give its output; eval() drops nothing and
    is torch.nn's eval output."""
    p = 0.4
    ref, ours = pair(kind, dropout=p, batch_first=batch_first)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, D, dtype=torch.float64, generator=gen)  # (N, T) or (T, N)
    ours.train()
    torch.manual_seed(123)
    out, last = ours(x)
    torch.manual_seed(123)
    masks = [
        (torch.rand((*x.shape[:-1], 2 * H), dtype=torch.float64) >= p).numpy() for _ in range(L - 1)
    ]
    assert 0.2 < 1 - masks[0].mean() < 0.6  # about p dropped (240 draws)
    kw = {"bidirectional": True, "dropout": p, "masks": masks, "time_major": not batch_first}
    if kind == "GRU":
        kw["reset_after"] = True  # torch's GRU, the module's default
    ref_out, ref_last = NUMPY_LAYERS[kind](x.numpy(), numpy_layers(ours), **kw)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    for a, e in zip(
        last if kind == "LSTM" else (last,),
        ref_last if kind == "LSTM" else (ref_last,),
        strict=True,
    ):
        np.testing.assert_allclose(a.detach().numpy(), e, rtol=1e-12, atol=1e-12)
    torch.manual_seed(124)
    assert not torch.equal(ours(x)[0], out)  # a fresh draw each forward
    ours.eval()
    ref.eval()
    evaluated = ours(x)[0]
    close(evaluated, ref(x)[0], TOL[torch.float64])
    assert float((evaluated - out).detach().abs().max()) > 1e-3


def test_one_layer_dropout_warns_as_torch_and_drops_nothing():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        ref = torch.nn.GRU(D, H, dropout=0.5, dtype=torch.float64)
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        ours = pt.GRU(D, H, dropout=0.5, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 2, D, dtype=torch.float64)
    close(ours.train()(x)[0], ref.eval()(x)[0], TOL[torch.float64])


def test_seed_notebook_gru_as_reset_before_module():
    """The notebook's GRU (reset gate before the product) as ``GRU(reset_after=False)``
    with its converted weights reproduces the numbers it printed (In [17]), to the
    Keras test's tolerance."""
    with np.load(os.path.join(os.path.dirname(__file__), "data", "seed_weights.npz")) as f:
        seed = {k: f[k].astype("float32") for k in f.files}
    p = interop.from_seed_gru(*(seed[k] for k in ("w1", "w2", "w3", "b1", "b2", "b3")))
    n_in, n_h = p.w_x.shape[0], p.w_h.shape[0]
    m = pt.GRU(n_in, n_h, batch_first=True, reset_after=False)
    m.load_state_dict(
        {
            "weight_ih_l0": torch.from_numpy(p.w_x.T.copy()),
            "weight_hh_l0": torch.from_numpy(p.w_h.T.copy()),
            "bias_ih_l0": torch.from_numpy(p.b_x),
            "bias_hh_l0": torch.from_numpy(p.b_h),
        }
    )
    xs = torch.from_numpy(seed["X"][None, :, :, 0])  # (1, T, D): the notebook's (T, D, 1)
    hs = m(xs)[0][0].detach().numpy()
    w, b = interop.from_seed_readout(seed["w4"], seed["b4"])
    ys = 1.0 / (1.0 + np.exp(-(hs @ w + b)))
    steps, printed = _printed(SCAN_GRU_Y)
    np.testing.assert_allclose(ys[steps][:, PRINTED_FEATURES], printed, rtol=0, atol=GOLDEN_ATOL)


# --------------------------------------------------------------------------- other cells

TORCH_NAME = {
    "w_x": "weight_ih",
    "w_h": "weight_hh",
    "b_x": "bias_ih",
    "b_h": "bias_hh",
    "g_x": "ln_weight_ih",
    "g_h": "ln_weight_hh",
    "g_c": "ln_weight_c",
    "b_c": "ln_bias_c",
}
"""The documented parameter names, written out here (not read from the module)."""


def cell_module(cell: str, **kw: Any) -> Any:
    """A float64 module of ``cell`` with every parameter random (gains near 1), so that no
    parameter sits at its init's symmetric point."""
    kw = {"num_layers": L, "bidirectional": True, "batch_first": True, **kw}
    torch.manual_seed(1)
    m = getattr(pt, OTHERS[cell].kind)(D, H, cell=cell, dtype=torch.float64, **kw)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if name.startswith("ln_weight") else 0.0))
    return m


def cell_numpy_layers(module: Any, cell: str) -> list[Any]:
    """The module's weights as polyrnn's NumPy parameters, by the documented names."""
    sd = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    cls = OTHERS[cell].params
    out = []
    for i in range(module.num_layers):
        entry = tuple(
            cls(
                *(
                    sd[f"{TORCH_NAME[f]}_l{i}{s}"].T
                    if f.startswith("w_")
                    else sd[f"{TORCH_NAME[f]}_l{i}{s}"]
                    for f in cls._fields
                )
            )
            for s in ("", "_reverse")[: 2 if module.bidirectional else 1]
        )
        out.append(entry if module.bidirectional else entry[0])
    return out


def cell_state0(cell: str, n: int, gen: Any, dirs: int = 2) -> Any:
    shape = (L * dirs, n, H)
    h = torch.randn(shape, dtype=torch.float64, generator=gen)
    return (h, torch.randn(shape, dtype=torch.float64, generator=gen)) if cell == "ln_lstm" else h


def stack_by_hand(cell: str, x: Any, layers: list[Any], state0: Any, d_out: Any, d_last: Any):
    """Two bidirectional layers composed by hand from the cell's NumPy scan and its
    hand-written VJP: ``(output, final states, parameter gradients per layer and
    direction)``, the gradients of ``sum(output * d_out) + sum(last * d_last)``."""
    scan_vjp = OTHERS[cell].vjp
    two = cell == "ln_lstm"
    parts = state0 if two else (state0,)
    x_in, backs, lasts = x, [], []
    for i, entry in enumerate(layers):
        outs = []
        for d, p in enumerate(entry):
            k = 2 * i + d
            s0 = tuple(s[k] for s in parts) if two else parts[0][k]
            (hs, last), back = scan_vjp(x_in, p, s0, reverse=d == 1)
            outs.append(hs)
            lasts.append(last if two else (last,))
            backs.append(back)
        x_in = np.concatenate(outs, axis=-1)
    d_parts = d_last if two else (d_last,)
    grads: dict[int, Any] = {}
    d_y = d_out
    for i in range(len(layers) - 1, -1, -1):
        d_x = 0.0
        for d in range(2):
            k = 2 * i + d
            d_l = tuple(s[k] for s in d_parts) if two else d_parts[0][k]
            d_in, grads[k], _ = backs[k](d_y[..., d * H : (d + 1) * H], d_l)
            d_x = d_x + d_in
        d_y = d_x
    stacked = tuple(np.stack(s) for s in zip(*lasts, strict=True))
    return x_in, stacked, grads


@pytest.mark.parametrize("cell", list(OTHERS))
def test_cells_against_numpy_scans_composed_by_hand(cell):
    """Two bidirectional batch-first layers with an initial state: outputs, final states
    and every parameter's gradient (autograd through the module) against the cell's
    NumPy scans chained by hand, backward by their hand-written VJPs."""
    m = cell_module(cell)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 6, D, dtype=torch.float64, generator=gen)
    s0 = cell_state0(cell, 3, gen)
    out, last = m(x, s0)
    lasts = last if cell == "ln_lstm" else (last,)
    rng = np.random.default_rng(1)
    d_out = rng.standard_normal(tuple(out.shape))
    d_last = tuple(rng.standard_normal(tuple(t.shape)) for t in lasts)
    total = (out * torch.from_numpy(d_out)).sum()
    total = total + sum((t * torch.from_numpy(d)).sum() for t, d in zip(lasts, d_last, strict=True))
    total.backward()
    s0_np = tuple(s.numpy() for s in s0) if cell == "ln_lstm" else s0.numpy()
    ref_out, ref_last, grads = stack_by_hand(
        cell, x.numpy(), cell_numpy_layers(m, cell), s0_np, d_out,
        d_last if cell == "ln_lstm" else d_last[0],
    )  # fmt: skip
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    for a, e in zip(lasts, ref_last, strict=True):
        np.testing.assert_allclose(a.detach().numpy(), e, rtol=1e-12, atol=1e-12)
    named = dict(m.named_parameters())
    checked = 0
    for k, g in grads.items():
        suffix = f"_l{k // 2}" + ("_reverse" if k % 2 else "")
        for field, value in zip(g._fields, g, strict=True):
            p = named[f"{TORCH_NAME[field]}{suffix}"]
            want = value.T if field.startswith("w_") else value
            np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-11, atol=1e-11)
            checked += 1
    assert checked == len(named)  # every parameter, none left out


@pytest.mark.parametrize("cell", list(OTHERS))
def test_one_layer_is_the_cells_scan(cell):
    """One time-major layer, batched and unbatched, is the cell's own NumPy scan."""
    m = cell_module(cell, num_layers=1, bidirectional=False, batch_first=False)
    scan = OTHERS[cell].scan
    (p,) = cell_numpy_layers(m, cell)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 2, D, dtype=torch.float64, generator=gen)  # (T, N, D)
    out, last = m(x)
    ref_hs, ref_last = scan(x.numpy(), p, time_major=True)
    np.testing.assert_allclose(out.detach().numpy(), ref_hs, rtol=1e-12, atol=1e-12)
    for a, e in zip(
        last if cell == "ln_lstm" else (last,),
        ref_last if cell == "ln_lstm" else (ref_last,),
        strict=True,
    ):
        np.testing.assert_allclose(a.detach().numpy()[0], e, rtol=1e-12, atol=1e-12)
    out1, _ = m(x[:, 1])  # unbatched (T, D)
    np.testing.assert_allclose(out1.detach().numpy(), ref_hs[:, 1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", list(OTHERS))
def test_cells_packed_sequences_against_numpy(cell):
    """Unsorted packed sequences: the padded output and the final states (after each
    sequence's last step forward, its first backward) are polyrnn's NumPy layers with
    ``lengths``; the returned pack has torch's batch sizes and indices."""
    m = cell_module(cell)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 6, D, dtype=torch.float64, generator=gen)
    lengths = torch.tensor([2, 6, 1, 5])
    pack = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, last = m(pack)
    assert torch.equal(out.batch_sizes, pack.batch_sizes)
    assert torch.equal(out.unsorted_indices, pack.unsorted_indices)
    padded, _ = pad_packed_sequence(out, batch_first=True, total_length=6)
    options = {"method": "sequential"} if cell.startswith("min") else {}
    ref_out, ref_last = cell_layers(
        BUILTIN[cell], x.numpy(), cell_numpy_layers(m, cell), bidirectional=True,
        lengths=lengths.numpy(), **options,
    )  # fmt: skip
    np.testing.assert_allclose(padded.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    for a, e in zip(last if cell == "ln_lstm" else (last,), ref_last, strict=True):
        np.testing.assert_allclose(a.detach().numpy(), e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", list(OTHERS))
def test_cells_dropout_masks_from_torchs_generator(cell):
    """Dropout between layers in train mode: the documented masks, drawn again from the
    same seed, in polyrnn's NumPy layers; eval() drops nothing."""
    p = 0.4
    m = cell_module(cell, dropout=p)
    x = torch.randn(4, 6, D, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(123)
    out, _ = m.train()(x)
    torch.manual_seed(123)
    masks = [(torch.rand((*x.shape[:-1], 2 * H), dtype=torch.float64) >= p).numpy()]
    options = {"method": "sequential"} if cell.startswith("min") else {}
    layers = cell_numpy_layers(m, cell)
    kw = {"bidirectional": True, **options}
    ref_out, _ = cell_layers(BUILTIN[cell], x.numpy(), layers, dropout=p, masks=masks, **kw)
    np.testing.assert_allclose(out.detach().numpy(), ref_out, rtol=1e-12, atol=1e-12)
    ref_eval, _ = cell_layers(BUILTIN[cell], x.numpy(), layers, **kw)
    np.testing.assert_allclose(m.eval()(x)[0].detach().numpy(), ref_eval, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", list(OTHERS))
def test_cells_parameters_names_and_init(cell):
    """The documented names, shapes and order; gains 1 and shifts 0 for the normalised
    cells, ``nn.Linear``'s bound ``1/sqrt(fan_in)`` for the linear ones, torch's
    ``1/sqrt(H)`` for the rest; ``bias=False`` drops the shifts; ``repr`` names the cell."""
    kind, _, _, cls = OTHERS[cell]
    m = getattr(pt, kind)(D, H, num_layers=L, bidirectional=True, cell=cell)
    gates = {"ln_gru": 3, "min_gru": 2, "min_lstm": 3, "ln_lstm": 4}[cell]
    names = []
    for i in range(L):
        for s in ("", "_reverse"):
            names += [f"{TORCH_NAME[f]}_l{i}{s}" for f in cls._fields]
    sd = m.state_dict()
    assert list(sd) == names
    for name, v in sd.items():
        fan_in = D if name.endswith(("l0", "l0_reverse")) else 2 * H
        if name.startswith("weight"):
            assert tuple(v.shape) == (gates * H, fan_in if "_ih_" in name else H)
        if name.startswith("ln_weight"):
            assert torch.equal(v, torch.ones_like(v)), name
        elif cell.startswith("ln") and "bias" in name:
            assert torch.equal(v, torch.zeros_like(v)), name
        else:
            bound = 1 / (fan_in if cell.startswith("min") else H) ** 0.5
            assert 0.5 * bound < float(v.abs().max()) <= bound, name
    assert not any("bias" in n for n in getattr(pt, kind)(D, H, bias=False, cell=cell).state_dict())
    assert repr(m) == f"{kind}({D}, {H}, num_layers={L}, bidirectional=True, cell={cell!r})"


def test_cells_bad_values_raise_clearly():
    with pytest.raises(
        ValueError,
        match=r"GRU: cell must be one of 'gru', 'ln_gru', 'min_gru', "
        r"'min_lstm', got 'lstm' \('lstm' is a cell of the LSTM layers, whose state is h and c",
    ):
        pt.GRU(D, H, cell="lstm")
    with pytest.raises(
        ValueError, match=r"LSTM: cell must be one of 'lstm', 'ln_lstm', got 'min_gru'"
    ):
        pt.LSTM(D, H, cell="min_gru")
    with pytest.raises(ValueError, match=r"RNN: cell must be one of 'rnn', got 'gru'"):
        pt.RNN(D, H, cell="gru")
    with pytest.raises(ValueError, match=r"cell must be one of .*, got None"):
        pt.GRU(D, H, cell=None)
    with pytest.raises(
        ValueError,
        match=r"reset_after=False \(the reset gate before the recurrent product\) is the "
        r"plain GRU's option only, got it with cell='min_gru', which has no W_h",
    ):
        pt.GRU(D, H, cell="min_gru", reset_after=False)
    with pytest.raises(ValueError, match=r"cell must be one of .*, got 'minGRU'"):
        pt.GRU(D, H, cell="minGRU", reset_after=False)  # the cell is checked first


# --------------------------------------------------------------------------- errors


BAD_CALLS = [
    ("4-D input", lambda m: m(torch.zeros(2, 3, 4, D, dtype=torch.float64))),
    ("input size", lambda m: m(torch.zeros(2, 3, D + 1, dtype=torch.float64))),
    ("dtype", lambda m: m(torch.zeros(2, 3, D, dtype=torch.float32))),
    (
        "hx shape",
        lambda m: m(torch.zeros(2, 3, D, dtype=torch.float64), hidden(m, (2 * L, 3, H))),
    ),
    (
        "hx rank",
        lambda m: m(torch.zeros(2, 3, D, dtype=torch.float64), hidden(m, (2 * L, H))),
    ),
    (
        "unbatched hx rank",
        lambda m: m(torch.zeros(3, D, dtype=torch.float64), hidden(m, (2 * L, 1, H))),
    ),
]


def hidden(m: Any, shape: tuple[int, ...]) -> Any:
    h = torch.zeros(shape, dtype=torch.float64)
    return (h, h) if isinstance(m, torch.nn.LSTM | pt.LSTM) else h


@pytest.mark.parametrize(("what", "call"), BAD_CALLS, ids=[w for w, _ in BAD_CALLS])
@pytest.mark.parametrize("kind", KINDS)
def test_bad_calls_raise_what_torch_raises(kind, what, call):
    ref, ours = pair(kind)
    with pytest.raises(Exception) as expected:  # noqa: PT011 - torch's type, whatever it is
        call(ref)
    with pytest.raises(type(expected.value)) as got:
        call(ours)
    assert kind in str(got.value)  # messages name the module


def test_errors_of_polyrnns_own():
    with pytest.raises(ValueError, match="proj_size is not supported"):
        pt.LSTM(D, H, proj_size=2)
    with pytest.raises(ValueError, match="proj_size is not supported"):
        pt.GRU(D, H, proj_size=2)
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        pt.RNN(D, H, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"dropout should be a number in range \[0, 1\]"):
        pt.GRU(D, H, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match=r"dropout=1 .* not supported"):
        pt.GRU(D, H, num_layers=2, dropout=1.0)
    with pytest.raises(TypeError, match="reset_after should be of type bool"):
        pt.GRU(D, H, reset_after="no")
    with pytest.raises(TypeError, match="input must be a torch.Tensor or a PackedSequence"):
        pt.GRU(D, H)(np.zeros((2, 3, D)))
    x = torch.zeros(2, 3, D, dtype=torch.float64)
    lstm = pt.LSTM(D, H, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"pair \(h_0, c_0\)"):
        lstm(x, torch.zeros(1, 3, H, dtype=torch.float64))
    with pytest.raises(ValueError, match="hx dtype"):
        pt.GRU(D, H, dtype=torch.float64)(x, torch.zeros(1, 3, H))


# --------------------------------------------------------------------------- imports


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout.strip()


def test_polyrnn_nn_imports_no_framework():
    code = (
        "import sys, polyrnn, polyrnn.nn; polyrnn.nn.__name__; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'jax', 'keras', 'flax'}), "
        "polyrnn.nn.torch.GRU.__module__, 'torch' in sys.modules)"
    )
    assert _python(code) == "[] polyrnn.nn.torch True"


def test_import_without_torch_names_the_extra():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "try:\n    import polyrnn.nn.torch\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = _python(code)
    assert "polyrnn.nn.torch needs PyTorch" in out
    assert 'pip install "polyrnn[torch]"' in out
