"""DRIVE's dual-gradient score (Saikumar & Varghese 2024; docs/drive.md, this project's
reconstruction): magnitude |theta|, connection sensitivity |theta * g| and convergence sensitivity |g|,
each normalised over the unpruned weights (their raw scales differ by orders of magnitude) and combined.
The terms are computed in the parameters' precision (at least float32); only the normalising sums
are accumulated in float64. `dtype="float64"` computes everything in float64, for comparison."""

from __future__ import annotations

import torch

from drive_runner.pruning.scorers import register_scorer
from drive_runner.pruning.scorers.common import batchnorm_mode, current_masks, loss_gradients, named_params, score_dtype
from drive_runner.pruning.scorers.grasp import hessian_gradient_product

EPSILON = 1e-12
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def normalise(terms: list[torch.Tensor], alive: list[torch.Tensor], how: str) -> list[torch.Tensor]:
    """Divide a term by its sum (or max) over the unpruned weights U, globally across layers."""
    if how == "none":
        return terms
    if how == "sum":
        scale = sum(torch.where(m, t, 0.0).sum(dtype=torch.float64) for t, m in zip(terms, alive))
    else:
        scale = max(torch.where(m, t, 0.0).max() for t, m in zip(terms, alive))  # terms are non-negative
    return [t / (scale + EPSILON) for t in terms]


def drive_terms(model, names, batches, *, convergence_term: str = "grad", bn_mode: str = "train", dtype: str = "float32"):
    """The three raw terms (a, b, c), one tensor per prunable parameter, in `dtype` or the parameter's
    own higher precision."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    params = [p.detach() for p in named_params(model, names)]
    params = [p.to(torch.promote_types(score_dtype(p), DTYPES[dtype])) for p in params]
    with batchnorm_mode(model, bn_mode):
        if convergence_term == "grad":
            grads = [g.to(p.dtype) for g, p in zip(loss_gradients(model, names, batches), params)]
            convergence = [g.abs() for g in grads]
        elif convergence_term == "hessian_grad":
            raw_grads, hessian_grad = hessian_gradient_product(model, names, batches, temperature=1.0)
            grads = [g.to(p.dtype) for g, p in zip(raw_grads, params)]
            convergence = [(p * h.to(p.dtype)).abs_() for p, h in zip(params, hessian_grad)]
        else:
            raise ValueError(f"convergence_term must be grad or hessian_grad, got {convergence_term!r}")
    magnitude = [p.abs() for p in params]
    sensitivity = [(p * g).abs_() for p, g in zip(params, grads)]
    return magnitude, sensitivity, convergence


@register_scorer("drive", needs_data=True)
def drive_scores(
    model, names, batches, *, generator=None, input_shape=None, alpha: float = 1.0, beta: float = 1.0,
    gamma: float = 1.0, normalization: str = "sum", combine: str = "sum", convergence_term: str = "grad",
    bn_mode: str = "train", dtype: str = "float32",
):
    alive = list(current_masks(model, names).values())
    terms = drive_terms(model, names, batches, convergence_term=convergence_term, bn_mode=bn_mode, dtype=dtype)
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
