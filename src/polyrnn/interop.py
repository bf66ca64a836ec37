r"""Weight converters between polyrnn and PyTorch, Keras 3, Flax and the seed notebook.

polyrnn stores weights row-vector style, ``y = x @ w``, with the gates stacked along the
last axis in PyTorch's order:

=========== ================ ================ ====================== ==================
container   ``w_x``          ``w_h``          ``b_x``, ``b_h``       gates
=========== ================ ================ ====================== ==================
RNNParams   ``(D, H)``       ``(H, H)``       ``(H,)``               --
GRUParams   ``(D, 3H)``      ``(H, 3H)``      ``(3H,)``              ``(r, z, n)``
LSTMParams  ``(D, 4H)``      ``(H, 4H)``      ``(4H,)``              ``(i, f, g, o)``
=========== ================ ================ ====================== ==================

and the GRU update is ``h' = (1 - z) * n + z * h`` with

.. math::
    n = \tanh(x W_{xn} + b_{xn} + r \odot (h W_{hn} + b_{hn}))
    \quad\text{(reset\_after=True)}, \qquad
    n = \tanh(x W_{xn} + b_{xn} + (r \odot h) W_{hn} + b_{hn})
    \quad\text{(reset\_after=False)}.

=================================== ============================== =====================
other side                          to polyrnn                     from polyrnn
=================================== ============================== =====================
``torch.nn.GRU/LSTM/RNN``           :func:`from_torch`             :func:`to_torch`
``num_layers``, ``bidirectional``   :func:`from_torch_layers`      :func:`to_torch_layers`
Keras 3 ``GRU`` / ``GRUCell``       :func:`from_keras_gru`         :func:`to_keras_gru`
``flax.linen.GRUCell``              :func:`from_flax_gru`          :func:`to_flax_gru`
seed notebook, column vectors       :func:`from_seed_rnn`,         :func:`to_seed_rnn`,
                                    :func:`from_seed_gru`,         :func:`to_seed_gru`,
                                    :func:`from_seed_readout`      :func:`to_seed_readout`
=================================== ============================== =====================

Importing this module imports no framework: the converters recognise modules, layers
and parameter dicts by their attributes, and :func:`to_torch` imports :mod:`torch` only
when called.  Every converter maps weights exactly (transposes, reorders, negations and
bias sums), so a converted model computes the same function; the tests prove it against
each framework.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _validate, backends
from ._compat import Array, Namespace, array_namespace, device, is_array_api_obj
from .layers import check_layers
from .params import GRUParams, LSTMParams, RNNParams, resolve_namespace

__all__ = [
    "from_flax_gru",
    "from_keras_gru",
    "from_seed_gru",
    "from_seed_readout",
    "from_seed_rnn",
    "from_torch",
    "from_torch_layers",
    "to_flax_gru",
    "to_keras_gru",
    "to_seed_gru",
    "to_seed_readout",
    "to_seed_rnn",
    "to_torch",
    "to_torch_layers",
]


# --------------------------------------------------------------------------- helpers


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in a.shape)


def _to_numpy(a: Any) -> np.ndarray:
    """Any array (NumPy, JAX, PyTorch, CuPy, array-api-strict, a Keras variable) or nested
    list on the host."""
    if type(a).__module__.split(".")[0] == "keras" and hasattr(a, "value"):
        a = a.value  # a keras.Variable: its backend tensor (its own __array__ is deprecated)
    return backends.to_numpy(a) if is_array_api_obj(a) else np.asarray(a)


def _numpy_floating(fn: str, name: str, a: Any) -> np.ndarray:
    """``a`` as a NumPy array with a real floating dtype, else a TypeError naming ``name``."""
    try:
        out = _to_numpy(a)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{fn}: {name} must be an array, got {_validate._describe(a)} ({e})"
        ) from None
    if out.dtype.kind != "f":
        raise TypeError(f"{fn}: {name} must have a real floating dtype, got {out.dtype}")
    return out


def _check_params(fn: str, params: Any, classes: tuple[type, ...]) -> tuple[Any, Namespace, int]:
    """``params`` as one of ``classes`` with consistent shapes; returns it, its xp and H."""
    params, n_h = _validate.params(fn, params, classes)
    return params, array_namespace(params.w_x), n_h


def _convert(fn: str, arrays: Sequence[Any], xp: Any) -> list[Any]:
    """NumPy ``arrays`` as arrays of the namespace ``xp`` (NumPy when ``None``)."""
    xp = resolve_namespace(fn, xp)
    return [xp.asarray(np.ascontiguousarray(a)) for a in arrays]


def _swap_first_two(xp: Namespace, a: Array, n_h: int) -> Array:
    """Exchange the first two blocks of ``n_h`` along the last axis: (z, r, n) <-> (r, z, n)."""
    return xp.concat([a[..., n_h : 2 * n_h], a[..., :n_h], a[..., 2 * n_h :]], axis=-1)


# --------------------------------------------------------------------------- PyTorch

_TORCH_MODES: dict[str, type] = {
    "GRU": GRUParams,
    "LSTM": LSTMParams,
    "RNN_TANH": RNNParams,
    "RNN_RELU": RNNParams,
}


def from_torch(module: Any) -> RNNParams | GRUParams | LSTMParams:
    r"""The weights of a ``torch.nn.GRU``, ``torch.nn.LSTM`` or ``torch.nn.RNN`` as polyrnn params.

    PyTorch stores ``weight_ih_l0 (G*H, D)``, ``weight_hh_l0 (G*H, H)``, ``bias_ih_l0`` and
    ``bias_hh_l0 (G*H,)`` for ``y = W x`` (column vectors), with the gates in the same
    order as polyrnn, so the mapping is a transpose:

    .. math::
        w_x = W_{ih}^\top, \quad w_h = W_{hh}^\top, \quad b_x = b_{ih}, \quad b_h = b_{hh}.

    ``torch.nn.GRU`` is a ``reset_after=True`` GRU: run it with
    ``polyrnn.gru_scan(xs, params, reset_after=True)``.  An RNN's nonlinearity is
    ``module.nonlinearity``; pass it as ``rnn_scan(..., activation=module.nonlinearity)``.

    Parameters
    ----------
    module : torch.nn.GRU, torch.nn.LSTM or torch.nn.RNN
        Single-layer, unidirectional, without ``proj_size``.  ``batch_first`` does not
        change the weights.

    Returns
    -------
    GRUParams, LSTMParams or RNNParams
        Torch tensors on the module's device and dtype.  They are views of the module's
        parameters and stay connected to autograd (nothing is detached or copied), so a
        loss computed by polyrnn back-propagates into ``module``'s ``.grad``.  A module
        built with ``bias=False`` gives zero biases (new tensors, not parameters).

    Raises
    ------
    TypeError
        ``module`` is not one of the three recurrent modules.
    ValueError
        ``num_layers > 1``, ``bidirectional=True`` or ``proj_size > 0``.

    Examples
    --------
    >>> import pytest
    >>> torch = pytest.importorskip("torch")  # this example needs PyTorch
    >>> m = torch.nn.GRU(3, 2)
    >>> p = polyrnn.interop.from_torch(m)
    >>> p.w_x.shape, p.w_h.shape, p.b_h.shape
    (torch.Size([3, 6]), torch.Size([2, 6]), torch.Size([6]))
    >>> xs = torch.randn(5, 3)
    >>> hs, _ = polyrnn.gru_scan(xs, p, reset_after=True)
    >>> bool(torch.allclose(hs, m(xs)[0], atol=1e-6))
    True
    """
    fn = "from_torch"
    name = _torch_module_check(fn, module)
    if module.num_layers != 1:
        raise ValueError(
            f"{fn}: module must have num_layers=1, got {name} with num_layers="
            f"{module.num_layers}; use from_torch_layers for a stack"
        )
    if module.bidirectional:
        raise ValueError(
            f"{fn}: module must be unidirectional, got {name} with bidirectional=True; "
            "use from_torch_layers"
        )
    return _torch_layer(module, "l0")


def _torch_module_check(fn: str, module: Any) -> str:
    """``module`` is a ``torch.nn.RNN``, ``GRU`` or ``LSTM`` without projections; its class name."""
    mode = getattr(module, "mode", None)
    if mode not in _TORCH_MODES or not hasattr(module, "weight_ih_l0"):
        raise TypeError(
            f"{fn}: module must be a torch.nn.GRU, torch.nn.LSTM or torch.nn.RNN, "
            f"got {_validate._describe(module)}"
        )
    name = type(module).__name__
    if getattr(module, "proj_size", 0):
        raise ValueError(
            f"{fn}: module must have proj_size=0 (polyrnn's LSTM has no projection), got "
            f"{name} with proj_size={module.proj_size}"
        )
    return name


def _torch_layer(module: Any, suffix: str) -> RNNParams | GRUParams | LSTMParams:
    """The params of one layer and direction of a torch module: ``suffix`` is ``"l0"``,
    ``"l1_reverse"``, ..., as in its parameter names."""
    w_ih, w_hh = getattr(module, f"weight_ih_{suffix}"), getattr(module, f"weight_hh_{suffix}")
    if module.bias:
        b_ih, b_hh = getattr(module, f"bias_ih_{suffix}"), getattr(module, f"bias_hh_{suffix}")
    else:
        b_ih = w_ih.new_zeros(w_ih.shape[0])
        b_hh = w_ih.new_zeros(w_ih.shape[0])
    return _TORCH_MODES[module.mode](w_ih.T, w_hh.T, b_ih, b_hh)  # type: ignore[no-any-return]


def from_torch_layers(module: Any) -> list[Any]:
    r"""The weights of a multi-layer (or bidirectional) ``torch.nn.GRU``, ``LSTM`` or ``RNN``.

    Each layer and direction is converted as :func:`from_torch` converts the single layer
    (``weight_ih_l{k}`` and ``weight_ih_l{k}_reverse``, transposed): the ``layers``
    argument of :func:`polyrnn.gru_layers` (and :func:`~polyrnn.lstm_layers`,
    :func:`~polyrnn.rnn_layers`), which then computes what the module computes with
    ``bidirectional=module.bidirectional`` (and ``reset_after=True`` for a GRU,
    ``activation=module.nonlinearity`` for an RNN).

    Parameters
    ----------
    module : torch.nn.GRU, torch.nn.LSTM or torch.nn.RNN
        Any ``num_layers``, either direction, without ``proj_size``.  Its ``dropout`` is
        not a weight: pass it to the layers function.

    Returns
    -------
    list
        ``num_layers`` params (GRUParams, LSTMParams or RNNParams), or with
        ``bidirectional`` ``num_layers`` pairs ``(forward, backward)``: views of the
        module's parameters, connected to autograd, as :func:`from_torch` returns.

    Raises
    ------
    TypeError
        ``module`` is not one of the three recurrent modules.
    ValueError
        ``proj_size > 0``.

    Examples
    --------
    >>> import pytest
    >>> torch = pytest.importorskip("torch")  # this example needs PyTorch
    >>> m = torch.nn.GRU(3, 2, num_layers=2, bidirectional=True, batch_first=True)
    >>> layers = polyrnn.interop.from_torch_layers(m)
    >>> len(layers), layers[1][0].w_x.shape  # layer 1 reads both directions: 2H = 4
    (2, torch.Size([4, 6]))
    >>> xs = torch.randn(5, 7, 3)
    >>> hs, h_n = polyrnn.gru_layers(xs, layers, bidirectional=True, reset_after=True)
    >>> ref, ref_h_n = m(xs)
    >>> bool(torch.allclose(hs, ref, atol=1e-6)), bool(torch.allclose(h_n, ref_h_n, atol=1e-6))
    (True, True)
    """
    _torch_module_check("from_torch_layers", module)
    if module.bidirectional:
        return [
            (_torch_layer(module, f"l{k}"), _torch_layer(module, f"l{k}_reverse"))
            for k in range(module.num_layers)
        ]
    return [_torch_layer(module, f"l{k}") for k in range(module.num_layers)]


def to_torch(
    params: RNNParams | GRUParams | LSTMParams,
    *,
    nonlinearity: str = "tanh",
    batch_first: bool = False,
) -> Any:
    r"""A new ``torch.nn.RNN``, ``torch.nn.GRU`` or ``torch.nn.LSTM`` holding ``params``.

    The inverse of :func:`from_torch`: ``weight_ih_l0 = w_x^T``, ``weight_hh_l0 = w_h^T``,
    ``bias_ih_l0 = b_x``, ``bias_hh_l0 = b_h``.  The module computes what
    ``rnn_scan(..., activation=nonlinearity)``, ``gru_scan(..., reset_after=True)`` and
    ``lstm_scan`` compute with ``params``.

    Parameters
    ----------
    params : RNNParams, GRUParams or LSTMParams
        Arrays of any library (they are copied through the host); the type chooses
        the module.
    nonlinearity : {"tanh", "relu"}
        Of a ``torch.nn.RNN``; GRU and LSTM accept only the default.
    batch_first : bool
        Passed to the module.

    Returns
    -------
    torch.nn.Module
        Single-layer, unidirectional, with biases, of ``params``' dtype; on the device of
        ``params`` when they are torch tensors, else on the CPU.  Its parameters are new
        tensors: changing them does not change ``params``.

    Raises
    ------
    TypeError
        ``params`` is not one of the three containers, or its arrays are not floating.
    ValueError
        Inconsistent shapes, or an unknown ``nonlinearity``.

    Examples
    --------
    >>> import pytest
    >>> torch = pytest.importorskip("torch")  # this example needs PyTorch
    >>> m = polyrnn.interop.to_torch(polyrnn.init_lstm(3, 2), batch_first=True)
    >>> m
    LSTM(3, 2, batch_first=True)
    >>> m.weight_hh_l0.dtype
    torch.float64
    """
    _validate.flags("to_torch", batch_first=batch_first)
    import torch

    fn = "to_torch"
    params, _, n_h = _check_params(fn, params, (RNNParams, GRUParams, LSTMParams))
    cls, kwargs = _torch_class(torch, fn, type(params), nonlinearity)
    host = _torch_host(torch, fn, params, "params")
    dev = params.w_x.device if isinstance(params.w_x, torch.Tensor) else torch.device("cpu")
    module: Any = cls(
        host[0].shape[0],
        n_h,
        num_layers=1,
        bias=True,
        batch_first=batch_first,
        device=dev,
        dtype=host[0].dtype,
        **kwargs,
    )
    _torch_fill(torch, module, "l0", host)
    return module


def _torch_class(torch: Any, fn: str, kind: type, nonlinearity: str) -> tuple[Any, dict[str, Any]]:
    """The torch module class of params ``kind``, and its ``nonlinearity`` keyword."""
    if kind is RNNParams:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"{fn}: nonlinearity must be 'tanh' or 'relu' (torch.nn.RNN), got {nonlinearity!r}"
            )
        return torch.nn.RNN, {"nonlinearity": nonlinearity}
    if nonlinearity != "tanh":
        raise ValueError(
            f"{fn}: nonlinearity applies to RNNParams only, got {nonlinearity!r} with "
            f"{kind.__name__}"
        )
    return (torch.nn.GRU if kind is GRUParams else torch.nn.LSTM), {}


def _torch_host(torch: Any, fn: str, params: Any, name: str) -> list[Any]:
    """The four arrays of ``params`` as torch tensors (named ``name.w_x`` ... in errors)."""
    return [_torch_tensor(torch, fn, f"{name}.{f}", a) for f, a in params._asdict().items()]


def _torch_fill(torch: Any, module: Any, suffix: str, host: list[Any]) -> None:
    """Copy one layer and direction's tensors into ``module`` (``suffix`` as ``"l0"``)."""
    with torch.no_grad():
        getattr(module, f"weight_ih_{suffix}").copy_(host[0].T)
        getattr(module, f"weight_hh_{suffix}").copy_(host[1].T)
        getattr(module, f"bias_ih_{suffix}").copy_(host[2])
        getattr(module, f"bias_hh_{suffix}").copy_(host[3])


