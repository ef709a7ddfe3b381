"""A pruning rule of one's own: keep the weights whose loss gradient is largest, |dL/dw|, whatever their size."""

from __future__ import annotations

from dataclasses import dataclass

from drive_runner.methods import ScoringMethod, ScoringOptions
from drive_runner.pruning.scoring import loss_gradients
from drive_runner.ranges import ranged


@dataclass
class GradNormOptions(ScoringOptions):
    batches: int = ranged(1, 1, integer=True)  # fresh mini-batches whose gradient each step averages


class GradNorm(ScoringMethod):
    name = "grad_norm"
    options = GradNormOptions

    def scoring_batches(self, ctx):
        return ctx.next_batches(self.options.batches)

    def score(self, model, names, batches, *, generator, input_shape):
        grads = loss_gradients(model, names, batches)
        return {name: grad.abs() for name, grad in zip(names, grads)}
