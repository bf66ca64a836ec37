"""Run the README's set-up commands as a new user would: fresh clone, fresh virtual environment.

    python tools/fresh_machine.py [--keep] [--only N]

Clones the repository's committed ``HEAD`` into a temporary folder (uncommitted changes
are not part of the check, as they are not part of a clone), creates a virtual
environment there with the Python running this script, and runs each command of the
README's "Set-up on a fresh machine" section exactly as written, in the clone, with the
environment activated.  The environment is otherwise this shell's: a ``PIP_CONSTRAINT``
set here (as ``.ci/run`` does) applies.  Prints the machine, each command's exit status
and time, and exits with the first failing status (0 when all pass).

The commands come from the README itself, so the check cannot drift from what users read.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Set-up on a fresh machine"


def readme_commands(readme: str) -> list[str]:
    """The ``sh`` code blocks of the README's set-up section, one command each."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else None]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    commands = [b.strip() for b in blocks]
    if len(commands) != 2 or any("\n" in c for c in commands):
        raise SystemExit(f"expected two one-line sh commands under {SECTION!r}, got {commands}")
    return commands


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.*)$", text, flags=re.MULTILINE)
        if model:
            return model.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--only", type=int, choices=(1, 2), help="run only the first or the second command"
    )
    args = parser.parse_args()

    commands = readme_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    chosen = [(i, c) for i, c in enumerate(commands, 1) if args.only in (None, i)]
    work = Path(tempfile.mkdtemp(prefix="polyrnn-fresh-"))
    clone, venv = work / "polyrnn", work / "venv"
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(f"clone of {ROOT} at {commit} in {clone}", flush=True)
    results = []
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        env = dict(os.environ, VIRTUAL_ENV=str(venv))
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
        env.pop("PYTHONHOME", None)
        for i, command in chosen:
            print(f"\n$ {command}", flush=True)
            start = time.perf_counter()
            done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, check=False)
            results.append((i, command, done.returncode, time.perf_counter() - start))
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'':2}{'status':>7}{'seconds':>9}  command")
    for i, command, status, seconds in results:
        print(f"{i:<2}{status:>7}{seconds:>9.0f}  {command}")
    return next((status for *_, status, _ in results if status != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
