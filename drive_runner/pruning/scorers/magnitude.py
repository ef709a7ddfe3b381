"""Magnitude pruning (docs/pruning-at-initialisation.md): |theta|. At initialisation it is a baseline; on trained
weights it is the IMP and GMP criterion."""

from drive_runner.pruning.scorers import register_scorer


@register_scorer("magnitude", needs_data=False)
def magnitude_scores(model, names, batches=(), *, generator=None, input_shape=None):
    params = dict(model.named_parameters())
    return {name: params[name].detach().abs() for name in names}