def to_torch_layers(
    layers: Sequence[Any],
    *,
    bidirectional: bool = False,
    nonlinearity: str = "tanh",
    batch_first: bool = False,
    dropout: float = 0.0,
) -> Any:
    r"""A new multi-layer ``torch.nn.RNN``, ``torch.nn.GRU`` or ``torch.nn.LSTM`` holding ``layers``.

    The inverse of :func:`from_torch_layers`; each layer and direction is copied as
    :func:`to_torch` copies its single layer.  The module computes what
    :func:`polyrnn.gru_layers` (``reset_after=True``), :func:`~polyrnn.lstm_layers` and
    :func:`~polyrnn.rnn_layers` (``activation=nonlinearity``) compute with ``layers``.

    Parameters
    ----------
    layers : list of RNNParams, GRUParams or LSTMParams
        ``num_layers`` params of one class, or ``(forward, backward)`` pairs with
        ``bidirectional``, chained as :func:`polyrnn.gru_layers` requires; arrays of any
        library (copied through the host).
    bidirectional : bool
        Whether ``layers`` holds pairs; passed to the module.
    nonlinearity : {"tanh", "relu"}
        Of a ``torch.nn.RNN``; GRU and LSTM accept only the default.
    batch_first : bool
        Passed to the module.
    dropout : float
        Passed to the module (torch's own dropout between layers, drawn by torch's
        generator in training mode).

    Returns
    -------
    torch.nn.Module
        With ``num_layers = len(layers)``, biases, and ``layers``' dtype; on the device of
        the arrays when they are torch tensors, else on the CPU.  Its parameters are new
        tensors.

    Raises
    ------
    TypeError, ValueError
        As :func:`polyrnn.gru_layers` for the list of layers, and as :func:`to_torch`.

    Examples
    --------
    >>> import pytest
    >>> torch = pytest.importorskip("torch")  # this example needs PyTorch
    >>> layers = [polyrnn.init_lstm(3, 2, seed=0), polyrnn.init_lstm(2, 2, seed=1)]
    >>> polyrnn.interop.to_torch_layers(layers, batch_first=True)
    LSTM(3, 2, num_layers=2, batch_first=True)
    """
    fn = "to_torch_layers"
    _validate.flags(fn, bidirectional=bidirectional, batch_first=batch_first)
    import torch

    entries, kind, n_h, n_in, _ = check_layers(
        fn, layers, (RNNParams, GRUParams, LSTMParams), bidirectional
    )
    cls, kwargs = _torch_class(torch, fn, kind, nonlinearity)
    first = entries[0][0]
    dev = first.w_x.device if isinstance(first.w_x, torch.Tensor) else torch.device("cpu")
    hosts = [
        [
            _torch_host(torch, fn, p, f"layers[{k}]" + (f"[{d}]" if bidirectional else ""))
            for d, p in enumerate(entry)
        ]
        for k, entry in enumerate(entries)
    ]
    module: Any = cls(
        n_in,
        n_h,
        num_layers=len(entries),
        bias=True,
        batch_first=batch_first,
        dropout=dropout,
        bidirectional=bidirectional,
        device=dev,
        dtype=hosts[0][0][0].dtype,
        **kwargs,
    )
    for k, per_direction in enumerate(hosts):
        for d, host in enumerate(per_direction):
            _torch_fill(torch, module, f"l{k}" + ("_reverse" if d else ""), host)
    return module


