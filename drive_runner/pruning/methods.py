"""Pruning methods as the pipeline sees them: a warm-up length, a mask-finding step and, for methods
that prune while training, callbacks for the training loop.

Each method is registered by name; `method=<name>` in the config picks it. Scored methods share one
loop (score at the current masks, select along the schedule's density path), as in Synaptic-Flow;
IMP (imp.py) and GMP (gmp.py) train between pruning steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.pruning.masks import MaskEngine
from drive_runner.pruning.sampling import Batch, chunks
from drive_runner.pruning.schedules import density_path
from drive_runner.pruning.scorers import get_scorer


@dataclass
class PruningContext:
    """What a method may use to find its mask."""

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
    # The run's training session (None when pruning outside the runner, through the Python API).
    session: Any = None
    # Weights and buffers before any training, for methods that rewind to initialisation.
    initial_state: dict | None = None
    # A fresh initialisation of the model (the k-th independent draw of this run), for re-init ablations.
    reinitialised: Callable[[int], dict] | None = None
    # After every pruning step: (step, steps in all, density reached).
    on_step: Callable[[int, int, float], None] = lambda step, total, density: None
    log: Callable[..., None] = lambda event, **fields: None
    # Called by methods that fix their mask during training (GMP), for the find-mask time.
    mark_mask_fixed: Callable[[], None] = lambda: None
    # A warning for the user (console and log).
    warn: Callable[[str], None] = lambda message: None
    # The run's hardware config (None through the Python API); PruneTrain grows its batch within its memory budget.
    hardware: Any = None


METHODS: dict[str, type["PruningMethod"]] = {}


def register_method(cls: type["PruningMethod"]) -> type["PruningMethod"]:
    METHODS[cls.name] = cls
    return cls


@register_method
class PruningMethod:
    """Base: the dense baseline. Subclasses override `find_mask` and, if they prune during training,
    `training_callbacks`."""

    name = "dense"
    schedules: tuple[str, ...] = ("oneshot",)
    default_schedule = "oneshot"
    prunes_during_training = False  # True: the mask is only final after training (GMP)
    needs_session = False  # True: find_mask trains the network (IMP), so it only runs inside the runner
    structured = False  # True: removes whole channels physically instead of masking weights (PruneTrain)
    step_name = "step"  # what one pruning step is called in progress lines

    def __init__(self, cfg, schedule_cfg):
        self.cfg = cfg
        self.schedule = schedule_cfg
        if schedule_cfg.name not in self.schedules:
            raise ConfigError(
                "schedule", f"method {self.name} does not take schedule={schedule_cfg.name}; allowed: {', '.join(self.schedules)}"
            )

    @property
    def warmup_epochs(self) -> int:
        return int(self.cfg.warmup_epochs)

    def target_density(self, requested_density: float) -> float:
        return 1.0

    def check_config(self, cfg) -> None:
        """Method-specific rules on the whole config; raise ConfigError naming the key."""

    def excluded_tensors(self, model: nn.Module, model_name: str) -> list[str]:
        """Prunable tensors this method keeps dense on top of prune.exclude (method presets)."""
        return []

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        """The survivor count the finished mask must have; checked after pruning and after training."""
        return engine.total()

    def find_mask(self, ctx: PruningContext) -> None:
        """Leave every weight in place."""

    def weights_under_mask(self, before_pruning: dict) -> dict:
        """The dense weights the found mask sits on (what a shuffled mask is put on): the weights before
        pruning, unless the method rewound them."""
        return before_pruning

    def summary_extras(self) -> dict:
        """Method-specific results for summary.json, known once training is over."""
        return {}

    def state_dict(self) -> dict:
        """Where the method is in finding its mask (its part of the run's training state)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved position; called before any phase runs again."""

    def warmup_callbacks(self, ctx: PruningContext) -> list:
        """Training-loop callbacks for the dense warm-up (e.g. snapshotting a step to rewind to)."""
        return []

    def training_callbacks(self, ctx: PruningContext) -> list:
        """Training-loop callbacks for sparse training (e.g. gradual pruning)."""
        return []


class ScoredPruning(PruningMethod):
    """Score, select, repeat along the density path: random, magnitude and the data-driven scorers."""

    schedules = ("oneshot", "exponential", "linear")
    _steps_done = 0  # pruning steps of the density path already taken
    _start_density: float | None = None  # the density the path starts from

    def state_dict(self) -> dict:
        return {"steps_done": self._steps_done, "start_density": self._start_density}

    def load_state_dict(self, state: dict) -> None:
        self._steps_done, self._start_density = int(state["steps_done"]), state["start_density"]

    def target_density(self, requested_density: float) -> float:
        return requested_density

    def scope(self) -> str | None:
        """A method-fixed ranking scope, or None for the engine's (prune.scope)."""
        return None

    def scorer_options(self) -> dict[str, Any]:
        return {}

    def scoring_batches(self, ctx: PruningContext) -> list[Batch]:
        """The data of one scoring pass (none for data-free scorers)."""
        return []

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        return engine.expected_survivors(density, self.scope())

    def find_mask(self, ctx: PruningContext) -> None:
        scorer = get_scorer(self.name)
        if self._start_density is None:
            self._start_density = ctx.engine.density()
        path = density_path(self.schedule.name, ctx.target_density, int(self.cfg.iterations), self._start_density)
        for step, density in enumerate(path, start=1):
            if step <= self._steps_done:  # taken before the run was interrupted
                continue
            generator = torch.Generator().manual_seed(ctx.seed * 7919 + step)
            scores = scorer.fn(
                ctx.model, ctx.engine.names, self.scoring_batches(ctx), generator=generator,
                input_shape=ctx.input_shape, **self.scorer_options(),
            )
            ctx.engine.prune_to_density(scores, density, scope=self.scope())
            self._steps_done = step
            ctx.on_step(step, len(path), ctx.engine.density())


@register_method
class RandomPruning(ScoredPruning):
    name = "random"

    def scope(self) -> str | None:
        """variant=layerwise forces one ranking per tensor; otherwise prune.scope decides, as for every method."""
        return "layerwise" if self.cfg.variant == "layerwise" else None


@register_method
class MagnitudePruning(ScoredPruning):
    name = "magnitude"


@register_method
class SnipPruning(ScoredPruning):
    name = "snip"

    def scoring_batches(self, ctx: PruningContext) -> list[Batch]:
        count = self.cfg.num_examples or 10 * ctx.num_classes
        return chunks(*ctx.examples(count, False), 256)  # one batch, gradients accumulated over chunks

    def scorer_options(self) -> dict[str, Any]:
        return {"bn_mode": self.cfg.bn_mode}


@register_method
class GraspPruning(ScoredPruning):
    name = "grasp"

    def scoring_batches(self, ctx: PruningContext) -> list[Batch]:
        inputs, targets = ctx.examples(int(self.cfg.examples_per_class) * ctx.num_classes, True)
        half = (len(targets) + 1) // 2  # the sample is interleaved by class, so both halves are balanced
        return chunks(inputs, targets, half)

    def scorer_options(self) -> dict[str, Any]:
        return {"temperature": float(self.cfg.temperature), "bn_mode": self.cfg.bn_mode,
                "reinit_linear": bool(self.cfg.reinit_linear)}


@register_method
class SynflowPruning(ScoredPruning):
    name = "synflow"
    default_schedule = "exponential"

    def scorer_options(self) -> dict[str, Any]:
        return {"dtype": self.cfg.dtype}


def method_names() -> list[str]:
    return sorted(METHODS)


def build_method(cfg, schedule_cfg) -> PruningMethod:
    if cfg.name not in METHODS:
        raise ConfigError("method", f"unknown method '{cfg.name}'; allowed: {', '.join(method_names())}")
    return METHODS[cfg.name](cfg, schedule_cfg)
