"""NeuroFlux's knobs and their defaults (the `trainer=neuroflux` schema); docs/neuroflux.md says why.

NeuroFlux trains block by block with its own optimizer (SGD) and LR schedule, so it has none of the
backprop recipe's optimizer and schedule keys: a config that sets them is refused, not silently ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Optional

from drive_runner.ranges import ranged


class LRScaling(StrEnum):
    """How the LR follows a batch chosen for a memory budget (backprop's trainer.batch_size=auto, NeuroFlux's
    blocks): linear (lr x batch / lr_reference_batch) or none."""

    linear = "linear"
    none = "none"


class CacheLocation(StrEnum):
    auto = "auto"  # a memory-mapped file on disk when the cache is larger than the budget, else memory
    memory = "memory"
    disk = "disk"


class CachePrecision(StrEnum):
    fp16 = "fp16"
    bf16 = "bf16"
    fp32 = "fp32"


class CacheAugmentation(StrEnum):
    auto = "auto"  # feature augmentation when the dataset augments its images
    feature = "feature"  # flip and shift of cached feature maps
    none = "none"


@dataclass
class NeuroFluxConfig:
    _target_: str = "drive_runner.runners.blockwise.BlockwiseRunner"  # NeuroFlux runs the job block by block
    name: str = "neuroflux"
    epochs: int = ranged(30, 0, integer=True)  # the budget over all blocks: each trains ceil(epochs / #blocks)
    # the epochs of every block (x0.1 LR at 50% and 75% of them); None = ceil(epochs / #blocks), at least 1
    epochs_per_block: Optional[int] = ranged(None, 1, integer=True, optional=True)
    eval_batch_size: int = ranged(512, 1, integer=True)
    lr: float = ranged(0.1, 0, low_open=True)  # at lr_reference_batch; scaled to each block's batch
    lr_reference_batch: int = ranged(128, 1, integer=True)
    lr_scaling: LRScaling = LRScaling.linear  # lr x block batch / lr_reference_batch, with a one-epoch warm-up
    momentum: float = ranged(0.9, 0, 1, high_open=True)
    # a new block starts when per-sample memory changes by more than this factor
    group_ratio: float = ranged(2.0, 1, low_open=True)
    reserve: float = ranged(0.10, 0, 1, high_open=True)  # fraction of the budget kept free (fragmentation)
    min_block_batch: int = ranged(8, 1, integer=True)
    max_block_batch: int = ranged(1024, 1, integer=True)
    min_aux_filters: int = ranged(16, 1, integer=True)  # auxiliary head widths C, C/2, C/4, C/8, never below this
    # caps a block's batch so each block epoch still has this many steps
    min_steps_per_epoch: int = ranged(16, 1, integer=True)
    block_weight_decay: float = ranged(5e-4, 0)
    cache: CacheLocation = CacheLocation.auto
    cache_precision: CachePrecision = CachePrecision.fp16
    cache_aug: CacheAugmentation = CacheAugmentation.auto
    val_fraction: float = ranged(0.1, 0, 1, low_open=True, high_open=True)  # training images held out for the exit
    exit_tolerance: float = ranged(1.0, 0)  # points of validation accuracy the chosen exit may trail the best one