def _torch_tensor(torch: Any, fn: str, name: str, a: Any) -> Any:
    """``a`` as a torch tensor: a tensor as it is (any dtype, bfloat16 included), any
    other array through the host."""
    if isinstance(a, torch.Tensor):
        return a.detach()
    host = np.ascontiguousarray(_to_numpy(a))
    try:
        return torch.from_numpy(host)
    except TypeError:
        raise TypeError(
            f"{fn}: {name} has dtype {host.dtype}, which torch cannot take from NumPy; "
            "cast the params to float32 or float64 first"
        ) from None


# --------------------------------------------------------------------------- Keras 3

_KERAS_ACTIVATIONS = {"activation": "tanh", "recurrent_activation": "sigmoid"}


def _keras_weights(fn: str, source: Any) -> tuple[list[np.ndarray], bool | None]:
    """The weight list of a Keras GRU layer or cell, or a given list; and its ``reset_after``."""
    layer_reset_after = None
    if hasattr(source, "get_weights"):
        for attr, expected in _KERAS_ACTIVATIONS.items():
            act = getattr(source, attr, None)
            got = getattr(act, "__name__", expected)
            if act is not None and got != expected:
                raise ValueError(
                    f"{fn}: the layer's {attr} must be {expected!r} (polyrnn's GRU), got {got!r}"
                )
        layer_reset_after = getattr(source, "reset_after", None)
        if layer_reset_after is None and hasattr(source, "cell"):
            layer_reset_after = getattr(source.cell, "reset_after", None)
        # ``layer.weights`` is what ``get_weights()`` reads, without its NumPy-2 warning.
        weights = list(getattr(source, "weights", None) or source.get_weights())
        if not weights:
            raise ValueError(f"{fn}: the layer has no weights yet; build it (call it once) first")
    elif isinstance(source, Sequence) and not isinstance(source, str):
        weights = list(source)
    else:
        raise TypeError(
            f"{fn}: weights_or_layer must be a Keras GRU layer or cell, or its list of weights "
            f"[kernel, recurrent_kernel(, bias)], got {_validate._describe(source)}"
        )
    if len(weights) not in (2, 3):
        raise ValueError(
            f"{fn}: expected the weights [kernel, recurrent_kernel, bias] of one Keras GRU "
            f"(or [kernel, recurrent_kernel] with use_bias=False), got {len(weights)} arrays"
        )
    names = ("kernel", "recurrent_kernel", "bias")
    arrays = [_numpy_floating(fn, n, w) for n, w in zip(names, weights, strict=False)]
    return arrays, None if layer_reset_after is None else bool(layer_reset_after)


