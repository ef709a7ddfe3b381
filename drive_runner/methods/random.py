"""Random pruning (docs/pruning-at-initialisation.md): i.i.d. N(0,1) scores, the baseline every method must beat."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from drive_runner.methods.base import ScoringMethod, ScoringOptions
from drive_runner.pruning.options import Scope


@dataclass
class RandomOptions(ScoringOptions):
    # global: one ranking over every tensor (each layer's density is binomial around the target) |
    # layerwise: exactly round(N_l * d) survivors in every layer, whatever prune.scope says
    variant: Scope = Scope["global"]


def random_scores(model, names, batches=(), *, generator: torch.Generator, input_shape=None):
    params = dict(model.named_parameters())
    return {name: torch.randn(params[name].shape, generator=generator) for name in names}


class RandomPruning(ScoringMethod):
    name = "random"
    options = RandomOptions
    colour = "#8c564b"

    def scoring_batches(self, ctx):
        return []

    def scope(self) -> str | None:
        """variant=layerwise forces one ranking per tensor; otherwise prune.scope decides, as for every method."""
        return "layerwise" if self.options.variant == "layerwise" else None

    def score(self, model, names, batches, *, generator, input_shape):
        return random_scores(model, names, batches, generator=generator)
