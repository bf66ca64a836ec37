"""Sphinx configuration of polyrnn's documentation.

Build it with ``nox -s docs``, or by hand from the repository root::

    sphinx-build -W --keep-going -n -b html -d docs/_build/doctrees docs docs/_build/html
    sphinx-build -W --keep-going -n -b doctest -d docs/_build/doctrees docs docs/_build/doctest

Three things happen at build time, so that the pages follow the code instead of drifting
from it:

1. The API reference is written from ``__all__``: ``api/generated/*.rst`` (git-ignored)
   are regenerated on every build by :func:`write_api_pages`, one page for the names of
   ``polyrnn.__all__`` and one per public submodule with names of its own.  A new public
   name or module appears without touching the docs.
2. Pages with a ``kernelspec`` in their front matter (getting started, the tutorial, the
   backend table, performance, training, linear recurrences, design) are executed by
   myst-nb, so every number on them was computed by the code being documented.  Set
   ``POLYRNN_DOCS_EXECUTE=off`` for a quick draft build without executing them.
3. Intersphinx links to NumPy, JAX, PyTorch, CuPy, the Array API standard and Python are
   configured, but each inventory is probed first and dropped when unreachable (an
   offline build, or ``POLYRNN_DOCS_OFFLINE=1``): the build then neither fails nor warns,
   and references into that project render as plain code (see ``nitpick_ignore_regex``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
if str(ROOT / "src") not in sys.path and importlib.util.find_spec("polyrnn") is None:
    sys.path.insert(0, str(ROOT / "src"))  # a build without `pip install -e .`

import polyrnn

logger = logging.getLogger("polyrnn-docs")

# -- project -------------------------------------------------------------------------

project = "polyrnn"
author = "The polyrnn developers"
copyright = "the polyrnn developers"
release = polyrnn.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # MyST Markdown (includes myst_parser) and executed pages
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "sphinxarg.ext",  # the command-line page, from polyrnn.cli's argument parser
    "sphinx_copybutton",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    # Written by others and included where they belong, never pages on their own:
    "training_results/**",
    "linear_results/**",
    "gpu_results.md",
]
templates_path = ["_templates"]
html_static_path = ["_static"]

# -- HTML ----------------------------------------------------------------------------

html_theme = "furo"
html_title = f"polyrnn {release}"
html_css_files = ["polyrnn.css"]
html_theme_options = {"navigation_with_keys": True}
html_show_sourcelink = False
pygments_style = "friendly"
pygments_dark_style = "monokai"

# A copy button on every code block that copies what to type: without the ">>> ",
# "... " and "$ " prompts, and without the outputs of examples that have prompts.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
copybutton_only_copy_prompt_lines = True
copybutton_exclude = ".linenos, .gp, .go"

# -- maths, with no network ----------------------------------------------------------

# MathJax is shipped with the pages, not fetched from a CDN when they are read: the
# ``sphinx-mathjax-offline`` package (docs dependency group) bundles MathJax 3.2.2, whose
# files go to ``_static/mathjax/`` (fonts and lazily loaded components included), so the
# maths renders offline, e.g. from ``docs/_build/html`` opened as files.
# ``docs/tests/test_built_pages.py`` checks it in a headless browser with the network off.
_MATHJAX_PACKAGE = importlib.util.find_spec("sphinx-mathjax-offline")
if _MATHJAX_PACKAGE is not None and _MATHJAX_PACKAGE.submodule_search_locations:
    html_static_path.append(str(Path(_MATHJAX_PACKAGE.submodule_search_locations[0]) / "static"))
    mathjax_path = "mathjax/tex-mml-chtml.js"  # the bundle Sphinx's own CDN default names

# -- MyST and myst-nb ----------------------------------------------------------------

myst_enable_extensions = ["amsmath", "colon_fence", "deflist", "dollarmath", "substitution"]
myst_heading_anchors = 3
# Smart quotes, but no dashes: "--lr" in prose and option help must stay two hyphens,
# not become an en dash that a reader would copy into a shell.
smartquotes_action = "qe"
myst_dmath_double_inline = True

# The executed pages (and the processes they start) use one BLAS/OpenMP thread: builds run
# on small shared machines, where thread pools fighting over two cores make timings and
# build times erratic.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# Keras (the Keras page, and autodoc importing polyrnn.nn.keras) on JAX, unless the
# builder chose another backend polyrnn takes: Keras's default, TensorFlow, is not one.
os.environ.setdefault("KERAS_BACKEND", "jax")

nb_execution_mode = "off" if os.environ.get("POLYRNN_DOCS_EXECUTE") == "off" else "force"
nb_execution_timeout = 300  # seconds per cell
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_merge_streams = True
nb_render_markdown_format = "myst"  # tables and roles in generated Markdown output
nb_output_stderr = "show"
if nb_execution_mode == "off":  # unexecuted cells have no language metadata; that is fine
    suppress_warnings = ["mystnb.lexer", "myst-nb.lexer"]

# -- autodoc, autosummary, napoleon --------------------------------------------------

autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
autosummary_generate = False  # the API pages are written by write_api_pages below
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_param = False  # types are prose ("array, shape (..., H)"): shown, not linked
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_preprocess_types = False

# -- doctest -------------------------------------------------------------------------

# Only the pages' explicit ``doctest``/``testcode`` directives are run here; the examples
# in the library's docstrings are run by ``nox -s doctests`` (pytest), not twice.
doctest_test_doctest_blocks = ""
doctest_global_setup = """
import importlib.util
import numpy as np
import polyrnn

