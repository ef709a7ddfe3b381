"""CIFAR AlexNet from pytorch-classification, the variant PruneTrain's code uses (docs/conventions.md)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from drive_runner.models.registry import chain_units, register_model, require_image_size

# The stride-4 stem and three 2x2 max-pools leave at least 1 px only from 29 px upwards.
MIN_IMAGE_SIZE = 29


class AlexNet(nn.Sequential):
    """Five convs with bias and ReLU, no batch norm, then global average pool and one Linear."""

    classifier_name = "classifier"

    def units(self) -> tuple[list[nn.Module], nn.Module]:
        """Local-learning units (conv + ReLU and a following pool) and the model's own head."""
        return chain_units(self.features), nn.Sequential(self.avgpool, self.flatten, self.classifier)

    def __init__(self, in_channels: int, num_classes: int):
        features = OrderedDict(
            conv1=nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=5),
            relu1=nn.ReLU(),
            pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(64, 192, kernel_size=5, padding=2),
            relu2=nn.ReLU(),
            pool2=nn.MaxPool2d(2),
            conv3=nn.Conv2d(192, 384, kernel_size=3, padding=1),
            relu3=nn.ReLU(),
            conv4=nn.Conv2d(384, 256, kernel_size=3, padding=1),
            relu4=nn.ReLU(),
            conv5=nn.Conv2d(256, 256, kernel_size=3, padding=1),
            relu5=nn.ReLU(),
            pool3=nn.MaxPool2d(2),
        )
        super().__init__(
            OrderedDict(
                features=nn.Sequential(features),
                avgpool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                classifier=nn.Linear(256, num_classes),
            )
        )


@register_model("alexnet")
def alexnet(input_shape, num_classes, cfg):
    require_image_size("alexnet", input_shape, MIN_IMAGE_SIZE, suggested=32)
    return AlexNet(input_shape[0], num_classes)
