"""Random N(0, 1) images with uniform random labels, drawn from the run seed.

Nothing to learn and nothing to load: for smoke tests and for pruning-at-init studies that only need
inputs of the right shape.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from .bundle import DataBundle
from .in_memory import InMemorySource
from .registry import Native, register


@register("synthetic", Native(channels=3, image_size=32, num_classes=10))
def build(cfg: DictConfig, seed: int, num_workers: int) -> DataBundle:
    shape = (cfg.channels or 3, cfg.image_size or 32, cfg.image_size or 32)
    generator = torch.Generator().manual_seed(seed)

    def split(num_samples: int) -> InMemorySource:
        images = torch.randn((num_samples, *shape), generator=generator)
        labels = torch.randint(0, cfg.num_classes, (num_samples,), generator=generator)
        # Already standard normal: normalising is the identity.
        return InMemorySource(images, labels, mean=[0.0] * shape[0], std=[1.0] * shape[0])

    train = split(cfg.num_train)
    return DataBundle("synthetic", shape, cfg.num_classes, train=train, test=split(cfg.num_test))
