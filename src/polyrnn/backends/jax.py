"""JAX: the reference recurrences run under one ``jax.lax.scan`` (no Python loop over time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from .._compat import Array
from ._base import Adapter


class JaxAdapter(Adapter):
    name = "jax"
    specialisations = ("jax.lax.scan over time",)

    def concrete(self, x: Array) -> bool:
        return not isinstance(x, jax.core.Tracer)

    def scan(
        self, step: Callable[[Any, Any], tuple[Any, Any]], carry: Any, xs: Any, *,
        reverse: bool = False,
    ) -> tuple[Any, Any]:
        return jax.lax.scan(step, carry, xs, reverse=reverse)
