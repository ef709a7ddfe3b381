"""SynFlow (Tanaka, Kunin, Yamins & Ganguli, NeurIPS 2020; docs/pruning-at-initialisation.md): data-free synaptic
saliency |theta * dR/dtheta| with R = 1^T (prod_l |W_l|) 1, scored in float64 because R is a product
over layers that overflows or underflows float32 in deep networks."""

import copy

import torch

from drive_runner.pruning.scorers import register_scorer
from drive_runner.pruning.scorers.common import model_device, named_params


@register_scorer("synflow", needs_data=False)
def synflow_scores(model, names, batches=(), *, input_shape, generator=None):
    if not input_shape:
        raise ValueError("synflow needs the input shape: pass a batch or input_shape=(C, H, W)")
    probe = copy.deepcopy(model).to(dtype=torch.float64).eval()
    with torch.no_grad():
        for tensor in [*probe.parameters(), *probe.buffers()]:
            if tensor.is_floating_point():  # every weight, bias, BN parameter and running statistic
                tensor.abs_()
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=model_device(model))
    objective = probe(ones).sum()
    params = named_params(probe, names)
    grads = torch.autograd.grad(objective, params)
    return {name: (p.detach() * g).abs() for name, p, g in zip(names, params, grads)}