def from_keras_gru(
    weights_or_layer: Any, *, reset_after: bool | None = None, xp: Any = None
) -> GRUParams:
    r"""A Keras 3 GRU's weights as :class:`~polyrnn.GRUParams`.

    Keras stacks the gates as ``(z, r, h)`` and stores ``[kernel (D, 3H),
    recurrent_kernel (H, 3H), bias]`` for ``y = x @ W`` (row vectors, like polyrnn);
    ``bias`` is ``(2, 3H)`` = ``[input bias; recurrent bias]`` with ``reset_after=True``
    (the default), ``(3H,)`` (input bias only) with ``reset_after=False``, and absent with
    ``use_bias=False``.  Keras 3 computes (``keras/src/layers/rnn/gru.py``)

    .. math::
        z &= \sigma(x K_z + b^{in}_z + h R_z + b^{rec}_z), \qquad
        r = \sigma(x K_r + b^{in}_r + h R_r + b^{rec}_r) \\
        \tilde h &= \tanh(x K_h + b^{in}_h + r \odot (h R_h + b^{rec}_h))
            \quad\text{(reset\_after=True)} \\
        \tilde h &= \tanh(x K_h + b^{in}_h + (r \odot h) R_h)
            \quad\text{(reset\_after=False, no recurrent bias)} \\
        h' &= z \odot h + (1 - z) \odot \tilde h

    which is polyrnn's GRU with the same ``reset_after``, once the first two gate blocks
    are exchanged: ``w_x = K[:, (r, z, h)]``, ``w_h = R[:, (r, z, h)]``, ``b_x = b^{in}``
    and ``b_h = b^{rec}`` reordered the same way; ``b_h = 0`` when Keras has no recurrent
    bias.

    Parameters
    ----------
    weights_or_layer : keras.layers.GRU, keras.layers.GRUCell or list of arrays
        A built layer (its ``get_weights()`` is read, and its ``reset_after``,
        ``activation="tanh"`` and ``recurrent_activation="sigmoid"`` are checked) or the
        list ``[kernel, recurrent_kernel(, bias)]`` itself.
    reset_after : bool, optional
        The layer's convention.  Read from the layer or from the bias's shape when
        ``None``; when given it must agree with them.  Without biases it does not change
        the weights, but the returned params must still be run with the layer's
        ``reset_after``: ``gru_scan(xs, params, reset_after=...)``.
    xp : namespace, optional
        Library of the result (:mod:`numpy` when ``None``, :mod:`torch`, :mod:`jax.numpy`...).

    Returns
    -------
    GRUParams
        ``w_x (D, 3H)``, ``w_h (H, 3H)``, ``b_x (3H,)``, ``b_h (3H,)``, of the weights' dtype.

    Raises
    ------
    TypeError
        Not a layer nor a list of floating arrays.
    ValueError
        Wrong number of arrays, inconsistent shapes, a ``reset_after`` that contradicts
        the layer or the bias shape, or activations polyrnn does not have.

    Examples
    --------
    The Keras weights of a GRU with D=1, H=1, gates ``(z, r, h)``:

    >>> kernel = np.array([[1.0, 2.0, 3.0]])
    >>> recurrent = np.array([[4.0, 5.0, 6.0]])
    >>> bias = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    >>> p = polyrnn.interop.from_keras_gru([kernel, recurrent, bias])
    >>> p.w_x, p.w_h
    (array([[2., 1., 3.]]), array([[5., 4., 6.]]))
    >>> p.b_x, p.b_h
    (array([0.2, 0.1, 0.3]), array([0.5, 0.4, 0.6]))
    """
    fn = "from_keras_gru"
    if reset_after is not None:
        _validate.flags(fn, reset_after=reset_after)
    arrays, layer_reset_after = _keras_weights(fn, weights_or_layer)
    if reset_after is not None and layer_reset_after not in (None, bool(reset_after)):
        raise ValueError(
            f"{fn}: reset_after={reset_after} contradicts the layer's "
            f"reset_after={layer_reset_after}"
        )
    expected = layer_reset_after if reset_after is None else bool(reset_after)
    kernel, recurrent = arrays[0], arrays[1]
    if recurrent.ndim != 2 or recurrent.shape[1] != 3 * recurrent.shape[0]:
        raise ValueError(f"{fn}: recurrent_kernel must have shape (H, 3*H), got {recurrent.shape}")
    n_h = recurrent.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != 3 * n_h:
        raise ValueError(
            f"{fn}: kernel must have shape (D, {3 * n_h}) (H={n_h}), got {kernel.shape}"
        )
    dtype = np.result_type(*arrays)
    if len(arrays) == 3:
        bias = arrays[2]
        if bias.shape == (2, 3 * n_h):
            found = True
        elif bias.shape == (3 * n_h,):
            found = False
        else:
            raise ValueError(
                f"{fn}: bias must have shape (2, {3 * n_h}) (reset_after=True) or "
                f"({3 * n_h},) (reset_after=False) (H={n_h}), got {bias.shape}"
            )
        if expected is not None and expected != found:
            raise ValueError(
                f"{fn}: a bias of shape {bias.shape} belongs to a GRU with "
                f"reset_after={found}, but reset_after={expected} was asked for"
            )
        b_in, b_rec = (bias[0], bias[1]) if found else (bias, np.zeros_like(bias))
    else:
        b_in = b_rec = np.zeros(3 * n_h, dtype=dtype)
    host = [kernel, recurrent, b_in, b_rec]
    host = [_swap_first_two(np, a, n_h).astype(dtype, copy=False) for a in host]
    return GRUParams(*_convert(fn, host, xp))


