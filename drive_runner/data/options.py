"""The dataset options a config may set, with their defaults (the `dataset=` group's schema)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING

from drive_runner.ranges import ranged

MAX_IMAGE_SIZE = 1024  # px; larger images are no use to these CNNs and exhaust memory first


@dataclass
class DatasetConfig:
    name: str = MISSING
    # Where datasets live on disk; relative paths are taken from the directory drive-run was started in.
    root: str = "${oc.env:DRIVE_RUNNER_DATA,data}"
    download: bool = True
    augment: bool = True
    image_size: Optional[int] = ranged(None, 1, MAX_IMAGE_SIZE, integer=True, optional=True)  # None = native size
    channels: Optional[int] = ranged(None, 1, integer=True, optional=True)  # None = native; 3 on grey repeats it
    # training images held out as a validation split, the same ones for every run seed (SNIP: 6,000 of MNIST; LTH: 5,000)
    validation_size: int = ranged(0, 0, integer=True)


@dataclass
class DigitsConfig(DatasetConfig):
    test_fraction: float = ranged(0.2, 0, 1, low_open=True, high_open=True)
    split_seed: int = 0  # the train/test split is fixed by this, not by the run seed


@dataclass
class SyntheticConfig(DatasetConfig):
    num_classes: int = ranged(10, 2, integer=True)
    num_train: int = ranged(512, 1, integer=True)
    num_test: int = ranged(256, 1, integer=True)


@dataclass
class TinyImageNetConfig(DatasetConfig):
    # Decode every image once into one uint8 tensor (1.2 GB at 64 px) and make batches from it, on the
    # GPU when the data lives there. None = when hardware.data_on_device is on (CUDA).
    in_memory: Optional[bool] = None


DATASET_OPTIONS = {"base": DatasetConfig, "digits": DigitsConfig, "synthetic": SyntheticConfig,
                   "tinyimagenet": TinyImageNetConfig}
