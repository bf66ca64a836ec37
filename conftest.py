"""Doctests of ``src/polyrnn`` see ``np`` and ``polyrnn`` without importing them.

A backend adapter imports its framework at the top (it is only ever loaded once the
user's arrays prove the framework is there), so its module is not collected for
doctests where the framework is not installed.
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

collect_ignore = [
    f"src/polyrnn/{module}.py"
    for name, module in (
        ("jax", "backends/jax"),
        ("torch", "backends/torch"),
        ("cupy", "backends/cupy"),
        ("torch", "nn/torch"),  # the framework modules, likewise
        ("flax", "nn/flax"),
        ("keras", "nn/keras"),
        ("jax", "lm/distributed_jax"),  # the language model's data parallelism on JAX
    )
    if importlib.util.find_spec(name) is None
]
if os.environ.get("KERAS_BACKEND") not in ("jax", "torch", "numpy"):
    # Keras's default backend, TensorFlow, is not one polyrnn takes (nor installed here)
    collect_ignore.append("src/polyrnn/nn/keras.py")


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace: dict) -> None:
    import polyrnn

    doctest_namespace.update(np=np, polyrnn=polyrnn)
