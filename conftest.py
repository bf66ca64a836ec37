"""Doctests of ``src/polyrnn`` see ``np`` and ``polyrnn`` without importing them."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace: dict) -> None:
    import polyrnn

    doctest_namespace.update(np=np, polyrnn=polyrnn)
