"""Helpers for the executed pages of the docs (imported by their hidden cells).

The pages run with ``docs/`` as their working directory, so ``import _helpers`` works
there.  Nothing here is part of polyrnn.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from IPython.display import Markdown, display

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

LIBRARIES = {
    "numpy": "numpy",
    "jax": "jax.numpy",
    "torch": "torch",
    "cupy": "cupy",
}
"""The array libraries the docs show, by import name, with their array namespace."""


def have(name: str) -> bool:
    """Whether ``name`` is importable here (CuPy: and has a usable CUDA device)."""
    if importlib.util.find_spec(name) is None:
        return False
    if name == "cupy":
        try:
            return bool(importlib.import_module("cupy").is_available())
        except (ImportError, RuntimeError):
            return False
    return True


def installed() -> list[str]:
    """The libraries of :data:`LIBRARIES` that :func:`have` finds."""
    return [name for name in LIBRARIES if have(name)]


def version(name: str) -> str:
    try:
        return str(importlib.import_module(name).__version__)
    except (ImportError, AttributeError):
        return "?"


def rst_to_md(text: str) -> str:
    """Inline reST of a docstring as Markdown code: roles and ``literals`` become `code`.

    Used for one-line summaries in generated tables, where a link could not resolve
    (no current module) and raw reST would show its colons and backquotes.
    """

    def role(m: re.Match[str]) -> str:
        target = m.group(1).strip()
        return f"`{target.rsplit('.', 1)[-1]}`" if target.startswith("~") else f"`{target}`"

    text = re.sub(r":[\w:]+:`([^`<]*?)(?:\s*<[^>]*>)?`", role, text)
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    return text.replace("|", "\\|")


def md(text: str) -> None:
    """Show ``text`` as Markdown (MyST: tables, roles and math work)."""
    display(Markdown(text))


def note(text: str, kind: str = "note") -> None:
    """Show ``text`` in an admonition box."""
    md(f":::{{{kind}}}\n{text}\n:::")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` has one of ``l``, ``r``, ``c`` per column."""
    align = align or "l" * len(header)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def shift_headings(text: str, level: int) -> str:
    """Make the top heading of a Markdown ``text`` of level ``level`` (outside code fences)."""
    lines, fence, top = text.splitlines(), False, None
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"(#+) ", line)):
            top = len(m.group(1)) if top is None else min(top, len(m.group(1)))
    if top is None:
        return text
    out, fence = [], False
    for line in lines:
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.match(r"(#+) ", line)):
            out.append("#" * (len(m.group(1)) - top + level) + line[len(m.group(1)) :])
            continue
        out.append(line)
    return "\n".join(out)


def include_markdown(path: Path, level: int = 3) -> None:
    """Show a Markdown file written by a script, its headings nested at ``level``."""
    md(shift_headings(path.read_text(), level))


def run(args: Sequence[str], timeout: float = 120, cwd: Path = ROOT) -> str:
    """Run a command (``python`` means this interpreter) and return what it printed."""
    args = [sys.executable if a == "python" else a for a in args]
    out = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    return (out.stdout + out.stderr).rstrip()


def shell(command: Sequence[str], timeout: float = 120) -> None:
    """Show ``$ command`` and its output, as a console block."""
    shown = " ".join("python" if a == sys.executable else a for a in command)
    md(f"```console\n$ {shown}\n{run(command, timeout)}\n```")
