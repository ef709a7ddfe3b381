"""The Python API, for pruning a model in one's own code with any method that finds its mask by scoring:

    scores = compute_scores("snip", model, batches)                   # one scoring pass at the current masks
    masks = prune(model, "synflow", sparsity=0.99, batches=batches)  # the method with its schedule

Both work on any nn.Module: prunable tensors are the weights of Conv2d and Linear layers (minus
`exclude`), named as in model.named_parameters(). `batches` is an iterable of (inputs, targets);
data-free methods read only the input shape of the first batch. Methods that train while they prune
(IMP, GMP, PruneTrain) run through drive-run, with its resume, records and reports.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import torch
from omegaconf import OmegaConf
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.methods.base import ScoringMethod
from drive_runner.methods.registry import lookup, method_options, method_schema
from drive_runner.pruning.context import PruningContext
from drive_runner.pruning.masks import MaskEngine, find_prunable
from drive_runner.pruning.sampling import Batch
from drive_runner.pruning.targets import density_of


def _scoring_method(name: str, options: dict, schedule: str | None = None) -> ScoringMethod:
    cls = lookup(name)
    if not issubclass(cls, ScoringMethod):
        raise ValueError(f"{name} finds no mask by scoring alone (it trains the network while pruning, or prunes "
                         f"nothing); run it with drive-run method={name}")
    schedule_cfg = OmegaConf.create({"name": schedule or cls.schedules[0]})
    return cls(method_options(cls, {"name": name, **options}), schedule_cfg)


def compute_scores(
    method: str, model: nn.Module, batches: Iterable[Batch], *, exclude: Iterable[str] = (), seed: int = 0,
    input_shape: tuple[int, ...] | None = None, **options,
) -> dict[str, torch.Tensor]:
    """Scores of the named method (higher = keep) for every prunable tensor, each of its parameter's
    shape. `options` are the method's options (e.g. bn_mode, temperature, alpha) or keyword arguments of its
    `score` (DRIVE's dtype="float64", say)."""
    batches = list(batches)
    names = [target.name for target in find_prunable(model, exclude)]
    fields = set(method_schema(lookup(method)).keys())
    scorer = _scoring_method(method, {k: v for k, v in options.items() if k in fields})
    extra = {k: v for k, v in options.items() if k not in fields}
    try:
        return scorer.score(model, names, batches, generator=torch.Generator().manual_seed(seed),
                            input_shape=input_shape or _input_shape(batches), **extra)
    except TypeError as error:
        if extra:
            raise TypeError(f"{method}: {error}") from None
        raise


def prune(
    model: nn.Module, method: str, sparsity: float, batches: Iterable[Batch] = (), *, schedule: str | None = None,
    scope: str = "global", exclude: Iterable[str] = (), seed: int = 0, input_shape: tuple[int, ...] | None = None,
    **options,
) -> dict[str, torch.Tensor]:
    """Run the method with its schedule (e.g. SynFlow: 100 exponential steps) to `sparsity`, apply the
    masks to the model (as `<param>_keep_mask` buffers, zeroing pruned weights) and return them by name.

    `options` are the method's options (e.g. iterations=10, num_examples=128, alpha=0).
    """
    if not 0 <= sparsity < 1:
        raise ConfigError("sparsity", f"must be in [0, 1), got {sparsity}")
    pruner = _scoring_method(method, options, schedule)
    batches = list(batches)
    cycle = itertools.cycle(batches) if batches else iter(())
    engine = MaskEngine(model, exclude=exclude, scope=scope, seed=seed)
    device = next(model.parameters()).device
    num_classes = int(max(int(targets.max()) for _, targets in batches) + 1) if batches else 0
    context = PruningContext(
        model=model, engine=engine, target_density=pruner.target_density(density_of(sparsity)), seed=seed,
        device=device, input_shape=input_shape or _input_shape(batches), num_classes=num_classes,
        examples=lambda count, balanced: _concatenate(batches), next_batches=lambda k: [next(cycle) for _ in range(k)],
    )
    pruner.find_mask(context)
    return engine.mask_state()


def _input_shape(batches: list[Batch]) -> tuple[int, ...] | None:
    """The (C, H, W) of the first batch; None without batches (only SynFlow needs it)."""
    return tuple(batches[0][0].shape[1:]) if batches else None


def _concatenate(batches: list[Batch]) -> Batch:
    return torch.cat([inputs for inputs, _ in batches]), torch.cat([targets for _, targets in batches])
