"""The Array-API reference adapter, which every backend adapter extends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np

from .. import _linear, _recurrence, _tree, cells
from .._cell import Cell
from .._compat import Array, Namespace, device

F = TypeVar("F", bound=Callable[..., Any])


class Adapter:
    """Runs polyrnn's operations for one array namespace.

    This base class is the reference: pure Array API, a Python loop over time.  A backend
    subclass overrides what its framework does faster (a compiled scan, a fused kernel)
    and must give the same numbers; the cross-backend tests hold it to that.

    Inputs of :meth:`cell_scan` arrive validated and time-major: ``xs (T, ..., D)``, the
    initial carry a tuple of states ``(..., H)``, each ``None`` for zeros
    (``polyrnn._recurrence.initial`` makes them), ``lengths`` an integer array of the
    batch shape or ``None``; it returns ``hs (T, ..., H)`` and the last carry, a tuple.
    """

    name: ClassVar[str] = "array-api"
    """Short name shown in the docs' backend table."""
    specialisations: ClassVar[tuple[str, ...]] = ()
    """What this adapter does beyond the reference, one phrase each (docs' backend table)."""

    autodiff: ClassVar[str | None] = None
    """How the language model differentiates on this library: ``"jax"``
    (:func:`jax.value_and_grad`), ``"torch"`` (autograd), or ``None`` (polyrnn's
    hand-written backpropagation)."""

    def __init__(self, xp: Namespace) -> None:
        self.xp = xp

    @classmethod
    def prepare(cls, dtype: str) -> None:
        """Make the library ready to compute in ``dtype`` (``"float32"`` or ``"float64"``)
        before its first array is made; raise :class:`RuntimeError` saying why it cannot
        run here.  Nothing to do for most libraries."""

    def to_numpy(self, a: Array) -> np.ndarray:
        """``a`` as a NumPy array on the host (a copy where it lives elsewhere)."""
        return np.asarray(a)

    def jit(self, fn: F) -> F:
        """``fn`` compiled where the library compiles (:func:`jax.jit`), else ``fn``."""
        return fn

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.xp.__name__})"

    @staticmethod
    def sigmoid(xp: Namespace, x: Array) -> Array:
        """The logistic function of the recurrences' gates: the Array-API
        ``polyrnn.cells.sigmoid`` here; a backend with a primitive of its own (faster,
        and with a cheaper derivative) overrides it."""
        return cells.sigmoid(xp, x)

    @staticmethod
    def softplus(xp: Namespace, x: Array) -> Array:
        """``log(1 + e^x)`` of the linear cells' gates: ``polyrnn.cells.softplus`` here."""
        return cells.softplus(xp, x)

    def entry(self, body: Callable[..., Any], static: Any, *arrays: Any) -> Any:
        """``body(static, *arrays)``: a public function's checks and computation, where
        ``static`` (hashable) holds its options and ``arrays`` its array arguments (trees
        of arrays and ``None``).  Here simply called; JAX compiles it as one function."""
        return body(static, *arrays)

    def concrete(self, x: Array) -> bool:
        """Whether ``x`` holds values now (``False`` for a tracer inside a JIT)."""
        return True

    def scan(
        self,
        step: Callable[[Any, Any], tuple[Any, Any]],
        carry: Any,
        xs: Any,
        *,
        reverse: bool = False,
    ) -> tuple[Any, Any]:
        """``jax.lax.scan`` semantics, with a Python loop over axis 0 of the leaves of ``xs``."""
        leaves, rebuild = _tree.flatten(xs)
        if not leaves:
            raise ValueError("scan: xs must hold at least one array to scan over")
        steps = leaves[0].shape[0]
        for i, leaf in enumerate(leaves):
            if leaf.ndim == 0 or leaf.shape[0] != steps:
                raise ValueError(
                    f"scan: every array in xs must have the same leading length {steps}, "
                    f"but leaf {i} has shape {tuple(leaf.shape)}"
                )
        if steps == 0:
            raise ValueError("scan: xs has length 0, so the shape of ys cannot be inferred")
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        ys = []
        for t in order:
            carry, y = step(carry, rebuild([leaf[t, ...] for leaf in leaves]))
            ys.append(y)
        if reverse:
            ys.reverse()
        per_step = [_tree.flatten(y)[0] for y in ys]
        stacked = [self.xp.stack(column) for column in zip(*per_step, strict=True)]
        return carry, _tree.flatten(ys[0])[1](stacked)

    def cell_scan(
        self,
        cell: Cell,
        xs: Array,
        params: Any,
        state0: tuple[Array | None, ...],
        *,
        lengths: Array | None,
        reverse: bool,
        **options: Any,
    ) -> tuple[Array, tuple[Array, ...]]:
        """``(hs, last carry)`` of any cell's scan; ``options`` are the cell's
        (the record's ``keywords``).  Here the reference engine of the cell's
        kind: ``polyrnn._recurrence.run``, or ``polyrnn._linear.run`` for a linear cell.  A
        backend overrides it to send the built-in cells it has kernels for to them
        (``polyrnn.cells.builtin``) and the rest here."""
        engine: Any = _linear.run if cell.linear is not None else _recurrence.run
        return engine(cell, self, xs, params, state0, lengths=lengths, reverse=reverse, **options)  # type: ignore[no-any-return]

    def layout_scan(
        self,
        cell: Cell,
        xs: Array,
        params: Any,
        state0: tuple[Array | None, ...],
        *,
        time_major: bool,
        batch_ndim: int,
        lengths: Array | None,
        reverse: bool,
        **options: Any,
    ) -> tuple[Array, tuple[Array, ...]]:
        """:meth:`cell_scan` of ``xs`` in the caller's layout, ``(..., T, D)`` (``(T, ...,
        D)`` with ``time_major``), with ``batch_ndim`` batch axes: the moves of the time
        axis around it (JAX compiles the three as one)."""
        xs_tm = _recurrence.move_time(self.xp, xs, batch_ndim, time_major, inverse=False)
        hs, last = self.cell_scan(
            cell, xs_tm, params, state0, lengths=lengths, reverse=reverse, **options
        )
        return _recurrence.move_time(self.xp, hs, batch_ndim, time_major, inverse=True), last

    # --- linear recurrences: polyrnn.linear_scan, associative_scan, linear cells -------------

    def associative_scan(
        self, fn: Callable[[Any, Any], Any], elems: Any, *, reverse: bool = False, axis: int = 0
    ) -> Any:
        """``jax.lax.associative_scan`` semantics; the Array-API odd-even recursion here.

        ``elems`` is a validated pytree whose leaves share their length along ``axis``
        (non-negative).
        """
        return _linear.associative_scan(self.xp, fn, elems, reverse=reverse, axis=axis)

    def linear_method(self, x: Array, *, steps: int, width: int) -> str:
        """What ``method="auto"`` means for a linear scan of ``steps`` steps over ``width``
        independent lanes (batch times H) on the device of ``x``.

        Sequential on a CPU, where the ``2 log2 T`` passes of the parallel form over
        arrays that outgrow the caches cost more than a loop over small rows; parallel
        elsewhere (an accelerator runs each pass as a few kernels).
        """
        return "sequential" if _on_cpu(x) else "parallel"

    def linear_scan(
        self, a: Array, b: Array, h0: Array, *, reverse: bool, method: str
    ) -> tuple[Array, Array]:
        """``(hs, h_last)`` of ``h_t = a_t h_{t-1} + b_t`` over time-major ``a, b (T, ..., H)``.

        ``method`` is ``"sequential"`` or ``"parallel"`` (already resolved from ``"auto"``
        by :meth:`linear_method`); ``hs[t]`` is the state after step ``t`` and ``h_last``
        the state after the last processed step (``hs[0]`` with ``reverse``; ``h0``
        when ``T = 0``).
        """
        return _linear.linear(self, a, b, h0, reverse=reverse, method=method)

    def coefficients(self, cell: Cell, gx: Array, n_h: int) -> tuple[Array, Array]:
        """``(a, b)`` of every step of a linear cell from its projected inputs ``gx (T, ...,
        G H)``: the cell's linear form with this adapter's :meth:`sigmoid` and :meth:`softplus`."""
        assert cell.linear is not None
        return cell.linear(self.xp, gx, n_h, (self.sigmoid, self.softplus))[:2]


def _on_cpu(x: Array) -> bool:
    """Whether ``x`` lives on a CPU, judged by the name of its device."""
    return "cpu" in str(device(x)).lower()
