"""SNIP (Lee, Ajanthan & Torr, ICLR 2019; docs/pruning-at-initialisation.md): connection sensitivity |dL/dc| at c = 1
for a multiplicative mask c, which equals |theta * dL/dtheta|, divided by its global sum (accumulated in float64),
on one labelled batch of 10 x #classes training examples, one shot at initialisation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from drive_runner.methods.base import ScoringMethod, ScoringOptions
from drive_runner.pruning.sampling import chunks
from drive_runner.pruning.scoring import BNMode, batchnorm_mode, loss_gradients, named_params, score_dtype
from drive_runner.ranges import ranged


@dataclass
class SnipOptions(ScoringOptions):
    num_examples: Optional[int] = ranged(None, 1, integer=True, optional=True)  # None = 10 x #classes (CIFAR-10: 100)
    bn_mode: BNMode = BNMode.eval  # eval (running statistics; this project's choice) | train


def snip_scores(model, names, batches, *, generator=None, input_shape=None, bn_mode: str = "eval"):
    with batchnorm_mode(model, bn_mode):
        grads = loss_gradients(model, names, batches)
    scores = [(p.detach().to(score_dtype(p)) * g).abs_() for p, g in zip(named_params(model, names), grads)]
    total = float(sum(s.sum(dtype=torch.float64) for s in scores))
    scale = 1.0 / total if total > 0 else 1.0  # normalising never changes the ranking
    return {name: s.mul_(scale) for name, s in zip(names, scores)}


class SnipPruning(ScoringMethod):
    name = "snip"
    options = SnipOptions
    colour = "#e377c2"

    def scoring_batches(self, ctx):
        count = self.options.num_examples or 10 * ctx.num_classes
        return chunks(*ctx.examples(count, False), 256)  # one batch, gradients accumulated over chunks

    def score(self, model, names, batches, *, generator, input_shape):
        return snip_scores(model, names, batches, bn_mode=self.options.bn_mode)
