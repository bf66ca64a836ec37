"""Cupy: the Array-API reference for now; specialisations arrive with the adapters issue."""

from __future__ import annotations

from ._base import Adapter


class CupyAdapter(Adapter):
    name = "cupy"
