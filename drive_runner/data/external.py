"""Datasets of one's own, named by `_target_` in a dataset config (docs/extending.md):

  - a callable returning (train, test) torch.utils.data.Dataset objects whose items are
    (image tensor C x H x W, int label); or
  - a torchvision dataset class with its `root` (built twice, train=True and train=False, with ToTensor
    when the config gives no transform).

Images are used as the dataset gives them (drive-runner adds no normalisation or augmentation; a dataset
that draws random transforms draws them per item). Channels, image size and class count are read from the
data; a config that gives `channels`, `image_size` or `num_classes` is checked against it (and validation
then needs not load the data). `in_memory` (null: when the data goes to the GPU) reads every item once into
one tensor, and batches come from there, on the device too; otherwise a DataLoader reads the items of each
batch, every item under its own seed drawn from the run's generator, so a dataset's random transforms are
reproducible and the same on any number of workers. DDP shards batches as for the built-in datasets.
"""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any, Iterator, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from drive_runner.errors import ConfigError
from drive_runner.instantiation import build, label, locate

from .bundle import Batch, BatchSource, DataBundle, Indices, Shard
from .in_memory import InMemorySource

# drive-runner's own keys of a dataset config of one's own; every other key is the callable's argument.
RESERVED = ("name", "channels", "image_size", "num_classes", "in_memory")
EXPECTED = "(train, test) torch.utils.data.Dataset objects whose items are (image tensor C x H x W, int label)"
READ_BATCH = 256


def describe_own(cfg) -> tuple[tuple[int, int, int], int]:
    """The input shape and class count, from the config when it gives all three facts, else from the data."""
    channels, size, classes = (cfg.get(key) for key in ("channels", "image_size", "num_classes"))
    if channels is not None and size is not None and classes is not None:
        return (int(channels), int(size), int(size)), int(classes)
    loaded = _load(_key(cfg))
    return loaded.input_shape, loaded.num_classes


def build_own_dataset(cfg, seed: int, num_workers: int, on_device: bool = False) -> DataBundle:
    loaded = _load(_key(cfg))
    in_memory = cfg.get("in_memory")
    in_memory = on_device if in_memory is None else bool(in_memory)
    if in_memory:
        train, test = (_in_memory(split, labels, num_workers) for split, labels in
                       ((loaded.train, loaded.train_labels), (loaded.test, loaded.test_labels)))
    else:
        train = DatasetSource(loaded.train, loaded.train_labels, num_workers)
        test = DatasetSource(loaded.test, loaded.test_labels, num_workers)
    return DataBundle(label(cfg), loaded.input_shape, loaded.num_classes, train=train, test=test)


class _Loaded:
    def __init__(self, train: Dataset, test: Dataset, cfg: dict):
        self.train, self.test = train, test
        image, _ = _item(train, 0)
        self.input_shape = tuple(int(n) for n in image.shape)
        self.train_labels, self.test_labels = _labels(train), _labels(test)
        classes = getattr(train, "classes", None)
        self.num_classes = len(classes) if classes is not None else int(self.train_labels.max()) + 1
        for key, value, wanted in (("channels", self.input_shape[0], cfg.get("channels")),
                                   ("image_size", self.input_shape[1], cfg.get("image_size")),
                                   ("num_classes", self.num_classes, cfg.get("num_classes"))):
            if wanted is not None and int(wanted) != value and not (key == "num_classes" and int(wanted) > value):
                raise ConfigError(f"dataset.{key}", f"the data gives {value}, the config says {wanted}; leave "
                                                    f"dataset.{key} out to read it from the data")
        if cfg.get("num_classes") is not None:
            self.num_classes = int(cfg["num_classes"])


def _key(cfg) -> str:
    container = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True) if isinstance(cfg, DictConfig) else dict(cfg)
    return json.dumps(container, sort_keys=True, default=str)


@functools.lru_cache(maxsize=1)  # validation and the run that follows it read the same data once
def _load(key: str) -> _Loaded:
    cfg = json.loads(key)
    path = cfg["_target_"]
    target = locate(path, "dataset._target_")
    if inspect.isclass(target) and issubclass(target, Dataset):
        train, test = _dataset_class_splits(cfg, target)
    else:
        splits = build(cfg, "dataset", reserved=RESERVED, target=target)
        if not (isinstance(splits, (tuple, list)) and len(splits) == 2 and all(_is_dataset(s) for s in splits)):
            raise ConfigError("dataset._target_", f"{path} returned {_described(splits)}; expected {EXPECTED}")
        train, test = splits
    for name, split in (("train", train), ("test", test)):
        if len(split) == 0:
            raise ConfigError("dataset._target_", f"the {name} split of {path} is empty")
        _item(split, 0, path)
    return _Loaded(train, test, cfg)


