"""Per-sample FLOPs of conv and linear layers: inference (dense and with pruned weights skipped) and training.

Inference counter (documented in the README): a multiply-accumulate counts as one FLOP, the convention
of the pruning literature (e.g. "ResNet-50 has 4.1 GFLOPs"). Counted: every Conv2d and Linear layer —
dense: weight elements x output positions; sparse: non-zero weight elements x output positions — plus
one FLOP per output element for a bias. Not counted: BN, activations, pooling and residual adds (a small,
pruning-independent share).

Training counter: PruneTrain's cost model (docs/prunetrain.md), per sample and iteration, in
multiply-accumulates: a conv with C inputs, K outputs, an R x S kernel, a P x Q output and a padded input
of H_p x W_p costs 2 C R S K P Q (forward and weight gradient) + H_p W_p K R S C (data gradient); a linear
layer 3 K C.

Layer shapes come from one forward pass of a single sample.
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
    training: int


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerFlops]:
    """FLOPs of every conv and linear layer for one sample of `input_shape` (C, H, W)."""
    layers: list[LayerFlops] = []
    hooks = []

    def record(name: str):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            positions = output[0].numel() // module.weight.shape[0]  # output elements per output channel
            bias = output[0].numel() if module.bias is not None else 0
            dense = module.weight.numel() * positions + bias
            sparse = int(torch.count_nonzero(module.weight)) * positions + bias
            layers.append(LayerFlops(name, dense, sparse, _training_cost(module, inputs[0].shape, output.shape)))

        return hook

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        reference = next(model.parameters())
        model(torch.zeros((1, *input_shape), device=reference.device, dtype=reference.dtype))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return layers


def _training_cost(module: nn.Module, input_shape: torch.Size, output_shape: torch.Size) -> int:
    if isinstance(module, nn.Linear):
        return 3 * module.in_features * module.out_features
    in_per_group = module.in_channels // module.groups
    kernel = module.kernel_size[0] * module.kernel_size[1]
    out_positions = output_shape[2] * output_shape[3]
    padded = (input_shape[2] + 2 * module.padding[0]) * (input_shape[3] + 2 * module.padding[1])
    return 2 * in_per_group * kernel * module.out_channels * out_positions + padded * module.out_channels * kernel * in_per_group


def total_flops(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(dense, sparse) per-sample inference FLOPs."""
    layers = count_flops(model, input_shape)
    return sum(layer.dense for layer in layers), sum(layer.sparse for layer in layers)


def training_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Per-sample training FLOPs of one iteration (PruneTrain's cost model)."""
    return sum(layer.training for layer in count_flops(model, input_shape))
