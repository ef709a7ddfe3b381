"""PruneTrain (Lym et al., SC'19): structured pruning that physically shrinks the model while it trains: the group-lasso penalty is added to every training step, and every `interval`
epochs the network is rebuilt without its dead channels; under a memory budget the batch then grows to
what the smaller model fits (docs/prunetrain.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from drive_runner import distributed
from drive_runner.errors import ConfigError
from drive_runner.methods.base import MethodOptions, TrainingTimeMethod
from drive_runner.pruning.context import TrainingContext
from drive_runner.pruning.masks import MaskEngine
from drive_runner.structured.architecture import output_widths
from drive_runner.structured.dynamic_batch import DynamicBatch
from drive_runner.structured.group_lasso import grouped_layers, penalty, strength_from_ratio
from drive_runner.structured.reconfigure import reconfigure
from drive_runner.train.flops import total_flops, training_flops
from drive_runner.train.loop import TrainingCallback


@dataclass
class PruneTrainOptions(MethodOptions):
    penalty_ratio: float = 0.2  # r: lambda R / (CE + lambda R) on the first mini-batch, then frozen
    threshold: float = 1e-4  # a group is dead when all its |w| are below this
    interval: int = 10  # epochs between reconfigurations (10 on CIFAR, 5 on ImageNet)
    # With hardware.memory_budget_mb: after a reconfiguration that shrinks the model, train on with the largest
    # batch the smaller model fits in the budget (LR scaled linearly); no effect without a budget.
    dynamic_batch: bool = True
    max_batch_size: Optional[int] = None  # the bound on that growth; None = 4 x the run's starting batch


class PruneTrain(TrainingTimeMethod):
    name = "prunetrain"
    options = PruneTrainOptions
    sparsity_target = False  # no masks: whole channels leave the model instead
    colour = "#17becf"

    def check_config(self, cfg) -> None:
        if not 0 < self.options.penalty_ratio < 1:
            raise ConfigError("method.penalty_ratio", f"must be in (0, 1), got {self.options.penalty_ratio}")
        if self.options.interval < 1:
            raise ConfigError("method.interval", f"must be an integer >= 1 (epochs), got {self.options.interval}")
        if self.options.threshold <= 0:
            raise ConfigError("method.threshold", f"must be > 0, got {self.options.threshold}")
        if int(cfg.trainer.epochs) < self.options.interval:
            raise ConfigError("trainer.epochs", f"prunetrain removes channels every method.interval={self.options.interval} "
                                                f"epochs of training; trainer.epochs={cfg.trainer.epochs} never gets there")
        largest = self.options.max_batch_size
        if largest is not None and (largest < 1 or (cfg.trainer.batch_size != "auto"
                                                    and largest < int(cfg.trainer.batch_size))):
            raise ConfigError("method.max_batch_size", f"bounds the batch's growth, so it must be null or at least "
                                                       f"trainer.batch_size ({cfg.trainer.batch_size}); got {largest}")

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        return engine.total()

    _tracker: "_GroupLassoAndReconfigure | None" = None
    _saved: dict | None = None

    def training_callbacks(self, training: TrainingContext) -> list:
        self._tracker = _GroupLassoAndReconfigure(training, self.options, training.hardware)
        if self._saved:
            self._tracker.load_state_dict(self._saved)
        return [self._tracker]

    def state_dict(self) -> dict:
        return self._tracker.state_dict() if self._tracker else {}

    def load_state_dict(self, state: dict) -> None:
        self._saved = state or None

    def summary_extras(self) -> dict:
        # Structured pruning removes channels without a sparsity target.
        return {**self._tracker.summary(), "target_sparsity": None, "target_compression": None}


class _GroupLassoAndReconfigure(TrainingCallback):
    def __init__(self, ctx: TrainingContext, cfg, hardware=None):
        self.ctx = ctx
        self.ratio = float(cfg.penalty_ratio)
        self.threshold = float(cfg.threshold)
        self.interval = int(cfg.interval)
        self.layers = grouped_layers(ctx.model)
        self.strength: float | None = None
        self.initial_widths = output_widths(ctx.model)
        self.initial_flops = self.flops = training_flops(ctx.model, ctx.input_shape)
        self.initial_inference_flops = total_flops(ctx.model, ctx.input_shape)[0]
        self.epoch_flops: list[int] = []
        self.epoch_times: list[float] = []
        self.reconfigurations: list[dict] = []
        # How far the penalty alone could have moved a group norm: sum over steps of lr * lambda / (1 - momentum).
        self.penalty_budget = 0.0
        self.median_group_norm = float(_median_filter_norm(self.layers))
        # PruneTrain's dynamic mini-batch: only with a memory budget (and method.dynamic_batch on).
        budget = getattr(hardware, "memory_budget_mb", None)
        self.batch = DynamicBatch(ctx, hardware, cfg.max_batch_size) if budget is not None and cfg.dynamic_batch else None

    # What the run has measured so far; everything else follows from the model and the config.
    _STATE = ("strength", "initial_widths", "initial_flops", "flops", "initial_inference_flops", "epoch_flops",
              "epoch_times", "reconfigurations", "penalty_budget", "median_group_norm")

    def state_dict(self) -> dict:
        state = {name: getattr(self, name) for name in self._STATE}
        if self.batch is not None:
            state["dynamic_batch"] = self.batch.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for name in self._STATE:
            setattr(self, name, state[name])
        if self.batch is not None and "dynamic_batch" in state:
            self.batch.load_state_dict(state["dynamic_batch"])

    def extra_loss(self, model, task_loss):
        group_penalty = penalty(self.layers)
        if self.strength is None:  # fixed once, from the first mini-batch (never re-tuned)
            # Under data parallelism the first batch's loss is the mean over every rank's shard, so every
            # rank fixes the strength one process would.
            (first_loss,) = distributed.all_sum([task_loss.item()])
            first_loss /= distributed.current().size
            self.strength = strength_from_ratio(self.ratio, first_loss, group_penalty.item())
            self.ctx.log("group_lasso", strength=self.strength, penalty_ratio=self.ratio)
        return self.strength * group_penalty

    def on_step_end(self, session) -> None:
        group = session.optimizer.param_groups[0]
        self.penalty_budget += group["lr"] * (self.strength or 0.0) / (1.0 - group.get("momentum", 0.0))

    def on_epoch_end(self, session, metrics: dict) -> None:
        model = self.ctx.model
        metrics["train_flops_per_sample"] = self.flops  # of the architecture this epoch trained
        metrics["params"] = sum(p.numel() for p in model.parameters())
        metrics["channels"] = output_widths(model)
        if self.batch is not None:
            metrics["batch_size"] = session.batch_size  # the batch this epoch trained with
        self.epoch_flops.append(self.flops)
        self.epoch_times.append(metrics["epoch_time_s"])
        if session.epoch % self.interval == 0:
            self._reconfigure(session)

    def _reconfigure(self, session) -> None:
        model = self.ctx.model
        state = {p: s for p, s in session.optimizer.state.items() if s}
        report = reconfigure(model, self.ctx.input_shape, self.threshold, state)
        if report.changed:
            self.layers = grouped_layers(model)
            self.ctx.engine.rebind()
            session.reset_optimizer()  # same LR schedule position, new parameter objects
            session.optimizer.state.update(report.optimizer_state)
            self.flops = training_flops(model, self.ctx.input_shape)
            if self.batch is not None and session.epoch < int(session.cfg.epochs):  # epochs left to train
                self.batch.refit(session)
        event = {
            "epoch": session.epoch,
            "removed_channels": sum(report.removed_channels.values()),
            "removed_branches": report.removed_branches,
            "params": sum(p.numel() for p in model.parameters()),
            "train_flops_per_sample": self.flops,
        }
        if self.batch is not None:  # what the next interval trains with
            event.update(batch_size=session.batch_size, lr_scale=session.lr_scale)
        self.reconfigurations.append(event)
        self.ctx.log("reconfigure", **event)

    def summary(self) -> dict:
        epochs = len(self.epoch_flops)
        shrank = any(r["removed_channels"] or r["removed_branches"] for r in self.reconfigurations)
        if not shrank:
            self.ctx.warn(
                f"PruneTrain removed no channel: over this run the penalty could shrink a group norm by "
                f"{self.penalty_budget:.3g} at most, against a median filter norm of {self.median_group_norm:.3g} at "
                "initialisation. Groups reach the threshold only after thousands of full-LR steps and an LR drop "
                "(the paper trains 182 CIFAR epochs of 391 steps; on digits use recipe=prunetrain_digits). A larger "
                "method.penalty_ratio shrinks every BN-normalised filter together and costs accuracy first."
            )
        extras = {"dynamic_batch": self.batch.summary()} if self.batch is not None else {}
        return {
            **extras,
            "group_lasso_strength": self.strength,
            "penalty_budget": self.penalty_budget,
            # Final vs initial per-sample training FLOPs (the final architecture's cost).
            "flops_reduction": 1.0 - self.flops / self.initial_flops,
            # The whole run's training cost against a dense run of the same length (the authors' measure).
            "training_flops_reduction": 1.0 - sum(self.epoch_flops) / (self.initial_flops * epochs) if epochs else 0.0,
            # Inference cost of the final model against the initial one (the authors' "inference FLOPs removed").
            "inference_flops_reduction": 1.0 - total_flops(self.ctx.model, self.ctx.input_shape)[0]
            / self.initial_inference_flops,
            # Last against first epoch's wall-clock, where the model shrank (otherwise it measures warm-up effects).
            "epoch_time_reduction": 1.0 - self.epoch_times[-1] / self.epoch_times[0] if shrank and epochs > 1 else None,
            "train_flops_initial": self.initial_flops,
            "train_flops_final": self.flops,
            "channels_initial": self.initial_widths,
            "channels_final": output_widths(self.ctx.model),
            "reconfigurations": self.reconfigurations,
        }


def _median_filter_norm(layers) -> float:
    norms = [layer.module.weight.detach().flatten(1).norm(dim=1) for layer in layers if layer.output_groups]
    return float(torch.cat(norms).median()) if norms else 0.0
