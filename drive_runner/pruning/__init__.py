"""Pruning: the mask engine, the methods and their scorers, and the public Python API.

    from drive_runner.pruning import compute_scores, prune
"""

from drive_runner.pruning import drive, gmp, imp  # noqa: F401  (each registers its method)
from drive_runner.structured import prunetrain  # noqa: F401  (registers the structured method)
from drive_runner.pruning.api import compute_scores, prune
from drive_runner.pruning.masks import MaskEngine

__all__ = ["MaskEngine", "compute_scores", "prune"]
