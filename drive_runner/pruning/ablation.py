"""Mask ablations (Frankle et al., ICLR 2021, "Pruning Neural Networks at Initialization: Why Are We
Missing the Mark?"; docs/conventions.md): once a method has found its mask,

    shuffle  permute the mask within each layer (same per-layer density, positions at random), on the
             weights the method would have trained;
    reinit   keep the mask, on freshly initialised weights from the same distribution.

A method whose result survives these checks relies on per-layer densities only, not on which weights it
picked. They are the one place where masks are replaced rather than shrunk, so they go through
`MaskEngine.replace_masks` and start a fresh optimizer at the same step of the LR schedule.
"""

from __future__ import annotations

from enum import StrEnum

import torch

from drive_runner.pruning.masks import MaskEngine


class Ablation(StrEnum):
    """prune.ablation, and IMP's per-level controls (the same variants, trained beside each level)."""

    none = "none"
    shuffle = "shuffle"
    reinit = "reinit"


def shuffled_masks(masks: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each mask with its entries permuted at random: the same number of survivors per tensor."""
    return {name: mask.reshape(-1)[torch.randperm(mask.numel(), generator=generator).to(mask.device)].reshape(mask.shape)
            for name, mask in masks.items()}


def ablate(kind: str, training, weights: dict[str, torch.Tensor], draw: int, step: int) -> None:
    """Put the ablated mask on the model (`training`: the run's TrainingContext): the shuffled mask on
    `weights`, or the found mask on a fresh initialisation (the `draw`-th one of this run); training then
    restarts its optimizer at `step`."""
    engine: MaskEngine = training.engine
    if kind == Ablation.shuffle:
        generator = torch.Generator().manual_seed(training.seed * 1_000_003 + 50_021 + draw)
        engine.replace_masks(shuffled_masks(engine.masks, generator))
    elif kind == Ablation.reinit:
        weights = training.reinitialised(draw)
    else:
        raise ValueError(f"unknown ablation {kind!r}; allowed: shuffle, reinit")
    training.session.rewind(weights, step)
