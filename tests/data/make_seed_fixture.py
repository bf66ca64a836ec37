"""Regenerate ``seed_weights.npz``: the seed notebook's weights and inputs, bit for bit.

The notebook (``shared/seed/000_84e017c020fcd0f4.txt``, cell In [13]) draws every array
with ``trax.fastmath.random.normal(key=random_key, shape=...)`` and the *same* key
``trax.fastmath.random.get_prng(seed=0)``, which is ``jax.random.PRNGKey(0)``.  So
``w1 == w2 == w3`` and ``b1 == b2 == b3 == b4``: the notebook reuses its key, and the
fixture keeps that faithfully.  Trax ran JAX with 64-bit mode off, so every draw is
float32; JAX reproduces those numbers only with the old, non-partitionable threefry.

Run once, from the repository root, with JAX installed::

    python tests/data/make_seed_fixture.py

The tests read the ``.npz`` and need no JAX; ``tests/test_seed.py`` regenerates the
arrays with :func:`make_weights` (when JAX is present) and checks they are unchanged.
"""

from __future__ import annotations

import pathlib

import numpy as np

EMB = 128  # input size D
T = 256  # sequence length
H_DIM = 16  # hidden size H

SHAPES: dict[str, tuple[int, ...]] = {
    "w1": (H_DIM, EMB + H_DIM),
    "w2": (H_DIM, EMB + H_DIM),
    "w3": (H_DIM, EMB + H_DIM),
    "w4": (H_DIM, H_DIM),
    "b1": (H_DIM, 1),
    "b2": (H_DIM, 1),
    "b3": (H_DIM, 1),
    "b4": (H_DIM, 1),
    "X": (T, EMB, 1),
}
"""Name and shape of every array of the notebook, in the order it draws them."""

PATH = pathlib.Path(__file__).with_name("seed_weights.npz")


def make_weights() -> dict[str, np.ndarray]:
    """The notebook's arrays as float32 NumPy arrays, drawn exactly as the notebook does."""
    import jax
    import jax.numpy as jnp

    with jax.threefry_partitionable(False):
        key = jax.random.PRNGKey(0)  # trax.fastmath.random.get_prng(seed=0)
        return {
            name: np.asarray(jax.random.normal(key, shape, dtype=jnp.float32))
            for name, shape in SHAPES.items()
        }


def main() -> None:
    arrays = make_weights()
    np.savez_compressed(PATH, **arrays)
    print(
        f"wrote {PATH} ({PATH.stat().st_size} bytes): "
        + ", ".join(f"{k}{v.shape}" for k, v in arrays.items())
    )


if __name__ == "__main__":
    main()
