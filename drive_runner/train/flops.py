"""Per-sample inference FLOPs, dense and with the pruned weights skipped.

Counter (documented in the README): a multiply-accumulate counts as one FLOP, the convention of the
pruning literature (e.g. "ResNet-50 has 4.1 GFLOPs"). Counted: every Conv2d and Linear layer —
dense: weight elements x output positions; sparse: non-zero weight elements x output positions — plus
one FLOP per output element for a bias. Not counted: BN, activations, pooling and residual adds
(a small, pruning-independent share). Output positions come from one forward pass of a single sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LayerFlops:
    name: str
    dense: int
    sparse: int


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerFlops]:
    """FLOPs of every conv and linear layer for one sample of `input_shape` (C, H, W)."""
    layers: list[LayerFlops] = []
    hooks = []

    def record(name: str):
        def hook(module: nn.Module, _inputs, output: torch.Tensor) -> None:
            positions = output[0].numel() // module.weight.shape[0]  # output elements per output channel
            dense = module.weight.numel() * positions
            sparse = int(torch.count_nonzero(module.weight)) * positions
            bias = output[0].numel() if module.bias is not None else 0
            layers.append(LayerFlops(name, dense + bias, sparse + bias))

        return hook

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return layers


def total_flops(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(dense, sparse) per-sample inference FLOPs."""
    layers = count_flops(model, input_shape)
    return sum(layer.dense for layer in layers), sum(layer.sparse for layer in layers)