def to_keras_gru(params: GRUParams, *, reset_after: bool) -> list[np.ndarray]:
    r"""``params`` as the weight list of a Keras 3 GRU, for ``layer.set_weights``.

    The inverse of :func:`from_keras_gru`: the gate blocks are reordered from
    ``(r, z, n)`` to Keras's ``(z, r, h)`` and

    * ``reset_after=True``: ``bias = [b_x; b_h]``, shape ``(2, 3H)``;
    * ``reset_after=False``: ``bias = b_x + b_h``, shape ``(3H,)``.  Keras has no recurrent
      bias in this convention, and needs none: in polyrnn's ``reset_after=False`` GRU every
      part of ``b_h`` is added next to the matching part of ``b_x``,

      .. math::
          r = \sigma(x W_{xr} + h W_{hr} + (b_{xr} + b_{hr})), \quad
          z = \dots, \quad
          n = \tanh(x W_{xn} + (r \odot h) W_{hn} + (b_{xn} + b_{hn})),

      since ``b_hn`` sits outside the product with ``r * h``.  (With ``reset_after=True``
      ``b_hn`` is multiplied by ``r`` and cannot be folded.)

    Parameters
    ----------
    params : GRUParams
        Arrays of any library.
    reset_after : bool
        The Keras layer's ``reset_after``; the layer computes
        ``gru_scan(xs, params, reset_after=reset_after)``.

    Returns
    -------
    list of numpy.ndarray
        ``[kernel (D, 3H), recurrent_kernel (H, 3H), bias]`` of ``params``' dtype.  For a
        layer built with ``use_bias=False`` pass the first two (the biases must be zero).

    Raises
    ------
    TypeError, ValueError
        ``params`` is not a consistent :class:`~polyrnn.GRUParams`.

    Examples
    --------
    >>> p = polyrnn.GRUParams(np.array([[2.0, 1.0, 3.0]]), np.array([[5.0, 4.0, 6.0]]),
    ...                       np.array([0.2, 0.1, 0.3]), np.array([0.5, 0.4, 0.6]))
    >>> kernel, recurrent, bias = polyrnn.interop.to_keras_gru(p, reset_after=False)
    >>> kernel, bias
    (array([[1., 2., 3.]]), array([0.5, 0.7, 0.9]))
    """
    _validate.flags("to_keras_gru", reset_after=reset_after)
    fn = "to_keras_gru"
    if not isinstance(reset_after, bool | np.bool_):
        raise TypeError(f"{fn}: reset_after must be True or False, got {reset_after!r}")
    params, _, n_h = _check_params(fn, params, (GRUParams,))
    w_x, w_h, b_x, b_h = (_swap_first_two(np, _to_numpy(a), n_h) for a in params)
    bias = np.stack([b_x, b_h]) if reset_after else b_x + b_h
    return [np.ascontiguousarray(a) for a in (w_x, w_h, bias)]


# --------------------------------------------------------------------------- Flax

_FLAX_GATES = ("r", "z", "n")


