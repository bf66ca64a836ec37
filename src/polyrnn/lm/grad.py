"""The gradient of the loss, taken the way each library can: one engine per kind of autodiff.

Every engine returns a function with the signature and result of
``jax.value_and_grad(polyrnn.lm.model.loss, has_aux=True)``::

    (loss, state), grads = value_and_grad(params, tokens, targets, state)

``state``, the recurrent state after the chunk, carries no gradient: it is the start of
the next chunk of truncated backpropagation through time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from .. import _tree
from .._compat import Array
from . import model
from .backend import Backend

__all__ = ["value_and_grad"]

ValueAndGrad = Callable[
    [model.LMParams, Array, Array, model.State], tuple[tuple[Array, model.State], model.LMParams]
]


def _jax(cell: str) -> ValueAndGrad:
    import jax

    return jax.value_and_grad(functools.partial(model.loss, cell=cell), has_aux=True)


def _torch(cell: str) -> ValueAndGrad:
    import torch

    def value_and_grad(
        params: model.LMParams, tokens: Array, targets: Array, state: model.State
    ) -> tuple[tuple[Array, model.State], model.LMParams]:
        leaves, rebuild = _tree.flatten(params)
        live = [p.detach().requires_grad_(True) for p in leaves]
        value, new_state = model.loss(rebuild(live), tokens, targets, state, cell=cell)
        grads = torch.autograd.grad(value, live)
        detached = _tree.map_(lambda a: a.detach(), new_state)
        return (value.detach(), detached), rebuild(list(grads))

    return value_and_grad


def _by_hand(cell: str) -> ValueAndGrad:
    return functools.partial(model.loss_and_grad, cell=cell)


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
    callable ``(params, tokens, targets, state) -> ((loss, state), grads)``
    """
    return _ENGINES[backend.autodiff](cell)
