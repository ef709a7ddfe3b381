"""What the rest of drive-runner sees of a dataset: a `DataBundle` holding two batch sources.

Trainers and pruning scorers read samples only through `BatchSource`, so they never care whether
the images sit in memory (digits, synthetic, CIFAR) or are decoded from disk (Tiny ImageNet, ImageNet).
All randomness (shuffling and augmentation) is drawn from the generator the caller passes, which is
what makes two runs with the same seed see identical batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

Batch = Tuple[Tensor, Tensor]
Indices = Union[Sequence[int], Tensor]
Shard = Tuple[int, int]  # (rank, world size): this process's rows of every batch, rank::size


class BatchSource(ABC):
    """One split of a dataset, read as normalised float32 [B, C, H, W] inputs and int64 [B] targets (on the
    CPU, or on the device the split is held on)."""

    def __init__(self, labels: Tensor):
        self._labels = labels.long()

    @property
    def labels(self) -> Tensor:
        """All labels as a LongTensor in sample order (for class-balanced sampling without loading images)."""
        return self._labels

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def augments(self) -> bool:
        """Whether `augment=True` changes anything (NeuroFlux augments cached features only then)."""
        return False

    @abstractmethod
    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: Optional[torch.Generator] = None,
        augment: bool = False,
        drop_last: bool = False,
        shard: Optional[Shard] = None,
    ) -> Iterator[Batch]:
        """One epoch of batches. `augment` is a request: it has no effect on a split or dataset without
        augmentation. With `shard=(rank, size)` each batch is the rows rank::size of the batch one process
        would get, with the same augmentation (data-parallel training splits batches this way)."""

    @abstractmethod
    def take(self, indices: Indices, *, augment: bool = False, generator: Optional[torch.Generator] = None) -> Batch:
        """The given samples as one batch, in the given order (pruning scorers pick their own samples)."""

    def subset(self, indices: Tensor) -> "BatchSource":
        """The samples at `indices` as a split of their own (a held-out validation split, say)."""
        return SubsetSource(self, indices)

    def num_batches(self, batch_size: int, drop_last: bool = False) -> int:
        full, rest = divmod(self.num_samples, batch_size)
        return full if drop_last or rest == 0 else full + 1

    def index_batches(
        self, batch_size: int, *, shuffle: bool, generator: Optional[torch.Generator], drop_last: bool
    ) -> list[Tensor]:
        """The sample indices of each batch of one epoch; every sample appears once (unless dropped by drop_last)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if shuffle:
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        chunks = list(order.split(batch_size))
        return chunks[: self.num_batches(batch_size, drop_last)]


class SubsetSource(BatchSource):
    """Some samples of another split, read through its `take` (augmentation included)."""

    def __init__(self, source: BatchSource, indices: Tensor):
        self._source, self._indices = source, torch.as_tensor(indices, dtype=torch.long)
        super().__init__(source.labels[self._indices])

    @property
    def augments(self) -> bool:
        return self._source.augments

    def batches(self, batch_size: int, *, shuffle: bool, generator: Optional[torch.Generator] = None,
                augment: bool = False, drop_last: bool = False, shard: Optional[Shard] = None) -> Iterator[Batch]:
        for chunk in self.index_batches(batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
            inputs, targets = self.take(chunk, augment=augment, generator=generator)
            if shard is not None:
                rank, size = shard
                inputs, targets = inputs[rank::size], targets[rank::size]
            yield inputs, targets

    def take(self, indices: Indices, *, augment: bool = False, generator: Optional[torch.Generator] = None) -> Batch:
        return self._source.take(self._indices[torch.as_tensor(indices, dtype=torch.long)], augment=augment,
                                 generator=generator)


@dataclass(frozen=True)
class DataBundle:
    """A built dataset: its splits plus what a model needs to know to be built for it. `validation` is a split
    held out of the training images (dataset.validation_size), or None."""

    name: str
    input_shape: Tuple[int, int, int]  # (C, H, W) as the model sees it, after any resize
    num_classes: int
    train: BatchSource
    test: BatchSource
    validation: Optional[BatchSource] = None

    def to(self, device: torch.device) -> "DataBundle":
        """The bundle with every split that can be held on `device` moved there (in-memory splits);
        splits read from disk stay where they are and their batches are copied per step."""
        moved = {name: split.to(device) if hasattr(split, "to") else split for name, split in
                 (("train", self.train), ("test", self.test), ("validation", self.validation))}
        return DataBundle(self.name, self.input_shape, self.num_classes, **moved)

    def holding_out(self, size: int, seed: int = 0) -> "DataBundle":
        """The bundle with `size` training images, drawn by `seed` (the same for every run seed), moved to a
        validation split: the SNIP paper holds out 10% of MNIST's training set, the Lottery Ticket paper 5,000."""
        order = torch.randperm(self.train.num_samples, generator=torch.Generator().manual_seed(seed))
        held, kept = order[:size].sort().values, order[size:].sort().values
        return DataBundle(self.name, self.input_shape, self.num_classes, train=self.train.subset(kept),
                          test=self.test, validation=self.train.subset(held))
