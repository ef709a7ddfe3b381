"""The architecture of a (possibly shrunken) model as plain data, and its reconstruction.

A checkpoint of a model that structured pruning has shrunk stores this description next to the
weights: every conv, linear and BN layer's channel counts and the residual branches that were
removed. Applied to a freshly built model of the same config, it gives a model the state dict loads
into (with torch.load(..., weights_only=True), since the description holds only names and ints).
"""

from __future__ import annotations

import torch
from torch import nn

from drive_runner.models.resnet_cifar import BasicBlock

BATCHNORMS = nn.modules.batchnorm._BatchNorm


def describe(model: nn.Module) -> dict:
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            layers[name] = [module.in_channels, module.out_channels]
        elif isinstance(module, nn.Linear):
            layers[name] = [module.in_features, module.out_features]
        elif isinstance(module, BATCHNORMS):
            layers[name] = [module.num_features]
    branches = [name for name, m in model.named_modules() if isinstance(m, BasicBlock) and m.branch_removed]
    return {"layers": layers, "removed_branches": branches}


def output_widths(model: nn.Module) -> dict[str, int]:
    """Channels (or units) each conv and linear layer produces."""
    return {name: shape[-1] for name, shape in describe(model)["layers"].items() if len(shape) == 2}


def apply(model: nn.Module, description: dict) -> nn.Module:
    """Reshape `model` (built from the same config) to the described widths; weights are placeholders."""
    for name in description["removed_branches"]:
        block = model.get_submodule(name)
        block.remove_branch(torch.zeros(block.bn2.num_features))
    for name, shape in description["layers"].items():
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, _resized(getattr(parent, attr), shape))
    return model


def _resized(module: nn.Module, shape: list[int]) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        return nn.Conv2d(
            shape[0], shape[1], module.kernel_size, stride=module.stride, padding=module.padding,
            dilation=module.dilation, groups=module.groups, bias=module.bias is not None,
            padding_mode=module.padding_mode,
        )
    if isinstance(module, nn.Linear):
        return nn.Linear(shape[0], shape[1], bias=module.bias is not None)
    return type(module)(shape[0], eps=module.eps, momentum=module.momentum, affine=module.affine,
                        track_running_stats=module.track_running_stats)
