"""CIFAR VGG-11/13/16/19 with batch norm, as in open_lth (docs/conventions.md)."""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import List, Union

from torch import nn

from drive_runner.models.registry import chain_units, register_model, require_image_size

# Plan entries: an int is a 3x3 conv with that many filters (+ BN + ReLU); "M" is a 2x2 max-pool.
PLANS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}

# Every plan has four max-pools, which need 16 px to leave 1 px for the average pool.
MIN_IMAGE_SIZE = 16


def _features(in_channels: int, plan: List[Union[int, str]]) -> nn.Sequential:
    layers = OrderedDict()
    conv_index = pool_index = 0
    for entry in plan:
        if entry == "M":
            pool_index += 1
            layers[f"pool{pool_index}"] = nn.MaxPool2d(2)
            continue
        conv_index += 1
        layers[f"conv{conv_index}"] = nn.Conv2d(in_channels, entry, kernel_size=3, padding=1)
        layers[f"bn{conv_index}"] = nn.BatchNorm2d(entry)
        layers[f"relu{conv_index}"] = nn.ReLU()
        in_channels = entry
    return nn.Sequential(layers)


class VGG(nn.Sequential):
    """Conv features, global average pool (open_lth's 2x2 avg-pool at 32 px), one Linear classifier."""

    classifier_name = "classifier"

    def units(self) -> tuple[list[nn.Module], nn.Module]:
        """Local-learning units (conv + BN + ReLU and a following pool) and the model's own head."""
        return chain_units(self.features), nn.Sequential(self.avgpool, self.flatten, self.classifier)

    def __init__(self, in_channels: int, plan: List[Union[int, str]], num_classes: int):
        super().__init__(
            OrderedDict(
                features=_features(in_channels, plan),
                avgpool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                classifier=nn.Linear(plan[-1], num_classes),
            )
        )


def _vgg(name: str, input_shape, num_classes: int, cfg) -> VGG:
    require_image_size(name, input_shape, MIN_IMAGE_SIZE, suggested=32)
    return VGG(input_shape[0], PLANS[name], num_classes)


for _name in PLANS:
    register_model(_name)(functools.partial(_vgg, _name))
