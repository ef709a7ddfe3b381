"""DRIVE's dual-gradient score (Saikumar & Varghese 2024; docs/drive.md, this project's
reconstruction): magnitude |theta|, connection sensitivity |theta * g| and convergence sensitivity |g|,
each normalised over the unpruned weights (their raw scales differ by orders of magnitude) and combined."""

from __future__ import annotations

import torch

from drive_runner.pruning.scorers import register_scorer
from drive_runner.pruning.scorers.common import batchnorm_mode, current_masks, loss_gradients, named_params
from drive_runner.pruning.scorers.grasp import hessian_gradient_product

EPSILON = 1e-12


def normalise(terms: list[torch.Tensor], alive: list[torch.Tensor], how: str) -> list[torch.Tensor]:
    """Divide a term by its sum (or max) over the unpruned weights U, globally across layers."""
    if how == "none":
        return terms
    if how == "sum":
        scale = sum(torch.where(m, t, 0.0).sum() for t, m in zip(terms, alive))
    else:
        scale = max(torch.where(m, t, 0.0).max() for t, m in zip(terms, alive))  # terms are non-negative
    return [t / (scale + EPSILON) for t in terms]


def drive_terms(model, names, batches, *, convergence_term: str = "grad", bn_mode: str = "train"):
    """The three raw terms (a, b, c) in float64, one tensor per prunable parameter."""
    params = [p.detach().double() for p in named_params(model, names)]
    with batchnorm_mode(model, bn_mode):
        if convergence_term == "grad":
            grads = [g.double() for g in loss_gradients(model, names, batches)]
            convergence = [g.abs() for g in grads]
        elif convergence_term == "hessian_grad":
            raw_grads, hessian_grad = hessian_gradient_product(model, names, batches, temperature=1.0)
            grads = [g.double() for g in raw_grads]
            convergence = [(p * h.double()).abs() for p, h in zip(params, hessian_grad)]
        else:
            raise ValueError(f"convergence_term must be grad or hessian_grad, got {convergence_term!r}")
    magnitude = [p.abs() for p in params]
    sensitivity = [(p * g).abs() for p, g in zip(params, grads)]
    return magnitude, sensitivity, convergence


@register_scorer("drive", needs_data=True)
def drive_scores(
    model, names, batches, *, generator=None, input_shape=None, alpha: float = 1.0, beta: float = 1.0,
    gamma: float = 1.0, normalization: str = "sum", combine: str = "sum", convergence_term: str = "grad",
    bn_mode: str = "train",
):
    alive = list(current_masks(model, names).values())
    terms = drive_terms(model, names, batches, convergence_term=convergence_term, bn_mode=bn_mode)
    weighted = [(w, normalise(t, alive, normalization)) for w, t in zip((alpha, beta, gamma), terms)]
    scores = []
    for index in range(len(names)):
        if combine == "sum":
            score = sum(w * term[index] for w, term in weighted)
        elif combine == "product":  # weights act as exponents; a zero weight drops the term
            score = torch.ones_like(weighted[0][1][index])
            for w, term in weighted:
                if w > 0:
                    score = score * term[index] ** w
        else:
            raise ValueError(f"combine must be sum or product, got {combine!r}")
        scores.append(score)
    return dict(zip(names, scores))
