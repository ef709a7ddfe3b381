"""SNIP (Lee, Ajanthan & Torr, ICLR 2019; docs/pruning-at-initialisation.md): connection sensitivity |dL/dc| at c = 1
for a multiplicative mask c, which equals |theta * dL/dtheta|, divided by its global sum (accumulated in float64)."""

import torch

from drive_runner.pruning.scorers import register_scorer
from drive_runner.pruning.scorers.common import batchnorm_mode, loss_gradients, named_params, score_dtype


@register_scorer("snip", needs_data=True)
def snip_scores(model, names, batches, *, generator=None, input_shape=None, bn_mode: str = "eval"):
    with batchnorm_mode(model, bn_mode):
        grads = loss_gradients(model, names, batches)
    scores = [(p.detach().to(score_dtype(p)) * g).abs_() for p, g in zip(named_params(model, names), grads)]
    total = float(sum(s.sum(dtype=torch.float64) for s in scores))
    scale = 1.0 / total if total > 0 else 1.0  # normalising never changes the ranking
    return {name: s.mul_(scale) for name, s in zip(names, scores)}
