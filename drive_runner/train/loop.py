"""The backprop training loop and evaluation.

A TrainingSession owns one optimizer, one LR schedule and one epoch counter for a whole run, so the
dense warm-up and sparse training are two stretches of the same schedule (DRIVE keeps optimizer state
across pruning; a dense run and a pruned run see the same learning rates at the same epoch).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from typing import Callable, Iterable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from drive_runner import distributed
from drive_runner.errors import TrainingDiverged
from drive_runner.memory.accounting import SavedTensorMeter
from drive_runner.train.acceleration import Acceleration
from drive_runner.train.metrics import topk_correct
from drive_runner.train.optim import build_optimizer, lr_factor


class TrainingCallback:
    """Hooks a method can hang on the loop (gradual pruning, regularisers, model surgery)."""

    def extra_loss(self, model: nn.Module, task_loss: torch.Tensor) -> torch.Tensor | None:
        """A term added to the task loss (e.g. a group-lasso penalty, scaled from the first task loss)."""
        return None

    def on_step_end(self, session: "TrainingSession") -> None:
        """After each optimizer step (and its mask re-application)."""

    def on_epoch_end(self, session: "TrainingSession", metrics: dict) -> None:
        """After each epoch's training and evaluation."""


class StepSnapshot(TrainingCallback):
    """Keeps a copy of the weights and buffers as they are right after optimizer step `step`."""

    def __init__(self, step: int):
        self.step = step
        self.state: dict[str, torch.Tensor] | None = None

    def on_step_end(self, session: "TrainingSession") -> None:
        if session.step == self.step:
            self.state = session.snapshot()

    def state_dict(self) -> dict:
        return {"state": self.state}

    def load_state_dict(self, state: dict) -> None:
        self.state = state["state"]


class Progress(Protocol):
    def start_phase(self, phase: str, epochs: int, batches_per_epoch: int) -> None: ...
    def advance_batch(self) -> None: ...
    def end_epoch(self, metrics: dict) -> None: ...
    def end_phase(self) -> None: ...


class _Silent:
    def start_phase(self, phase, epochs, batches_per_epoch): ...
    def advance_batch(self): ...
    def end_epoch(self, metrics): ...
    def end_phase(self): ...


@torch.no_grad()
def evaluate(model: nn.Module, source, *, batch_size: int, device: torch.device, precision: str = "fp32",
             acceleration: Acceleration | None = None, forward: nn.Module | None = None) -> dict:
    """Mean cross-entropy, top-1 and top-5 accuracy (fractions in 0..1) over a whole split. Sums stay on
    the device until the end; under data parallelism each rank evaluates its shard with rank 0's BN
    statistics and the totals are summed over ranks."""
    acceleration = acceleration or Acceleration(device, precision)
    forward = forward or model
    world = distributed.current()
    was_training = model.training
    model.eval()
    distributed.sync_buffers(model)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct1, correct5 = torch.zeros((), dtype=torch.long, device=device), torch.zeros((), dtype=torch.long, device=device)
    count = 0
    for inputs, targets in source.batches(batch_size, shuffle=False, shard=world.shard):
        if targets.numel() == 0:  # a last batch smaller than the number of ranks
            continue
        inputs, targets = acceleration.prepare_inputs(inputs), targets.to(device, non_blocking=True)
        with acceleration.autocast():
            logits = forward(inputs)
        logits = logits.float()
        loss_sum += F.cross_entropy(logits, targets, reduction="sum")
        hits = topk_correct(logits, targets)
        correct1 += hits[1]
        correct5 += hits[5]
        count += targets.numel()
    model.train(was_training)
    loss_total, top1, top5, count = distributed.all_sum([float(loss_sum), float(correct1), float(correct5), count])
    count = max(count, 1)
    return {"loss": loss_total / count, "top1": top1 / count, "top5": top5 / count}


