"""MNIST and Fashion-MNIST from torchvision's files, held in memory as uint8 [N, C, H, W].

Expected layout under the data root (what torchvision's `datasets.MNIST(root, download=True)` leaves):
    MNIST/raw/{train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte}
    FashionMNIST/raw/  (the same four names)
Each file is IDX: a big-endian magic number (0x0801 labels, 0x0803 images), one big-endian uint32 per
dimension, then the uint8 values. They are parsed here (a few lines) so the files are read as they are,
uncompressed; a missing folder is downloaded through torchvision when `dataset.download` allows it.
`dataset.image_size` resizes once at load (bilinear) and `dataset.channels=3` repeats the channel, as for
digits, so the CIFAR models run on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import Tensor

from .bundle import DataBundle
from .in_memory import InMemorySource
from .registry import Native, data_root, missing_dataset, register

NATIVE_SIZE = 28
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
LAYOUT = "raw/ with train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"


@dataclass(frozen=True)
class Release:
    name: str
    folder: str  # under the data root, as torchvision names it
    torchvision_class: str
    mean: float
    std: float


MNIST = Release("mnist", "MNIST", "MNIST", 0.1307, 0.3081)
FASHION_MNIST = Release("fashion_mnist", "FashionMNIST", "FashionMNIST", 0.2860, 0.3530)


def prepare(release: Release, cfg: DictConfig) -> Path:
    """The release's folder with its four raw files, downloaded first when missing and dataset.download allows."""
    folder = data_root(cfg) / release.folder
    if not all((folder / "raw" / name).is_file() for names in FILES.values() for name in names):
        _download(release, cfg, folder)
    return folder


@register("mnist", Native(channels=1, image_size=NATIVE_SIZE, num_classes=10, channel_options=(1, 3)),
          prepare=lambda cfg: prepare(MNIST, cfg))
def build_mnist(cfg: DictConfig, seed: int, num_workers: int) -> DataBundle:
    return build(MNIST, cfg)


@register("fashion_mnist", Native(channels=1, image_size=NATIVE_SIZE, num_classes=10, channel_options=(1, 3)),
          prepare=lambda cfg: prepare(FASHION_MNIST, cfg))
def build_fashion_mnist(cfg: DictConfig, seed: int, num_workers: int) -> DataBundle:
    return build(FASHION_MNIST, cfg)


def build(release: Release, cfg: DictConfig) -> DataBundle:
    folder = prepare(release, cfg)
    raw = folder / "raw"
    channels = cfg.channels or 1
    size = cfg.image_size or NATIVE_SIZE
    splits = {}
    for split, (images_file, labels_file) in FILES.items():
        images = _resized(torch.from_numpy(read_idx(raw / images_file, release, folder)).unsqueeze(1), size)
        labels = torch.from_numpy(read_idx(raw / labels_file, release, folder).astype(np.int64))
        if len(images) != len(labels):
            raise missing_dataset(release.name, folder, f"{images_file} and {labels_file} differ in length", LAYOUT)
        splits[split] = InMemorySource(images.expand(-1, channels, -1, -1).contiguous(), labels,
                                       [release.mean] * channels, [release.std] * channels)
    return DataBundle(release.name, (channels, size, size), 10, train=splits["train"], test=splits["test"])


def read_idx(path: Path, release: Release, folder: Path) -> np.ndarray:
    """The uint8 array of an IDX file (labels: [N]; images: [N, H, W])."""
    data = bytearray(path.read_bytes())  # writable, so torch can share the memory without a copy
    if len(data) < 8 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise missing_dataset(release.name, folder, f"{path.name} is not an uncompressed IDX file of bytes", LAYOUT)
    dims = int(data[3])
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if values.size != int(np.prod(shape)):
        raise missing_dataset(release.name, folder, f"{path.name} holds {values.size} values, not {shape}", LAYOUT)
    return values.reshape(shape)


def _resized(images: Tensor, size: int) -> Tensor:
    """Bilinear resize of uint8 [N, 1, 28, 28] images, kept as uint8 (a quarter of float32's memory)."""
    if size == NATIVE_SIZE:
        return images
    resized = torch.cat([F.interpolate(chunk.float(), size=(size, size), mode="bilinear", align_corners=False)
                         for chunk in images.split(10_000)])
    return resized.round_().clamp_(0, 255).to(torch.uint8)


def _download(release: Release, cfg: DictConfig, folder: Path) -> None:
    if not cfg.download:
        raise missing_dataset(release.name, folder, "dataset.download=false", LAYOUT, downloadable=True)
    import torchvision.datasets  # imported on use: torchvision takes seconds to import

    try:
        getattr(torchvision.datasets, release.torchvision_class)(str(folder.parent), train=True, download=True)
    except Exception as exc:  # network, disk or checksum trouble: all the user's to fix, none a bug here
        raise missing_dataset(release.name, folder, f"download failed: {type(exc).__name__}: {exc}", LAYOUT) from exc
