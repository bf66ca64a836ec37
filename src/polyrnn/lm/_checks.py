"""Checks of the language model's plain-number arguments, with messages naming them.

``True`` is not a count and ``"0.1"`` is not a learning rate: only ints (Python's or
NumPy's) pass as integers, only ints and floats as real numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def integer(name: str, value: Any, low: int = 0) -> int:
    """``value`` as an int ``>= low``, else a :class:`TypeError` or :class:`ValueError`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return int(value)


def real(
    name: str, value: Any, low: float = 0.0, *, above: bool = False, finite: bool = True
) -> float:
    """``value`` as a float ``>= low`` (``> low`` with ``above``); without ``finite``,
    also any infinity or NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        if finite:
            raise ValueError(f"{name} must be finite, got {value}")
        return value
    if not (value > low if above else value >= low):
        raise ValueError(f"{name} must be {'>' if above else '>='} {low:g}, got {value}")
    return value
