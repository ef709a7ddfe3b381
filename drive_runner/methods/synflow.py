"""SynFlow (Tanaka, Kunin, Yamins & Ganguli, NeurIPS 2020; docs/pruning-at-initialisation.md): data-free synaptic
saliency |theta * dR/dtheta| with R = 1^T (prod_l |W_l|) 1.

R is a product over layers, so it over- or underflows float32 in deep networks. The float32 path
scores in plain float32 while R stays well inside float32's range. Beyond it, each prunable layer's
|W| is divided by a power of two near that layer's gain: where every path from input to output runs
through every prunable layer once, with zero biases (a chain at initialisation), that multiplies
every score by one constant and leaves the ranking as it was. That condition is checked on the
result: it holds exactly when each layer's scores sum to R (Euler's theorem for functions homogeneous
in each layer). Where it does not (residual paths, non-zero biases), the scores come from float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from drive_runner.methods.base import ScoringMethod, ScoringOptions
from drive_runner.pruning.scoring import DTYPES, ScoreDtype, batchnorm_mode, model_device
from drive_runner.ranges import ranged

@dataclass
class SynflowOptions(ScoringOptions):
    iterations: int = ranged(100, 1, integer=True)
    # float32: each layer's |W| rescaled where that keeps the ranking exact, float64 where it cannot
    dtype: ScoreDtype = ScoreDtype.float32


CONSERVATION_TOLERANCE = 1e-4  # relative; float32 rounding over VGG-16 stays below 1e-7
# R inside this range leaves unscaled float32 a margin of 2^26 either side (normal numbers span 2^-126..2^128).
FLOAT32_SAFE_RANGE = (2.0**-100, 2.0**100)


def synflow_scores(model, names, batches=(), *, input_shape, generator=None, dtype: str = "float32"):
    if not input_shape:
        raise ValueError("synflow needs the input shape: pass a batch or input_shape=(C, H, W)")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    if dtype == "float64":
        return probe_scores(model, names, input_shape, torch.float64, rescale=False)[0]
    scores, objective = probe_scores(model, names, input_shape, torch.float32, rescale=False)
    in_range = FLOAT32_SAFE_RANGE[0] < objective < FLOAT32_SAFE_RANGE[1]
    if in_range and all(math.isfinite(float(score.sum())) for score in scores.values()):
        return scores
    scores, objective = probe_scores(model, names, input_shape, torch.float32, rescale=True)
    if is_conserved(scores, objective):
        return scores
    return probe_scores(model, names, input_shape, torch.float64, rescale=False)[0]


def probe_scores(
    model: nn.Module, names: list[str], input_shape, dtype: torch.dtype, rescale: bool
) -> tuple[dict[str, torch.Tensor], float]:
    """Scores |theta * dR/dtheta| and R itself, from the model's state replaced by its absolute values
    (weights, biases, BN parameters and running statistics) in `dtype`, eval mode, an input of ones.
    `rescale` divides each prunable tensor by a power of two near its layer's gain (exact in binary)."""
    state = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point():
            state[name] = tensor.detach().to(dtype).abs()
    if rescale:
        for name in names:
            state[name].mul_(2.0 ** -layer_gain_exponent(state[name]))
    weights = [state[name].requires_grad_() for name in names]
    ones = torch.ones((1, *input_shape), dtype=dtype, device=model_device(model))
    with batchnorm_mode(model, "eval"):
        objective = functional_call(model, state, (ones,)).sum()
    grads = torch.autograd.grad(objective, weights)
    scores = {name: g.mul_(w.detach()).abs_() for name, w, g in zip(names, weights, grads)}
    return scores, float(objective.detach())


def layer_gain_exponent(weight: torch.Tensor) -> int:
    """log2 of how much the layer multiplies an input of equal positive entries, rounded: the mean
    sum of |W| over one output unit's inputs (a conv's kernel window included). 0 for an empty layer."""
    total = float(weight.sum())
    return round(math.log2(total / weight.shape[0])) if total > 0 else 0


def is_conserved(scores: dict[str, torch.Tensor], objective: float) -> bool:
    """Whether every tensor's scores sum to R, which is what makes per-layer rescaling rank-preserving."""
    if not math.isfinite(objective):
        return False
    sums = [float(score.sum()) for score in scores.values()]
    return all(abs(total - objective) <= CONSERVATION_TOLERANCE * objective for total in sums)


class SynflowPruning(ScoringMethod):
    name = "synflow"
    options = SynflowOptions
    schedules = ("exponential", "oneshot", "linear")
    colour = "#7f7f7f"

    def scoring_batches(self, ctx):
        return []

    def score(self, model, names, batches, *, generator, input_shape):
        return synflow_scores(model, names, input_shape=input_shape, dtype=self.options.dtype)
