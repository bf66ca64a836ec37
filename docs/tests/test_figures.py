"""The README quotes the benchmark's figures; they must be those of the results file the
Performance page draws its tables from (``benchmarks/results/bench.json``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(DOCS))
import _bench

README = (DOCS.parent / "README.md").read_text()
SHAPES = {"seed": "seed", "LM": "lm", "large": "large", "long": "long"}
MODES = {"forward": "fwd", "forward + backward": "fwd+bwd"}

pytestmark = pytest.mark.skipif(not _bench.BENCH.exists(), reason="no benchmark results")


def test_readme_ratio_table_is_the_results_file() -> None:
    bench = _bench.load()
    expected = {(shape, mode): row for shape, mode, row in _bench.ratios(bench)}
    quoted = re.findall(
        r"^\| (seed|LM|large|long)\b[^|]* \| (forward(?: \+ backward)?) \| ([\d.]+) \| "
        r"([\d.]+) \| ([\d.]+) \|$",
        README,
        flags=re.MULTILINE,
    )
    assert len(quoted) == len(expected), "the README's ratio table lost or gained rows"
    for shape, mode, *values in quoted:
        row = expected[(SHAPES[shape], MODES[mode])]
        computed = [f"{v:.2f}" for v in row.values()]
        assert values == computed, f"README {shape}, {mode}: {values}, results file {computed}"


def test_readme_speed_ups_are_the_results_file() -> None:
    up = _bench.speed_ups(_bench.load())
    match = re.search(r"(\d+)x \(JAX\), (\d+)x \(NumPy\) and (\d+)x \(torch\)", README)
    assert match, "the README no longer quotes the seed speed-ups"
    quoted = dict(zip(("JAX", "NumPy", "torch"), map(int, match.groups()), strict=True))
    assert quoted == {k: round(v) for k, v in up.items()}
