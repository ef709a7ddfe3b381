"""Pruning methods as the pipeline sees them: a warm-up length, a mask-finding step and, for methods
that prune while training, callbacks for the training loop.

Each method is registered by name; `method=<name>` in the config picks it. Scored methods share one
loop (score at the current masks, select along the schedule's density path), as in Synaptic-Flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.pruning.masks import MaskEngine
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
    # Draws (inputs, targets) batches from the augmented training set, seeded, never the test set.
    train_batches: Callable[[int], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None
    input_shape: tuple[int, ...] = ()
    num_classes: int = 0
    # Called once per pruning step with (step, density), for metrics and the console.
    on_step: Callable[[int, float], None] = lambda step, density: None
    extras: dict[str, Any] = field(default_factory=dict)


class PruningMethod:
    """Base: the dense baseline. Subclasses override `find_mask` and, if they prune during training,
    `training_callbacks`."""

    name = "dense"
    schedules: tuple[str, ...] = ("oneshot",)

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

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        """The survivor count the finished mask must have; checked after pruning and after training."""
        return engine.total()

    def find_mask(self, ctx: PruningContext) -> None:
        """Leave every weight in place."""

    def training_callbacks(self, ctx: PruningContext) -> list:
        return []


class ScoredPruning(PruningMethod):
    """Score, select, repeat along the density path: random, magnitude and the data-driven scorers."""

    schedules = ("oneshot", "exponential", "linear")

    def target_density(self, requested_density: float) -> float:
        return requested_density

    def scope(self) -> str | None:
        """A method-fixed ranking scope, or None for the engine's (prune.scope)."""
        return None

    def scorer_options(self) -> dict[str, Any]:
        return {}

    def expected_survivors(self, engine: MaskEngine, density: float) -> int:
        return engine.expected_survivors(density, self.scope())

    def find_mask(self, ctx: PruningContext) -> None:
        scorer = get_scorer(self.name)
        path = density_path(self.schedule.name, ctx.target_density, int(self.cfg.iterations))
        for step, density in enumerate(path, start=1):
            generator = torch.Generator().manual_seed(ctx.seed * 7919 + step)
            batches: Iterable = ctx.train_batches(step) if scorer.needs_data and ctx.train_batches else ()
            scores = scorer.fn(
                ctx.model, ctx.engine.names, batches, generator=generator, input_shape=ctx.input_shape,
                **self.scorer_options(),
            )
            ctx.engine.prune_to_density(scores, density, scope=self.scope())
            ctx.on_step(step, ctx.engine.density())


class RandomPruning(ScoredPruning):
    name = "random"

    def scope(self) -> str | None:
        return "layerwise" if self.cfg.variant == "layerwise" else "global"


class MagnitudePruning(ScoredPruning):
    name = "magnitude"


METHODS: dict[str, type[PruningMethod]] = {
    cls.name: cls for cls in (PruningMethod, RandomPruning, MagnitudePruning)
}


def method_names() -> list[str]:
    return sorted(METHODS)


def build_method(cfg, schedule_cfg) -> PruningMethod:
    if cfg.name not in METHODS:
        raise ConfigError("method", f"unknown method '{cfg.name}'; allowed: {', '.join(method_names())}")
    return METHODS[cfg.name](cfg, schedule_cfg)
