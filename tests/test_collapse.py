"""Layer collapse and disconnection detection (docs/conventions.md)."""

import torch
from torch import nn

from drive_runner.models import build_model
from drive_runner.pruning.collapse import connectivity_report
from drive_runner.pruning.masks import MaskEngine


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))


def set_mask(engine: MaskEngine, name: str, mask: torch.Tensor) -> None:
    engine.set_masks({name: mask})


def test_intact_network_is_connected():
    engine = MaskEngine(mlp())
    report = connectivity_report(engine, (1, 4, 4))
    assert report == {"collapsed_layers": [], "min_layer_survivors": 32, "disconnected": False, "dead_classes": []}


def test_a_zeroed_layer_is_collapsed_and_disconnected():
    engine = MaskEngine(mlp())
    set_mask(engine, "3.weight", torch.zeros(8, 8, dtype=torch.bool))
    report = connectivity_report(engine, (1, 4, 4))
    assert report["collapsed_layers"] == ["3.weight"]
    assert report["min_layer_survivors"] == 0
    assert report["disconnected"]


def test_adjacent_layers_sharing_no_unit_are_disconnected_without_an_empty_layer():
    engine = MaskEngine(mlp())
    first = torch.zeros(8, 16, dtype=torch.bool)
    first[:4] = True  # layer 1 only feeds hidden units 0-3
    second = torch.zeros(8, 8, dtype=torch.bool)
    second[:, 4:] = True  # layer 2 only reads hidden units 4-7
    set_mask(engine, "1.weight", first)
    set_mask(engine, "3.weight", second)
    report = connectivity_report(engine, (1, 4, 4))
    assert report["collapsed_layers"] == []
    assert report["disconnected"]


def test_an_output_row_without_survivors_is_a_dead_class():
    engine = MaskEngine(mlp())
    last = torch.ones(4, 8, dtype=torch.bool)
    last[2] = False
    set_mask(engine, "5.weight", last)
    report = connectivity_report(engine, (1, 4, 4))
    assert not report["disconnected"]
    assert report["dead_classes"] == [2]


def test_resnet_block_with_an_empty_branch_but_intact_skip_is_not_disconnected():
    torch.manual_seed(0)
    model = build_model({"name": "resnet20"}, input_shape=(3, 32, 32), num_classes=10)
    engine = MaskEngine(model)
    branch = "layer1.0.conv1.weight"
    set_mask(engine, branch, torch.zeros_like(engine.masks[branch]))
    report = connectivity_report(engine, (3, 32, 32))
    assert report["collapsed_layers"] == [branch]
    assert not report["disconnected"]


def test_resnet_with_an_empty_stem_is_disconnected():
    torch.manual_seed(0)
    model = build_model({"name": "resnet20"}, input_shape=(3, 32, 32), num_classes=10)
    engine = MaskEngine(model)
    set_mask(engine, "conv1.weight", torch.zeros_like(engine.masks["conv1.weight"]))
    assert connectivity_report(engine, (3, 32, 32))["disconnected"]


def test_probe_does_not_change_the_model():
    model = mlp()
    engine = MaskEngine(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    connectivity_report(engine, (1, 4, 4))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
