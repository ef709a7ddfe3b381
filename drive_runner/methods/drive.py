"""DRIVE (Saikumar & Varghese 2024; docs/drive.md): a dense warm-up, then the dual-gradient score (this project's
reconstruction): magnitude |theta|, connection sensitivity |theta * g| and convergence sensitivity |g|,
each normalised over the unpruned weights (their raw scales differ by orders of magnitude) and combined.
The scoring pass runs in float64 by default (`method.dtype`) on a copy of the model: in float32 a
convolution's weight gradient differs in its last bits with the number of CPU threads, and a hundred
pruning steps carry such a difference across the cut (another mask for 1 and 2 threads on ResNet-20)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch

from drive_runner.errors import ConfigError
from drive_runner.methods.base import ScoringMethod, ScoringOptions
from drive_runner.methods.grasp import hessian_gradient_product
from drive_runner.pruning.scoring import (BNMode, ScoreDtype, batchnorm_mode, current_masks, in_precision,
                                          loss_gradients, named_params)
from drive_runner.ranges import ranged
from drive_runner.train.loop import StepSnapshot

EPSILON = 1e-12


class Normalization(StrEnum):
    sum = "sum"
    max = "max"
    none = "none"


class Combine(StrEnum):
    sum = "sum"
    product = "product"


class ConvergenceTerm(StrEnum):
    grad = "grad"  # |g|
    hessian_grad = "hessian_grad"  # |theta * Hg|, GraSP-style


# What the weights under the found mask are: continue (train on from the weights the mask was found on) |
# rewind_init (the initial weights: an ablation) | rewind_step (the weights after method.rewind_step warm-up steps).
# Made by the functional API because `continue` is a Python keyword.
AfterPrune = StrEnum("AfterPrune", [(name, name) for name in ("continue", "rewind_init", "rewind_step")])


@dataclass
class DriveOptions(ScoringOptions):
    # dense epochs before pruning, part of trainer.epochs (0 = at-initialisation ablation)
    warmup_epochs: int = ranged(2, 0, integer=True)
    iterations: int = ranged(100, 1, integer=True)  # pruning steps
    batches_per_iter: int = ranged(1, 1, integer=True)  # fresh mini-batches averaged per step
    alpha: float = ranged(1.0, 0)  # weight of the magnitude term |theta|
    beta: float = ranged(1.0, 0)  # weight of the connection-sensitivity term |theta * g|
    gamma: float = ranged(1.0, 0)  # weight of the convergence-sensitivity term
    normalization: Normalization = Normalization.sum  # applied to each term over the unpruned weights
    combine: Combine = Combine.sum  # of the normalised terms
    convergence_term: ConvergenceTerm = ConvergenceTerm.grad
    bn_mode: BNMode = BNMode.train  # train (BN buffers snapshotted and restored) | eval
    after_prune: AfterPrune = AfterPrune["continue"]
    rewind_step: int = ranged(0, 0, integer=True)  # with after_prune=rewind_step: the warm-up step to rewind to
    dtype: ScoreDtype = ScoreDtype.float64  # of the scoring pass; float32 is faster and depends on the thread count


def normalise(terms: list[torch.Tensor], alive: list[torch.Tensor], how: str) -> list[torch.Tensor]:
    """Divide a term by its sum (or max) over the unpruned weights U, globally across layers."""
    if how == "none":
        return terms
    if how == "sum":
        scale = sum(torch.where(m, t, 0.0).sum(dtype=torch.float64) for t, m in zip(terms, alive))
    else:
        scale = max(torch.where(m, t, 0.0).max() for t, m in zip(terms, alive))  # terms are non-negative
    return [t / (scale + EPSILON) for t in terms]


def drive_terms(model, names, batches, *, convergence_term: str = "grad", bn_mode: str = "train", dtype: str = "float64"):
    """The three raw terms (a, b, c), one tensor per prunable parameter, from a forward and backward pass in
    `dtype` (on a copy of the model where it computes in another precision)."""
    model, batches = in_precision(model, list(batches), dtype)
    params = [p.detach() for p in named_params(model, names)]
    with batchnorm_mode(model, bn_mode):
        if convergence_term == "grad":
            grads = loss_gradients(model, names, batches)
            convergence = [g.abs() for g in grads]
        elif convergence_term == "hessian_grad":
            grads, hessian_grad = hessian_gradient_product(model, names, batches, temperature=1.0)
            convergence = [(p * h).abs_() for p, h in zip(params, hessian_grad)]
        else:
            raise ValueError(f"convergence_term must be grad or hessian_grad, got {convergence_term!r}")
    magnitude = [p.abs() for p in params]
    sensitivity = [(p * g).abs_() for p, g in zip(params, grads)]
    return magnitude, sensitivity, convergence


def drive_scores(
    model, names, batches, *, generator=None, input_shape=None, alpha: float = 1.0, beta: float = 1.0,
    gamma: float = 1.0, normalization: str = "sum", combine: str = "sum", convergence_term: str = "grad",
    bn_mode: str = "train", dtype: str = "float64",
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


class DrivePruning(ScoringMethod):
    """A short dense warm-up, then the dual-gradient score applied over many small pruning steps, one fresh
    mini-batch per step, without resetting the weights (unless an after_prune ablation asks for it)."""

    name = "drive"
    options = DriveOptions
    schedules = ("exponential", "oneshot", "linear")
    colour = "#ff7f0e"

    def __init__(self, options, schedule):
        super().__init__(options, schedule)
        self._snapshot: StepSnapshot | None = None
        self._saved_snapshot: dict | None = None
        self._rewound_to: dict | None = None

    def state_dict(self) -> dict:
        return {**super().state_dict(), "snapshot": self._snapshot.state_dict() if self._snapshot else None}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._saved_snapshot = state["snapshot"]

    def check_config(self, cfg) -> None:
        if not any(self.options[term] > 0 for term in ("alpha", "beta", "gamma")):
            raise ConfigError("method.alpha", "with method.alpha, method.beta and method.gamma all 0 the score ranks "
                                              "nothing; give at least one term a positive weight")
        if self._rewinds_to_a_step() and self.warmup_epochs == 0:
            raise ConfigError("method.rewind_step", "rewinding to a warm-up step needs method.warmup_epochs >= 1")

    def _rewinds_to_a_step(self) -> bool:
        return self.options.after_prune == "rewind_step" and self.options.rewind_step > 0

    def scoring_batches(self, ctx):
        return ctx.next_batches(int(self.options.batches_per_iter))

    def score(self, model, names, batches, *, generator, input_shape):
        keys = ("alpha", "beta", "gamma", "normalization", "combine", "convergence_term", "bn_mode", "dtype")
        return drive_scores(model, names, batches, **{key: self.options[key] for key in keys})

    def warmup_callbacks(self, training) -> list:
        self._snapshot = None
        if self._rewinds_to_a_step():
            self._snapshot = StepSnapshot(int(self.options.rewind_step))
            if self._saved_snapshot:
                self._snapshot.load_state_dict(self._saved_snapshot)
            return [self._snapshot]
        return []

    def after_mask(self, training) -> None:
        """The after_prune ablations: the found mask on earlier weights; the epoch budget and LR schedule carry on."""
        if self.options.after_prune == "continue":
            return
        state = training.initial_state
        if self._rewinds_to_a_step():
            state = self._snapshot.state
            if state is None:
                raise ConfigError("method.rewind_step", f"step {self.options.rewind_step} is beyond the warm-up "
                                                        f"({training.session.step} steps)")
        self._rewound_to = state
        training.session.rewind(state, training.session.step)

    def weights_under_mask(self, before_pruning: dict) -> dict:
        return before_pruning if self._rewound_to is None else self._rewound_to
