"""Model zoo: `build_model(cfg, input_shape, num_classes)` and the registered `model_names()`.

Importing the family modules registers their builders. Every model carries `classifier_name`, the
qualified name of its final Linear layer, so pruning presets can exclude the output layer.
"""

from drive_runner.models import alexnet, lenet, resnet, resnet_cifar, vgg  # noqa: F401  (registers builders)
from drive_runner.models.registry import build_model, model_names

__all__ = ["build_model", "model_names"]
