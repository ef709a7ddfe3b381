"""LeNet-300-100 and LeNet-5-Caffe, the MNIST models of the LTH and SNIP papers (docs/conventions.md)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from drive_runner.models.registry import register_model, require_image_size

# Two valid 5x5 convs, each followed by a 2x2 max-pool, leave at least 1 px only from 16 px upwards.
LENET5_MIN_IMAGE_SIZE = 16


class LeNet300(nn.Sequential):
    """Fully connected C*H*W -> 300 -> 100 -> classes, ReLU between layers."""

    classifier_name = "fc3"

    def units(self) -> tuple[list[nn.Module], nn.Module]:
        """Local-learning units (each hidden layer with its ReLU) and the output layer."""
        return [nn.Sequential(self.flatten, self.fc1, self.relu1), nn.Sequential(self.fc2, self.relu2)], self.fc3

    def __init__(self, input_shape, num_classes: int):
        channels, height, width = input_shape
        super().__init__(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(channels * height * width, 300),
                relu1=nn.ReLU(),
                fc2=nn.Linear(300, 100),
                relu2=nn.ReLU(),
                fc3=nn.Linear(100, num_classes),
            )
        )


class LeNet5(nn.Sequential):
    """LeNet-5 as in Caffe and the SNIP code: no ReLU after the convs, one hidden FC layer of 500."""

    classifier_name = "fc4"

    def units(self) -> tuple[list[nn.Module], nn.Module]:
        """Local-learning units (each conv with its pool, the hidden FC layer) and the output layer."""
        return [nn.Sequential(self.conv1, self.pool1), nn.Sequential(self.conv2, self.pool2),
                nn.Sequential(self.flatten, self.fc3, self.relu3)], self.fc4

    def __init__(self, input_shape, num_classes: int):
        channels, height, width = input_shape
        # Each valid 5x5 conv takes 4 px off a side, each max-pool halves it.
        feature_height, feature_width = (((size - 4) // 2 - 4) // 2 for size in (height, width))
        super().__init__(
            OrderedDict(
                conv1=nn.Conv2d(channels, 20, kernel_size=5),
                pool1=nn.MaxPool2d(2),
                conv2=nn.Conv2d(20, 50, kernel_size=5),
                pool2=nn.MaxPool2d(2),
                flatten=nn.Flatten(),
                fc3=nn.Linear(50 * feature_height * feature_width, 500),
                relu3=nn.ReLU(),
                fc4=nn.Linear(500, num_classes),
            )
        )


@register_model("lenet300")
def lenet300(input_shape, num_classes, cfg):
    return LeNet300(input_shape, num_classes)


@register_model("lenet5")
def lenet5(input_shape, num_classes, cfg):
    require_image_size("lenet5", input_shape, LENET5_MIN_IMAGE_SIZE, suggested=28,
                       also=" and trainer.lr=0.01 (without a ReLU after its convs it diverges at lr 0.1)")
    return LeNet5(input_shape, num_classes)
