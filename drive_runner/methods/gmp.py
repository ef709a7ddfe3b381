"""Gradual magnitude pruning (Zhu & Gupta 2017, docs/magnitude-during-training.md): during sparse training, every dt steps
the smallest-magnitude survivors are removed along a cubic sparsity ramp; the mask freezes at its end."""

from __future__ import annotations

import math

from drive_runner.errors import ConfigError
from drive_runner.methods.base import TrainingTimeMethod
from drive_runner.pruning.context import TrainingContext
from drive_runner.pruning.schedules import gmp_density
from drive_runner.pruning.targets import target_density
from drive_runner.train.loop import TrainingCallback


def pruning_window(schedule, total_epochs: int) -> tuple[int, int]:
    """(start, end) in completed epochs; defaults keep the paper's 10..80 of 160 proportions."""
    start = total_epochs // 16 if schedule.start_epoch is None else int(schedule.start_epoch)
    end = math.ceil(total_epochs / 2) if schedule.end_epoch is None else int(schedule.end_epoch)
    return start, end


class GradualMagnitudePruning(TrainingTimeMethod):
    name = "gmp"
    schedules = ("cubic",)
    colour = "#bcbd22"

    def check_config(self, cfg) -> None:
        epochs = int(cfg.trainer.epochs)
        if epochs == 0:
            raise ConfigError("trainer.epochs", "gmp prunes while the network trains, so trainer.epochs=0 finds no mask; "
                                                "give it epochs, or use method=magnitude to prune at initialisation")
        start, end = pruning_window(self.schedule, epochs)
        if not 0 <= start < end <= epochs:
            raise ConfigError(
                "schedule.end_epoch",
                f"gmp prunes between epochs {start} and {end}, which must satisfy 0 <= start < end <= trainer.epochs={epochs}",
            )
        final_sparsity = 1.0 - target_density(cfg)
        if not 0 <= self.schedule.initial_sparsity <= final_sparsity:
            raise ConfigError("schedule.initial_sparsity", f"must be in [0, {final_sparsity:g}] (the target sparsity)")

    _callback: "_GradualPruning | None" = None
    _saved_events = 0

    def training_callbacks(self, training: TrainingContext) -> list:
        start, end = pruning_window(self.schedule, int(training.session.cfg.epochs))
        steps = training.session.steps_per_epoch
        self._callback = _GradualPruning(training, self.schedule, start * steps, end * steps)
        self._callback.events = self._saved_events
        return [self._callback]

    def state_dict(self) -> dict:
        return {"events": self._callback.events if self._callback else 0}

    def load_state_dict(self, state: dict) -> None:
        self._saved_events = int(state["events"])


class _GradualPruning(TrainingCallback):
    def __init__(self, ctx: TrainingContext, schedule, start_step: int, end_step: int):
        self.ctx = ctx
        self.start_step, self.end_step = start_step, end_step
        self.interval = int(schedule.interval_steps)
        self.initial_sparsity = float(schedule.initial_sparsity)
        self.events = 0
        # Pruning events: every interval from the start (after step 1 at the earliest), and the window's end.
        first = start_step if start_step > 0 else self.interval
        self.total_events = len(range(first, end_step, self.interval)) + 1

    def on_step_end(self, session) -> None:
        step = session.step
        if step < self.start_step or step > self.end_step:
            return
        if (step - self.start_step) % self.interval and step != self.end_step:
            return
        density = gmp_density(step, start_step=self.start_step, end_step=self.end_step,
                              initial_sparsity=self.initial_sparsity, final_density=self.ctx.target_density)
        engine = self.ctx.engine
        engine.prune_to_density({n: p.detach().abs() for n, p in engine.params.items()}, density)
        self.events += 1
        self.ctx.on_step(self.events, self.total_events, engine.density())
        if step == self.end_step:
            self.ctx.mark_mask_fixed()
