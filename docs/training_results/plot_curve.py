"""Plot learning curves written by ``polyrnn train --history FILE.json``.

    python docs/training_results/plot_curve.py shakespeare_jax_10min.json \
        --out shakespeare_jax_10min.png --target 1.55

Left: validation loss against training time; right: against training characters.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _load(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _history(path: str) -> list[dict]:
    return _load(path)["history"]  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("histories", nargs="+", help="JSON files from polyrnn train --history")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--target", type=float, help="draw this validation loss as a line")
    args = parser.parse_args()
    fig, (by_time, by_tokens) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for path in args.histories:
        doc = _load(path)
        m, t = doc["model"], doc["train"]
        label = (
            f"{doc['backend']} {m['layers']}x{m['cell'].upper()} H={m['hidden_size']} "
            f"E={m['embed_size']}, B={t['batch']} T={t['seq_len']} lr={t['lr']:g}, "
            f"{doc['history'][-1]['step']} steps, {doc['final']['tokens_per_s']:,.0f} char/s"
        )
        hist = doc["history"]
        val = [r["val_loss"] for r in hist]
        (line,) = by_time.plot([r["seconds"] / 60 for r in hist], val, "o-", label=label)
        by_tokens.plot([r["tokens"] / 1e6 for r in hist], val, "o-", label=label)
        train = [r for r in hist if r["train_loss"] is not None]
        for ax, x in ((by_time, "seconds"), (by_tokens, "tokens")):
            scale = 60 if x == "seconds" else 1e6
            ax.plot(
                [r[x] / scale for r in train],
                [r["train_loss"] for r in train],
                ":",
                color=line.get_color(),
            )
    for ax in (by_time, by_tokens):
        if args.target is not None:
            ax.axhline(args.target, color="red", lw=0.8, ls="--", label=f"target {args.target}")
        ax.grid(alpha=0.3)
    by_time.set_xlabel("training time (minutes, evaluation excluded)")
    by_tokens.set_xlabel("training characters (millions)")
    by_time.set_ylabel("validation loss (nats/char)")
    first = max(r["val_loss"] for path in args.histories for r in _history(path))
    by_time.set_ylim(top=min(first, 2.6))
    if first > 2.6:
        by_time.annotate(
            f"step 0: {first:.2f} (the uniform model: log V)",
            xy=(0.02, 0.97),
            xycoords="axes fraction",
            va="top",
            fontsize=8,
        )
    by_tokens.legend(fontsize=7)
    fig.suptitle("polyrnn character-level LM on tiny Shakespeare (dotted: training loss)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
