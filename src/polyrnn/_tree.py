"""A minimal pytree: nested tuples (named ones too), lists and dicts of arrays.

Used by the Array-API :func:`polyrnn.scan`; the JAX adapter uses :mod:`jax.tree_util`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._compat import is_array_api_obj


def flatten(tree: Any) -> tuple[list[Any], Callable[[list[Any]], Any]]:
    """Leaves of ``tree`` in order, and a function building the same structure from new leaves."""
    if tree is None:
        return [], lambda leaves: None
    if isinstance(tree, tuple | list | dict):
        keys = list(tree) if isinstance(tree, dict) else range(len(tree))
        parts = [flatten(tree[k]) for k in keys]
        sizes = [len(leaves) for leaves, _ in parts]

        def rebuild(leaves: list[Any]) -> Any:
            out, start = [], 0
            for (_, build), size in zip(parts, sizes, strict=True):
                out.append(build(leaves[start : start + size]))
                start += size
            if isinstance(tree, dict):
                return dict(zip(keys, out, strict=True))
            if hasattr(tree, "_fields"):  # NamedTuple
                return type(tree)(*out)
            return type(tree)(out)

        return [leaf for leaves, _ in parts for leaf in leaves], rebuild
    return [tree], lambda leaves: leaves[0]


def map_(fn: Callable[..., Any], tree: Any, *rest: Any) -> Any:
    """``fn`` applied leaf by leaf to trees of one structure."""
    leaves, rebuild = flatten(tree)
    others = [flatten(r)[0] for r in rest]
    return rebuild([fn(*args) for args in zip(leaves, *others, strict=True)])


def kinds(tree: Any) -> list[tuple[Any, ...]]:
    """Each leaf's shape and dtype (its type when it is not an array): what a scan's step
    or an associative operator must keep.  Cheap to compare; :func:`describe` words it."""
    return [
        (tuple(a.shape), a.dtype) if is_array_api_obj(a) else (type(a),) for a in flatten(tree)[0]
    ]


def describe(found: list[tuple[Any, ...]]) -> list[str]:
    """:func:`kinds` as words for an error message: ``"(2, 3) float64"`` or a type name."""
    return [f"{k[0]} {k[1]}" if len(k) == 2 else k[0].__name__ for k in found]
