"""What a pruning method is: one class, with its options as a dataclass and the runner that trains with it.

    class GradNorm(ScoringMethod):           # a scoring rule: pruning before sparse training
        name = "grad_norm"
        options = GradNormOptions            # a dataclass deriving from ScoringOptions
        def score(self, model, names, batches, *, generator, input_shape):
            ...                              # {parameter name: scores of its shape}, higher = keep

The base classes below are the kinds of method the runners know (drive_runner/runners): a scoring rule
gets the one-shot and iterative schedules, the scope, exclusions, exact survivor counts, resume between
steps and the mask ablations from ScoringMethod and the mask-first runner; a method that prunes in levels
(IMP) or while the network trains (GMP, PruneTrain) names its runner the same way. Built-in methods are
modules of this package; docs/extending.md shows a method of one's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import MISSING
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.pruning.context import PruningContext, TrainingContext
from drive_runner.pruning.masks import MaskEngine
from drive_runner.pruning.sampling import Batch
from drive_runner.pruning.schedules import density_path
from drive_runner.ranges import ranged
from drive_runner.runners.during_training import DuringTrainingRunner
from drive_runner.runners.levels import LevelsRunner
from drive_runner.runners.mask_first import MaskFirstRunner


@dataclass
class MethodOptions:
    """The options every method has. `_target_` and `name` are filled in by the registry from the class."""

    _target_: str = MISSING  # the method's class
    name: str = MISSING  # what method= and the reports call it
    warmup_epochs: int = ranged(0, 0, integer=True)  # dense epochs before pruning; part of trainer.epochs
    iterations: int = ranged(1, 1, integer=True)  # pruning steps along the schedule's density path (scoring rules)


class Method:
    """The base of every method: what a runner asks of one, with the answers of a method that finds no mask
    (the dense baseline is this, with `prunes` off)."""

    name: ClassVar[str | None] = None  # None for the bases a method derives from
    options: ClassVar[type] = MethodOptions
    # the schedule= options it takes; the first is the Python API's default (its config file sets drive-run's)
    schedules: ClassVar[tuple[str, ...]] = ("oneshot",)
    runner: ClassVar[type] = MaskFirstRunner
    prunes: ClassVar[bool] = True  # False: every weight stays (the dense baseline)
    sparsity_target: ClassVar[bool] = True  # False: no sparsity target (dense; PruneTrain removes channels instead)
    colour: ClassVar[str | None] = None  # its colour in every report's figures (None: one derived from the name)
    step_name: ClassVar[str] = "step"  # what one pruning step is called in progress lines

    def __init__(self, options, schedule):
        self.options = options
        self.schedule = schedule
        if schedule.name not in self.schedules:
            raise ConfigError("schedule", f"method {options.name} does not take schedule={schedule.name}; "
                                          f"allowed: {', '.join(self.schedules)}")

    @property
    def warmup_epochs(self) -> int:
        return int(self.options.warmup_epochs)

    def target_density(self, requested_density: float) -> float:
        """The density this method prunes to, given the run's target (1: it has none)."""
        return requested_density if self.sparsity_target else 1.0

    def check_config(self, cfg) -> None:
        """Rules of this method on the whole config, checked before any work; raise ConfigError naming the key."""

    def excluded_tensors(self, model: nn.Module, model_name: str) -> list[str]:
        """Prunable tensors this method keeps dense on top of prune.exclude (a method's presets)."""
        return []

    def scope(self) -> str | None:
        """A ranking scope this method fixes, or None for prune.scope."""
        return None

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        """The survivor count the finished mask must have; checked after pruning and after training."""
        return engine.expected_survivors(density, self.scope())

    def find_mask(self, ctx: PruningContext) -> None:
        """Find the mask before sparse training (the mask-first runner calls it)."""

    def weights_under_mask(self, before_pruning: dict) -> dict:
        """The dense weights the found mask sits on (what a shuffled mask is put on): the weights before
        pruning, unless the method rewound them."""
        return before_pruning

    def warmup_callbacks(self, training: TrainingContext) -> list:
        """Training-loop callbacks for the dense warm-up (e.g. keeping a step to rewind to)."""
        return []

    def after_mask(self, training: TrainingContext) -> None:
        """Once the mask is found, before it is checked: e.g. rewinding the weights under it."""

    def training_callbacks(self, training: TrainingContext) -> list:
        """Training-loop callbacks for the training after the warm-up (e.g. pruning while training)."""
        return []

    def summary_extras(self) -> dict:
        """Method-specific results for summary.json, known once training is over."""
        return {}

    def state_dict(self) -> dict:
        """Where the method is in finding its mask (its part of the run's training state)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position; called before any phase runs again."""


