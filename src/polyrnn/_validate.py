"""Input checks with precise messages: done once, at the door of every public function.

Each message names the function, the argument, what was expected and what was received.
Nothing is broadcast: shapes must match exactly.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._compat import Array, Namespace, device, is_array_api_obj, namespace_of
from .params import GATES, WIDTHS


def _describe(a: Any) -> str:
    return f"{type(a).__module__}.{type(a).__qualname__}"


def flags(fn: str, **values: Any) -> None:
    """Each keyword is a bool (Python's or NumPy's): a truthy ``"no"`` or ``"False"`` must
    not switch an option on."""
    for name, value in values.items():
        if value is not True and value is not False and not isinstance(value, np.bool_):
            raise TypeError(f"{fn}: {name} must be True or False, got {value!r}")


def namespace(fn: str, arrays: dict[str, Any]) -> Namespace:
    """The one namespace of ``arrays`` (``None`` values skipped); all must share it and a device."""
    present = {name: a for name, a in arrays.items() if a is not None}
    spaces = {}
    for name, a in present.items():
        spaces[name] = namespace_of(a)
        if spaces[name] is None:
            raise TypeError(f"{fn}: {name} must be an array, got {_describe(a)}")
    first, xp = next(iter(spaces.items()))
    for name, other in spaces.items():
        if other is not xp:
            raise TypeError(
                f"{fn}: all arrays must come from one library, but {first} is "
                f"{_describe(present[first])} and {name} is {_describe(present[name])}"
            )
    devices = {name: device(a) for name, a in present.items()}
    dev = devices[first]
    for name, d in devices.items():
        if d is not None and dev is not None and d != dev:
            raise ValueError(
                f"{fn}: all arrays must be on one device, but {first} is on {dev} "
                f"and {name} is on {d}"
            )
    return xp


def floating(
    fn: str, name: str, a: Array, xp: Namespace, dtype: Any = None, dtype_of: str = "xs"
) -> None:
    """``a`` has a real floating dtype, equal to ``dtype`` (that of ``dtype_of``) when given."""
    if not xp.isdtype(a.dtype, "real floating"):
        raise TypeError(f"{fn}: {name} must have a real floating dtype, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{fn}: {name} must have dtype {dtype} (the dtype of {dtype_of}), got {a.dtype}"
        )


def shape(fn: str, name: str, a: Array, expected: tuple[int, ...], why: str = "") -> None:
    if tuple(a.shape) != tuple(expected):
        hint = f" ({why})" if why else ""
        raise ValueError(
            f"{fn}: {name} must have shape {tuple(expected)}{hint}, got {tuple(a.shape)}"
        )


def params(
    fn: str,
    p: Any,
    cls: type | tuple[type, ...],
    n_in: int | None = None,
    xp: Namespace | None = None,
    dtype: Any = None,
    gates: int | None = None,
) -> tuple[Any, int]:
    """``p`` as one of the containers ``cls``, with consistent shapes; returns it and H.

    The vectors beyond ``b_x, b_h`` of a container listed in :data:`~polyrnn.params.WIDTHS`
    (a layer-normalised cell's gains) are checked against their widths there.  A plain
    tuple of as many arrays as ``cls`` has fields is taken as ``cls`` when only one class
    is possible.  ``n_in`` (D) and
    ``dtype`` come from the input when known, else from ``p.w_x``; ``xp`` from ``p``.
    """
    classes = cls if isinstance(cls, tuple) else (cls,)
    names = " or ".join(c.__name__ for c in classes)
    if not isinstance(p, classes):
        if type(p) not in (tuple, list) or len(classes) > 1:
            raise TypeError(f"{fn}: params must be {names}, got {_describe(p)}")
        fields = classes[0]._fields  # type: ignore[attr-defined]
        if len(p) != len(fields):
            spelled = f"{names}({', '.join(fields)})"
            raise TypeError(f"{fn}: params must be {spelled}, got {len(p)} items")
        p = classes[0](*p)
    fields = {f"params.{name}": a for name, a in zip(p._fields, p, strict=True)}
    xp = namespace(fn, fields) if xp is None else xp
    for name, a in fields.items():
        if not is_array_api_obj(a):
            raise TypeError(f"{fn}: {name} must be an array, got {_describe(a)}")
    dtype_of = "xs" if dtype is not None else "params.w_x"
    for name, a in fields.items():
        floating(fn, name, a, xp, p.w_x.dtype if dtype is None else dtype, dtype_of)
    g = gates or GATES[type(p)]
    if p.w_h.ndim != 2 or p.w_h.shape[1] != g * p.w_h.shape[0]:
        raise ValueError(f"{fn}: params.w_h must have shape (H, {g}*H), got {tuple(p.w_h.shape)}")
    n_h = p.w_h.shape[0]
    if n_in is None:
        if p.w_x.ndim != 2:
            raise ValueError(
                f"{fn}: params.w_x must have shape (D, {g * n_h}), got {tuple(p.w_x.shape)}"
            )
        n_in, why = p.w_x.shape[0], f"H={n_h}"
    else:
        why = f"D={n_in} from the input, H={n_h}"
    shape(fn, "params.w_x", p.w_x, (n_in, g * n_h), why)
    shape(fn, "params.b_x", p.b_x, (g * n_h,), f"H={n_h}")
    shape(fn, "params.b_h", p.b_h, (g * n_h,), f"H={n_h}")
    for name, width in WIDTHS.get(type(p), {}).items():
        shape(fn, f"params.{name}", getattr(p, name), (width * n_h,), f"H={n_h}")
    return p, n_h


def linear_params(
    fn: str, p: Any, cls: type, n_in: int, xp: Namespace, dtype: Any
) -> tuple[Any, int]:
    """``p`` as the container ``cls`` of a linear cell, ``(w_x (D, G H), b_x (G H,))``;
    returns it and H."""
    if isinstance(p, tuple) and type(p) is not tuple and not isinstance(p, cls):
        raise TypeError(f"{fn}: params must be {cls.__name__}, got {type(p).__name__}")
    if not isinstance(p, tuple | list) or len(p) != 2:
        raise TypeError(f"{fn}: params must be {cls.__name__}(w_x, b_x), got {_describe(p)}")
    p = cls(*p)
    g = GATES[cls]
    for name, a in zip(p._fields, p, strict=True):
        if not is_array_api_obj(a):
            raise TypeError(f"{fn}: params.{name} must be an array, got {_describe(a)}")
        floating(fn, f"params.{name}", a, xp, dtype)
    w = p.w_x
    if w.ndim != 2 or w.shape[0] != n_in or w.shape[1] % g or w.shape[1] == 0:
        raise ValueError(
            f"{fn}: params.w_x must have shape (D, {g}*H) with D={n_in} from the input, "
            f"got {tuple(w.shape)}"
        )
    n_h = w.shape[1] // g
    shape(fn, "params.b_x", p.b_x, (g * n_h,), f"H={n_h}")
    return p, n_h


def choice(fn: str, name: str, value: Any, options: Any) -> None:
    """``value`` is one of ``options`` (a collection of names)."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{fn}: {name} must be one of {sorted(options)}, got {value!r}")