def _importable(name):
    return importlib.util.find_spec(name) is not None

have_torch = _importable("torch")
have_jax = _importable("jax")
np.set_printoptions(precision=6, suppress=True)
"""

# -- intersphinx ---------------------------------------------------------------------

_INVENTORIES = {
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "jax": ("https://docs.jax.dev/en/latest/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "cupy": ("https://docs.cupy.dev/en/stable/", None),
    "array-api": ("https://data-apis.org/array-api/latest/", None),
}
"""Every project we link to; :func:`_reachable_inventories` keeps those that answer."""

_EXTERNAL_MODULES = {
    "python": r"typing|collections|abc|builtins|threading|importlib|functools|"
    r"[A-Z]\w*(Error|Exception|Warning)|int|float|str|bool|tuple|list|dict|None|callable",
    "numpy": r"numpy|np",
    "jax": r"jax",
    "torch": r"torch",
    "cupy": r"cupy",
    "array-api": r"array_api",
}
"""Names each project documents (a regex), ignored by nitpicky mode when it is offline."""

intersphinx_timeout = 10


def _reachable_inventories() -> dict[str, tuple[str, None]]:
    """The entries of ``_INVENTORIES`` whose ``objects.inv`` answers a HEAD request."""
    if os.environ.get("POLYRNN_DOCS_OFFLINE"):
        return {}

    def probe(url: str) -> bool:
        request = urllib.request.Request(url + "objects.inv", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=5):
                return True
        except (OSError, ValueError):  # no network, no DNS, an HTTP error: all offline
            return False

    with ThreadPoolExecutor(len(_INVENTORIES)) as pool:
        urls = [url for url, _ in _INVENTORIES.values()]
        ok = dict(zip(_INVENTORIES, pool.map(probe, urls), strict=True))
    return {name: entry for name, entry in _INVENTORIES.items() if ok[name]}


intersphinx_mapping = _reachable_inventories()
_offline = sorted(set(_INVENTORIES) - set(intersphinx_mapping))

# -- nitpicky mode -------------------------------------------------------------------

nitpick_ignore_regex = [
    # Libraries without an intersphinx inventory we link to.
    (r"py:.*", r"(flax|keras|optax|torchmetrics|array_api_compat|array_api_strict)(\..*)?"),
    # Literal choices in numpydoc types, e.g. activation : {"tanh", "sigmoid", "relu"}.
    (r"py:.*", r"""[{]?\s*(["'][^"']*["'])\s*[}]?"""),
    # Projects whose inventory could not be fetched (offline build): plain code, no link.
    *((r"py:.*", rf"({_EXTERNAL_MODULES[name]})(\..*)?") for name in _offline),
]

# -- the API reference, written from __all__ ------------------------------------------

API_DIR = DOCS / "api" / "generated"

GROUP_TITLES = {
    "polyrnn.params": "Parameters",
    "polyrnn.cells": "Cells: one step",
    "polyrnn.scans": "Scans: a whole sequence",
    "polyrnn.layers": "Layers: stacked and bidirectional",
    "polyrnn.vjp": "Gradients without autodiff (BPTT)",
    "polyrnn.metrics": "Language-model metrics",
}
"""Section titles of the top-level page, by defining module; others get their name."""

ENTRY_POINTS = {
    "polyrnn.lm": [
        "Trainer",
        "TrainConfig",
        "ModelConfig",
        "TrainReport",
        "LanguageModel",
        "load",
        "save",
        "sample",
        "evaluate",
        "read_text",
        "get_backend",
    ],
    "polyrnn.backends": ["get_adapter", "register", "unregister", "registered", "Adapter"],
}
"""The names a reader looks for first on a submodule's page, in this order; the others
follow in source order, exceptions last."""

NOT_API = {"cli", "__main__"}
"""Public-looking submodules that are not Python API (the command line has its own page)."""


def _heading(text: str, char: str, over: bool = False) -> str:
    line = char * len(text)
    return f"{line}\n{text}\n{line}\n" if over else f"{text}\n{line}\n"


def _directive(obj: Any) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if callable(obj):
        return "autofunction"
    return "autodata"


def _source_order(obj: Any) -> tuple[int, int]:
    try:
        return (0 if inspect.isclass(obj) else 1, inspect.getsourcelines(obj)[1])
    except (OSError, TypeError):
        return (2, 0)


def _reading_order(module: str, names: list[str], objects: dict[str, Any]) -> list[str]:
    """``names`` as a reader wants them: :data:`ENTRY_POINTS` first, exceptions last."""
    main = ENTRY_POINTS.get(module, [])

    def key(name: str) -> tuple[int, int, tuple[int, int]]:
        obj = objects[name]
        error = inspect.isclass(obj) and issubclass(obj, BaseException)
        first = main.index(name) if name in main else len(main)
        return (first, int(error), _source_order(obj))

    return sorted(names, key=key)


def _attribute_doc(module: ModuleType, name: str) -> str | None:
    """The ``#:`` or string docstring of a module-level name, wherever in the package it is
    defined (autodoc only looks in the module it documents, and falls back to the
    docstring of the value's type, e.g. ``dict``'s)."""
    package = module.__name__.split(".")[0]
    inside = sorted(m for m in sys.modules if m.startswith(module.__name__ + "."))
    for candidate in [module.__name__, *inside, package]:
        try:
            docs = ModuleAnalyzer.for_module(candidate).find_attr_docs()
        except PycodeError:  # no source to analyse
            docs = {}
        if ("", name) in docs:
            return "\n".join(docs[("", name)]).strip()
    return None


def _entries(qualifier: str, names: list[str], objects: dict[str, Any]) -> list[str]:
    """An autosummary table of ``names`` followed by their full descriptions."""
    documented = [n for n in names if _directive(objects[n]) != "autodata"]
    data = [n for n in names if n not in documented]
    lines = [".. autosummary::", ""] + [f"   {n}" for n in documented] + [""]
    for n in documented:
        lines.append(f".. {_directive(objects[n])}:: {qualifier}.{n}")
        if inspect.isclass(objects[n]):
            lines.append("   :members:")
        lines.append("")
    module = importlib.import_module(qualifier)
    for n in data:  # constants: their docstring from the source, not their type's
        doc = _attribute_doc(module, n) or ""
        lines += [f".. py:data:: {n}", ""]
        lines += [f"   {line}" if line else "" for line in doc.splitlines()] + [""]
    return lines


def _public_submodules(package: ModuleType) -> tuple[list[ModuleType], list[str]]:
    """The public submodules of ``package`` that import here, and notes on those that don't."""
    modules, notes = [], []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in NOT_API:
            continue
        name = f"{package.__name__}.{info.name}"
        try:
            modules.append(importlib.import_module(name))
        except ImportError as err:  # an optional dependency missing where the docs are built
            notes.append(f"``{name}`` could not be imported here ({type(err).__name__}: {err}).")
    return modules, notes