class Dense(Method):
    """No pruning: the dense baseline, trained on the same recipe."""

    name = "dense"
    prunes = False
    sparsity_target = False
    colour = "#1f77b4"


@dataclass
class ScoringOptions(MethodOptions):
    """A scoring rule's options: those every method has; a rule adds its own by deriving from this."""


class ScoringMethod(Method):
    """A scoring rule: score the unpruned weights, keep the highest, along the schedule's density path
    (one step for schedule=oneshot), as in Synaptic-Flow's pruning loop. Subclasses define `score` and,
    for data other than one fresh mini-batch per step, `scoring_batches`."""

    options = ScoringOptions
    schedules = ("oneshot", "exponential", "linear")

    def __init__(self, options, schedule):
        super().__init__(options, schedule)
        self._steps_done = 0  # pruning steps of the density path already taken
        self._start_density: float | None = None  # the density the path starts from

    def score(self, model: nn.Module, names: list[str], batches: list[Batch], *, generator: torch.Generator,
              input_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """Scores (higher = keep) for the named parameters of `model`, at its current masks."""
        raise NotImplementedError(f"{type(self).__name__} must define score()")

    def scoring_batches(self, ctx: PruningContext) -> list[Batch]:
        """The data of one scoring pass: by default one fresh mini-batch of the training set."""
        return ctx.next_batches(1)

    def find_mask(self, ctx: PruningContext) -> None:
        if self._start_density is None:
            self._start_density = ctx.engine.density()
        path = density_path(self.schedule.name, ctx.target_density, int(self.options.iterations), self._start_density)
        for step, density in enumerate(path, start=1):
            if step <= self._steps_done:  # taken before the run was interrupted
                continue
            generator = torch.Generator().manual_seed(ctx.seed * 7919 + step)
            scores = self.score(ctx.model, ctx.engine.names, self.scoring_batches(ctx), generator=generator,
                                input_shape=ctx.input_shape)
            ctx.engine.prune_to_density(scores, density, scope=self.scope())
            self._steps_done = step
            ctx.on_step(step, len(path), ctx.engine.density())

    def state_dict(self) -> dict:
        return {"steps_done": self._steps_done, "start_density": self._start_density}

    def load_state_dict(self, state: dict) -> None:
        self._steps_done, self._start_density = int(state["steps_done"]), state["start_density"]


class LevelsMethod(Method):
    """A method that prunes in levels: train, remove the lowest-scored survivors, rewind, train again (IMP).
    Subclasses define `score` (of the trained weights) and `level_survivors`."""

    runner = LevelsRunner
    step_name = "level"

    def score(self, model: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} must define score()")

    def level_survivors(self, engine: MaskEngine, density: float) -> list[int | dict[str, int]]:
        """The survivor count after each level: one number ranked globally, or one per tensor (layer-wise)."""
        raise NotImplementedError(f"{type(self).__name__} must define level_survivors()")

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        levels = self.level_survivors(engine, density)
        if not levels:
            return engine.total()
        return sum(levels[-1].values()) if isinstance(levels[-1], dict) else levels[-1]


class TrainingTimeMethod(Method):
    """A method that prunes while the network trains, through training-loop callbacks (GMP, PruneTrain)."""

    runner = DuringTrainingRunner

