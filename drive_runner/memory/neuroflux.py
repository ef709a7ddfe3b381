"""NeuroFlux (Saikumar & Varghese, EuroSys '24): training under a memory budget by adaptive local learning.

Everything below the abstract's level is this project's design (docs/neuroflux.md):
1. The network is cut into units (a conv with its BN/ReLU/pool; a residual block; the stem) and every unit
   gets an auxiliary classifier head; the last unit keeps the model's own head.
2. Each unit with each candidate head width is profiled (measured saved tensors at two batch sizes), and
   units are grouped into blocks of similar per-sample memory.
3. Each block gets the largest power-of-two batch that fits (1 - reserve) x budget with the narrowest
   heads, then heads are widened from the deepest unit up while the block still fits.
4. Blocks train one after another with local losses (every unit's input is detached, so no gradient
   crosses a unit boundary; a unit's graph is freed by its own backward). Only the block in training is
   on the device. A trained block is frozen (its gradients freed), its outputs for all images are cached,
   so later blocks never run it forward again, and it goes back to the host.
5. Every exit (units 1..l plus head l) is evaluated on held-out training images; the chosen exit is the
   shallowest within `exit_tolerance` points of the best, saved as a standalone model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from drive_runner.data.in_memory import random_crop_flip
from drive_runner.errors import ConfigError
from drive_runner.memory.accounting import MB, MemoryModel, SavedTensorMeter, fit_memory_model
from drive_runner.memory.budget import powers_of_two
from drive_runner.memory.cache import ActivationCache
from drive_runner.memory.heads import ExitModel, build_head, filter_candidates, head_spec

SGD_MOMENTUM_SLOTS = 1
FEATURE_SHIFT_PX = 4  # the input-space crop padding, divided by the unit's stride for cached feature maps


@dataclass
class Unit:
    index: int
    module: nn.Module
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    is_last: bool
    memory: dict[int, MemoryModel] = field(default_factory=dict)  # head width -> measured memory model
    head_width: int = 0
    head: nn.Module | None = None
    spec: dict | None = None  # None: the model's own head


@dataclass
class Block:
    units: list[Unit]
    batch: int = 0


@dataclass
class NeuroFluxResult:
    exit_model: ExitModel
    exit_spec: dict  # {"units": n, "head": spec or None}
    report: dict


class _Source:
    """Block inputs: raw images for the first block, a previous block's cached outputs afterwards."""

    def __init__(self, take: Callable, labels: torch.Tensor):
        self._take = take
        self.labels = labels

    def take(self, indices: torch.Tensor, *, augment: bool, generator: torch.Generator):
        return self._take(indices, augment, generator)


