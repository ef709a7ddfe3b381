"""Pruning methods: the plug-in surface (base.py), one module per built-in method, and the registry.

    from drive_runner.methods import ScoringMethod, ScoringOptions     # a scoring rule of one's own
    from drive_runner.methods import prune, compute_scores             # pruning a model in one's own code

A method of one's own is named by `_target_` in a method config, or registered by a `drive_runner.methods`
entry point of its package (docs/extending.md).
"""

from drive_runner.methods.api import compute_scores, prune
from drive_runner.methods.base import (Dense, LevelsMethod, Method, MethodOptions, ScoringMethod, ScoringOptions,
                                       TrainingTimeMethod)
from drive_runner.methods.registry import build_method, method_colour, method_names, registry

__all__ = ["Dense", "LevelsMethod", "Method", "MethodOptions", "ScoringMethod", "ScoringOptions", "TrainingTimeMethod",
           "METHODS", "build_method", "compute_scores", "method_colour", "method_names", "prune"]


def __getattr__(name: str):
    """`METHODS`: every registered method by name, found on first use (entry points load then)."""
    if name == "METHODS":
        return registry().methods
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
