"""The package as a whole: public API, lazy imports, the registry."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

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


def test_lazy_table_is_the_type_checking_imports():
    """The literal table ``__getattr__`` serves, the ``TYPE_CHECKING`` imports that type
    checkers read, and ``__all__`` name the same things."""
    tree = ast.parse(Path(polyrnn.__file__).read_text(encoding="utf-8"))
    block = next(
        s for s in tree.body if isinstance(s, ast.If) and ast.unparse(s.test) == "TYPE_CHECKING"
    )
    imported = {}
    for stmt in block.body:
        assert isinstance(stmt, ast.ImportFrom)
        for alias in stmt.names:
            imported[alias.name] = stmt.module
    names = {n: m for n, m in imported.items() if m is not None}
    submodules = {n for n, m in imported.items() if m is None}
    assert names == polyrnn._NAMES
    assert submodules == set(polyrnn._SUBMODULES)
    assert set(polyrnn.__all__) == set(names) | {"backends", "interop", "metrics"}


def _shown_names():
    """Every ``polyrnn.<submodule>.<name>`` of a public submodule that the docs, the README
    and the docstrings show."""
    root = Path(polyrnn.__file__).parent.parent.parent
    files = [*root.glob("src/polyrnn/**/*.py"), *root.glob("docs/*.md"), root / "README.md"]
    pattern = re.compile(r"\bpolyrnn((?:\.[A-Za-z_][A-Za-z0-9_]*){2,})")
    shown = set()
    for path in files:
        for m in pattern.finditer(path.read_text(encoding="utf-8")):
            if not m.group(1).startswith("._"):  # private modules name private helpers
                shown.add("polyrnn" + m.group(1))
    return sorted(shown)


def test_every_name_the_docs_show_resolves_after_import_polyrnn():
    """In a fresh interpreter, ``import polyrnn`` alone: each dotted name the docs show is
    an attribute chain (``polyrnn.lm.ModelConfig``, ``polyrnn.vjp.gru_scan_vjp``) or ends
    in a module of the package that exists (an adapter module, loaded with its framework).
    A framework's own module (``polyrnn.nn.torch``) where that framework is not installed
    must instead refuse to import with an ImportError that says what to install."""
    names = _shown_names()
    assert "polyrnn.lm.ModelConfig" in names and "polyrnn.vjp.gru_scan_vjp" in names
    code = (
        "import importlib.util, json, sys, polyrnn\n"
        "bad = []\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    obj, parts = polyrnn, name.split('.')[1:]\n"
        "    for i, part in enumerate(parts):\n"
        "        try:\n"
        "            found = hasattr(obj, part)\n"
        "        except ImportError as e:\n"
        "            if 'pip install' not in str(e):\n"
        "                bad.append(name)\n"
        "            break\n"
        "        if found:\n"
        "            obj = getattr(obj, part)\n"
        "        elif i == len(parts) - 1 and importlib.util.find_spec(name):\n"
        "            break\n"
        "        else:\n"
        "            bad.append(name)\n"
        "            break\n"
        "print(json.dumps(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(names)], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == []


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

    def cell_scan(self, *args, **kwargs):
        CountingAdapter.calls += 1
        return super().cell_scan(*args, **kwargs)


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


def _module_of(src, dotted):
    """The longest prefix of ``dotted`` that is a module of the package at ``src``."""
    while dotted.startswith("polyrnn"):
        path = src.parent / Path(*dotted.split("."))
        if path.with_suffix(".py").exists() or (path / "__init__.py").exists():
            return dotted
        dotted = dotted.rpartition(".")[0]
    return None


def _import_graph():
    """polyrnn's modules and the polyrnn modules each imports, anywhere in its body (a
    deferred import inside a function counts), except under ``if TYPE_CHECKING:``."""
    src = Path(polyrnn.__file__).parent
    graph = {}
    for path in src.rglob("*.py"):
        parts = path.relative_to(src.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {
            id(n)
            for s in ast.walk(tree)
            if isinstance(s, ast.If) and ast.unparse(s.test) == "TYPE_CHECKING"
            for n in ast.walk(s)
        }
        targets = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = (
                    node.module if node.level == 0 else ".".join(filter(None, [base, node.module]))
                )
                targets.add(module)
                targets |= {f"{module}.{a.name}" for a in node.names}  # from . import cells
        graph[name] = {m for t in targets if (m := _module_of(src, t)) not in (None, name)}
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    assert "polyrnn.scans" in graph and "polyrnn.lm.train" in graph
    cycles, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodules is not a cycle
            if state.get(nxt) == "open":
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
