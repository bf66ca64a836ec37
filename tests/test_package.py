"""The package as a whole: public API, lazy imports, the registry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import polyrnn


def test_import_loads_no_framework():
    code = (
        "import sys, polyrnn; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'jax', 'cupy', 'jaxlib', 'keras', 'flax'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_is_lazy_and_names_resolve_in_any_order():
    """``import polyrnn`` loads no other module (names bind on first use), and loading the
    submodules first leaves every exported name the function, not a module."""
    code = (
        "import sys, polyrnn; "
        "print(sorted(m for m in sys.modules if m.startswith(('polyrnn.', 'numpy', 'array_api')))); "
        "import polyrnn.vjp, polyrnn.lm, polyrnn.scans; "
        "print(all(callable(getattr(polyrnn, n)) or n in ('backends', 'interop', 'metrics') "
        "for n in polyrnn.__all__), type(polyrnn.scan).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True function"]


def test_lazy_names_are_the_type_checking_imports():
    """``__all__`` lists exactly the names ``__getattr__`` serves (the TYPE_CHECKING imports)."""
    assert sorted(polyrnn._read_homes()) == polyrnn.__all__


def test_all_is_complete_and_sorted():
    for name in polyrnn.__all__:  # load every lazy name, then look at what the module holds
        getattr(polyrnn, name)
    own = {"annotations", "importlib", "TYPE_CHECKING", "Any"}  # __init__'s own imports
    public = {n for n in vars(polyrnn) if not n.startswith("_")} - own
    assert set(polyrnn.__all__) <= public
    modules = {n for n in public if type(getattr(polyrnn, n)).__name__ == "module"}
    assert public - modules <= set(polyrnn.__all__), public - modules - set(polyrnn.__all__)
    assert list(polyrnn.__all__) == sorted(polyrnn.__all__)


def test_unknown_namespace_gets_reference_adapter():
    strict = pytest.importorskip("array_api_strict")
    from array_api_compat import array_namespace

    adapter = polyrnn.backends.get_adapter(array_namespace(strict.ones(1)))
    assert type(adapter) is polyrnn.backends.Adapter
    assert polyrnn.backends.get_adapter(array_namespace(strict.ones(1))) is adapter  # cached


class CountingAdapter(polyrnn.backends.Adapter):
    calls = 0

    def gru_scan(self, *args, **kwargs):
        CountingAdapter.calls += 1
        return super().gru_scan(*args, **kwargs)


def test_register_a_third_party_adapter():
    polyrnn.backends.register("array_api_compat.numpy", "test_package:CountingAdapter")
    try:
        p = polyrnn.init_gru(2, 3)
        hs, _ = polyrnn.gru_scan(np.ones((4, 2)), p)
        assert CountingAdapter.calls == 1
    finally:
        polyrnn.backends.unregister("array_api_compat.numpy")
    ref, _ = polyrnn.gru_scan(np.ones((4, 2)), p)
    np.testing.assert_allclose(hs, ref, rtol=1e-12, atol=1e-14)  # reference vs NumPy adapter
    assert CountingAdapter.calls == 1
    with pytest.raises(ValueError, match="module:ClassName"):
        polyrnn.backends.register("x", "no_colon")
