"""Datasets as `DataBundle`s of batch sources: `build_dataset(cfg, seed, num_workers)`.

Importing this package registers every dataset (digits, synthetic, mnist, fashion_mnist, cifar10, cifar100,
tinyimagenet, imagenet).
"""

from . import cifar, digits, imagefolder, mnist, synthetic  # noqa: F401  (each registers its datasets)
from .bundle import BatchSource, DataBundle
from .registry import build_dataset, dataset_names, describe, ensure_data

__all__ = ["BatchSource", "DataBundle", "build_dataset", "dataset_names", "describe", "ensure_data"]
