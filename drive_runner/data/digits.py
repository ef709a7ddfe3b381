"""scikit-learn's bundled handwritten digits: 1,797 real 8x8 images in 10 classes, no download needed.

It is the dataset every machine has, so quick runs and error messages point to it. The train/test split
is stratified and fixed by `split_seed`, not by the run seed, so runs with different seeds are compared
on the same test images. Images and split are kept in a cache file after the first job: importing
scikit-learn takes a second, more than the rest of a short job's set-up.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from drive_runner.tracking.rundir import save_torch_atomic

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

    split = split_digits(cfg.test_fraction, cfg.split_seed)
    images = split["images"].float().div_(MAX_VALUE).unsqueeze(1)
    if size != NATIVE_SIZE:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = images.expand(-1, channels, -1, -1).contiguous()
    labels, train_idx, test_idx = split["labels"], split["train"], split["test"]
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


def split_digits(test_fraction: float, split_seed: int) -> dict[str, torch.Tensor]:
    """The digits (uint8 counts), their labels and scikit-learn's stratified split into train and test indices:
    from the cache when it holds this split for the installed scikit-learn, else computed and cached."""
    version = importlib.metadata.version("scikit-learn")  # a new release could split differently
    path = cache_directory() / f"digits-{version}-test{test_fraction!r}-seed{split_seed}.pt"
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # absent, unreadable or damaged: computed again and rewritten below
        pass
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train, test = train_test_split(range(len(digits.target)), test_size=test_fraction, stratify=digits.target,
                                   random_state=split_seed)
    split = {"images": torch.tensor(digits.images, dtype=torch.uint8), "labels": torch.tensor(digits.target, dtype=torch.long),
             "train": torch.tensor(train), "test": torch.tensor(test)}
    try:
        save_torch_atomic(path, split)
    except OSError:  # a read-only home: every job computes the split, no worse than without a cache
        pass
    return split


def cache_directory() -> Path:
    """Where drive-runner keeps what it can compute again: $DRIVE_RUNNER_CACHE, else the user's cache folder."""
    configured = os.environ.get("DRIVE_RUNNER_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drive-runner"
