"""NeuroFlux's knobs and their defaults (the `trainer=neuroflux` schema); docs/neuroflux.md says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from drive_runner.train.options import TrainerConfig


@dataclass
class NeuroFluxConfig(TrainerConfig):
    epochs_per_block: Optional[int] = None  # None = max(10, ceil(epochs / #blocks))
    group_ratio: float = 2.0  # a new block starts when per-sample memory changes by more than this factor
    reserve: float = 0.10  # fraction of the budget kept free (fragmentation)
    min_block_batch: int = 8
    max_block_batch: int = 1024
    min_aux_filters: int = 16
    min_steps_per_epoch: int = 16  # caps a block's batch so each block epoch still has this many steps
    block_weight_decay: float = 5e-4
    cache: str = "auto"  # auto (memory-mapped file on disk when larger than the budget) | memory | disk
    cache_precision: str = "fp16"  # fp16 | bf16 | fp32
    cache_aug: str = "auto"  # auto (feature when the dataset augments) | feature | none
    val_fraction: float = 0.1  # training images held out to choose the exit
    exit_tolerance: float = 1.0  # points of validation accuracy the chosen exit may trail the best one
