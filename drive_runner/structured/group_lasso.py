"""PruneTrain's group-lasso regulariser (docs/prunetrain.md).

Every conv weight W [K, C, R, S] contributes two overlapping families of groups, its output filters
W[k] and its input-channel slices W[:, c]; linear layers likewise with rows and columns. Exceptions:
the first layer has no input-channel groups (its inputs are the image), the classifier has only
input-column groups (class outputs are never pruned). BN parameters and biases are outside R.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from drive_runner.models.structure import output_layer

EPSILON = 1e-8  # inside the square root, so the (sub)gradient is defined at a zero group


@dataclass(frozen=True)
class GroupedLayer:
    name: str
    module: nn.Module
    output_groups: bool  # filters / rows
    input_groups: bool  # input-channel slices / columns


def grouped_layers(model: nn.Module) -> list[GroupedLayer]:
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    classifier = output_layer(model)
    first = layers[0][0] if layers else None
    return [
        GroupedLayer(name, module, output_groups=name != classifier, input_groups=name != first)
        for name, module in layers
    ]


def group_norms(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """L2 norm of every slice along `dim` (0: output filters, 1: input channels), with EPSILON inside."""
    other = [d for d in range(weight.dim()) if d != dim]
    return torch.sqrt(weight.pow(2).sum(dim=other) + EPSILON)


def penalty(layers: list[GroupedLayer]) -> torch.Tensor:
    """R(W): the sum of all group norms, unweighted."""
    total = 0.0
    for layer in layers:
        weight = layer.module.weight
        if layer.output_groups:
            total = total + group_norms(weight, 0).sum()
        if layer.input_groups:
            total = total + group_norms(weight, 1).sum()
    return total


def strength_from_ratio(ratio: float, task_loss: float, initial_penalty: float) -> float:
    """lambda = r CE_0 / ((1 - r) R(W_0)), which makes lambda R / (CE + lambda R) = r on the first batch."""
    return ratio * task_loss / ((1.0 - ratio) * initial_penalty)