def from_flax_gru(params: Mapping[str, Any], *, xp: Any = None) -> GRUParams:
    r"""The parameters of a ``flax.linen.GRUCell`` as :class:`~polyrnn.GRUParams`.

    Flax's GRUCell holds one ``Dense`` per gate and side, ``{"ir", "iz", "in"}`` with a
    ``kernel (D, H)`` and a ``bias (H,)``, ``{"hr", "hz"}`` with a ``kernel (H, H)`` only,
    and ``"hn"`` with a ``kernel (H, H)`` and a ``bias (H,)``, and computes
    (``flax/linen/recurrent.py``)

    .. math::
        r &= \sigma(x W_{ir} + b_{ir} + h W_{hr}), \quad
        z = \sigma(x W_{iz} + b_{iz} + h W_{hz}) \\
        n &= \tanh(x W_{in} + b_{in} + r \odot (h W_{hn} + b_{hn})), \quad
        h' = (1 - z) \odot n + z \odot h

    which is polyrnn's ``reset_after=True`` GRU with ``w_x = [W_ir | W_iz | W_in]``,
    ``w_h = [W_hr | W_hz | W_hn]``, ``b_x = [b_ir | b_iz | b_in]`` and
    ``b_h = [0 | 0 | b_hn]``.

    Parameters
    ----------
    params : dict
        The cell's variables ``{"params": {...}}`` (as returned by ``cell.init``) or the
        inner ``{"ir": {...}, ...}`` dict.
    xp : namespace, optional
        Library of the result.  By default the library of the leaves (JAX arrays stay
        JAX arrays, without leaving their device).

    Returns
    -------
    GRUParams
        To be run with ``gru_scan(xs, params, reset_after=True)``.

    Raises
    ------
    TypeError, ValueError
        A missing entry, a non-floating leaf or inconsistent shapes, named by path.

    Examples
    --------
    >>> H, D = 2, 3
    >>> flax_params = {g: {"kernel": np.ones((D, H)), "bias": np.zeros(H)} for g in ("ir", "iz", "in")}
    >>> flax_params |= {g: {"kernel": np.eye(H)} for g in ("hr", "hz")}
    >>> flax_params["hn"] = {"kernel": np.eye(H), "bias": np.full(H, 0.5)}
    >>> p = polyrnn.interop.from_flax_gru({"params": flax_params})
    >>> p.w_x.shape, p.w_h.shape, p.b_h
    ((3, 6), (2, 6), array([0. , 0. , 0. , 0. , 0.5, 0.5]))
    """
    fn = "from_flax_gru"
    if not isinstance(params, Mapping):
        raise TypeError(
            f"{fn}: params must be the dict of a flax GRUCell, got {_validate._describe(params)}"
        )
    if "params" in params and "ir" not in params:
        params = params["params"]
        prefix = "params['params']"
        if not isinstance(params, Mapping):
            raise TypeError(f"{fn}: {prefix} must be a dict, got {_validate._describe(params)}")
    else:
        prefix = "params"
    wanted: dict[str, tuple[str, ...]] = {f"i{g}": ("kernel", "bias") for g in _FLAX_GATES}
    wanted |= {"hr": ("kernel",), "hz": ("kernel",), "hn": ("kernel", "bias")}
    leaves: dict[str, Any] = {}
    for module, names in wanted.items():
        sub = params.get(module)
        if sub is None:
            raise ValueError(
                f"{fn}: {prefix} must hold the GRUCell entries {sorted(wanted)}, "
                f"but {module!r} is missing (found {sorted(params)})"
            )
        if not isinstance(sub, Mapping):
            raise TypeError(
                f"{fn}: {prefix}[{module!r}] must be a dict, got {_validate._describe(sub)}"
            )
        for name in names:
            if name not in sub:
                raise ValueError(
                    f"{fn}: {prefix}[{module!r}] must hold {name!r}, found {sorted(sub)}"
                )
            leaves[f"{prefix}[{module!r}][{name!r}]"] = sub[name]
        extra = set(sub) - set(names)
        if extra:
            raise ValueError(
                f"{fn}: {prefix}[{module!r}] has unexpected entries {sorted(extra)}; "
                f"a flax GRUCell has only {list(names)}"
            )
    ns = _validate.namespace(fn, leaves)
    first = next(iter(leaves.items()))
    dtype = first[1].dtype
    for name, a in leaves.items():
        _validate.floating(fn, name, a, ns, first[1].dtype, first[0])
    p = params
    hn = _shape(p["hn"]["kernel"])
    if len(hn) != 2 or hn[0] != hn[1]:
        raise ValueError(f"{fn}: {prefix}['hn']['kernel'] must have shape (H, H), got {hn}")
    n_h = hn[0]
    d_in = _shape(p["ir"]["kernel"])
    if len(d_in) != 2:
        raise ValueError(f"{fn}: {prefix}['ir']['kernel'] must have shape (D, H), got {d_in}")
    for name, a in leaves.items():
        if "bias" in name:
            expected: tuple[int, ...] = (n_h,)
        elif "['i" in name:
            expected = (d_in[0], n_h)
        else:
            expected = (n_h, n_h)
        _validate.shape(fn, name, a, expected, f"D={d_in[0]}, H={n_h}")
    w_x = ns.concat([p[f"i{g}"]["kernel"] for g in _FLAX_GATES], axis=1)
    w_h = ns.concat([p[f"h{g}"]["kernel"] for g in _FLAX_GATES], axis=1)
    b_x = ns.concat([p[f"i{g}"]["bias"] for g in _FLAX_GATES], axis=0)
    b_hn = p["hn"]["bias"]
    zeros = ns.zeros((2 * n_h,), dtype=dtype, device=device(b_hn))
    b_h = ns.concat([zeros, b_hn], axis=0)
    out = (w_x, w_h, b_x, b_h)
    if xp is None:
        return GRUParams(*out)
    return GRUParams(*_convert(fn, [_to_numpy(a) for a in out], xp))


def to_flax_gru(params: GRUParams, *, xp: Any = None) -> dict[str, dict[str, dict[str, Any]]]:
    r"""``params`` as the variables of a ``flax.linen.GRUCell``.

    The inverse of :func:`from_flax_gru`, for a ``reset_after=True`` GRU.  Flax has no
    recurrent bias for ``r`` and ``z``; it needs none, since ``b_hr`` and ``b_hz`` are
    added next to ``b_xr`` and ``b_xz``:

    .. math::
        b_{ir} = b_{xr} + b_{hr}, \quad b_{iz} = b_{xz} + b_{hz}, \quad
        b_{in} = b_{xn}, \quad b_{hn} = b_{hn}.

    (``b_hn`` stays apart: it is multiplied by ``r``.)

    Parameters
    ----------
    params : GRUParams
        ``w_x (D, 3H)``, ``w_h (H, 3H)``, ``b_x``, ``b_h (3H,)``.
    xp : namespace, optional
        Library of the leaves (e.g. :mod:`jax.numpy`); that of ``params`` by default.

    Returns
    -------
    dict
        ``{"params": {"ir": {"kernel", "bias"}, "iz": ..., "in": ..., "hr": {"kernel"},
        "hz": ..., "hn": {"kernel", "bias"}}}``, ready for
        ``flax.linen.GRUCell(features=H).apply(variables, h, x)``.  Its result equals
        ``gru_cell(params, h, x, reset_after=True)``.

    Raises
    ------
    TypeError, ValueError
        ``params`` is not a consistent :class:`~polyrnn.GRUParams`.

    Examples
    --------
    >>> v = polyrnn.interop.to_flax_gru(polyrnn.init_gru(3, 2))
    >>> sorted(v["params"]), v["params"]["ir"]["kernel"].shape, v["params"]["hn"]["bias"].shape
    (['hn', 'hr', 'hz', 'in', 'ir', 'iz'], (3, 2), (2,))
    """
    fn = "to_flax_gru"
    params, _, n_h = _check_params(fn, params, (GRUParams,))
    w_x, w_h, b_x, b_h = params
    if xp is not None:
        w_x, w_h, b_x, b_h = _convert(fn, [_to_numpy(a) for a in params], xp)
    out: dict[str, dict[str, Any]] = {}
    for k, g in enumerate(_FLAX_GATES):
        cols = slice(k * n_h, (k + 1) * n_h)
        b_in = b_x[cols] if g == "n" else b_x[cols] + b_h[cols]
        out[f"i{g}"] = {"kernel": w_x[:, cols], "bias": b_in}
        out[f"h{g}"] = {"kernel": w_h[:, cols]}
    out["hn"]["bias"] = b_h[2 * n_h :]
    return {"params": out}