class TrainingSession:
    def __init__(
        self,
        model: nn.Module,
        data,
        trainer_cfg,
        *,
        device: torch.device,
        precision: str,
        seed: int,
        engine=None,
        callbacks: Iterable[TrainingCallback] = (),
        progress: Progress | None = None,
        on_epoch: Callable[[dict], None] = lambda metrics: None,
        on_evaluation: Callable[[dict], None] = lambda record: None,
        at_boundary: Callable[[bool], None] = lambda end_of_epoch: None,
        batch_size: int | None = None,
        lr_scale: float = 1.0,
        memory_static_bytes: int | None = None,
        acceleration: Acceleration | None = None,
    ):
        self.model = model
        self.data = data
        self.cfg = trainer_cfg
        self.device = device
        self.acceleration = acceleration or Acceleration(device, precision)
        self.world = distributed.current()
        self._forward: nn.Module | None = None  # what a training step calls (DDP and compile wrappers)
        self._eval_forward: nn.Module | None = None
        self.seed = seed
        self.engine = engine
        self.callbacks = list(callbacks)
        self.progress = progress or _Silent()
        self.on_epoch = on_epoch
        self.on_evaluation = on_evaluation
        # After every optimizer step (False) and every finished epoch (True): where a run may save its
        # state and stop.
        self.at_boundary = at_boundary
        self.batch_size = int(batch_size or trainer_cfg.batch_size)
        self.lr_scale = lr_scale
        self._count_steps_per_epoch()
        # With a memory budget, every step's saved tensors are counted: the measured peak of the run.
        self._memory_static = memory_static_bytes
        self._meter = SavedTensorMeter([model]) if memory_static_bytes is not None else None
        self.measured_peak_bytes = 0
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.history: list[dict] = []  # every finished epoch's metrics, in order
        self.evaluations: list[dict] = []  # every evaluation between epochs (trainer.eval_every_steps), in order
        self._partial: dict | None = None  # the running sums of the epoch in progress
        self.in_epoch = False  # between an epoch's first and last step
        self.optimizer = self.scheduler = None
        self.reset_optimizer()

    def state_dict(self) -> dict:
        """Everything but the model itself that training needs to continue exactly where it is."""
        return {
            "epoch": self.epoch, "step": self.step, "history": self.history, "evaluations": self.evaluations,
            "partial_epoch": self._partial_epoch(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "measured_peak_bytes": self.measured_peak_bytes,
            "batch_size": self.batch_size, "lr_scale": self.lr_scale, "memory_static_bytes": self._memory_static,
        }

    def _partial_epoch(self) -> dict | None:
        """The epoch in progress, as saved: its sums on the CPU and the seconds it has taken so far."""
        if self._partial is None:
            return None
        partial = self._partial
        return {"loss_sum": partial["loss_sum"].cpu(), "correct": partial["correct"].cpu(), "count": partial["count"],
                "lr": partial["lr"], "seconds": partial["seconds"] + time.perf_counter() - partial["started"]}

    def load_state_dict(self, state: dict) -> None:
        """Continue a saved session on the same model (already loaded, masks included)."""
        if "batch_size" in state:  # the batch may have grown during the run (PruneTrain's dynamic mini-batch)
            self.set_batch_size(state["batch_size"], state["lr_scale"], state["memory_static_bytes"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = list(state["history"])
        self.evaluations = list(state["evaluations"])
        self._partial = state["partial_epoch"]
        self.measured_peak_bytes = int(state["measured_peak_bytes"])
        self.reset_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def reset_optimizer(self) -> None:
        """A fresh optimizer and LR schedule positioned at the current step (used after rewinding or surgery)."""
        if self._meter is not None:  # surgery may have replaced parameters: exclude the new ones
            self._meter = SavedTensorMeter([self.model])
        self._forward = self._eval_forward = None  # rebuilt around the current parameters at the next step
        self.optimizer = build_optimizer(self.model.parameters(), self.cfg, lr=self.cfg.lr * self.lr_scale)
        if self.engine is not None:
            self.engine.attach(self.optimizer)
        self._schedule_from_step()

    def _schedule_from_step(self) -> None:
        """The recipe's LR schedule on the current optimizer for cfg.lr x lr_scale, positioned at `step`."""
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.cfg.lr * self.lr_scale
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(self.cfg, self.steps_per_epoch),
                                                           last_epoch=self.step - 1)

    def set_batch_size(self, batch_size: int, lr_scale: float, memory_static_bytes: int | None = None) -> None:
        """Train with another batch from the next epoch on (PruneTrain's dynamic mini-batch), between epochs
        only. The optimizer and its state stay; the LR becomes cfg.lr x `lr_scale` x the schedule's factor.
        `step` is renumbered to epoch x the new steps_per_epoch, so step // steps_per_epoch is still the
        epoch and the per-step schedule stays in epochs: the next epoch's LR is the recipe's for that epoch
        times the new scale. `memory_static_bytes` replaces the static part of the measured peak."""
        if self.step != self.epoch * self.steps_per_epoch:
            raise RuntimeError(f"the batch size changes only between epochs (step {self.step}, epoch {self.epoch})")
        self.batch_size, self.lr_scale = int(batch_size), float(lr_scale)
        self._count_steps_per_epoch()
        self.step = self.epoch * self.steps_per_epoch
        if memory_static_bytes is not None:
            self._memory_static = memory_static_bytes
        self._schedule_from_step()

    def _count_steps_per_epoch(self) -> None:
        """Batches per epoch at the current batch size. Under data parallelism a last batch with fewer
        samples than ranks is dropped: it would leave a rank with nothing to train on."""
        samples = self.data.train.num_samples
        self._drop_last = self.world.parallel and 0 < samples % self.batch_size < self.world.size
        self.steps_per_epoch = max(self.data.train.num_batches(self.batch_size, self._drop_last), 1)

    def epoch_generator(self, epoch: int) -> torch.Generator:
        """Shuffling and augmentation randomness of an epoch depend only on (seed, epoch), so
        resuming at any step replays the same data order."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the model's weights and buffers (its state_dict, which holds no masks), to rewind to."""
        return {key: value.detach().to("cpu", copy=True) for key, value in self.model.state_dict().items()}

    def rewind(self, state: dict[str, torch.Tensor], step: int) -> None:
        """Load a snapshot (keeping the current masks), start a fresh optimizer and resume the LR schedule
        and data order at `step`, as IMP rewinding prescribes."""
        self.model.load_state_dict(state)
        if self.engine is not None:
            self.engine.apply()
        self.step = step
        self.epoch = step // self.steps_per_epoch
        self._partial = None
        self.reset_optimizer()

    def train_until(self, end_epoch: int, phase: str) -> list[dict]:
        """Train from the current step to the end of epoch `end_epoch` (a partial first epoch after a
        mid-epoch rewind or a resume), evaluating on the test split as configured; returns the metrics of
        every epoch trained under this phase name, including those before a resume."""
        if self.epoch < end_epoch:
            self._train_epochs(end_epoch, phase)
        return [metrics for metrics in self.history if metrics["phase"] == phase]

    def _train_epochs(self, end_epoch: int, phase: str) -> None:
        self.progress.start_phase(phase, end_epoch - self.epoch, self.steps_per_epoch)
        try:
            while self.epoch < end_epoch:
                self.in_epoch = True
                try:
                    metrics = self._train_one_epoch(phase)
                finally:
                    self.in_epoch = False
                if (self.epoch % int(self.cfg.eval_every) == 0) or self.epoch == end_epoch:
                    metrics.update(self.evaluate_splits())
                for callback in self.callbacks:
                    callback.on_epoch_end(self, metrics)
                self.progress.end_epoch(metrics)
                self.history.append(metrics)
                self.on_epoch(metrics)
                self.at_boundary(True)
        finally:
            self.progress.end_phase()

    def evaluate_splits(self) -> dict:
        """Test metrics (test_loss, test_top1, test_top5) and, where a validation split is held out, val_*."""
        splits = {"test": self.data.test, "val": self.data.validation}
        return {f"{name}_{key}": value for name, source in splits.items() if source is not None
                for key, value in evaluate(self.model, source, batch_size=int(self.cfg.eval_batch_size),
                                           device=self.device, acceleration=self.acceleration,
                                           forward=self.eval_forward()).items()}

    def _evaluate_between_epochs(self, phase: str) -> None:
        record = {"phase": phase, "step": self.step, **self.evaluate_splits()}
        self.evaluations.append(record)
        self.on_evaluation(record)

    def training_forward(self) -> nn.Module:
        """The model as a training step calls it: wrapped in DistributedDataParallel under data
        parallelism (gradients averaged over ranks as they are computed), then compiled if asked."""
        if self._forward is None:
            module = self.model
            if self.world.parallel:
                from torch.nn.parallel import DistributedDataParallel

                # Buffers are not broadcast every step: BN statistics are synchronised from rank 0 where
                # they are read (evaluation), and the masks are kept identical by the engine.
                module = DistributedDataParallel(
                    module, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                    forward_sync_buffers=False,
                )
            self._forward = self.acceleration.forward_module(module)
        return self._forward

    def eval_forward(self) -> nn.Module:
        if self._eval_forward is None:
            self._eval_forward = self.acceleration.forward_module(self.model)
        return self._eval_forward

    def _measuring(self):
        if self._meter is None:
            return contextlib.nullcontext()
        self._meter.reset()
        return self._meter.measuring()

    def _train_one_epoch(self, phase: str) -> dict:
        self.model.train()
        started = time.perf_counter()
        # Sums stay on the device so a GPU epoch never waits on the host mid-way; an epoch resumed
        # mid-way continues the sums it had when it was saved.
        partial = self._partial or {
            "loss_sum": torch.zeros(()), "correct": torch.zeros((), dtype=torch.long), "count": 0,
            "lr": self.optimizer.param_groups[0]["lr"], "seconds": 0.0,
        }
        loss_sum, correct = partial["loss_sum"].to(self.device), partial["correct"].to(self.device)
        count, lr, seconds_before = partial["count"], partial["lr"], partial["seconds"]
        # One record of the running sums per epoch: the sums are updated in place, the count per step.
        self._partial = {"loss_sum": loss_sum, "correct": correct, "count": count, "lr": lr,
                         "seconds": seconds_before, "started": started}
        generator = self.epoch_generator(self.epoch)
        batches = self.data.train.batches(self.batch_size, shuffle=True, generator=generator, augment=True,
                                          drop_last=self._drop_last, shard=self.world.shard)
        done_in_epoch = self.step - self.epoch * self.steps_per_epoch  # > 0 only after a mid-epoch rewind
        forward, acceleration = self.training_forward(), self.acceleration
        for index, (inputs, targets) in enumerate(itertools.islice(batches, done_in_epoch, None), done_in_epoch):
            inputs, targets = acceleration.prepare_inputs(inputs), targets.to(self.device, non_blocking=True)
            with acceleration.autocast(), self._measuring():
                logits = forward(inputs)
                loss = F.cross_entropy(logits.float(), targets)
                total = loss
                if self.world.parallel:
                    # Each rank's share of the mean over the whole batch, times the ranks DDP averages over:
                    # the gradient is exactly that of one process on the whole batch.
                    whole_batch = min(self.batch_size, self.data.train.num_samples - index * self.batch_size)
                    total = loss * (targets.numel() * self.world.size / whole_batch)
                for callback in self.callbacks:
                    extra = callback.extra_loss(self.model, loss)
                    if extra is not None:
                        total = total + extra
            if self._meter is not None:
                self._meter.include(inputs)  # once, whether or not the first layer saved it
                step_bytes = self._memory_static + self._meter.bytes
                self.measured_peak_bytes = max(self.measured_peak_bytes, step_bytes)
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            for callback in self.callbacks:
                callback.on_step_end(self)
            if self.cfg.eval_every_steps and self.step % int(self.cfg.eval_every_steps) == 0:
                self._evaluate_between_epochs(phase)
            loss_sum += loss.detach() * targets.numel()
            correct += (logits.argmax(dim=1) == targets).sum()
            count += targets.numel()
            self.progress.advance_batch()
            self._partial["count"] = count
            if self.step < (self.epoch + 1) * self.steps_per_epoch:  # the last step's boundary is the epoch's end
                self.at_boundary(False)
        self._partial = None
        self.epoch += 1
        loss_total, correct_total, count = distributed.all_sum([float(loss_sum), float(correct), count])
        train_loss = loss_total / max(count, 1)
        if not math.isfinite(train_loss):
            lr = self.cfg.lr * self.lr_scale
            raise TrainingDiverged(f"training diverged: loss is {train_loss} in epoch {self.epoch} ({phase}); "
                                   f"try a lower trainer.lr (now {lr:g}) or trainer.weight_decay "
                                   f"(now {self.cfg.weight_decay:g})")
        return {
            "phase": phase,
            "epoch": self.epoch,
            "step": self.step,
            "lr": lr,
            "train_loss": train_loss,
            "train_acc": correct_total / max(count, 1),
            "epoch_time_s": seconds_before + time.perf_counter() - started,
        }


def early_stop(records: Iterable[dict]) -> dict:
    """The evaluation with the lowest validation loss among `records` (epochs and evaluations between them): the
    Lottery Ticket paper's early-stopping point, its step and the test accuracy there. Empty without validation."""
    validated = [record for record in records if "val_loss" in record]
    if not validated:
        return {}
    best = min(validated, key=lambda record: (record["val_loss"], record["step"]))
    return {"early_stop_step": best["step"], "early_stop_test_acc": best["test_top1"],
            "early_stop_val_loss": best["val_loss"]}
