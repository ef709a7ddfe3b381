"""Magnitude pruning (docs/pruning-at-initialisation.md): |theta|. At initialisation it is a baseline; on trained
weights it is the IMP and GMP criterion."""

from __future__ import annotations

from drive_runner.methods.base import ScoringMethod


def magnitude_scores(model, names, batches=(), *, generator=None, input_shape=None):
    params = dict(model.named_parameters())
    return {name: params[name].detach().abs() for name in names}


class MagnitudePruning(ScoringMethod):
    name = "magnitude"
    colour = "#9467bd"

    def scoring_batches(self, ctx):
        return []

    def score(self, model, names, batches, *, generator, input_shape):
        return magnitude_scores(model, names)
