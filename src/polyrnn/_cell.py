"""The cell as one record: what the generic scan, its VJP and the adapters need to know.

A recurrent cell reads its input through one hoisted projection ``gx = x W_x + bias``
(one matrix product over all steps) and then updates a carry of ``len(states)`` arrays,
each ``(..., H)``, the first of which is the output ``h``.  Everything particular to a
cell is in its :class:`Cell`: the parameter class and gate count, the bias folded into
the projection, the forward step, and the three parts of its backpropagation.  A cell
whose gates read the input alone also has a linear form (:data:`Coefficients`), ``h_t = a_t h_{t-1} +
b_t``, which its scans solve for all steps at once (sequentially or in parallel).  The
generic engines (``polyrnn._recurrence.run``, ``polyrnn._linear.run``,
``polyrnn.vjp.cell_scan_vjp``, ``polyrnn.scans.cell_scan``) run any record; the built-in
ones are in :mod:`polyrnn.cells`.
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

Finish = Callable[[tuple[Array, ...], tuple[Array, ...], Array], dict[str, Array]]
"""``(stacked residuals, stacked grads, d_b_x) -> {field: gradient}`` for every parameter
field but ``w_x`` (which the engine computes from the projection's cotangent):
``{"w_h": ..., "b_h": ...}`` for the built-in recurrent cells, ``{}`` for a linear one.
``d_b_x``, the sum of that cotangent, is ``b_x``'s gradient unless the dict holds another
(a cell whose ``bias`` does not add ``b_x`` to the projection)."""

Primitives = tuple[Logistic, Logistic]
"""The adapter's ``(sigmoid, softplus)``: ``(xp, x) -> array`` each."""

Coefficients = Callable[
    [Namespace, Array, int, Primitives],
    tuple[Array, Array, Callable[[Array, Array], Array]],
]
"""The linear-recurrence form ``h_t = a_t ⊙ h_{t-1} + b_t`` of a cell whose gates read
``x_t`` alone: ``(xp, gx, H, primitives) -> (a, b, back)``, the coefficients of every
step from the projected inputs ``gx (..., G H)``, and ``back(d_a, d_b) -> d_gx``."""


@dataclass(frozen=True, eq=False)
class Cell:
    """One recurrent cell with parameters ``(w_x (D, G H), w_h (H, G H), b_x, b_h (G H,))``
    (``(w_x, b_x)`` for a linear cell).

    Each function takes the namespace ``xp``, the parameters and the cell's options (the
    keywords named in :attr:`options`, e.g. ``reset_after``) as keywords.  A record is
    equal only to itself (JAX caches compiled scans by record).
    """

    name: str
    """Short name; an adapter may hold a fused kernel for the built-in cell of that name."""
    params: type
    """The parameters' NamedTuple class: fields ``w_x, w_h, b_x, b_h``, or ``w_x, b_x`` for a
    linear cell.  More fields (vectors: a layer-normalised cell's gains) follow those four;
    the input checks know their lengths from ``polyrnn.params.WIDTHS`` (in units of H; a
    class not listed there is checked for the four only), and the record's ``finish``
    returns their gradients (and ``b_x``'s where its ``bias`` does not add ``b_x``)."""
    gates: int
    """G: ``w_x`` is ``(D, G H)``."""
    states: tuple[str, ...]
    """Names of the carry's arrays, the output first: ``("h",)`` or ``("h", "c")``."""
    bias: Callable[..., Array]
    """``bias(xp, params, **options)``: what is added to ``x W_x`` in the projection."""
    step: Callable[..., Step]
    """``step(xp, params, logistic, **options)``: the forward step."""
    vjp: Callable[..., tuple[ResidualStep, Back, Finish]] | None
    """``vjp(xp, params, logistic, **options)``: the forward step keeping residuals, its
    reverse, and the weight gradients from the stacked residuals and gradients; ``None``
    for a linear cell, whose VJP runs its linear form backwards."""
    options: tuple[str, ...] = ()
    """The keyword options of the cell's functions."""
    linear: Coefficients | None = None
    """The linear-recurrence form, for a cell that has one: its scans compute the
    coefficients of all steps at once and solve the recurrence with one linear scan
    (taking the keyword ``method``, ``"sequential"`` or ``"parallel"``, for it)."""
    recurrent_dropout: bool = False
    """Whether :attr:`step` and :attr:`vjp` take the keyword ``mask``: an array ``(..., H)``
    (or ``None``) multiplying ``h_{t-1}`` where it enters ``W_h`` at every step, and nowhere
    else (recurrent dropout, Gal & Ghahramani 2016, as Keras' ``recurrent_dropout``)."""

    @property
    def keywords(self) -> tuple[str, ...]:
        """Every keyword of the cell's scans beyond ``lengths`` and ``reverse``."""
        return (*self.options, "method") if self.linear is not None else self.options

    def __repr__(self) -> str:
        return f"Cell({self.name!r})"
