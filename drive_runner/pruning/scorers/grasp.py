"""GraSP (Wang, Zhang & Grosse, ICLR 2020; docs/pruning-at-initialisation.md): keep the weights whose removal would
most reduce gradient flow, z = theta * (H g), signed, with the loss taken on logits / T."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from drive_runner.pruning.scorers import register_scorer
from drive_runner.pruning.scorers.common import batchnorm_mode, model_device, named_params, score_dtype


def hessian_gradient_product(model: nn.Module, names: list[str], batches, temperature: float = 200.0):
    """(g, Hg) for L = sum over batches of the mean cross-entropy of logits / T, by double backprop:
    g is detached, then each batch's gradient is rebuilt with a graph and <g, grad L_b> differentiated."""
    params = named_params(model, names)
    device = model_device(model)
    batches = [(inputs.to(device), targets.to(device)) for inputs, targets in batches]
    grad = [torch.zeros_like(p) for p in params]
    for inputs, targets in batches:
        loss = F.cross_entropy(model(inputs) / temperature, targets)
        for acc, g in zip(grad, torch.autograd.grad(loss, params)):
            acc.add_(g)
    hessian_grad = [torch.zeros_like(p) for p in params]
    for inputs, targets in batches:
        loss = F.cross_entropy(model(inputs) / temperature, targets)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        inner = sum((g * f).sum() for g, f in zip(grad, grads))
        for acc, h in zip(hessian_grad, torch.autograd.grad(inner, params)):
            acc.add_(h)
    return grad, hessian_grad


@register_scorer("grasp", needs_data=True)
def grasp_scores(
    model, names, batches, *, generator: torch.Generator | None = None, input_shape=None,
    temperature: float = 200.0, bn_mode: str = "eval", reinit_linear: bool = False,
):
    scored = model
    if reinit_linear:  # the official option: score a copy whose Linear layers are Xavier re-initialised
        scored = copy.deepcopy(model)
        with torch.no_grad():
            for module in scored.modules():
                if isinstance(module, nn.Linear):
                    fan_in, fan_out = module.weight.shape[1], module.weight.shape[0]
                    std = (2.0 / (fan_in + fan_out)) ** 0.5
                    noise = torch.randn(module.weight.shape, generator=generator)
                    module.weight.copy_(noise.to(module.weight) * std * (module.weight != 0))
    with batchnorm_mode(scored, bn_mode):
        _, hessian_grad = hessian_gradient_product(scored, names, batches, temperature)
    z = [p.detach().to(score_dtype(p)) * h for p, h in zip(named_params(scored, names), hessian_grad)]
    norm = abs(float(sum(t.sum(dtype=torch.float64) for t in z))) + 1e-10
    return {name: t / norm for name, t in zip(names, z)}
