"""JAX: every scan is one ``jax.lax.scan`` inside a ``jax.jit``.

The reference recurrences of :mod:`polyrnn._recurrence` run unchanged; this adapter
gives them ``jax.lax.scan`` as their loop (so compile time does not grow with T) and
wraps each whole scan in :func:`jax.jit`, with the options static.  Called eagerly, a
scan compiles once per shape, dtype and options and is cached by JAX; called inside the
user's ``jit``, ``grad`` or ``vmap``, the inner ``jit`` simply inlines.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax

from .. import _recurrence
from .._compat import Array, Namespace
from ._base import Adapter


class JaxAdapter(Adapter):
    name = "jax"
    specialisations = ("jax.lax.scan over time", "jax.jit per shape and options")

    def __init__(self, xp: Namespace) -> None:
        super().__init__(xp)
        self._rnn = jax.jit(
            functools.partial(_recurrence.rnn, self), static_argnames=("reverse", "activation")
        )
        self._gru = jax.jit(
            functools.partial(_recurrence.gru, self), static_argnames=("reverse", "reset_after")
        )
        self._lstm = jax.jit(
            functools.partial(_recurrence.lstm, self), static_argnames=("reverse",)
        )

    def concrete(self, x: Array) -> bool:
        return not isinstance(x, jax.core.Tracer)

    def scan(
        self,
        step: Callable[[Any, Any], tuple[Any, Any]],
        carry: Any,
        xs: Any,
        *,
        reverse: bool = False,
    ) -> tuple[Any, Any]:
        return jax.lax.scan(step, carry, xs, reverse=reverse)

    def rnn_scan(self, xs: Array, params: Any, h0: Array, **options: Any) -> tuple[Array, Array]:
        return self._rnn(xs, params, h0, **options)  # type: ignore[no-any-return]

    def gru_scan(self, xs: Array, params: Any, h0: Array, **options: Any) -> tuple[Array, Array]:
        return self._gru(xs, params, h0, **options)  # type: ignore[no-any-return]

    def lstm_scan(
        self, xs: Array, params: Any, state0: tuple[Array, Array], **options: Any
    ) -> tuple[Array, tuple[Array, Array]]:
        return self._lstm(xs, params, state0, **options)  # type: ignore[no-any-return]