def _submodule_sections(package: ModuleType) -> list[str]:
    """A "Modules" section: the docstring of each public submodule of a package."""
    if not hasattr(package, "__path__"):
        return []
    modules, notes = _public_submodules(package)
    if not modules and not notes:
        return []
    lines = [_heading("Modules", "-")]
    lines += [f"What each module of ``{package.__name__}`` holds:", ""]
    for module in modules:
        # The module's docstring, read in the package's namespace: it names the
        # package's re-exported objects by their short names.
        lines += [_heading(f"``{module.__name__}``", "~")]
        lines += [f".. py:module:: {module.__name__}", ""]
        lines += [f".. currentmodule:: {package.__name__}", ""]
        lines += [inspect.getdoc(module) or "", ""]
    lines += [f".. note:: {n}\n" for n in notes]
    return lines


def api_pages() -> dict[str, str]:
    """The reST source of every API page, by file name."""
    top = {n: getattr(polyrnn, n) for n in polyrnn.__all__}
    top_names = {n: o for n, o in top.items() if not inspect.ismodule(o)}
    exported = {id(o): n for n, o in top_names.items()}
    submodules, notes = _public_submodules(polyrnn)
    submodules = [m for m in submodules if hasattr(m, "__all__")]

    # A submodule gets its own page when it has names not exported at the top level.
    own: dict[str, list[str]] = {}
    for module in submodules:
        names = [n for n in module.__all__ if id(getattr(module, n)) not in exported]
        if names:
            own[module.__name__] = names

    groups: dict[str, list[str]] = {}
    for name, obj in top_names.items():
        groups.setdefault(getattr(obj, "__module__", "polyrnn"), []).append(name)
    order = list(GROUP_TITLES) + sorted(set(groups) - set(GROUP_TITLES))

    out = [_heading("polyrnn", "="), ".. automodule:: polyrnn", "   :no-members:", ""]
    out += [".. currentmodule:: polyrnn", ""]
    out += [
        "Everything on this page is ``polyrnn.__all__``: importable as ``polyrnn.<name>``.",
        "The submodules with names of their own have their own pages: "
        + ", ".join(f":mod:`{m}`" for m in sorted(own))
        + ".",
        "",
    ]
    for module_name in (m for m in order if m in groups):
        names = sorted(groups[module_name], key=lambda n: _source_order(top_names[n]))
        out += [_heading(GROUP_TITLES.get(module_name, f"From ``{module_name}``"), "-")]
        private = any(part.startswith("_") for part in module_name.split("."))
        if module_name in own:
            out += [f"Also part of :mod:`{module_name}`, which has its own page.", ""]
        elif not private and module_name != "polyrnn":
            # The module's docstring as an introduction.
            out += [f".. automodule:: {module_name}", "   :no-members:", ""]
            out += [".. currentmodule:: polyrnn", ""]
        out += _entries("polyrnn", names, top_names)

    pages = {"polyrnn.rst": "\n".join(out)}
    for module in submodules:
        name = module.__name__
        if name not in own:
            continue
        objects = {n: getattr(module, n) for n in own[name]}
        names = _reading_order(name, own[name], objects)
        lines = [_heading(name, "="), f".. automodule:: {name}", "   :no-members:", ""]
        lines += [f".. currentmodule:: {name}", ""]
        also = [n for n in module.__all__ if n not in own[name]]
        if also:
            refs = ", ".join(f":obj:`polyrnn.{exported[id(getattr(module, n))]}`" for n in also)
            lines += [f"Also defined here and exported at the top level: {refs}.", ""]
        lines += [_heading("Reference", "-")]
        lines += _entries(name, names, objects)
        lines += _submodule_sections(module)
        pages[f"{name}.rst"] = "\n".join(lines)
    if notes:
        pages["polyrnn.rst"] += "\n\n" + "\n".join(f".. note:: {n}\n" for n in notes)
    return pages


