"""The training recipe a config may set, with its defaults (the `trainer=` group's schema)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List


@dataclass
class TrainerConfig:
    name: str = "backprop"
    epochs: int = 160
    batch_size: Any = 128  # an int >= 1, or auto: the largest power of two that fits hardware.memory_budget_mb
    eval_batch_size: int = 512
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    lr_reference_batch: int = 128  # the batch size `lr` is meant for
    lr_scaling: str = "linear"  # linear | none: LR scaling when the batch size is chosen for a memory budget
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    lr_schedule: str = "multistep"  # multistep | cosine | constant
    lr_milestones: List[int] = field(default_factory=lambda: [80, 120])  # epochs
    lr_gamma: float = 0.1
    lr_warmup_epochs: int = 0  # linear warm-up of the learning rate, in epochs
    eval_every: int = 1  # test-set evaluation every N epochs (the last epoch is always evaluated)
