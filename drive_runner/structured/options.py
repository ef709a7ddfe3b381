"""PruneTrain's knobs and their defaults (the `method=prunetrain` schema); docs/prunetrain.md says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from drive_runner.pruning.options import MethodConfig


@dataclass
class PruneTrainConfig(MethodConfig):
    penalty_ratio: float = 0.2  # r: lambda R / (CE + lambda R) on the first mini-batch
    threshold: float = 1e-4  # a group is dead when all its |w| are below this
    interval: int = 10  # epochs between reconfigurations
    # With hardware.memory_budget_mb: after a reconfiguration that shrinks the model, train on with the largest
    # batch the smaller model fits in the budget (LR scaled linearly); no effect without a budget.
    dynamic_batch: bool = True
    max_batch_size: Optional[int] = None  # the bound on that growth; None = 4 x the run's starting batch
