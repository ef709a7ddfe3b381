"""CIFAR-10 and CIFAR-100 from their python pickle releases, held in memory as uint8 [N, 3, 32, 32].

Expected layout under the data root (what the official archives extract to):
    cifar-10-batches-py/{data_batch_1, ..., data_batch_5, test_batch, batches.meta}
    cifar-100-python/{train, test, meta}
Each data file is a pickle of a dict with b'data' (uint8 [N, 3072], channel-major rows) and
b'labels' (CIFAR-10) or b'fine_labels' (CIFAR-100). The pickles are parsed here rather than through
torchvision's CIFAR classes because those verify MD5 sums of the full files.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import numpy as np
import torch
from omegaconf import DictConfig
from torch import Tensor

from .bundle import DataBundle
from .in_memory import InMemorySource
from .registry import Native, data_root, fetch, missing_dataset, register

CROP_PADDING = 4  # the standard CIFAR augmentation: random 32 px crop of the 4 px zero-padded image + flip


@dataclass(frozen=True)
class CifarRelease:
    name: str
    folder: str
    train_files: Tuple[str, ...]
    test_file: str
    label_key: bytes
    num_classes: int
    url: str
    md5: str
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    layout: str  # what the folder holds, for the missing-dataset message


CIFAR10 = CifarRelease(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    label_key=b"labels",
    num_classes=10,
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    layout="data_batch_1..data_batch_5, test_batch and batches.meta (the python version, cifar-10-python.tar.gz)",
)
CIFAR100 = CifarRelease(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    label_key=b"fine_labels",
    num_classes=100,
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    layout="train, test and meta (the python version, cifar-100-python.tar.gz)",
)


def prepare(release: CifarRelease, cfg: DictConfig) -> Path:
    """The release's folder, downloaded first when missing and dataset.download allows."""
    folder = data_root(cfg) / release.folder
    fetch(release.name, folder, download=cfg.download, url=release.url, md5=release.md5, layout=release.layout)
    return folder


@register("cifar10", Native(channels=3, image_size=32, num_classes=10, channel_options=(3,), resizable=False),
          prepare=lambda cfg: prepare(CIFAR10, cfg))
def build_cifar10(cfg: DictConfig, seed: int, num_workers: int) -> DataBundle:
    return build(CIFAR10, cfg)


@register("cifar100", Native(channels=3, image_size=32, num_classes=100, channel_options=(3,), resizable=False),
          prepare=lambda cfg: prepare(CIFAR100, cfg))
def build_cifar100(cfg: DictConfig, seed: int, num_workers: int) -> DataBundle:
    return build(CIFAR100, cfg)


def build(release: CifarRelease, cfg: DictConfig) -> DataBundle:
    folder = prepare(release, cfg)
    train_images, train_labels = read_files(release, folder, release.train_files)
    test_images, test_labels = read_files(release, folder, (release.test_file,))
    crop_padding = CROP_PADDING if cfg.augment else None
    return DataBundle(
        name=release.name,
        input_shape=(3, 32, 32),
        num_classes=release.num_classes,
        train=InMemorySource(train_images, train_labels, release.mean, release.std, crop_padding),
        test=InMemorySource(test_images, test_labels, release.mean, release.std),
    )


def read_files(release: CifarRelease, folder: Path, names: Tuple[str, ...]) -> Tuple[Tensor, Tensor]:
    """The images and labels of the given pickle files, concatenated in the order given."""
    images, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise missing_dataset(release.name, folder, f"{name} is missing", release.layout)
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        images.append(torch.from_numpy(np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)))
        labels.append(torch.as_tensor(entry[release.label_key], dtype=torch.long))
    return torch.cat(images), torch.cat(labels)
