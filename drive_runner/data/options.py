"""The dataset options a config may set, with their defaults (the `dataset=` group's schema)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from omegaconf import MISSING


@dataclass
class DatasetConfig:
    name: str = MISSING
    # Where datasets live on disk; relative paths are taken from the directory drive-run was started in.
    root: str = "${oc.env:DRIVE_RUNNER_DATA,data}"
    download: bool = True
    augment: bool = True
    image_size: Optional[int] = None  # None = the dataset's native size
    channels: Optional[int] = None  # None = native; 3 on a grey dataset repeats the channel


@dataclass
class DigitsConfig(DatasetConfig):
    test_fraction: float = 0.2
    split_seed: int = 0  # the train/test split is fixed by this, not by the run seed


@dataclass
class SyntheticConfig(DatasetConfig):
    num_classes: int = 10
    num_train: int = 512
    num_test: int = 256


@dataclass
class TinyImageNetConfig(DatasetConfig):
    # Decode every image once into one uint8 tensor (1.2 GB at 64 px) and make batches from it, on the
    # GPU when the data lives there. None = when hardware.data_on_device is on (CUDA).
    in_memory: Optional[bool] = None


DATASET_OPTIONS = {"base": DatasetConfig, "digits": DigitsConfig, "synthetic": SyntheticConfig,
                   "tinyimagenet": TinyImageNetConfig}
