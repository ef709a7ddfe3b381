"""Iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Frankle et al. 2020;
docs/magnitude-during-training.md).

Level 0 trains the dense network with the full recipe; every later level removes a fraction of the
surviving weights by trained magnitude, rewinds the complete state (weights, biases, BN parameters and
statistics) to step k, and retrains with a fresh optimizer, the LR schedule and data order resuming at k
(the levels runner, drive_runner/runners/levels.py).

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
from drive_runner.pruning.schedules import imp_survivors
from drive_runner.ranges import ranged

OUTPUT_LAYER_KEPT_DENSE = ("lenet", "vgg")  # open_lth presets; CIFAR ResNets prune their classifier


@dataclass
class ImpOptions(MethodOptions):
    rewind_step: int = ranged(0, 0, integer=True)  # optimizer step whose full state the weights rewind to (0 = initialisation)
    prune_output_layer: Optional[bool] = None  # None = open_lth presets: kept dense for LeNet/VGG, pruned otherwise
    control: Ablation = Ablation.none  # also train every level's mask as this control, logged beside the ticket


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
        if cfg.prune.scope != "global":
            raise ConfigError("prune.scope", "imp ranks all prunable weights together (open_lth); use global")
        if self.options.control != Ablation.none and cfg.prune.ablation != Ablation.none:
            raise ConfigError("method.control", "a per-level control and prune.ablation together measure nothing "
                                                "clear; use one of them")

    def excluded_tensors(self, model, model_name: str) -> list[str]:
        prune_output = self.options.prune_output_layer
        if prune_output is None:
            prune_output = not model_name.startswith(OUTPUT_LAYER_KEPT_DENSE)
        return [] if prune_output else [f"{output_layer(model)}.weight"]

    def level_survivors(self, engine: MaskEngine, density: float) -> list[int]:
        return imp_survivors(engine.total(), keep_count(engine.total(), density), float(self.schedule.fraction),
                             bool(self.schedule.exact_target))

    def score(self, model, names):
        return magnitude_scores(model, names)