# --------------------------------------------------------------------------- seed notebook


def _seed_bias(fn: str, name: str, b: Any, n_h: int) -> Array:
    """A seed bias ``(H, 1)`` (or ``(H,)``) as a vector ``(H,)``."""
    shape = _shape(b)
    if shape == (n_h, 1):
        return b[:, 0]
    if shape == (n_h,):
        return b
    raise ValueError(f"{fn}: {name} must have shape ({n_h}, 1) (H={n_h}), got {shape}")


def _seed_inputs(fn: str, arrays: dict[str, Any]) -> tuple[Namespace, int, int]:
    """Namespace, H and D of seed matrices ``(H, H + D)`` and biases ``(H, 1)``."""
    xp = _validate.namespace(fn, arrays)
    name, w = next(iter(arrays.items()))
    for other, a in arrays.items():
        _validate.floating(fn, other, a, xp, w.dtype, name)
    shape = _shape(w)
    if len(shape) != 2 or shape[1] <= shape[0]:
        raise ValueError(
            f"{fn}: {name} must have shape (H, H + D) with D >= 1, acting on the stacked "
            f"column [h; x], got {shape}"
        )
    n_h, d_in = shape[0], shape[1] - shape[0]
    for other, a in arrays.items():
        if other.startswith("w_"):
            _validate.shape(fn, other, a, shape, f"H={n_h}, D={d_in}, like {name}")
    return xp, n_h, d_in


def from_seed_rnn(w_h: Array, b_h: Array) -> RNNParams:
    r"""The seed notebook's vanilla RNN weights as :class:`~polyrnn.RNNParams`.

    The notebook stacks column vectors, ``h_t = g(W_h [h_{t-1}; x_t] + b_h)`` with
    ``W_h (H, H + D)`` and ``b_h (H, 1)``.  Splitting the stack,

    .. math::
        W_h \begin{bmatrix} h \\ x \end{bmatrix} = W_h[:, :H]\, h + W_h[:, H:]\, x,

    so in polyrnn's row-vector form ``w_h = W_h[:, :H]^\top``, ``w_x = W_h[:, H:]^\top``,
    ``b_x = b_h[:, 0]`` and ``b_h = 0``.  The notebook's ``g`` is the sigmoid:
    ``rnn_scan(xs, params, activation="sigmoid")``.

    Parameters
    ----------
    w_h : array, shape ``(H, H + D)``
    b_h : array, shape ``(H, 1)`` (or ``(H,)``)

    Returns
    -------
    RNNParams
        Arrays of the library, dtype and device of the inputs.

    Raises
    ------
    TypeError, ValueError
        Non-floating or mixed arrays, or shapes that do not fit.

    Examples
    --------
    >>> p = polyrnn.interop.from_seed_rnn(np.arange(10.0).reshape(2, 5), np.ones((2, 1)))
    >>> p.w_h
    array([[0., 5.],
           [1., 6.]])
    >>> p.w_x.shape, p.b_x, p.b_h
    ((3, 2), array([1., 1.]), array([0., 0.]))
    """
    fn = "from_seed_rnn"
    xp, n_h, _ = _seed_inputs(fn, {"w_h": w_h, "b_h": b_h})
    b = _seed_bias(fn, "b_h", b_h, n_h)
    return RNNParams(w_h[:, n_h:].T, w_h[:, :n_h].T, b, xp.zeros_like(b))


def to_seed_rnn(params: RNNParams) -> tuple[Array, Array]:
    r""":class:`~polyrnn.RNNParams` as the seed notebook's ``(w_h, b_h)``.

    The inverse of :func:`from_seed_rnn`: ``W_h = [w_h^\top | w_x^\top]``, ``(H, H + D)``,
    and ``b_h = (b_x + b_h)`` as a column ``(H, 1)``.

    Parameters
    ----------
    params : RNNParams

    Returns
    -------
    (w_h, b_h) : arrays of shapes ``(H, H + D)`` and ``(H, 1)``
        Of the library, dtype and device of ``params``.

    Raises
    ------
    TypeError, ValueError
        ``params`` is not a consistent :class:`~polyrnn.RNNParams`.

    Examples
    --------
    >>> w, b = polyrnn.interop.to_seed_rnn(polyrnn.init_rnn(3, 2))
    >>> w.shape, b.shape
    ((2, 5), (2, 1))
    """
    params, xp, _ = _check_params("to_seed_rnn", params, (RNNParams,))
    w = xp.concat([params.w_h.T, params.w_x.T], axis=1)
    return w, xp.expand_dims(params.b_x + params.b_h, axis=1)


def from_seed_gru(
    w_r: Array, w_u: Array, w_h: Array, b_r: Array, b_u: Array, b_h: Array
) -> GRUParams:
    r"""The seed notebook's GRU weights as :class:`~polyrnn.GRUParams` (``reset_after=False``).

    The notebook computes, with column vectors and ``W_* (H, H + D)``, ``b_* (H, 1)``,

    .. math::
        \Gamma_r &= \sigma(W_r [h; x] + b_r), \qquad
        \Gamma_u = \sigma(W_u [h; x] + b_u) \\
        c &= \tanh(W_h [\Gamma_r \odot h; x] + b_h), \qquad
        h' = \Gamma_u \odot c + (1 - \Gamma_u) \odot h.

    polyrnn writes ``h' = (1 - z) n + z h``, so ``z = 1 - Γ_u = σ(-(W_u [h; x] + b_u))``:
    the update gate's weights and bias are **negated**.  With ``W = [W^h | W^x]`` split
    as in :func:`from_seed_rnn`, gates ``(r, z, n)``:

    .. math::
        w_x = [W_r^{x\top} | -W_u^{x\top} | W_h^{x\top}], \quad
        w_h = [W_r^{h\top} | -W_u^{h\top} | W_h^{h\top}], \quad
        b_x = [b_r | -b_u | b_h], \quad b_h = 0,

    a ``reset_after=False`` GRU (the reset gate multiplies ``h`` before ``W_h``):
    ``gru_scan(xs, params, reset_after=False)``.

    Parameters
    ----------
    w_r, w_u, w_h : arrays, shape ``(H, H + D)``
        Reset gate, update gate and candidate weights, acting on ``[h; x]``.
    b_r, b_u, b_h : arrays, shape ``(H, 1)`` (or ``(H,)``)
        Their biases.

    Returns
    -------
    GRUParams
        Arrays of the library, dtype and device of the inputs.

    Raises
    ------
    TypeError, ValueError
        Non-floating or mixed arrays, or shapes that do not fit.

    Examples
    --------
    >>> w, b = np.ones((1, 2)), np.ones((1, 1))  # H = D = 1
    >>> p = polyrnn.interop.from_seed_gru(w, 2 * w, 3 * w, b, 2 * b, 3 * b)
    >>> p.w_x, p.w_h, p.b_x
    (array([[ 1., -2.,  3.]]), array([[ 1., -2.,  3.]]), array([ 1., -2.,  3.]))
    """
    fn = "from_seed_gru"
    xp, n_h, _ = _seed_inputs(
        fn, {"w_r": w_r, "w_u": w_u, "w_h": w_h, "b_r": b_r, "b_u": b_u, "b_h": b_h}
    )
    ws = (w_r, -w_u, w_h)
    bs = (
        _seed_bias(fn, "b_r", b_r, n_h),
        -_seed_bias(fn, "b_u", b_u, n_h),
        _seed_bias(fn, "b_h", b_h, n_h),
    )
    b_x = xp.concat(bs, axis=0)
    return GRUParams(
        xp.concat([w[:, n_h:].T for w in ws], axis=1),
        xp.concat([w[:, :n_h].T for w in ws], axis=1),
        b_x,
        xp.zeros_like(b_x),
    )


