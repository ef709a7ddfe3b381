"""The public Python API, for researchers who bring their own models.

    scores = compute_scores("snip", model, batches)            # one scoring pass at the current masks
    masks = prune(model, "synflow", sparsity=0.99, batches=batches)  # the method with its schedule

Both work on any nn.Module: prunable tensors are the weights of Conv2d and Linear layers (minus
`exclude`), named as in model.named_parameters(). `batches` is an iterable of (inputs, targets);
data-free methods read only the input shape of the first batch.
"""

from __future__ import annotations

import itertools
from typing import Iterable

import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.pruning.masks import MaskEngine, find_prunable
from drive_runner.pruning.methods import METHODS, PruningContext
from drive_runner.pruning.options import METHOD_OPTIONS
from drive_runner.pruning.targets import density_of
from drive_runner.pruning.sampling import Batch
from drive_runner.pruning.scorers import get_scorer


def compute_scores(
    method: str, model: nn.Module, batches: Iterable[Batch], *, exclude: Iterable[str] = (), seed: int = 0,
    input_shape: tuple[int, ...] | None = None, **options,
) -> dict[str, torch.Tensor]:
    """Scores of the named method (higher = keep) for every prunable tensor, each of its parameter's
    shape. `options` are the method's scorer knobs (e.g. bn_mode, temperature, alpha)."""
    batches = list(batches)
    names = [target.name for target in find_prunable(model, exclude)]
    scorer = get_scorer(method)
    try:
        return scorer.fn(
            model, names, batches, generator=torch.Generator().manual_seed(seed),
            input_shape=input_shape or _input_shape(batches), **options,
        )
    except TypeError as error:
        raise TypeError(f"{method}: {error}") from None


def prune(
    model: nn.Module, method: str, sparsity: float, batches: Iterable[Batch] = (), *, schedule: str | None = None,
    scope: str = "global", exclude: Iterable[str] = (), seed: int = 0, input_shape: tuple[int, ...] | None = None,
    **options,
) -> dict[str, torch.Tensor]:
    """Run the method with its schedule (e.g. SynFlow: 100 exponential steps) to `sparsity`, apply the
    masks to the model (as `<param>_keep_mask` buffers, zeroing pruned weights) and return them by name.

    `options` are the method's config knobs (e.g. iterations=10, num_examples=128, alpha=0). Methods
    that train between pruning steps (imp, gmp) run only inside drive-run.
    """
    if method not in METHODS:
        raise ConfigError("method", f"unknown method '{method}'; allowed: {', '.join(sorted(METHODS))}")
    cls = METHODS[method]
    if cls.needs_session or cls.prunes_during_training:
        raise ValueError(f"{method} trains the network while pruning; run it with drive-run method={method}")
    if not 0 <= sparsity < 1:
        raise ConfigError("sparsity", f"must be in [0, 1), got {sparsity}")
    cfg = _method_config(method, options)
    schedule_cfg = OmegaConf.create({"name": schedule or cls.default_schedule})
    pruner = cls(cfg, schedule_cfg)

    batches = list(batches)
    cycle = itertools.cycle(batches) if batches else iter(())
    engine = MaskEngine(model, exclude=exclude, scope=scope, seed=seed)
    device = next(model.parameters()).device
    num_classes = int(max(int(targets.max()) for _, targets in batches) + 1) if batches else 0
    context = PruningContext(
        model=model, engine=engine, target_density=pruner.target_density(density_of(sparsity)), seed=seed, device=device,
        input_shape=input_shape or _input_shape(batches), num_classes=num_classes,
        examples=lambda count, balanced: _concatenate(batches), next_batches=lambda k: [next(cycle) for _ in range(k)],
    )
    pruner.find_mask(context)
    return engine.mask_state()


def _method_config(method: str, options: dict):
    try:
        schema = METHOD_OPTIONS.get(method, METHOD_OPTIONS["base"])
        return OmegaConf.merge(OmegaConf.structured(schema), {"name": method, **options})
    except OmegaConfBaseException as error:
        raise ConfigError(f"method.{error.full_key}", str(error).splitlines()[0]) from None


def _input_shape(batches: list[Batch]) -> tuple[int, ...] | None:
    """The (C, H, W) of the first batch; None without batches (only SynFlow needs it)."""
    return tuple(batches[0][0].shape[1:]) if batches else None


def _concatenate(batches: list[Batch]) -> Batch:
    return torch.cat([inputs for inputs, _ in batches]), torch.cat([targets for _, targets in batches])