def _dataset_class_splits(cfg: dict, target) -> tuple[Dataset, Dataset]:
    """A torchvision-style dataset class built for its two splits, with ToTensor unless a transform is given."""
    parameters = inspect.signature(target).parameters
    provided = {}
    if "transform" in parameters and "transform" not in cfg:
        from torchvision.transforms import (
            ToTensor,  # on use: torchvision takes seconds to import
        )

        provided["transform"] = ToTensor()
    if "train" in parameters:
        choices = ({"train": True}, {"train": False})
    elif "split" in parameters:
        choices = ({"split": "train"}, {"split": "test"})
    else:
        raise ConfigError("dataset._target_", f"{cfg['_target_']} is a dataset class without a train= or split= "
                                              "argument; name a callable that returns (train, test) instead")
    return tuple(build(cfg, "dataset", provided={**provided, **choice}, reserved=RESERVED, target=target)
                 for choice in choices)


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__")


def _described(obj: Any) -> str:
    if isinstance(obj, (tuple, list)):
        return f"a {type(obj).__name__} of {len(obj)} ({', '.join(type(o).__name__ for o in obj)})"
    return f"a {type(obj).__name__}"


def _image(value: Any) -> Tensor:
    """An item's image as a float tensor C x H x W (H x W gets one channel; a PIL image goes through ToTensor)."""
    if not torch.is_tensor(value) and hasattr(value, "getbands"):
        from torchvision.transforms.functional import to_tensor

        value = to_tensor(value)
    if not torch.is_tensor(value):
        raise TypeError(f"an image is a {type(value).__name__}")
    if value.dim() == 2:
        value = value.unsqueeze(0)
    if value.dim() != 3:
        raise TypeError(f"an image has shape {tuple(value.shape)}")
    return value.float()


def _item(dataset: Dataset, index: int, path: str = "the dataset") -> tuple[Tensor, int]:
    try:
        image, target = dataset[index]
        return _image(image), int(target)
    except (TypeError, ValueError) as error:
        raise ConfigError("dataset._target_", f"{path}: item {index} is not (image tensor C x H x W, int label) "
                                              f"({error}); expected {EXPECTED}") from None


def _labels(dataset: Dataset) -> Tensor:
    """Every label in order: the dataset's `targets` when it has them (torchvision's), else read item by item."""
    targets = getattr(dataset, "targets", None)
    if targets is not None and len(targets) == len(dataset):
        return torch.as_tensor(targets, dtype=torch.long).clone()
    return torch.tensor([_item(dataset, i)[1] for i in range(len(dataset))], dtype=torch.long)


def _in_memory(dataset: Dataset, labels: Tensor, num_workers: int) -> InMemorySource:
    """Every item read once (in loader workers) into one float tensor, as the dataset gives it."""
    loader = DataLoader(_Items(dataset), batch_size=READ_BATCH, num_workers=num_workers)
    images = torch.cat([batch for batch, _ in loader])
    channels = images.shape[1]
    return InMemorySource(images, labels, mean=[0.0] * channels, std=[1.0] * channels)


class _Items(Dataset):
    """A dataset's items as (float image C x H x W, int label); a key (index, seed) draws its random transforms
    under that seed, so they depend on the run's generator alone."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key) -> tuple[Tensor, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:
            return _item(self.dataset, index)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _item(self.dataset, index)


class DatasetSource(BatchSource):
    """A split of a dataset of one's own, read through a DataLoader batch by batch."""

    def __init__(self, dataset: Dataset, labels: Tensor, num_workers: int = 0):
        super().__init__(labels)
        self.items = _Items(dataset)
        self.num_workers = num_workers

    def batches(self, batch_size: int, *, shuffle: bool, generator: Optional[torch.Generator] = None,
                augment: bool = False, drop_last: bool = False, shard: Optional[Shard] = None) -> Iterator[Batch]:
        order = self.index_batches(batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last)
        seeds = torch.randint(2**62, (self.num_samples,), generator=generator) if generator is not None else None
        if shard is not None:
            order = [batch[shard[0]::shard[1]] for batch in order]
        loader = DataLoader(self.items, batch_sampler=(_keys(batch, seeds) for batch in order),
                            num_workers=self.num_workers, generator=torch.Generator().manual_seed(0))
        yield from loader

    def take(self, indices: Indices, *, augment: bool = False, generator: Optional[torch.Generator] = None) -> Batch:
        indices = torch.as_tensor(indices, dtype=torch.long)
        seeds = torch.randint(2**62, (len(indices),), generator=generator) if generator is not None else None
        keys = list(zip(indices.tolist(), [None] * len(indices) if seeds is None else seeds.tolist()))
        return default_collate([self.items[key] for key in keys])


def _keys(batch: Tensor, seeds: Optional[Tensor]) -> list:
    return list(zip(batch.tolist(), [None] * len(batch) if seeds is None else seeds[batch].tolist()))
