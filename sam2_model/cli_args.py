"""Argument types shared by the package's command lines (``sam2-train``, ``sam2-track``)."""

from __future__ import annotations

import argparse

__all__ = ["parse_bool"]


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off) for a boolean flag."""
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
