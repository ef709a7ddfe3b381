"""Random pruning (docs/pruning-at-initialisation.md): i.i.d. N(0,1) scores, the baseline every method must beat."""

import torch

from drive_runner.pruning.scorers import register_scorer


@register_scorer("random", needs_data=False)
def random_scores(model, names, batches=(), *, generator: torch.Generator, input_shape=None):
    params = dict(model.named_parameters())
    return {name: torch.randn(params[name].shape, generator=generator) for name in names}
