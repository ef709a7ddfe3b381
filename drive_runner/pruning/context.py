"""What a method is handed: a PruningContext to find a mask by scoring, a TrainingContext for the hooks of
methods that act while the network trains. The runners build both; the Python API builds the first alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from drive_runner.pruning.masks import MaskEngine
from drive_runner.pruning.sampling import Batch


def _ignore(*args, **kwargs) -> None:
    """The default of every callback a context may carry: nothing listens."""


@dataclass
class PruningContext:
    """What a scoring rule may use to find its mask."""

    model: nn.Module
    engine: MaskEngine
    target_density: float
    seed: int
    device: torch.device
    input_shape: tuple[int, ...]
    num_classes: int
    # A fixed, seeded labelled sample of the augmented training set: (count, class_balanced) -> (inputs, targets).
    examples: Callable[[int, bool], Batch]
    # The next k mini-batches of a dedicated, seeded stream over the augmented training set.
    next_batches: Callable[[int], list[Batch]]
    # After every pruning step: (step, steps in all, density reached).
    on_step: Callable[[int, int, float], None] = _ignore


@dataclass
class TrainingContext:
    """What a method's training hooks may use: the run's model, masks and training session, and its records."""

    model: nn.Module
    engine: MaskEngine
    session: Any  # drive_runner.train.loop.TrainingSession
    target_density: float
    seed: int
    device: torch.device
    input_shape: tuple[int, ...]
    num_classes: int
    # Weights and buffers before any training, for methods that rewind to initialisation.
    initial_state: dict
    # A fresh initialisation of the model (the k-th independent draw of this run), for re-init ablations.
    reinitialised: Callable[[int], dict]
    # The run's hardware config; PruneTrain grows its batch within hardware.memory_budget_mb.
    hardware: Any
    log: Callable[..., None] = _ignore  # an event for metrics.jsonl and W&B: log(event, **fields)
    warn: Callable[[str], None] = _ignore  # a warning for the user
    on_step: Callable[[int, int, float], None] = _ignore  # after every pruning step, as for PruningContext
    mark_mask_fixed: Callable[[], None] = _ignore  # a method that prunes while training fixed its mask now
