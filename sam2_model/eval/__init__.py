"""Evaluation: video object segmentation metrics (J, F)."""

from .metrics import SequenceScore, f_measure, jaccard, score_sequence

__all__ = ["SequenceScore", "f_measure", "jaccard", "score_sequence"]
