"""The knobs of every unstructured pruning method and schedule, with their defaults.

Plain dataclasses (no Hydra): the `method=` and `schedule=` config groups start from them, and the
Python API (`prune(model, "drive", 0.9, batches, iterations=10)`) checks its keyword arguments
against them. Where a default comes from is in docs/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from omegaconf import MISSING


# --------------------------------------------------------------------------- methods
@dataclass
class MethodConfig:
    name: str = MISSING
    warmup_epochs: int = 0  # dense epochs before pruning; part of trainer.epochs
    iterations: int = 1  # pruning steps along the schedule's density path


@dataclass
class RandomMethodConfig(MethodConfig):
    variant: str = "global"  # global (one ranking, per-layer density is binomial) | layerwise (exact per layer)


@dataclass
class SnipConfig(MethodConfig):
    num_examples: Optional[int] = None  # None = 10 x #classes
    bn_mode: str = "eval"  # eval | train


@dataclass
class GraspConfig(MethodConfig):
    examples_per_class: int = 10
    temperature: float = 200.0
    bn_mode: str = "eval"  # eval | train (the official code scores in train mode)
    reinit_linear: bool = False  # Xavier re-init of the scoring copy's Linear layers (official option)


@dataclass
class ImpConfig(MethodConfig):
    rewind_step: int = 0  # optimizer step whose full state the weights rewind to (0 = initialisation)
    prune_output_layer: Optional[bool] = None  # None = open_lth presets: kept dense for LeNet/VGG, pruned for ResNets
    control: str = "none"  # none | reinit | shuffle: also train every level's mask as this control (LTH Fig. 3)


@dataclass
class SynflowConfig(MethodConfig):
    iterations: int = 100
    dtype: str = "float32"  # float32 (each layer rescaled, exact where that keeps the ranking) | float64


@dataclass
class DriveConfig(MethodConfig):
    warmup_epochs: int = 2
    iterations: int = 100
    batches_per_iter: int = 1  # fresh mini-batches averaged per pruning step
    alpha: float = 1.0  # weight of the magnitude term |theta|
    beta: float = 1.0  # weight of the connection-sensitivity term |theta * g|
    gamma: float = 1.0  # weight of the convergence-sensitivity term
    normalization: str = "sum"  # sum | max | none, applied to each term over the unpruned weights
    combine: str = "sum"  # sum | product of the normalised terms
    convergence_term: str = "grad"  # grad (|g|) | hessian_grad (|theta * Hg|, GraSP-style)
    bn_mode: str = "train"  # train (buffers snapshotted and restored) | eval
    after_prune: str = "continue"  # continue | rewind_init | rewind_step
    rewind_step: int = 0  # with after_prune=rewind_step: the warm-up step to rewind to


METHOD_OPTIONS = {
    "base": MethodConfig, "random": RandomMethodConfig, "snip": SnipConfig, "grasp": GraspConfig,
    "synflow": SynflowConfig, "imp": ImpConfig, "drive": DriveConfig,
}


# --------------------------------------------------------------------------- schedules
@dataclass
class ScheduleConfig:
    name: str = MISSING  # oneshot | exponential | linear | cubic | imp_levels


@dataclass
class CubicScheduleConfig(ScheduleConfig):
    """Gradual magnitude pruning (Zhu & Gupta 2017): s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3."""

    initial_sparsity: float = 0.0
    start_epoch: Optional[int] = None  # None = epoch T // 16 (10 of 160)
    end_epoch: Optional[int] = None  # None = epoch ceil(T/2) (80 of 160); the mask freezes at its end
    interval_steps: int = 100  # dt, optimizer steps between pruning events


@dataclass
class ImpLevelsConfig(ScheduleConfig):
    fraction: float = 0.2  # of the surviving weights removed per level
    exact_target: bool = True  # the last level removes less, to land exactly on round(N * d)


SCHEDULE_OPTIONS = {"base": ScheduleConfig, "cubic": CubicScheduleConfig, "imp_levels": ImpLevelsConfig}


# --------------------------------------------------------------------------- the shared mask machinery
@dataclass
class PruneConfig:
    scope: str = "global"  # global | layerwise
    exclude: List[str] = field(default_factory=list)  # parameter names never pruned
    include_bias: bool = False
    ablation: str = "none"  # none | shuffle | reinit: applied once the mask is found (Frankle et al. 2021)
