"""PruneTrain's knobs and their defaults (the `method=prunetrain` schema); docs/prunetrain.md says why."""

from __future__ import annotations

from dataclasses import dataclass

from drive_runner.pruning.options import MethodConfig


@dataclass
class PruneTrainConfig(MethodConfig):
    penalty_ratio: float = 0.2  # r: lambda R / (CE + lambda R) on the first mini-batch
    threshold: float = 1e-4  # a group is dead when all its |w| are below this
    interval: int = 10  # epochs between reconfigurations