def write_api_pages() -> None:
    """Write :func:`api_pages` to ``api/generated/``, touching only files that change."""
    API_DIR.mkdir(parents=True, exist_ok=True)
    pages = api_pages()
    for stale in {p.name for p in API_DIR.glob("*.rst")} - set(pages):
        (API_DIR / stale).unlink()
    for name, text in pages.items():
        path = API_DIR / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


write_api_pages()


def _prose_attribute_docstrings(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Keep napoleon from reading an attribute docstring's first line as ``type: text``.

    polyrnn annotates types in code, so in "Length of the carry: 1 or 2" the colon is
    prose; napoleon would make "Length of the carry" a (broken) type link.  A leading
    empty reST comment (``..``), which renders as nothing, gives napoleon a first line
    without a colon.  Runs before napoleon (priority 500).
    """
    if what in ("attribute", "data", "property") and lines and ":" in lines[0]:
        lines[:0] = ["..", ""]


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _prose_attribute_docstrings, priority=400)
    if _MATHJAX_PACKAGE is None:
        logger.warning(
            "sphinx-mathjax-offline is not installed: the maths loads MathJax from a CDN and "
            "shows raw TeX offline (install the docs dependency group, or use nox -s docs)"
        )
    if _offline:
        logger.info(
            "intersphinx: no inventory from %s (offline?); their names render unlinked",
            ", ".join(_offline),
        )
