"""The options of the mask machinery every method shares (`prune.*`) and of the schedules (`schedule=`).

Plain dataclasses: the config groups start from them and their defaults are written only here. Each
method's own options live in its module (drive_runner/methods). Where a default comes from is in docs/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import List, Optional

from omegaconf import MISSING

from drive_runner.pruning.ablation import Ablation
from drive_runner.ranges import ranged

# global: one ranking over all prunable tensors | layerwise: each tensor ranked alone, round(N_l * d) survivors in
# each. Made by the functional API because `global` is a Python keyword.
Scope = StrEnum("Scope", [(name, name) for name in ("global", "layerwise")])


@dataclass
class PruneConfig:
    scope: Scope = Scope["global"]
    exclude: List[str] = field(default_factory=list)  # parameter names never pruned, e.g. [fc3.weight]
    include_bias: bool = False
    ablation: Ablation = Ablation.none  # applied once the mask is found (Frankle et al. 2021)


@dataclass
class ScheduleConfig:
    name: str = MISSING  # oneshot | exponential | linear | cubic | imp_levels


@dataclass
class CubicScheduleConfig(ScheduleConfig):
    """Gradual magnitude pruning (Zhu & Gupta 2017): s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3."""

    name: str = "cubic"
    initial_sparsity: float = ranged(0.0, 0, 1, high_open=True)
    # epochs done when pruning starts; None = trainer.epochs // 16 (10 of 160)
    start_epoch: Optional[int] = ranged(None, 0, integer=True, optional=True)
    # epochs done when the mask freezes; None = ceil(trainer.epochs / 2) (80 of 160)
    end_epoch: Optional[int] = ranged(None, 1, integer=True, optional=True)
    interval_steps: int = ranged(100, 1, integer=True)  # dt, optimizer steps between pruning events


@dataclass
class ImpLevelsConfig(ScheduleConfig):
    name: str = "imp_levels"
    fraction: float = ranged(0.2, 0, 1, low_open=True, high_open=True)  # of the surviving weights removed per level
    exact_target: bool = True  # the last level removes less, to land exactly on round(N * d)


SCHEDULE_OPTIONS = {"base": ScheduleConfig, "cubic": CubicScheduleConfig, "imp_levels": ImpLevelsConfig}
