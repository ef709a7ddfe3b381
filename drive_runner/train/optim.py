"""Optimizers and per-iteration learning-rate schedules built from the trainer config."""

from __future__ import annotations

import copy
import math
from typing import Callable, Iterable

import torch
from omegaconf import open_dict

from drive_runner.errors import ConfigError


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg, lr: float | None = None, weight_decay: float | None = None
) -> torch.optim.Optimizer:
    """The recipe's optimizer; `lr` and `weight_decay` override the recipe's values (scaled LR, NeuroFlux)."""
    lr = cfg.lr if lr is None else lr
    weight_decay = cfg.weight_decay if weight_decay is None else weight_decay
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError("trainer.optimizer", f"unknown optimizer '{cfg.optimizer}'; allowed: sgd, adam")


def with_warmup(cfg, warmup_epochs: int):
    """The trainer config a run trains by: as given, or, with trainer.warmup_in_budget=false, `warmup_epochs` more
    epochs and every LR drop that many epochs later, so the recipe's schedule starts when the warm-up ends."""
    if cfg.warmup_in_budget or not warmup_epochs:
        return cfg
    if cfg.lr_schedule == "cosine":
        raise ConfigError("trainer.warmup_in_budget", "false moves the LR drops after the warm-up, and a cosine "
                                                      "schedule has none; use lr_schedule=multistep or constant")
    shifted = copy.deepcopy(cfg)
    with open_dict(shifted):
        shifted.epochs = int(cfg.epochs) + warmup_epochs
        shifted.lr_milestones = [int(m) + warmup_epochs for m in cfg.lr_milestones]
    return shifted


def lr_factor(cfg, steps_per_epoch: int) -> Callable[[int], float]:
    """Multiplier of the base LR at a global iteration, from the epoch-based schedule in the config.

    Stepping per iteration (not per epoch) lets a run resume mid-schedule at any step, which IMP's
    rewinding and DRIVE's warm-up-then-continue both need.
    """
    total_epochs = max(int(cfg.epochs), 1)
    warmup_epochs = float(cfg.lr_warmup_epochs)
    milestones = sorted(int(m) for m in cfg.lr_milestones)

    def factor(step: int) -> float:
        epoch = step / steps_per_epoch
        scale = 1.0
        if warmup_epochs > 0 and epoch < warmup_epochs:
            scale *= (step + 1) / (warmup_epochs * steps_per_epoch)
        if cfg.lr_schedule == "multistep":
            scale *= cfg.lr_gamma ** sum(epoch >= m for m in milestones)
        elif cfg.lr_schedule == "cosine":
            scale *= 0.5 * (1.0 + math.cos(math.pi * min(epoch, total_epochs) / total_epochs))
        return scale

    return factor
