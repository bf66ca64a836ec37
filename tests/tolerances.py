"""How close a result must be to its independent reference: the one place that says so.

Every comparison of the suite (``array_libs.assert_close``) and of
``benchmarks/gpu_check.py`` takes its tolerance from :func:`tolerance`.  A test that needs
another number says why next to it; none may loosen these to pass.

The reference is float64 (NumPy, written from the equations in ``tests/reference.py``,
or a framework run in float64), fed the very values the library saw (inputs rounded to
the dtype under test first), so the difference measures the library's own rounding only.
Comparisons are relative: ``|actual - expected| <= rtol |expected| + atol max(1, max
|expected|)``, the ``atol`` term covering entries near zero that come out of cancelling
sums of terms of order ``max |expected|``.

The numbers
-----------
float64, 1e-12 (``eps = 2.2e-16``)
    The recurrences, metrics and VJPs measured 2e-16 to 9e-16 against the reference
    (hundreds of flops deep, errors adding up at random); 1e-12 leaves three orders of
    magnitude for that growth while catching any change of formula, which moves the
    numbers by 1e-8 or more.
float32, 2e-6 (``eps = 1.2e-7``, so ~17 ulp)
    Short computations: a few cells or metric reductions deep, measured up to 1.6e-6
    through a seven-step scan with tanh and sigmoid gates.
float32 through long scans, 5e-6 (``LONG``)
    Rounding errors of a contractive recurrence add up over its steps (a linear scan of
    4096 steps with ``a`` near 1, a training run of 20 steps, a 50-step GPU scan);
    measured up to ~3e-6 there.
float16, 1e-2 (``eps = 9.8e-4``); bfloat16, 3e-2 (``eps = 7.8e-3``)
    About ten and four ulp: these dtypes are checked through a few steps only, where the
    libraries accumulate in float32 but round every stored state.
"""

from __future__ import annotations

from typing import Any

RTOL = {
    "float64": 1e-12,
    "float32": 2e-6,
    "float16": 1e-2,
    "bfloat16": 3e-2,
}
"""Relative tolerance per dtype name; ``atol`` is the same number, scaled by the magnitude."""

LONG = {
    "float64": 1e-12,
    "float32": 5e-6,
    "float16": 1e-2,
    "bfloat16": 3e-2,
}
"""The same through long scans and training runs, where rounding accumulates step by step."""


def dtype_name(dtype: Any) -> str:
    """``"float32"`` for ``numpy.float32``, ``torch.float32``, ``jnp.float32``, ``"float32"``..."""
    return str(dtype).rsplit(".", 1)[-1].rstrip("'>").removeprefix("dtype(").strip("'\")")


def tolerance(dtype: Any, *, long: bool = False) -> tuple[float, float]:
    """``(rtol, atol)`` for a result of ``dtype`` against a float64 reference of scale ~1
    (``atol`` is then multiplied by ``max(1, max |expected|)``)."""
    t = (LONG if long else RTOL)[dtype_name(dtype)]
    return t, t
