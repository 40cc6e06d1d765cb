"""``sam2-train``: train or fine-tune SAM 2 on synthetic video or a DAVIS-layout dataset.

    sam2-train --data synthetic --model sam2_ros_demo --steps 3000 --out-dir runs/demo
    sam2-train --data /data/my_davis --model sam2.1_hiera_tiny \\
        --init-checkpoint sam2.1_hiera_tiny.pt --lr 5e-5 --steps 2000 --out-dir runs/ft

An interrupted run resumes from ``<out-dir>/last.pt`` when started again with the same
arguments. Checkpoints are in the official format: ``build_sam2(model, "<out-dir>/final.pt")``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from .trainer import TrainConfig, Trainer

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sam2-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if dataclasses.is_dataclass(getattr(defaults, f.name)):
            continue  # nested settings keep their defaults
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(
                flag, type=lambda s: s.lower() in ("1", "true", "yes", "on"), default=value, metavar="BOOL"
            )
        else:
            parser.add_argument(flag, type=type(value), default=value)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    cfg = TrainConfig(**args)
    final = Trainer(cfg).run()
    print(f"done: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
