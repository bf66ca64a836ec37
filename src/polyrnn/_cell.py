"""The cell as one record: what the generic scan, its VJP and the adapters need to know.

A recurrent cell reads its input through one hoisted projection ``gx = x W_x + bias``
(one matrix product over all steps) and then updates a carry of ``len(states)`` arrays,
each ``(..., H)``, the first of which is the output ``h``.  Everything particular to a
cell is in its :class:`Cell`: the parameter class and gate count, the bias folded into
the projection, the forward step, and the three parts of its backpropagation.  The
generic engines (``polyrnn._recurrence.run``, ``polyrnn.vjp.cell_scan_vjp``,
``polyrnn.scans.cell_scan``) run any record; the built-in ones are in
:mod:`polyrnn.cells`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ._compat import Array, Namespace

Carry = tuple[Array, ...]
"""The recurrent state: ``(h,)``, or ``(h, c)`` for an LSTM; ``h`` is the output."""

Logistic = Callable[[Namespace, Array], Array]
"""``(xp, x) -> σ(x)``: the reference's, or an adapter's own primitive."""

Step = Callable[[Carry, Array], Carry]
"""``(carry, gx_t) -> carry``: one forward step on the projected input."""

ResidualStep = Callable[[Carry, Array], tuple[Carry, tuple[Array, ...]]]
"""``(carry, gx_t) -> (carry, residuals)``: a forward step keeping what backward needs."""

Back = Callable[[tuple[Array, ...], Carry], tuple[Carry, tuple[Array, ...]]]
"""``(residuals, d_new_carry) -> (d_carry, grads)``; ``grads[0]`` is the cotangent of
``gx_t``."""

Finish = Callable[[tuple[Array, ...], tuple[Array, ...], Array], tuple[Array, Array]]
"""``(stacked residuals, stacked grads, d_b_x) -> (d_w_h, d_b_h)``."""


@dataclass(frozen=True)
class Cell:
    """One recurrent cell with parameters ``(w_x (D, G H), w_h (H, G H), b_x, b_h (G H,))``.

    Each function takes the namespace ``xp``, the parameters and the cell's options (the
    keywords named in :attr:`options`, e.g. ``reset_after``) as keywords.
    """

    name: str
    """Short name; an adapter may hold a fused kernel for the built-in cell of that name."""
    params: type
    """The parameters' NamedTuple class (fields ``w_x, w_h, b_x, b_h``)."""
    gates: int
    """G: ``w_x`` is ``(D, G H)``."""
    states: tuple[str, ...]
    """Names of the carry's arrays, the output first: ``("h",)`` or ``("h", "c")``."""
    bias: Callable[..., Array]
    """``bias(xp, params, **options)``: what is added to ``x W_x`` in the projection."""
    step: Callable[..., Step]
    """``step(xp, params, logistic, **options)``: the forward step."""
    vjp: Callable[..., tuple[ResidualStep, Back, Finish]]
    """``vjp(xp, params, logistic, **options)``: the forward step keeping residuals, its
    reverse, and the weight gradients from the stacked residuals and gradients."""
    options: tuple[str, ...] = ()
    """The keyword options of the cell's functions."""

    def __repr__(self) -> str:
        return f"Cell({self.name!r})"
