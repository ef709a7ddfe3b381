"""The training recipe a config may set, with its defaults (the `trainer=` group's schema).

The defaults are the generic recipe: what a dataset without a recipe of its own trains with (a user's
dataset, say). The built-in datasets have their own recipes (conf/recipe/<dataset>.yaml), which set every
field of RECIPE_FIELDS; `recipe=<name>` picks another and `trainer.<key>=` overrides any value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, List

from drive_runner.memory.options import LRScaling
from drive_runner.ranges import batch_size_rule, epochs_list_rule, ranged, ruled


class Optimizer(StrEnum):
    sgd = "sgd"
    adam = "adam"


class LRSchedule(StrEnum):
    multistep = "multistep"  # x lr_gamma at each of lr_milestones (epochs)
    cosine = "cosine"  # cosine decay to 0 over trainer.epochs
    constant = "constant"


@dataclass
class TrainerConfig:
    name: str = "backprop"
    epochs: int = ranged(30, 0, integer=True)  # the whole budget, a method's dense warm-up included
    # an int >= 1, or auto: the largest power of two that fits hardware.memory_budget_mb
    batch_size: Any = ruled(128, batch_size_rule)
    eval_batch_size: int = ranged(512, 1, integer=True)
    optimizer: Optimizer = Optimizer.sgd
    lr: float = ranged(0.05, 0, low_open=True)
    lr_reference_batch: int = ranged(128, 1, integer=True)  # the batch size `lr` is meant for
    lr_scaling: LRScaling = LRScaling.linear
    momentum: float = ranged(0.9, 0, 1, high_open=True)
    nesterov: bool = False
    weight_decay: float = ranged(5e-4, 0)
    lr_schedule: LRSchedule = LRSchedule.cosine
    lr_milestones: List[int] = ruled(rule=epochs_list_rule, default_factory=list)  # epochs, for lr_schedule=multistep
    lr_gamma: float = ranged(0.1, 0, 1, low_open=True)
    lr_warmup_epochs: int = ranged(0, 0)  # linear warm-up of the learning rate, in epochs
    # a method's dense warm-up (DRIVE's method.warmup_epochs) is part of `epochs` (true), or trained before them with
    # the LR drops moved by as much (false: as many epochs after pruning as a method that prunes at initialisation)
    warmup_in_budget: bool = True
    eval_every: int = ranged(1, 1, integer=True)  # test-set evaluation every N epochs (the last epoch always is)
    # also evaluate every N optimizer steps (validation split and test; 0 = per epoch only): the evaluation with the
    # lowest validation loss is each phase's early-stopping point, as the Lottery Ticket paper reports it
    eval_every_steps: int = ranged(0, 0, integer=True)


# What a recipe (conf/recipe/*.yaml) sets: the rest of the trainer's keys say how a run trains, not what.
RECIPE_FIELDS = ("epochs", "batch_size", "lr_reference_batch", "optimizer", "lr", "momentum", "nesterov",
                 "weight_decay", "lr_schedule", "lr_milestones", "lr_gamma", "lr_warmup_epochs")