"""ResNet-18 with a CIFAR stem (small images) or the torchvision ImageNet stem (docs/conventions.md).

Which stem DRIVE used on CIFAR and Tiny ImageNet is not published; the CIFAR stem (3x3 stride-1 conv, no
max-pool) is the project default up to 64 px, since the ImageNet stem's 4x downsampling wastes small images.
"""

from __future__ import annotations

from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.models.registry import option, register_model
from drive_runner.models.resnet_cifar import ResNet

STEMS = ("auto", "cifar", "imagenet")
# With stem=auto, images up to this size get the CIFAR stem.
CIFAR_STEM_MAX_SIZE = 64


def _imagenet_resnet18(in_channels: int, num_classes: int) -> nn.Module:
    import torchvision  # imported on use: it takes seconds, and every other model is built without it

    model = torchvision.models.resnet18(num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.classifier_name = "fc"
    return model


@register_model("resnet18")
def resnet18(input_shape, num_classes, cfg):
    stem = option(cfg, "stem", "auto")
    if stem not in STEMS:
        raise ConfigError("model.stem", f"unknown stem {stem!r}; allowed: {', '.join(STEMS)}")
    if stem == "auto":
        stem = "cifar" if input_shape[1] <= CIFAR_STEM_MAX_SIZE else "imagenet"
    if stem == "imagenet":
        return _imagenet_resnet18(input_shape[0], num_classes)
    return ResNet(input_shape[0], num_classes, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), strides=(1, 2, 2, 2))