def container(
    fn: str, p: Any, cls: type, n_in: int, xp: Namespace, dtype: Any, gates: int | None = None
) -> tuple[Any, int]:
    """:func:`params` for a container with recurrent weights, :func:`linear_params` for one
    without (a linear cell's)."""
    if "w_h" in cls._fields:  # type: ignore[attr-defined]
        return params(fn, p, cls, n_in, xp, dtype, gates)
    return linear_params(fn, p, cls, n_in, xp, dtype)


def step_inputs(fn: str, p: Any, cls: type, x: Any, **states: Any) -> tuple[Namespace, Any]:
    """Checks of a single-step cell: ``x (..., D)`` and each state ``(..., H)``."""
    xp = namespace(fn, {"x": x, **states, **_named_params(p)})
    floating(fn, "x", x, xp)
    if x.ndim < 1:
        raise ValueError(f"{fn}: x must have shape (..., D), got a 0-d array")
    p, n_h = container(fn, p, cls, x.shape[-1], xp, x.dtype)
    for name, s in states.items():
        if s is None:
            raise TypeError(f"{fn}: {name} must be an array, got None")
        floating(fn, name, s, xp, x.dtype, "x")
        shape(fn, name, s, (*x.shape[:-1], n_h), "the batch shape of x, then H")
    return xp, p


class ScanLayout(NamedTuple):
    xp: Namespace
    params: Any
    steps: int
    batch: tuple[int, ...]
    hidden: int


def scan_inputs(
    fn: str,
    xs: Any,
    p: Any,
    cls: type,
    states: dict[str, Any],
    *,
    time_major: bool,
    gates: int | None = None,
) -> ScanLayout:
    """Checks of a scan: ``xs`` is ``(..., T, D)`` (or ``(T, ..., D)``), states ``(..., H)``;
    ``gates`` (G) of ``cls`` when it is not a built-in container."""
    gates = gates or GATES[cls]
    quick = _common_scan_layout(xs, p, cls, states, time_major, gates)
    if quick is not None:
        return quick
    xp = namespace(fn, {"xs": xs, **states, **_named_params(p)})
    steps, batch = sequence(fn, xs, xp, time_major)
    p, n_h = container(fn, p, cls, xs.shape[-1], xp, xs.dtype, gates)
    for name, s in states.items():
        if s is not None:
            floating(fn, name, s, xp, xs.dtype)
            shape(fn, name, s, (*batch, n_h), f"batch shape {batch} of xs, then H={n_h}")
    return ScanLayout(xp, p, steps, batch, n_h)


