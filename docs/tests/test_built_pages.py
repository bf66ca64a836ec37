"""Checks of the built HTML pages, as a reader's browser shows them, with no network.

Run by ``nox -s docs`` after the HTML build (``pytest docs/tests``).  The pages are
opened as files in headless Chromium with every network request refused (a proxy that
does not exist, and a host resolver that resolves nothing), so MathJax and everything
else must come from the build itself.  Where no Chromium is installed the checks are
skipped, with the reason.  ``POLYRNN_CHROMIUM`` names the browser's executable,
``POLYRNN_DOCS_HTML`` the built site (``docs/_build/html`` by default); screenshots of
three pages are written to ``docs/_build/screenshots/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent
HTML = Path(os.environ.get("POLYRNN_DOCS_HTML", DOCS / "_build" / "html"))
SCREENSHOTS = DOCS / "_build" / "screenshots"

MATH_PAGES = ["cells", "tutorial", "performance", "linear", "api/generated/polyrnn"]
"""Pages with maths: inline, display, ``aligned`` blocks, tables of formulas, docstrings."""
SCREENSHOT_PAGES = ["cells", "getting-started", "performance"]

OFFLINE = [
    "--proxy-server=127.0.0.1:9",  # nothing listens there: every request fails
    "--host-resolver-rules=MAP * ~NOTFOUND",  # and no name resolves
]


def _chromium() -> str | None:
    names = [os.environ.get("POLYRNN_CHROMIUM", ""), "chromium", "chromium-browser"]
    names += ["google-chrome", "google-chrome-stable"]
    return next((path for name in names if name and (path := shutil.which(name))), None)


CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium here (install it, e.g. apt-get install chromium, or set "
        "POLYRNN_CHROMIUM): the built pages were not checked in a browser",
    ),
    pytest.mark.skipif(
        not (HTML / "index.html").exists(), reason=f"no built site in {HTML}: run nox -s docs"
    ),
]


def _browse(page: str, *options: str) -> subprocess.CompletedProcess[str]:
    """Open a built page in headless Chromium, offline; what it printed."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory() as profile:
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *OFFLINE,
            "--virtual-time-budget=30000",  # let MathJax finish (virtual, not wall time)
            *options,
            (HTML / f"{page}.html").as_uri(),
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


class _Text(HTMLParser):
    """The text a reader sees: no scripts, styles or MathJax's hidden copy for screen
    readers; also counts MathJax's rendered formulas and its error boxes."""

    HIDDEN = frozenset({"script", "style", "mjx-assistive-mml", "head"})

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.text: list[str] = []
        self.rendered = 0
        self.errors = 0
        self.math = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        self.rendered += tag == "mjx-container"
        self.errors += tag == "mjx-merror"
        self.math += tag in ("span", "div") and "math" in classes
        self.depth += tag in self.HIDDEN

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag in self.HIDDEN

    def handle_data(self, data: str) -> None:
        if self.depth == 0:
            self.text.append(data)


RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\\begin\{|\$\$")


@pytest.mark.parametrize("page", MATH_PAGES)
def test_maths_renders_offline(page: str) -> None:
    out = _browse(page, "--dump-dom")
    assert out.returncode == 0, out.stderr[-2000:]
    seen = _Text()
    seen.feed(out.stdout)
    text = "".join(seen.text)
    assert seen.math > 0, f"{page}: no maths on the page (has it moved?)"
    raw = sorted({m.group(0) for m in RAW_TEX.finditer(text)})
    assert not raw, f"{page}: raw TeX left in the rendered text: {raw}"
    assert seen.rendered >= seen.math, (
        f"{page}: {seen.math} formulas, only {seen.rendered} rendered by MathJax"
    )
    assert seen.errors == 0, f"{page}: {seen.errors} MathJax errors"


@pytest.mark.parametrize("page", SCREENSHOT_PAGES)
def test_screenshot(page: str) -> None:
    """A 1280-pixel-wide picture of the page's top, offline, for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{page}.png"
    path.unlink(missing_ok=True)
    out = _browse(page, f"--screenshot={path}", "--window-size=1280,2400", "--hide-scrollbars")
    assert out.returncode == 0, out.stderr[-2000:]
    assert path.stat().st_size > 10_000, f"{page}: an empty screenshot"
