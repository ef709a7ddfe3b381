"""Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020;
docs/magnitude-during-training.md).

Level 0 trains the dense network with the full recipe; every later level removes a fraction of the
surviving weights by trained magnitude, rewinds the complete state (weights, biases, BN parameters and
statistics) to step k, and retrains with a fresh optimizer, the LR schedule and data order resuming at k
(the levels runner, drive_runner/runners/levels.py).

Under `prune.scope=layerwise` every prunable tensor loses `schedule.fraction` of its own survivors per level
and the output layer `method.output_fraction` (the Lottery Ticket paper's rates: 20% and 10%), until the
total reaches the target.

`method.control=reinit` (or `shuffle`) adds the Lottery Ticket paper's control: every level's mask is also
trained from a fresh initialisation (or as a layer-wise shuffled mask on the rewound weights), and its
accuracy is logged beside the ticket's (`imp_control` events); the ticket itself carries on unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from drive_runner.errors import ConfigError
from drive_runner.methods.base import LevelsMethod, MethodOptions
from drive_runner.methods.magnitude import magnitude_scores
from drive_runner.models.structure import output_layer
from drive_runner.pruning.ablation import Ablation
from drive_runner.pruning.masks import MaskEngine, keep_count
from drive_runner.pruning.schedules import imp_survivors, layerwise_imp_survivors
from drive_runner.ranges import ranged

OUTPUT_LAYER_KEPT_DENSE = ("lenet", "vgg")  # open_lth presets; CIFAR ResNets prune their classifier


@dataclass
class ImpOptions(MethodOptions):
    rewind_step: int = ranged(0, 0, integer=True)  # optimizer step whose full state the weights rewind to (0 = initialisation)
    prune_output_layer: Optional[bool] = None  # None = open_lth presets: kept dense for LeNet/VGG, pruned otherwise
    control: Ablation = Ablation.none  # also train every level's mask as this control, logged beside the ticket
    # with prune.scope=layerwise: the share of the output layer's survivors removed per level (None = schedule.fraction)
    output_fraction: Optional[float] = ranged(None, 0, 1, low_open=True, high_open=True, optional=True)


class IterativeMagnitudePruning(LevelsMethod):
    name = "imp"
    options = ImpOptions
    schedules = ("imp_levels",)
    colour = "#d62728"

    def check_config(self, cfg) -> None:
        if int(cfg.trainer.epochs) == 0:
            raise ConfigError("trainer.epochs", "imp trains every level for trainer.epochs, so 0 finds no mask; "
                                                "give it epochs, or use method=magnitude to prune at initialisation")
        if self.warmup_epochs:
            raise ConfigError("method.warmup_epochs", "imp trains from initialisation in every level; use 0")
        if self.options.output_fraction is not None and cfg.prune.scope != "layerwise":
            raise ConfigError("method.output_fraction", "a rate of the output layer's own needs prune.scope=layerwise")
        if self.options.control != Ablation.none and cfg.prune.ablation != Ablation.none:
            raise ConfigError("method.control", "a per-level control and prune.ablation together measure nothing "
                                                "clear; use one of them")

    def excluded_tensors(self, model, model_name: str) -> list[str]:
        prune_output = self.options.prune_output_layer
        if prune_output is None:
            prune_output = not model_name.startswith(OUTPUT_LAYER_KEPT_DENSE)
        return [] if prune_output else [f"{output_layer(model)}.weight"]

    def level_survivors(self, engine: MaskEngine, density: float) -> list[int | dict[str, int]]:
        target, fraction = keep_count(engine.total(), density), float(self.schedule.fraction)
        if engine.scope == "global":
            return imp_survivors(engine.total(), target, fraction, bool(self.schedule.exact_target))
        fractions = dict.fromkeys(engine.names, fraction)
        output = f"{output_layer(engine.model)}.weight"
        if output in fractions and self.options.output_fraction is not None:
            fractions[output] = float(self.options.output_fraction)
        return layerwise_imp_survivors({t.name: t.mask.numel() for t in engine.targets}, target, fractions)

    def score(self, model, names):
        return magnitude_scores(model, names)
