"""The options of the built-in models, with their defaults (the `model=` group's schema). A model of one's own
is a config with `_target_` and its constructor's arguments instead (docs/extending.md)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from omegaconf import MISSING


class ConvInit(StrEnum):
    kaiming_fan_in = "kaiming_fan_in"
    kaiming_fan_out = "kaiming_fan_out"
    xavier = "xavier"  # Glorot normal, the SNIP paper's VS-X
    normal = "normal"  # N(0, 0.1), the SNIP paper's RN
    truncated_normal = "truncated_normal"  # N(0, 0.1) cut at two standard deviations, the SNIP paper's TN


class LinearInit(StrEnum):
    kaiming = "kaiming"  # fan-in, ReLU gain: the SNIP paper's VS-H
    default = "default"  # PyTorch's U(+-1/sqrt(fan_in))
    xavier = "xavier"
    normal = "normal"
    truncated_normal = "truncated_normal"


class BNInit(StrEnum):
    constant = "constant"  # gamma = 1
    uniform = "uniform"  # gamma ~ U[0, 1], open_lth


class Stem(StrEnum):
    auto = "auto"  # the CIFAR stem up to 64 px (CIFAR, Tiny ImageNet), torchvision's ImageNet stem above
    cifar = "cifar"
    imagenet = "imagenet"


@dataclass
class ModelConfig:
    name: str = MISSING
    # Weight init of conv/linear layers: Kaiming normal with ReLU gain (docs/conventions.md).
    conv_init: ConvInit = ConvInit.kaiming_fan_in
    linear_init: LinearInit = LinearInit.kaiming
    bn_init: BNInit = BNInit.constant


@dataclass
class ResNet18Config(ModelConfig):
    stem: Stem = Stem.auto


MODEL_OPTIONS = {"base": ModelConfig, "resnet18": ResNet18Config}
