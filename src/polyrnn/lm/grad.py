"""The gradient of the loss, by the library's autodiff or by polyrnn's hand-written BPTT.

Every engine returns a function with the signature and result of
``jax.value_and_grad(polyrnn.lm.model.loss, has_aux=True)``::

    (loss, state), grads = value_and_grad(params, tokens, targets, state, masks)

``masks``, optional, are the dropout multipliers of :func:`polyrnn.lm.forward`
(``None``: no dropout); they are an argument, not differentiated, so one compiled step
takes a new draw each step.

``state``, the recurrent state after the chunk, carries no gradient: it is the start of
the next chunk of truncated backpropagation through time.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import _tree
from .._compat import Array
from . import model
from .backend import Backend

__all__ = ["ENGINES", "default_engine", "value_and_grad"]

ValueAndGrad = Callable[..., tuple[tuple[Array, model.State], model.LMParams]]
"""``(params, tokens, targets, state, masks=None) -> ((loss, state), grads)``."""


def _jax(cell: str) -> ValueAndGrad:
    import jax

    def masked_loss(
        params: model.LMParams,
        tokens: Array,
        targets: Array,
        state: model.State,
        masks: model.Masks | None,
    ) -> tuple[Array, model.State]:
        return model.loss(params, tokens, targets, state, cell=cell, masks=masks)

    engine = jax.value_and_grad(masked_loss, has_aux=True)  # argnums=0: params only

    def value_and_grad(
        params: model.LMParams,
        tokens: Array,
        targets: Array,
        state: model.State,
        masks: model.Masks | None = None,
    ) -> tuple[tuple[Array, model.State], model.LMParams]:
        return engine(params, tokens, targets, state, masks)

    return value_and_grad


def _torch(cell: str) -> ValueAndGrad:
    import torch

    def value_and_grad(
        params: model.LMParams,
        tokens: Array,
        targets: Array,
        state: model.State,
        masks: model.Masks | None = None,
    ) -> tuple[tuple[Array, model.State], model.LMParams]:
        leaves, rebuild = _tree.flatten(params)
        live = [p.detach().requires_grad_(True) for p in leaves]
        value, new_state = model.loss(rebuild(live), tokens, targets, state, cell=cell, masks=masks)
        grads = torch.autograd.grad(value, live)
        detached = _tree.map_(lambda a: a.detach(), new_state)
        return (value.detach(), detached), rebuild(list(grads))

    return value_and_grad


def _by_hand(cell: str) -> ValueAndGrad:
    def value_and_grad(
        params: model.LMParams,
        tokens: Array,
        targets: Array,
        state: model.State,
        masks: model.Masks | None = None,
    ) -> tuple[tuple[Array, model.State], model.LMParams]:
        return model.loss_and_grad(params, tokens, targets, state, cell=cell, masks=masks)

    return value_and_grad


_AUTODIFF: dict[str, Callable[[str], ValueAndGrad]] = {"jax": _jax, "torch": _torch}


ENGINES = ("autodiff", "by_hand")
"""The ways to the gradient: the library's automatic differentiation (JAX, PyTorch), or
polyrnn's hand-written backpropagation through time (:func:`polyrnn.lm.loss_and_grad`),
which runs on every backend and under :func:`jax.jit`."""


def default_engine(backend: Backend) -> str:
    """The faster engine of ``backend``, as measured on the CPU (the Training page):
    PyTorch's autograd, whose forward pass is aten's fused GRU/LSTM/RNN kernel; elsewhere
    the hand-written gradient.  On JAX that is :func:`polyrnn.lm.loss_and_grad` under
    :func:`jax.jit`, which trained the command's default model 1.3 to 1.4 times faster
    than :func:`jax.value_and_grad` through :func:`jax.lax.scan`: it forms ``d W_h`` (and
    ``d W_x``) as one product over all steps after the reverse loop, where JAX's
    autodiff adds one small product per step."""
    return "autodiff" if backend.autodiff == "torch" else "by_hand"


def value_and_grad(backend: Backend, cell: str, engine: str | None = None) -> ValueAndGrad:
    """The loss and its gradient for ``backend``, by ``engine``.

    Parameters
    ----------
    backend : Backend
        The array library.
    cell : str
        A key of :data:`polyrnn.lm.CELLS`.
    engine : {"autodiff", "by_hand"}, optional
        :func:`jax.value_and_grad` or PyTorch autograd (JAX and PyTorch only), or
        :func:`polyrnn.lm.loss_and_grad`; :func:`~polyrnn.lm.default_engine` when
        omitted.  The two agree to rounding (the tests hold them to ``1e-12`` in float64).

    Returns
    -------
    callable ``(params, tokens, targets, state, masks=None) -> ((loss, state), grads)``
        ``masks``: the dropout multipliers of :func:`polyrnn.lm.forward`, applied in the
        forward pass and (by hand, or by the autodiff through it) in the backward pass.
    """
    engine = default_engine(backend) if engine is None else engine
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES} or None, got {engine!r}")
    if engine == "by_hand":
        return _by_hand(cell)
    if backend.autodiff is None:
        raise ValueError(
            f"engine='autodiff' needs a backend with automatic differentiation (jax, torch), "
            f"got {backend.name!r}"
        )
    return _AUTODIFF[backend.autodiff](cell)
