"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images in 10 classes, no download needed.

It is the dataset every machine has, so quick runs and error messages point to it. The train/test split
is stratified and fixed by `split_seed`, not by the run seed, so runs with different seeds are compared
on the same test images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from .bundle import DataBundle
from .in_memory import InMemorySource
from .registry import Native, register

NATIVE_SIZE = 8
MAX_VALUE = 16  # pixel values are counts 0..16 of set pixels in 4x4 blocks of the original scans


@register("digits", Native(channels=1, image_size=NATIVE_SIZE, num_classes=10, channel_options=(1, 3)))
def build(cfg: DictConfig, seed: int, num_workers: int) -> DataBundle:
    """Resizing and channel repeats happen once here; no augmentation, as digits are not flip-invariant."""
    channels = 1 if cfg.channels is None else cfg.channels
    size = cfg.image_size or NATIVE_SIZE

    from sklearn.datasets import load_digits  # imported on use: scikit-learn takes a second to import
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).div_(MAX_VALUE).unsqueeze(1)
    if size != NATIVE_SIZE:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.expand(-1, channels, -1, -1).contiguous()
    labels = torch.tensor(digits.target, dtype=torch.long)

    train_idx, test_idx = train_test_split(
        range(len(labels)), test_size=cfg.test_fraction, stratify=digits.target, random_state=cfg.split_seed
    )
    train_images = images[train_idx]
    mean = train_images.mean(dim=(0, 2, 3)).tolist()
    std = train_images.std(dim=(0, 2, 3)).tolist()
    return DataBundle(
        name="digits",
        input_shape=(channels, size, size),
        num_classes=10,
        train=InMemorySource(train_images, labels[train_idx], mean, std),
        test=InMemorySource(images[test_idx], labels[test_idx], mean, std),
    )