def sequence(fn: str, xs: Any, xp: Namespace, time_major: bool) -> tuple[int, tuple[int, ...]]:
    """``xs`` is a floating ``(..., T, D)`` (``(T, ..., D)`` with ``time_major``); returns
    ``(T, batch shape)``."""
    floating(fn, "xs", xs, xp)
    if xs.ndim < 2:
        layout = "(T, ..., D)" if time_major else "(..., T, D)"
        raise ValueError(f"{fn}: xs must have shape {layout}, got {tuple(xs.shape)}")
    return _steps_and_batch(xs, time_major)


def _steps_and_batch(xs: Any, time_major: bool) -> tuple[int, tuple[int, ...]]:
    if time_major:
        return xs.shape[0], tuple(xs.shape[1:-1])
    return xs.shape[-2], tuple(xs.shape[:-2])


def _common_scan_layout(
    xs: Any, p: Any, cls: Any, states: dict[str, Any], time_major: bool, gates: int
) -> ScanLayout | None:
    """The layout of a scan whose inputs pass every check of :func:`scan_inputs` on the
    common path (``params`` of class ``cls``; arrays of one type, dtype and device); ``None``
    sends the inputs through those checks, which name what is wrong.

    A scan of a short sequence takes a fraction of a millisecond, so these few attribute
    comparisons replace dozens of microseconds of namespace, device and dtype queries.
    """
    xp = namespace_of(xs)
    if type(p) is not cls or xp is None or xs.ndim < 2:
        return None
    arrays = [*p, *(s for s in states.values() if s is not None)]
    kind, dtype = type(xs), xs.dtype
    try:  # a tracer or a sharded array may refuse .device: take the thorough path
        dev = xs.device
        if any(type(a) is not kind or a.dtype != dtype or a.device != dev for a in arrays):
            return None
    except (AttributeError, TypeError, ValueError):
        return None
    if not xp.isdtype(dtype, "real floating"):
        return None
    gh, n_in = p.w_x.shape[-1], xs.shape[-1]
    n_h = gh // gates
    steps, batch = _steps_and_batch(xs, time_major)
    expected = {"w_x": (n_in, gh), "w_h": (n_h, gh), "b_x": (gh,), "b_h": (gh,)}
    expected.update({f: (w * n_h,) for f, w in WIDTHS.get(cls, {}).items()})
    shapes = [tuple(a.shape) for a in p] + [
        tuple(s.shape) for s in states.values() if s is not None
    ]
    expected_shapes = [expected.get(f) for f in p._fields] + [(*batch, n_h)] * (
        len(shapes) - len(p)
    )
    if n_h == 0 or n_h * gates != gh or shapes != expected_shapes:
        return None
    return ScanLayout(xp, p, steps, batch, n_h)


def lengths(fn: str, lengths: Any, layout: ScanLayout, xs: Array, concrete: bool) -> Array:
    """``lengths`` as an integer array of the batch shape with values in ``[0, T]``."""
    xp = layout.xp
    if not is_array_api_obj(lengths):
        try:
            lengths = xp.asarray(lengths, device=device(xs))
        except (TypeError, ValueError):
            raise TypeError(
                f"{fn}: lengths must be an integer array of shape {layout.batch}, "
                f"got {_describe(lengths)}"
            ) from None
    namespace(fn, {"xs": xs, "lengths": lengths})
    if not xp.isdtype(lengths.dtype, "integral"):
        raise TypeError(f"{fn}: lengths must have an integer dtype, got {lengths.dtype}")
    shape(fn, "lengths", lengths, layout.batch, "the batch shape of xs")
    if (
        concrete
        and 0 not in lengths.shape
        and bool(xp.any((lengths < 0) | (lengths > layout.steps)))
    ):
        raise ValueError(
            f"{fn}: lengths must lie in [0, T={layout.steps}], got values from "
            f"{int(xp.min(lengths))} to {int(xp.max(lengths))}"
        )
    return lengths


def _named_params(p: Any) -> dict[str, Any]:
    """The parameters by the names messages give them, for a container or a plain tuple of
    four (``w_x, w_h, b_x, b_h``) or two (``w_x, b_x``, a linear cell's) arrays."""
    plain = {4: ("w_x", "w_h", "b_x", "b_h"), 2: ("w_x", "b_x")}
    if isinstance(p, tuple | list) and len(p) in plain:
        fields = getattr(p, "_fields", plain[len(p)])
        return {f"params.{f}": a for f, a in zip(fields, p, strict=True)}
    return {}
