"""Check a training run's ``log.csv``: the mean of one loss term over its last steps.

    python -m sam2_model.training.logcheck runs/demo/1_image_seed31/log.csv \\
        --term dice --last 500 --below 0.5

prints the mean and exits 0 when it is below the bound, 3 when it is not, 2 when the log cannot
be read (the message names the file, the row or the column); 1 is left to Python's own errors,
so that a script never takes a crash for an answer. ``scripts/train_demo.sh`` uses it
to tell a single-frame stage that left the empty-mask plateau (dice loss ~0.2-0.3 at the end)
from one that stayed on it (~0.6-0.7) before training video on top of it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

__all__ = ["NOT_BELOW", "LogError", "mean_over_last", "read_log"]

NOT_BELOW = 3  # the exit status when the mean is not below the bound


class LogError(ValueError):
    """A ``log.csv`` that cannot be used; the message names the file and what is wrong."""


def read_log(path: str | Path) -> list[dict[str, float]]:
    """The rows of a trainer's ``log.csv`` (``step`` and the loss terms as floats), in order."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            raw = list(csv.DictReader(f))
    except OSError as exc:
        raise LogError(f"{path}: cannot read the training log ({exc.strerror})") from exc
    rows = []
    for line, row in enumerate(raw, start=2):  # line 1 is the header
        try:
            rows.append({k: float(v) for k, v in row.items()})
        except (TypeError, ValueError) as exc:
            raise LogError(f"{path}, line {line}: not a row of numbers: {row}") from exc
    if not rows:
        raise LogError(f"{path}: the training log has no rows yet")
    if "step" not in rows[0]:
        raise LogError(f"{path}: no 'step' column (columns: {', '.join(rows[0])})")
    return rows


def mean_over_last(rows: list[dict[str, float]], term: str, steps: int) -> float:
    """The mean of ``term`` over the rows logged in the last ``steps`` steps of the run
    (``step > last_step - steps``; at least the last row)."""
    if steps < 1:
        raise LogError(f"steps must be >= 1, got {steps}")
    if term not in rows[-1]:
        raise LogError(f"no column {term!r} in the training log (columns: {', '.join(rows[-1])})")
    first = rows[-1]["step"] - steps
    window = [row[term] for row in rows if row["step"] > first]
    return sum(window) / len(window)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_model.training.logcheck", description=__doc__)
    parser.add_argument("log", help="a log.csv written by sam2-train")
    parser.add_argument("--term", default="dice", help="the column to average (default: dice)")
    parser.add_argument("--last", type=int, default=500, help="over the last N steps (default: 500)")
    parser.add_argument("--below", type=float, required=True, help="exit 0 when the mean is below this")
    args = parser.parse_args(argv)
    try:
        rows = read_log(args.log)
        mean = mean_over_last(rows, args.term, args.last)
    except LogError as exc:
        print(f"logcheck: {exc}", file=sys.stderr)
        return 2
    ok = mean < args.below
    relation = "below" if ok else "not below"
    last = int(rows[-1]["step"])
    window = f"over the last {args.last} steps (to step {last})"
    print(f"{args.log}: mean {args.term} {mean:.4f} {window}, {relation} {args.below}")
    return 0 if ok else NOT_BELOW


if __name__ == "__main__":
    sys.exit(main())