class NeuroFluxTrainer:
    def __init__(self, model, data, cfg, hardware, *, device, seed: int, run_dir: Path, log, line, warn):
        self.model, self.data, self.cfg, self.device, self.seed = model, data, cfg, device, seed
        self.budget = None if hardware.memory_budget_mb is None else hardware.memory_budget_mb * MB
        self.margin = int(hardware.memory_margin_mb * MB)
        self.run_dir, self.log, self.line, self.warn = run_dir, log, line, warn
        self.num_classes = data.num_classes
        # Resuming: a trained block is the unit of progress. After each one the run saves its state; at
        # every step it may stop (and continue later from the last finished block).
        self.at_block_end: Callable[[], None] = lambda: None
        self.at_step: Callable[[], None] = lambda: None
        self._progress = {"blocks_done": 0, "units": {}, "block_reports": [], "exits": [], "cache_reports": []}

    def state_dict(self) -> dict:
        return self._progress

    def load_state_dict(self, state: dict) -> None:
        self._progress = state

    # ------------------------------------------------------------------ the whole procedure
    def fit(self) -> NeuroFluxResult:
        started = time.perf_counter()
        self.model.to("cpu")  # each block comes to the device for its own training only
        units = self._units()
        train_idx, val_idx = self._validation_split()
        blocks = self._plan(units, len(train_idx))
        profile_s = time.perf_counter() - started
        self.line(f"neuroflux: {len(units)} units in {len(blocks)} blocks, budget "
                  f"{'unlimited' if self.budget is None else f'{self.budget / MB:g} MB'}")
        source = _Source(lambda i, aug, g: self.data.train.take(i, augment=aug, generator=g), self.data.train.labels)
        test_source = _Source(lambda i, aug, g: self.data.test.take(i, augment=False, generator=g), self.data.test.labels)
        # trainer.epochs is the budget over all blocks, unless trainer.epochs_per_block sets each block's
        epochs = int(self.cfg.epochs_per_block or max(1, math.ceil(int(self.cfg.epochs) / len(blocks))))
        progress = self._progress
        block_reports, exits, cache_reports = progress["block_reports"], progress["exits"], progress["cache_reports"]
        for number, block in enumerate(blocks):
            finished_before = number < progress["blocks_done"]  # trained by an earlier attempt of this run
            if finished_before:
                self._restore_block(block)
            else:
                report = self._train_block(number, block, source, train_idx, epochs)
                exits += self._evaluate_exits(block, source, test_source, val_idx)
            if number < len(blocks) - 1:  # a restored block's outputs are cached again: the cache is not saved
                cache_started = time.perf_counter()
                source, test_source, cache_report = self._cache(number, block, source, test_source)
                if not finished_before:
                    report["cache_s"] = time.perf_counter() - cache_started
                    cache_reports.append(cache_report)
            for unit in block.units:  # off the device: the next block's budget is its own
                unit.module.to("cpu")
                unit.head.to("cpu")
            if finished_before:
                continue
            block_reports.append(report)
            self.log("neuroflux_block", **{k: v for k, v in report.items() if not isinstance(v, list)})
            progress["blocks_done"] = number + 1
            progress["units"].update({unit.index: {"module": _cpu_state(unit.module), "head": _cpu_state(unit.head)}
                                      for unit in block.units})
            self.at_block_end()

        params_so_far = 0
        for unit, exit_row in zip(units, exits):  # an exit's model: units 1..l and head l
            params_so_far += sum(p.numel() for p in unit.module.parameters())
            exit_row["params"] = params_so_far + sum(p.numel() for p in unit.head.parameters())
        chosen = self._choose_exit(exits)
        exit_model = ExitModel([u.module for u in units[: chosen + 1]], units[chosen].head).eval().to(self.device)
        report = {
            "budget_mb": None if self.budget is None else self.budget / MB,
            "blocks": block_reports,
            "caches": cache_reports,
            "exits": exits,
            "chosen_exit": chosen,
            "best_exit": max(range(len(exits)), key=lambda i: exits[i]["val_acc"]),
            "epochs_per_block": epochs,
            "epochs_trained": epochs * len(blocks),  # block epochs, summed over the blocks
            "validation_images": len(val_idx),
            "full_model_params": sum(p.numel() for p in self.model.parameters()),
            "exit_params": sum(p.numel() for p in exit_model.parameters()),
            "profile_s": profile_s,
            "total_s": time.perf_counter() - started,
        }
        spec = {"units": chosen + 1, "head": units[chosen].spec}
        return NeuroFluxResult(exit_model, spec, report)

    def _restore_block(self, block: Block) -> None:
        """A block an earlier attempt trained: its heads rebuilt, its saved weights loaded, frozen."""
        for unit in block.units:
            if not unit.is_last:
                unit.spec = head_spec(unit.output_shape, unit.head_width, self.num_classes)
                unit.head = build_head(unit.spec)
            else:
                unit.head = self._model_head
            saved = self._progress["units"][unit.index]
            unit.module.load_state_dict(saved["module"])
            unit.head.load_state_dict(saved["head"])
            for module in (unit.module, unit.head):
                module.to(self.device).eval()
                module.requires_grad_(False)

    # ------------------------------------------------------------------ units, profiling, blocks
    def _units(self) -> list[Unit]:
        if not hasattr(self.model, "units"):
            raise ConfigError("trainer", f"NeuroFlux cannot split {type(self.model).__name__} into units")
        modules, self._model_head = self.model.units()
        units, shape = [], tuple(self.data.input_shape)
        with torch.no_grad():
            self.model.eval()
            x = torch.zeros((1, *shape))
            for index, module in enumerate(modules):
                y = module(x)
                units.append(Unit(index, module, tuple(x.shape[1:]), tuple(y.shape[1:]), index == len(modules) - 1))
                x = y
            self.model.train()
        for unit in units:
            if unit.is_last:
                widths, heads = [0], [self._model_head]
            else:
                channels = unit.output_shape[0]
                widths = filter_candidates(channels, int(self.cfg.min_aux_filters)) if len(unit.output_shape) > 1 else [0]
                heads = [build_head(head_spec(unit.output_shape, w, self.num_classes)) for w in widths]
            for width, head in zip(widths, heads):
                profiled = nn.Sequential(unit.module, head).to(self.device)  # measured where it will train
                unit.memory[width] = fit_memory_model(
                    profiled, unit.input_shape, self.num_classes, device=self.device,
                    optimizer_state_slots=SGD_MOMENTUM_SLOTS, margin_bytes=0,
                )
                profiled.to("cpu")
        return units

    def _plan(self, units: list[Unit], num_train: int) -> list[Block]:
        """Group units by per-sample memory, then give every block its batch size and head widths."""
        blocks: list[Block] = []
        for unit in units:
            unit.head_width = min(unit.memory)
            if not blocks or self._ratio(blocks[-1].units[0], unit) > float(self.cfg.group_ratio):
                blocks.append(Block([]))
            blocks[-1].units.append(unit)
        # This project's choice: at least min_steps_per_epoch steps per block epoch: a batch near the dataset size cannot train.
        cap = max(min(int(self.cfg.max_block_batch), num_train // int(self.cfg.min_steps_per_epoch)), 1)
        candidates = powers_of_two(1, cap)
        candidates = [b for b in candidates if b >= min(int(self.cfg.min_block_batch), candidates[-1])]
        usable = None if self.budget is None else (1.0 - float(self.cfg.reserve)) * self.budget
        for block in blocks:
            fitting = [b for b in candidates if usable is None or self._block_peak(block, b) <= usable]
            if not fitting:
                raise ConfigError(
                    "hardware.memory_budget_mb",
                    f"NeuroFlux block of units {block.units[0].index}-{block.units[-1].index} needs "
                    f"{self._block_peak(block, candidates[0]) / MB:.1f} MB at batch {candidates[0]} with the narrowest "
                    f"heads; the budget is {self.budget / MB:g} MB ({float(self.cfg.reserve):.0%} kept in reserve)",
                )
            block.batch = max(fitting)
            for unit in reversed(block.units):  # deeper units (smaller maps) get the wider heads
                narrowest = unit.head_width
                for width in sorted(unit.memory, reverse=True):
                    unit.head_width = width
                    if usable is None or self._block_peak(block, block.batch) <= usable:
                        break
                    unit.head_width = narrowest
        return blocks

    @staticmethod
    def _ratio(first: Unit, unit: Unit) -> float:
        a, b = first.memory[first.head_width].per_sample, unit.memory[unit.head_width].per_sample
        return max(a, b) / max(min(a, b), 1.0)

    def _block_peak(self, block: Block, batch: int) -> int:
        """M_B(b) = sum of the units' static memory + b (block input + the largest unit's activations).

        A unit's measured per-sample bytes already hold its own input; the first unit's input is the
        block input, so it is counted once."""
        models = [unit.memory[unit.head_width] for unit in block.units]
        input_bytes = 4 * int(torch.Size(block.units[0].input_shape).numel())
        static = sum(m.static + m.fixed for m in models)
        per_sample = max(m.per_sample + (input_bytes if i > 0 else 0) for i, m in enumerate(models))
        return int(static + batch * per_sample + self.margin)

    def _validation_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        count = self.data.train.num_samples
        order = torch.randperm(count, generator=torch.Generator().manual_seed(self.seed + 31))
        held_out = max(int(round(count * float(self.cfg.val_fraction))), 1)
        return order[held_out:].sort().values, order[:held_out].sort().values

    # ------------------------------------------------------------------ training a block
    def _train_block(self, number: int, block: Block, source: _Source, train_idx, epochs: int) -> dict:
        started = time.perf_counter()
        batch, units = block.batch, block.units
        for unit in units:
            if not unit.is_last:
                unit.spec = head_spec(unit.output_shape, unit.head_width, self.num_classes)
                torch.manual_seed(self.seed * 1009 + unit.index)
                unit.head = build_head(unit.spec).to(self.device)
            else:
                unit.head = self._model_head
            unit.module.to(self.device)
            unit.head.to(self.device)
        scale = batch / int(self.cfg.lr_reference_batch) if self.cfg.lr_scaling == "linear" else 1.0
        lr = float(self.cfg.lr) * scale
        optimizers = [
            torch.optim.SGD([*u.module.parameters(), *u.head.parameters()], lr=lr, momentum=float(self.cfg.momentum),
                            weight_decay=float(self.cfg.block_weight_decay))
            for u in units
        ]
        modules = [nn.Sequential(u.module, u.head).train() for u in units]
        static = sum(u.memory[u.head_width].static for u in units)
        meter = SavedTensorMeter(modules)
        steps_per_epoch = math.ceil(len(train_idx) / batch)
        peak = 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        for epoch in range(epochs):
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + number * 10_007 + epoch)
            order = train_idx[torch.randperm(len(train_idx), generator=generator)]
            losses = torch.zeros(len(units))
            for step, indices in enumerate(order.split(batch)):
                self._set_lr(optimizers, lr, epoch, step, steps_per_epoch, epochs, warmup=scale != 1.0)
                inputs, targets = source.take(indices, augment=True, generator=generator)
                block_input, targets = inputs.to(self.device), targets.to(self.device)  # resident all step
                x, step_peak = block_input, 0
                for position, (unit, optimizer) in enumerate(zip(units, optimizers)):
                    meter.reset()  # each unit's graph is freed by its own backward
                    meter.include(block_input)
                    meter.include(x)
                    with meter.measuring():
                        out = unit.module(x.detach())  # the input is detached: no gradient crosses the unit
                        loss = F.cross_entropy(unit.head(out), targets)
                    meter.include(out)  # every storage once: the head's input is the unit's output
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    step_peak = max(step_peak, meter.bytes)
                    losses[position] += loss.item() * len(targets)
                    x = out.detach()
                peak = max(peak, static + step_peak + self.margin)
                self.at_step()
            unit_losses = {f"loss_unit{u.index}": float(losses[i]) / len(train_idx) for i, u in enumerate(units)}
            self.log("neuroflux_epoch", block=number, epoch=epoch + 1, lr=optimizers[0].param_groups[0]["lr"],
                     **unit_losses)
            self.line(f"neuroflux: block {number} epoch {epoch + 1}/{epochs}  loss of its last unit "
                      f"{list(unit_losses.values())[-1]:.4f}  {time.perf_counter() - started:.1f}s")
        for unit in units:  # frozen from here on: eval-mode BN, no gradients kept
            for module in (unit.module, unit.head):
                module.eval()
                module.requires_grad_(False)
                for param in module.parameters():
                    param.grad = None
        report = {
            "block": number,
            "units": [u.index for u in units],
            "batch_size": batch,
            "lr": lr,
            "aux_filters": [None if u.is_last else u.head_width for u in units],
            "modelled_peak_mb": self._block_peak(block, batch) / MB,
            # On the CPU the measurement is the saved-tensor count; on CUDA the allocator's own peak.
            "counted_peak_mb": peak / MB,
            "measured_peak_mb": peak / MB,
            "epochs": epochs,
            "time_s": time.perf_counter() - started,
        }
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            report["measured_peak_mb"] = report["cuda_peak_mb"] = peak / MB
        if self.budget is not None and peak > self.budget:
            self.warn(f"NeuroFlux block {number} measured {peak / MB:.1f} MB, over the {self.budget / MB:g} MB budget")
        self.line(f"neuroflux: block {number} (units {report['units']}) batch {batch}, "
                  f"peak {report['measured_peak_mb']:.1f} MB measured, {report['time_s']:.1f}s")
        return report

    def _set_lr(self, optimizers, lr: float, epoch: int, step: int, steps: int, epochs: int, warmup: bool) -> None:
        """One-epoch linear warm-up (with a scaled LR), then x0.1 at 50% and 75% of the block's epochs."""
        value = lr * (0.1 ** sum(epoch >= m for m in (epochs // 2, (3 * epochs) // 4)))
        if warmup and epoch == 0:
            value *= (step + 1) / steps
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                group["lr"] = value

    # ------------------------------------------------------------------ exits and caches
    @torch.no_grad()
    def _evaluate_exits(self, block: Block, source: _Source, test_source: _Source, val_idx) -> list[dict]:
        """Validation (held-out training images) and test accuracy of every exit in the block."""
        results = [{"unit": unit.index} for unit in block.units]
        splits = (("val_acc", source, val_idx), ("test_acc", test_source, torch.arange(len(test_source.labels))))
        for name, src, indices in splits:
            correct = torch.zeros(len(block.units))
            for chunk in indices.split(512):
                x, targets = src.take(chunk, augment=False, generator=None)
                x, targets = x.to(self.device), targets.to(self.device)
                for position, unit in enumerate(block.units):
                    x = unit.module(x)
                    correct[position] += float((unit.head(x).argmax(1) == targets).sum())
            for position, row in enumerate(results):
                row[name] = float(correct[position]) / max(len(indices), 1)
        return results

    @torch.no_grad()
    def _cache(self, number: int, block: Block, source: _Source, test_source: _Source):
        shape = block.units[-1].output_shape
        per_sample = int(torch.Size(shape).numel()) * {"fp16": 2, "bf16": 2, "fp32": 4}[self.cfg.cache_precision]
        total = per_sample * (len(source.labels) + len(test_source.labels))
        on_disk = self.cfg.cache == "disk" or (self.cfg.cache == "auto" and self.budget is not None and total > self.budget)
        caches = []
        for split, src in (("train", source), ("test", test_source)):
            path = self.run_dir / "cache" / f"block{number}_{split}.bin" if on_disk else None
            cache = ActivationCache(len(src.labels), shape, self.cfg.cache_precision, path)
            for start in range(0, len(src.labels), 512):
                indices = torch.arange(start, min(start + 512, len(src.labels)))
                x, _ = src.take(indices, augment=False, generator=None)
                x = x.to(self.device)
                for unit in block.units:
                    x = unit.module(x)
                cache.write(start, x)
            caches.append(cache)
        train_cache, test_cache = caches
        augment = self.cfg.cache_aug == "feature" or (self.cfg.cache_aug == "auto" and self.data.train.augments)
        stride = max(self.data.input_shape[-1] // shape[-1], 1) if len(shape) == 3 else 1
        shift = math.ceil(FEATURE_SHIFT_PX / stride)

        def cached(cache: ActivationCache, labels: torch.Tensor, may_augment: bool) -> _Source:
            def take(indices, aug, generator):
                x = cache.read(indices)
                if aug and may_augment and len(shape) == 3:
                    x = random_crop_flip(x, shift, generator)  # flip + shift on feature maps: an approximation
                return x, labels[indices]

            return _Source(take, labels)

        report = {"block": number, "bytes": train_cache.nbytes + test_cache.nbytes, "location": train_cache.location,
                  "precision": str(self.cfg.cache_precision), "feature_augmentation": bool(augment)}
        return (cached(train_cache, source.labels, augment), cached(test_cache, test_source.labels, False), report)

    def _choose_exit(self, exits: list[dict]) -> int:
        """The shallowest exit whose validation accuracy is within `exit_tolerance` points of the best."""
        best = max(e["val_acc"] for e in exits)
        return next(i for i, e in enumerate(exits) if e["val_acc"] >= best - float(self.cfg.exit_tolerance) / 100.0)


def _cpu_state(module: nn.Module) -> dict:
    return {key: value.detach().to("cpu", copy=True) for key, value in module.state_dict().items()}