def to_seed_gru(params: GRUParams) -> tuple[Array, Array, Array, Array, Array, Array]:
    r""":class:`~polyrnn.GRUParams` of a ``reset_after=False`` GRU as the seed notebook's weights.

    The inverse of :func:`from_seed_gru`: ``W_g = [w_{h,g}^\top | w_{x,g}^\top]`` for each
    gate, the update gate negated (``Γ_u = 1 - z``), and the biases ``b_x + b_h`` as
    columns.  Folding ``b_h`` into one bias per gate is exact for ``reset_after=False``
    (see :func:`to_keras_gru`); ``params`` are read in that convention.

    Parameters
    ----------
    params : GRUParams

    Returns
    -------
    (w_r, w_u, w_h, b_r, b_u, b_h)
        Matrices ``(H, H + D)`` and columns ``(H, 1)``, the arguments of
        :func:`from_seed_gru` and the notebook's ``weights[0:3]`` and ``weights[4:7]``;
        of the library, dtype and device of ``params``.

    Raises
    ------
    TypeError, ValueError
        ``params`` is not a consistent :class:`~polyrnn.GRUParams`.

    Examples
    --------
    >>> p = polyrnn.init_gru(3, 2)
    >>> w_r, w_u, w_h, b_r, b_u, b_h = polyrnn.interop.to_seed_gru(p)
    >>> w_r.shape, b_u.shape
    ((2, 5), (2, 1))
    >>> bool((polyrnn.interop.from_seed_gru(w_r, w_u, w_h, b_r, b_u, b_h).w_h == p.w_h).all())
    True
    """
    params, xp, n_h = _check_params("to_seed_gru", params, (GRUParams,))
    w_x, w_h, b_x, b_h = params
    bias = b_x + b_h
    signs = (1.0, -1.0, 1.0)
    ws, bs = [], []
    for k, sign in enumerate(signs):
        cols = slice(k * n_h, (k + 1) * n_h)
        w = xp.concat([w_h[:, cols].T, w_x[:, cols].T], axis=1)
        b = xp.expand_dims(bias[cols], axis=1)
        ws.append(w if sign > 0 else -w)
        bs.append(b if sign > 0 else -b)
    return ws[0], ws[1], ws[2], bs[0], bs[1], bs[2]


def from_seed_readout(w_y: Array, b_y: Array) -> tuple[Array, Array]:
    r"""The seed notebook's readout ``ŷ = σ(W_y h + b_y)`` in row-vector form.

    Returns ``(w, b) = (W_y^\top, b_y[:, 0])`` so that ``y = sigmoid(h @ w + b)`` for
    hidden states ``h (..., H)`` -- e.g. the ``hs`` of a scan.

    Parameters
    ----------
    w_y : array, shape ``(O, H)``
    b_y : array, shape ``(O, 1)`` (or ``(O,)``)

    Returns
    -------
    (w, b) : arrays of shapes ``(H, O)`` and ``(O,)``
        Of the library, dtype and device of the inputs.

    Raises
    ------
    TypeError, ValueError
        Non-floating or mixed arrays, or shapes that do not fit.

    Examples
    --------
    >>> w, b = polyrnn.interop.from_seed_readout(np.arange(6.0).reshape(3, 2), np.zeros((3, 1)))
    >>> w
    array([[0., 2., 4.],
           [1., 3., 5.]])
    >>> b.shape
    (3,)
    """
    fn = "from_seed_readout"
    xp = _validate.namespace(fn, {"w_y": w_y, "b_y": b_y})
    _validate.floating(fn, "w_y", w_y, xp)
    _validate.floating(fn, "b_y", b_y, xp, w_y.dtype, "w_y")
    shape = _shape(w_y)
    if len(shape) != 2:
        raise ValueError(f"{fn}: w_y must have shape (O, H), got {shape}")
    return w_y.T, _seed_bias(fn, "b_y", b_y, shape[0])


def to_seed_readout(w: Array, b: Array) -> tuple[Array, Array]:
    r"""A row-vector readout ``y = σ(h @ w + b)`` as the notebook's ``(W_y, b_y)``.

    The inverse of :func:`from_seed_readout`: ``W_y = w^\top (O, H)``, ``b_y = b`` as a
    column ``(O, 1)``.

    Parameters
    ----------
    w : array, shape ``(H, O)``
    b : array, shape ``(O,)``

    Returns
    -------
    (w_y, b_y) : arrays of shapes ``(O, H)`` and ``(O, 1)``

    Raises
    ------
    TypeError, ValueError
        Non-floating or mixed arrays, or shapes that do not fit.

    Examples
    --------
    >>> w_y, b_y = polyrnn.interop.to_seed_readout(np.ones((4, 3)), np.zeros(3))
    >>> w_y.shape, b_y.shape
    ((3, 4), (3, 1))
    """
    fn = "to_seed_readout"
    xp = _validate.namespace(fn, {"w": w, "b": b})
    _validate.floating(fn, "w", w, xp)
    _validate.floating(fn, "b", b, xp, w.dtype, "w")
    shape = _shape(w)
    if len(shape) != 2:
        raise ValueError(f"{fn}: w must have shape (H, O), got {shape}")
    _validate.shape(fn, "b", b, (shape[1],), f"O={shape[1]} from w")
    return w.T, xp.expand_dims(b, axis=1)
