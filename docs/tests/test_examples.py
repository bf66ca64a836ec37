"""Every example a reader can copy from the pages runs where a reader would run it.

For each page, the code a reader sees (the ``code-cell`` blocks that are not hidden, and
the ``doctest`` blocks without their prompts and outputs, which is what the copy button
copies) is joined in page order into one script and run in a virtual environment of its
own, with polyrnn installed **from its wheel** (not the checkout), in an empty
temporary directory: an example that imports the docs' helpers, reads a file of the
repository or leans on a name defined in a hidden cell fails here.

The environment is built once under ``docs/_build/examples-venv`` and reused; the wheel
is rebuilt and reinstalled on every run.  It installs ``polyrnn[jax,torch,flax,keras]`` and
matplotlib, so pip honours ``PIP_CONSTRAINT`` (CI's pin of torch's CPU wheel).
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
BUILD = DOCS / "_build"
VENV = BUILD / "examples-venv"
HIDDEN = {"remove-cell", "remove-input"}

FENCE = re.compile(r"^```\{(code-cell|doctest)\}[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def _options(body: str) -> tuple[dict[str, str], str]:
    """The ``:name: value`` lines at the top of a directive, and the rest."""
    options, lines = {}, body.splitlines(keepends=True)
    while lines and (m := re.match(r"^:([\w-]+):\s*(.*)$", lines[0])):
        options[m.group(1)] = m.group(2)
        lines.pop(0)
    return options, "".join(lines)


def examples(page: Path) -> str:
    """The code of ``page`` a reader can copy, in page order, as one script."""
    parts = []
    for kind, body in FENCE.findall(page.read_text()):
        options, code = _options(body)
        if kind == "code-cell":
            if HIDDEN & set(re.findall(r"[\w-]+", options.get("tags", ""))):
                continue
            parts.append(code)
        else:
            parts.append("".join(e.source for e in doctest.DocTestParser().get_examples(code)))
    return "\n".join(parts)


PAGES = sorted(p.stem for p in DOCS.glob("*.md") if examples(p).strip())


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a virtual environment with polyrnn installed from its wheel."""
    exe = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not exe.exists():
        venv.create(VENV, with_pip=True, clear=True)
    wheels = tmp_path_factory.mktemp("wheel")
    pip = [str(exe), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)], check=True)
    (wheel,) = wheels.glob("polyrnn-*.whl")
    subprocess.run(
        [*pip, "install", "-q", f"{wheel}[jax,torch,flax,keras]", "matplotlib"], check=True
    )
    subprocess.run([*pip, "install", "-q", "--force-reinstall", "--no-deps", wheel], check=True)
    return exe


@pytest.mark.parametrize("page", PAGES)
def test_examples_run_from_the_wheel(page: str, python: Path, tmp_path: Path) -> None:
    script = tmp_path / f"{page}.py"
    script.write_text(examples(DOCS / f"{page}.md"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1"}
    out = subprocess.run(
        [str(python), "-I", str(script.name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, f"{page}'s examples failed:\n{out.stderr[-3000:]}"


def test_the_examples_come_from_the_wheel(python: Path, tmp_path: Path) -> None:
    """Not the checkout: the installed package lives in the environment."""
    where = subprocess.run(
        [str(python), "-I", "-c", "import polyrnn; print(polyrnn.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(VENV.resolve()), where
    assert sys.prefix != str(VENV)
