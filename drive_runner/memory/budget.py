"""`hardware.memory_budget_mb` for backprop training: the batch size that fits, or a one-line refusal.

With `trainer.batch_size=auto` the largest power-of-two batch whose measured peak fits the budget is
taken, and the learning rate is scaled linearly from the recipe's reference batch (`trainer.lr_scaling`).
An explicit batch that does not fit, or a model that does not fit even with batch 1, stops the run
before training with the need and the budget. On CUDA the budget is also enforced on the allocator
(`torch.cuda.set_per_process_memory_fraction`, which covers the caching allocator, not the CUDA context).
When PruneTrain has shrunk the model, `grown_batch_size` picks its next interval's batch the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.memory.accounting import MB, MemoryModel, fit_memory_model, optimizer_slots, saved_bytes_of_step

MAX_BATCH = 4096


@dataclass
class BatchChoice:
    batch_size: int
    lr_scale: float
    memory: MemoryModel | None  # None when there is no budget

    def report(self, budget_mb: float | None) -> dict:
        if self.memory is None:
            return {"budget_mb": None, "batch_size": self.batch_size}
        return {
            "budget_mb": budget_mb,
            "batch_size": self.batch_size,
            "lr_scale": self.lr_scale,
            "model_peak_mb": self.memory.peak(self.batch_size) / MB,
            "static_mb": self.memory.static / MB,
            "per_sample_mb": self.memory.per_sample / MB,
        }


def powers_of_two(low: int, high: int) -> list[int]:
    return [2**i for i in range(high.bit_length()) if low <= 2**i <= high]


def enforce_on_cuda(budget_mb: float | None, device: torch.device) -> None:
    """Cap the CUDA caching allocator at the budget (it does not cover the CUDA context itself)."""
    if budget_mb is None or device.type != "cuda":
        return
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(budget_mb * MB / total, 1.0), device)
    torch.cuda.reset_peak_memory_stats(device)


def measure(model: nn.Module, input_shape: tuple[int, ...], num_classes: int, trainer_cfg, hardware,
            device: torch.device) -> MemoryModel:
    """The fitted memory model of one training step of `model` with the recipe's optimizer."""
    return fit_memory_model(
        model, input_shape, num_classes, device=device, margin_bytes=int(hardware.memory_margin_mb * MB),
        optimizer_state_slots=optimizer_slots(trainer_cfg.optimizer, trainer_cfg.momentum),
    )


def check_budget(memory: MemoryModel | None, trainer_cfg, hardware) -> None:
    """The refusals that need no training (checked before a run directory exists): batch_size=auto
    without a budget, a budget below batch 1, an explicit batch over the budget."""
    requested, budget_mb = trainer_cfg.batch_size, hardware.memory_budget_mb
    if budget_mb is None:
        if requested == "auto":
            raise ConfigError("trainer.batch_size", "auto picks the largest batch that fits hardware.memory_budget_mb; "
                                                    "set a budget or a batch size")
        return
    budget = budget_mb * MB
    if memory.peak(1) > budget:
        raise ConfigError(
            "hardware.memory_budget_mb",
            f"training needs {memory.peak(1) / MB:.1f} MB with batch 1 ({memory.static / MB:.1f} MB of parameters, "
            f"gradients and optimizer state + {memory.per_sample / MB:.2f} MB per sample); the budget is {budget_mb:g} MB",
        )
    if requested != "auto" and memory.peak(int(requested)) > budget:
        largest = memory.largest_batch(budget, powers_of_two(1, MAX_BATCH))
        raise ConfigError(
            "trainer.batch_size",
            f"batch {requested} needs {memory.peak(int(requested)) / MB:.1f} MB, over the budget of {budget_mb:g} MB; "
            f"the largest power-of-two batch that fits is {largest} (trainer.batch_size=auto picks it)",
        )


def choose_batch_size(
    model: nn.Module, input_shape: tuple[int, ...], num_classes: int, num_train: int, trainer_cfg, hardware,
    device: torch.device,
) -> BatchChoice:
    budget_mb = hardware.memory_budget_mb
    memory = None if budget_mb is None else measure(model, input_shape, num_classes, trainer_cfg, hardware, device)
    check_budget(memory, trainer_cfg, hardware)
    if memory is None:
        return BatchChoice(int(trainer_cfg.batch_size), 1.0, None)
    if trainer_cfg.batch_size != "auto":
        return BatchChoice(int(trainer_cfg.batch_size), 1.0, memory)
    cap = min(num_train, MAX_BATCH)
    largest = _largest_measured_fit(model, input_shape, num_classes, memory, budget_mb * MB, cap, device)
    scale = largest / trainer_cfg.lr_reference_batch if trainer_cfg.lr_scaling == "linear" else 1.0
    return BatchChoice(largest, scale, memory)


def grown_batch_size(
    model: nn.Module, input_shape: tuple[int, ...], num_classes: int, num_train: int, trainer_cfg, hardware,
    device: torch.device, *, current: int, start_batch: int, start_lr_scale: float, max_batch: int,
) -> BatchChoice:
    """The batch a model that has shrunk trains with under the same budget (PruneTrain's dynamic
    mini-batch): the largest power of two whose measured step fits, as for batch_size=auto, but never
    below `current` (a smaller model fits at least the batch it had) and never above `max_batch`; the LR
    scale grows with it linearly from the run's starting batch and scale (`trainer.lr_scaling`). The
    probes' random inputs leave the run's random streams where they were."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        memory = measure(model, input_shape, num_classes, trainer_cfg, hardware, device)
        cap = min(max_batch, num_train, MAX_BATCH)
        largest = current
        if cap > current:
            largest = _largest_measured_fit(model, input_shape, num_classes, memory,
                                            hardware.memory_budget_mb * MB, cap, device)
    batch = max(current, largest)
    scale = start_lr_scale * batch / start_batch if trainer_cfg.lr_scaling == "linear" else start_lr_scale
    return BatchChoice(batch, scale, memory)


def _largest_measured_fit(model, input_shape, num_classes, memory: MemoryModel, budget: float, cap: int, device) -> int:
    """The fitted model proposes, one measured step at that batch confirms (halving while it does not fit)."""
    batch = memory.largest_batch(budget, powers_of_two(1, max(cap, 1))) or 1
    while batch > 1:
        inputs = torch.randn((batch, *input_shape), device=device)
        targets = torch.zeros(batch, dtype=torch.long, device=device)
        saved, _ = saved_bytes_of_step(model, inputs, targets)
        if memory.static + saved + memory.margin <= budget:
            break
        batch //= 2
    return batch
