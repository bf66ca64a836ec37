"""JAX: every scan is one ``jax.lax.scan`` inside a ``jax.jit``.

The reference recurrences of ``polyrnn._recurrence`` run unchanged; this adapter
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

from .. import _linear
from .._cell import Cell
from .._compat import Array, Namespace
from ._base import Adapter


class JaxAdapter(Adapter):
    name = "jax"
    specialisations = ("jax.lax.scan over time", "jax.jit per shape and options")
    autodiff = "jax"

    @classmethod
    def prepare(cls, dtype: str) -> None:
        """Turn on ``jax_enable_x64`` for float64: JAX silently computes in float32 without."""
        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)  # type: ignore[no-untyped-call]

    def jit(self, fn: Any) -> Any:
        return jax.jit(fn)

    def __init__(self, xp: Namespace) -> None:
        super().__init__(xp)
        self._compiled: dict[Cell, Callable[..., Any]] = {}
        self._compiled_layout: dict[Cell, Callable[..., Any]] = {}

    @staticmethod
    def sigmoid(xp: Namespace, x: Array) -> Array:
        """:func:`jax.nn.sigmoid` (XLA's logistic op): a GRU's gradient through it was
        measured 1.3-1.6x faster than through the reference's ``where`` of two branches."""
        return jax.nn.sigmoid(x)

    @staticmethod
    def softplus(xp: Namespace, x: Array) -> Array:
        """:func:`jax.nn.softplus`; with :meth:`sigmoid`, the linear cells' derivatives stay
        finite where ``e^{±k}`` overflows (that of ``1 / (1 + e^k)`` is ``inf / inf``
        there, and trained a minGRU language model to NaN)."""
        return jax.nn.softplus(x)

    def entry(self, body: Callable[..., Any], static: Any, *arrays: Any) -> Any:
        """``body`` as one :func:`jax.jit` with ``static`` static: called eagerly, the
        checks and the dispatch of a scan cost 10-15% of a short sequence's scan, and
        compiled they run once per shape, at trace time.  Arguments holding anything but
        JAX arrays run ``body`` as it is, whose checks name what is wrong; arrays on two
        devices meet :func:`jax.jit`'s own error."""
        kinds = set(map(type, jax.tree_util.tree_leaves(arrays)))
        if not (kinds <= _ARRAY_TYPES or all(issubclass(k, jax.Array) for k in kinds)):
            return body(static, *arrays)
        _ARRAY_TYPES.update(kinds)
        return _entry_jit(body)(static, *arrays)

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

    def cell_scan(self, cell: Cell, xs: Array, params: Any, state0: Any, **options: Any) -> Any:
        """Every cell's reference scan as one :func:`jax.jit`, its options static."""
        compiled = self._compiled.get(cell)
        if compiled is None:
            compiled = self._compiled[cell] = jax.jit(
                functools.partial(Adapter.cell_scan, self, cell),
                static_argnames=("reverse", *cell.keywords),
            )
        return compiled(xs, params, state0, **options)

    def layout_scan(self, cell: Cell, xs: Array, params: Any, state0: Any, **options: Any) -> Any:
        """The moves of the time axis and the scan as one :func:`jax.jit`: called eagerly,
        two transposes dispatched apart cost more than the scan of a short sequence."""
        compiled = self._compiled_layout.get(cell)
        if compiled is None:
            compiled = self._compiled_layout[cell] = jax.jit(
                functools.partial(Adapter.layout_scan, self, cell),
                static_argnames=("time_major", "batch_ndim", "reverse", *cell.keywords),
            )
        return compiled(xs, params, state0, **options)

    # --- linear recurrences ------------------------------------------------------------------

    @functools.cached_property
    def _linear_jit(self) -> Callable[..., Any]:
        return jax.jit(
            functools.partial(_linear.linear, self), static_argnames=("reverse", "method")
        )

    def associative_scan(
        self, fn: Callable[[Any, Any], Any], elems: Any, *, reverse: bool = False, axis: int = 0
    ) -> Any:
        """:func:`jax.lax.associative_scan`, compiled with :func:`jax.jit` (cached per ``fn``:
        run eagerly, its ``2 log2 T`` levels of small operations would each be dispatched
        and compiled apart, seconds for a short sequence)."""
        try:
            compiled = _associative_scan_jit(fn, reverse, axis)
        except TypeError:  # an unhashable fn: compile without the cache
            compiled = jax.jit(
                functools.partial(jax.lax.associative_scan, fn, reverse=reverse, axis=axis)
            )
        return compiled(elems)

    def linear_method(self, x: Array, *, steps: int, width: int) -> str:
        """Sequential (``jax.lax.scan``) on the CPU, where XLA runs the loop tightly and the
        parallel form's ``2 log2 T`` passes over memory cost more at every T measured;
        parallel (``jax.lax.associative_scan``) on GPUs and TPUs."""
        return "sequential" if _platform(x) == "cpu" else "parallel"

    def linear_scan(
        self, a: Array, b: Array, h0: Array, *, reverse: bool, method: str
    ) -> tuple[Array, Array]:
        return self._linear_jit(a, b, h0, reverse=reverse, method=method)  # type: ignore[no-any-return]


_ARRAY_TYPES: set[type] = set()
"""The classes of JAX arrays met so far (a set lookup is cheaper than ``isinstance``)."""


@functools.cache
def _entry_jit(body: Callable[..., Any]) -> Any:
    return jax.jit(body, static_argnums=0)


@functools.lru_cache(maxsize=64)
def _associative_scan_jit(fn: Callable[[Any, Any], Any], reverse: bool, axis: int) -> Any:
    return jax.jit(functools.partial(jax.lax.associative_scan, fn, reverse=reverse, axis=axis))


def _platform(x: Array) -> str:
    """``"cpu"``, ``"gpu"``, ``"tpu"``...: where ``x`` lives (the default backend for a tracer)."""
    if isinstance(x, jax.core.Tracer):
        return str(jax.default_backend())
    return str(next(iter(x.devices())).platform)
