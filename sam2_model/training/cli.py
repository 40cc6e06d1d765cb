"""``sam2-train``: train or fine-tune SAM 2 on synthetic video or a DAVIS-layout dataset.

    sam2-train --data synthetic --model sam2_ros_demo --steps 3000 --out-dir runs/demo
    sam2-train --data /data/my_davis --model sam2.1_hiera_tiny \\
        --init-checkpoint sam2.1_hiera_tiny.pt --lr 5e-5 --steps 2000 --out-dir runs/ft

The synthetic-video and augmentation settings are flags too, prefixed by their group:
``--synthetic-num-distractors 2``, ``--synthetic-hide-frames 3 6``, ``--augment-mosaic-prob 0.2``.

An interrupted run resumes from ``<out-dir>/last.pt`` when started again with the same
arguments. Checkpoints are in the official format: ``build_sam2(model, "<out-dir>/final.pt")``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from ..cli_args import parse_bool
from .trainer import TrainConfig, Trainer

__all__ = ["build_parser", "config_from_args", "main"]


def _add_flag(parser: argparse._ActionsContainer, flag: str, dest: str, value: object) -> None:
    """One flag typed like its default (bools take true/false, tuples take one value per item)."""
    if isinstance(value, bool):
        parser.add_argument(flag, dest=dest, type=parse_bool, default=value, metavar="BOOL")
    elif isinstance(value, tuple):
        parser.add_argument(flag, dest=dest, type=type(value[0]), nargs=len(value), default=value)
    else:
        parser.add_argument(flag, dest=dest, type=type(value), default=value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sam2-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):  # a settings group: --<group>-<field>
            group = parser.add_argument_group(f"{f.name} settings ({type(value).__name__})")
            for sub in dataclasses.fields(value):
                flag = f"--{f.name}-{sub.name}".replace("_", "-")
                _add_flag(group, flag, f"{f.name}.{sub.name}", getattr(value, sub.name))
            continue
        _add_flag(parser, "--" + f.name.replace("_", "-"), f.name, value)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` the parsed flags describe (settings groups included); a
    setting out of range raises ``ValueError`` naming it."""
    values = vars(args)
    top = {k: v for k, v in values.items() if "." not in k}
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        group = getattr(defaults, f.name)
        if dataclasses.is_dataclass(group):
            subs = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(f.name + ".")}
            subs = {k: tuple(v) if isinstance(v, list) else v for k, v in subs.items()}
            top[f.name] = dataclasses.replace(group, **subs)
    return TrainConfig(**top)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        cfg = config_from_args(parser.parse_args(argv))
    except ValueError as exc:  # a setting out of range: name it, no traceback
        parser.error(str(exc))
    final = Trainer(cfg).run()
    print(f"done: {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
