"""GraSP (Wang, Zhang & Grosse, ICLR 2020; docs/pruning-at-initialisation.md): keep the weights whose removal would
most reduce gradient flow, z = theta * (H g), signed, with the loss taken on logits / T, on a class-balanced sample
of 10 examples per class split in two halves; one shot at initialisation."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from drive_runner.methods.base import ScoringMethod, ScoringOptions
from drive_runner.pruning.sampling import chunks
from drive_runner.pruning.scoring import BNMode, batchnorm_mode, model_device, named_params, score_dtype
from drive_runner.ranges import ranged


@dataclass
class GraspOptions(ScoringOptions):
    examples_per_class: int = ranged(10, 1, integer=True)
    temperature: float = ranged(200.0, 0, low_open=True)
    bn_mode: BNMode = BNMode.eval  # eval (this project's choice, as the Synaptic-Flow reference) | train (the official code)
    reinit_linear: bool = False  # the official option: Xavier re-init of the scoring copy's Linear layers


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


class GraspPruning(ScoringMethod):
    name = "grasp"
    options = GraspOptions
    colour = "#2ca02c"

    def scoring_batches(self, ctx):
        inputs, targets = ctx.examples(int(self.options.examples_per_class) * ctx.num_classes, True)
        half = (len(targets) + 1) // 2  # the sample is interleaved by class, so both halves are balanced
        return chunks(inputs, targets, half)

    def score(self, model, names, batches, *, generator, input_shape):
        return grasp_scores(model, names, batches, generator=generator, temperature=float(self.options.temperature),
                            bn_mode=self.options.bn_mode, reinit_linear=bool(self.options.reinit_linear))
