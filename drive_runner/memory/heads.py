"""NeuroFlux's auxiliary heads and the early-exit model built from the first units plus one head.

Head (docs/neuroflux.md): Conv(C -> k, 3x3, pad 1) + BN + ReLU -> AdaptiveAvgPool(2x2) -> Flatten ->
Linear(4k -> classes) for feature maps; a single Linear for a unit that outputs vectors (LeNet).
Candidate widths are C, C/2, C/4, C/8, never below a minimum (16).
"""

from __future__ import annotations

from torch import Tensor, nn


def head_spec(output_shape: tuple[int, ...], filters: int, num_classes: int) -> dict:
    """A head as plain data (saved in the exit checkpoint and rebuilt from it)."""
    if len(output_shape) == 1:
        return {"kind": "linear", "in_features": output_shape[0], "classes": num_classes}
    return {"kind": "conv", "in_channels": output_shape[0], "filters": filters, "classes": num_classes}


def build_head(spec: dict) -> nn.Module:
    if spec["kind"] == "linear":
        return nn.Linear(spec["in_features"], spec["classes"])
    return nn.Sequential(
        nn.Conv2d(spec["in_channels"], spec["filters"], 3, padding=1),
        nn.BatchNorm2d(spec["filters"]),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * spec["filters"], spec["classes"]),
    )


def filter_candidates(channels: int, minimum: int) -> list[int]:
    """Head widths to choose from, widest first: C, C/2, C/4, C/8, none below `minimum` (C itself if smaller)."""
    widths = sorted({max(channels // d, minimum) for d in (1, 2, 4, 8)}, reverse=True)
    return [w for w in widths if w <= max(channels, minimum)]


class ExitModel(nn.Module):
    """The first units of a network and one classifier head: the streamlined early-exit model."""

    def __init__(self, units: list[nn.Module], head: nn.Module):
        super().__init__()
        self.units = nn.ModuleList(units)
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        for unit in self.units:
            x = unit(x)
        return self.head(x)
