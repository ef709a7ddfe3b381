"""Pruning scorers: one file per method, each a function that scores prunable tensors (higher = keep).

A scorer has the signature
    scorer(model, names, batches, *, generator, **options) -> {name: score tensor}
where `names` are the prunable parameters of `model.named_parameters()` to score, `batches` an iterable
of (inputs, targets) (data-free scorers ignore it or read only the input shape) and `generator` seeds
any randomness. Scores are computed on the network as it is, i.e. at its current masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from drive_runner.errors import ConfigError


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable
    needs_data: bool  # False: the scorer reads no images or labels


SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str, *, needs_data: bool):
    def decorate(fn: Callable) -> Callable:
        SCORERS[name] = Scorer(name, fn, needs_data)
        return fn

    return decorate


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ConfigError("method", f"no scorer named '{name}'; allowed: {', '.join(sorted(SCORERS))}")
    return SCORERS[name]


from drive_runner.pruning.scorers import drive, grasp, magnitude, random, snip, synflow  # noqa: E402,F401
