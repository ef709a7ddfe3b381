"""Reconfiguration: physically remove dead channels (docs/prunetrain.md).

Torch-Pruning's dependency graph finds the channel sets that must shrink together: a conv's filters with
the BN after it and every layer that reads them, and for a residual stage the one set shared by every
tensor that meets at its additions (stem or projection, each block's last conv, each block's first conv,
the next stage, the classifier). Within a set a channel is removed only when its producing filter *and*
every consuming slice are dead (all |w| < threshold): the channel union. A residual branch whose inner
channels are all dead is removed as a whole. Optimizer state (SGD momentum, Adam moments) is sliced with
the same indices as the weights, so training continues as if the dead channels had never been there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from drive_runner.models.resnet_cifar import BasicBlock
from drive_runner.models.structure import output_layer

LAYERS = (nn.Conv2d, nn.Linear)
SLICED = (nn.Conv2d, nn.Linear, nn.modules.batchnorm._BatchNorm)


@dataclass
class ReconfigureReport:
    removed_channels: dict[str, int] = field(default_factory=dict)  # root layer -> channels removed
    removed_branches: list[str] = field(default_factory=list)
    # New parameter -> its optimizer state, sliced like the parameter.
    optimizer_state: dict = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return bool(self.removed_channels or self.removed_branches)


def alive_filters(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per output filter/row: does any weight reach the threshold in absolute value?"""
    return (weight.detach().abs() >= threshold).flatten(1).any(dim=1)


def alive_slices(weight: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per input channel/column: does any weight reach the threshold in absolute value?"""
    return (weight.detach().abs() >= threshold).transpose(0, 1).flatten(1).any(dim=1)


def _dependency_graph(model: nn.Module, input_shape: tuple[int, ...]) -> tp.DependencyGraph:
    was_training = model.training
    model.eval()  # tracing runs one forward pass: it must not move BN running statistics
    try:
        device = next(model.parameters()).device
        return tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(was_training)


def channel_sets(model: nn.Module, graph: tp.DependencyGraph, threshold: float) -> list[tuple]:
    """(root layer, alive mask over its channels) for every channel set, classifier outputs excluded."""
    classifier = model.get_submodule(output_layer(model))
    sets = []
    for group in graph.get_all_groups(root_module_types=list(LAYERS), ignored_layers=[classifier]):
        root = group.items[0].dep.target.module
        alive = torch.zeros(len(group.items[0].idxs), dtype=torch.bool)
        for item in group.items:
            module, handler = item.dep.target.module, item.dep.handler.__name__
            if not isinstance(module, LAYERS) or handler not in ("prune_out_channels", "prune_in_channels"):
                continue
            per_index = (alive_filters if handler == "prune_out_channels" else alive_slices)(module.weight, threshold)
            live = per_index[torch.as_tensor(item.idxs)].cpu()
            alive[torch.as_tensor(item.root_idxs)[live]] = True
        sets.append((root, alive))
    return sets


def _remove_dead_branches(model: nn.Module, sets: list[tuple]) -> list[str]:
    dead_roots = {id(root) for root, alive in sets if not alive.any()}
    removed = []
    for name, block in model.named_modules():
        if isinstance(block, BasicBlock) and not block.branch_removed and id(block.conv1) in dead_roots:
            with torch.no_grad():
                bn2 = block.bn2
                was_training = bn2.training
                bn2.eval()
                constant = bn2(torch.zeros(1, bn2.num_features, 1, 1, device=bn2.weight.device)).reshape(-1)
                bn2.train(was_training)
            block.remove_branch(constant)
            removed.append(name)
    return removed


def reconfigure(
    model: nn.Module, input_shape: tuple[int, ...], threshold: float, optimizer_state: dict | None = None
) -> ReconfigureReport:
    """Shrink `model` in place; `optimizer_state` maps its current parameters to their state."""
    report = ReconfigureReport()
    graph = _dependency_graph(model, input_shape)
    report.removed_branches = _remove_dead_branches(model, channel_sets(model, graph, threshold))
    if report.removed_branches:
        graph = _dependency_graph(model, input_shape)

    names = {id(module): name for name, module in model.named_modules()}
    old_params = {id(m): dict(m.named_parameters(recurse=False)) for m in model.modules() if isinstance(m, SLICED)}
    removed_indices: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)  # module -> [(dim, removed)]
    for root, alive in channel_sets(model, graph, threshold):
        dead = ~alive
        if dead.all():  # never empty a layer: keep the set's strongest channel
            dead[root.weight.detach().flatten(1).norm(dim=1).argmax()] = False
        if not dead.any():
            continue
        group = graph.get_pruning_group(root, tp.prune_conv_out_channels if isinstance(root, nn.Conv2d)
                                        else tp.prune_linear_out_channels, idxs=dead.nonzero().reshape(-1).tolist())
        for item in group.items:
            module = item.dep.target.module
            if isinstance(module, SLICED):
                dim = 0 if item.dep.handler.__name__ == "prune_out_channels" else 1
                removed_indices[id(module)].append((dim, list(item.idxs)))
        group.prune()
        report.removed_channels[names[id(root)]] = int(dead.sum())

    report.optimizer_state = _sliced_state(model, old_params, removed_indices, optimizer_state or {})
    return report


def _sliced_state(model: nn.Module, old_params: dict, removed: dict, optimizer_state: dict) -> dict:
    """Each surviving parameter's optimizer state, indexed like the parameter itself."""
    new_state = {}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            old = old_params.get(id(module), {}).get(name, param)
            state = optimizer_state.get(old)
            if not state:
                continue
            sliced = {}
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == old.shape:
                    for dim, indices in removed.get(id(module), []):
                        if dim < value.dim():  # a bias has no input dimension
                            keep = torch.ones(value.shape[dim], dtype=torch.bool)
                            keep[indices] = False
                            value = value.index_select(dim, keep.nonzero().reshape(-1).to(value.device))
                sliced[key] = value
            new_state[param] = sliced
    return new_state
