"""The gradient of the loss, taken the way each library can: one engine per kind of autodiff.

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

__all__ = ["value_and_grad"]

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


_ENGINES: dict[str | None, Callable[[str], ValueAndGrad]] = {
    "jax": _jax,
    "torch": _torch,
    None: _by_hand,
}


def value_and_grad(backend: Backend, cell: str) -> ValueAndGrad:
    """The loss and its gradient for ``backend``: autodiff where the library has it, else by hand.

    Parameters
    ----------
    backend : Backend
        Its ``autodiff`` picks the engine: :func:`jax.value_and_grad`, PyTorch autograd, or
        :func:`polyrnn.lm.loss_and_grad`.
    cell : str
        A key of :data:`polyrnn.lm.CELLS`.

    Returns
    -------
    callable ``(params, tokens, targets, state, masks=None) -> ((loss, state), grads)``
        ``masks``: the dropout multipliers of :func:`polyrnn.lm.forward`, applied in the
        forward pass and (by hand, or by the autodiff through it) in the backward pass.
    """
    return _ENGINES[backend.autodiff](cell)
