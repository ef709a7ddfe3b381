"""The model options a config may set, with their defaults (the `model=` group's schema)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class ModelConfig:
    name: str = MISSING
    # Weight init of conv/linear layers: Kaiming normal with ReLU gain (docs/conventions.md).
    conv_init: str = "kaiming_fan_in"  # kaiming_fan_in | kaiming_fan_out
    linear_init: str = "kaiming"  # kaiming | default (PyTorch's U(+-1/sqrt(fan_in)))
    bn_init: str = "constant"  # constant (gamma=1) | uniform (gamma ~ U[0,1], open_lth)


@dataclass
class ResNet18Config(ModelConfig):
    stem: str = "auto"  # auto (CIFAR stem up to 64 px, ImageNet stem above) | cifar | imagenet


MODEL_OPTIONS = {"base": ModelConfig, "resnet18": ResNet18Config}
