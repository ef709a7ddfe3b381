"""Layer collapse and disconnection (docs/conventions.md).

A network can be useless at high sparsity in two ways: a prunable layer keeps no weight at all
(collapse), or every layer keeps some weights but no path of surviving weights joins input and output
(disconnection). Both are reported, never hidden; the accuracy is still measured.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from drive_runner.pruning.masks import PRUNABLE_MODULES, MaskEngine


def collapsed_layers(engine: MaskEngine) -> list[str]:
    """Prunable tensors with zero survivors."""
    return [t.name for t in engine.targets if not bool(t.mask.any())]


def min_layer_survivors(engine: MaskEngine) -> int:
    return min((int(t.mask.sum()) for t in engine.targets), default=0)


@torch.no_grad()
def reachable_outputs(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Which outputs an all-ones input reaches through the surviving weights.

    The copy's conv/linear weights become |W| (pruned weights are already exactly zero), biases 0,
    and BN becomes the identity; ReLU, pooling and residual adds stay. Every conv, linear and BN
    output is binarised (x > 0), which gives the |W|-product verdict without underflow.
    Returns a boolean vector over the output units.
    """
    probe = copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()
    hooks = []
    for module in probe.modules():
        if isinstance(module, PRUNABLE_MODULES):
            module.weight.abs_()
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            if module.affine:
                module.weight.fill_(1.0)
                module.bias.zero_()
            if module.track_running_stats:
                module.running_mean.zero_()
                module.running_var.fill_(1.0 - module.eps)  # (x - 0) / sqrt(1 - eps + eps) = x
        else:
            continue
        hooks.append(module.register_forward_hook(lambda _m, _i, out: (out > 0).to(out.dtype)))
    output = probe(torch.ones((1, *input_shape), dtype=torch.float64))
    for hook in hooks:
        hook.remove()
    return output.reshape(-1) > 0


def connectivity_report(engine: MaskEngine, input_shape: tuple[int, ...]) -> dict:
    """Collapse and disconnection figures for summary.json and the console."""
    reached = reachable_outputs(engine.model, input_shape)
    return {
        "collapsed_layers": collapsed_layers(engine),
        "min_layer_survivors": min_layer_survivors(engine),
        "disconnected": not bool(reached.any()),
        "dead_classes": [int(i) for i in (~reached).nonzero().reshape(-1)],
    }
