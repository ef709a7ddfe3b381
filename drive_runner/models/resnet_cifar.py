"""CIFAR ResNets: ResNet-20/32/44/56 (He et al. 2016, 6n+2 layers) and the shared residual network.

`ResNet` here is also the CIFAR-stem ResNet-18 (resnet.py): both are a 3x3 stem, stages of BasicBlocks
and a global-average-pool classifier, differing only in widths, depths and strides (docs/conventions.md).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Sequence

from torch import Tensor, nn

from drive_runner.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 bias-free convs with BN; a 1x1 conv + BN projection shortcut where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    @property
    def branch_removed(self) -> bool:
        return hasattr(self, "branch_constant")

    def remove_branch(self, constant: Tensor) -> None:
        """Drop the residual branch (structured pruning emptied it), keeping its constant output: with all
        its conv weights zero the branch still adds BN2's shift, so keeping that per-channel constant makes
        the removal exactly function-preserving in eval mode."""
        for name in ("conv1", "bn1", "relu1", "conv2", "bn2"):
            delattr(self, name)
        self.register_buffer("branch_constant", constant.detach().reshape(1, -1, 1, 1).clone())

    def forward(self, x: Tensor) -> Tensor:
        if self.branch_removed:
            return self.relu2(self.branch_constant + self.shortcut(x))
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """3x3 stride-1 stem + BN + ReLU, stages `layer1..` of BasicBlocks, global average pool, Linear `fc`."""

    classifier_name = "fc"

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        widths: Sequence[int],
        blocks: Sequence[int],
        strides: Sequence[int],
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        channels = widths[0]
        for stage, (width, depth, stride) in enumerate(zip(widths, blocks, strides), start=1):
            stage_blocks = OrderedDict()
            for index in range(depth):
                stage_blocks[str(index)] = BasicBlock(channels, width, stride if index == 0 else 1)
                channels = width
            self.add_module(f"layer{stage}", nn.Sequential(stage_blocks))
        self.num_stages = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def units(self) -> tuple[list[nn.Module], nn.Module]:
        """Local-learning units (the stem, then every block: a skip cannot be split) and the model's own head."""
        blocks = [block for stage in range(1, self.num_stages + 1) for block in getattr(self, f"layer{stage}")]
        return [nn.Sequential(self.conv1, self.bn1, self.relu), *blocks], nn.Sequential(self.avgpool, self.flatten, self.fc)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{stage}")(x)
        return self.fc(self.flatten(self.avgpool(x)))


def _cifar_resnet(depth: int, input_shape, num_classes: int, cfg) -> ResNet:
    n = (depth - 2) // 6
    return ResNet(input_shape[0], num_classes, widths=(16, 32, 64), blocks=(n, n, n), strides=(1, 2, 2))


for _depth in (20, 32, 44, 56):  # 6n+2 with n = 3, 5, 7, 9
    register_model(f"resnet{_depth}")(functools.partial(_cifar_resnet, _depth))
