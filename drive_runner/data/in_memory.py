"""A batch source over images held in one tensor, with augmentation done on whole batches.

Small datasets (digits, synthetic, CIFAR) fit in memory, so a batch is one gather plus a few tensor
ops: far faster than a DataLoader decoding and transforming one PIL image at a time, and the random
crop offsets and flips come straight from the caller's generator.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .bundle import Batch, BatchSource, Indices, Shard


class InMemorySource(BatchSource):
    """Samples kept as stored (uint8 in 0..255 or float already in model units) and normalised per batch.

    `crop_padding` switches augmentation on: a random crop of the original size out of the image
    zero-padded by that many pixels on each side, plus a random horizontal flip. The padding is in raw
    pixel space, before normalisation, as in the usual CIFAR recipe. None means the split has no augmentation.

    `to(device)` moves the images (still uint8) to a GPU: batches are then gathered, cropped, flipped and
    normalised there, and only the indices and the random draws (a few hundred bytes) cross from the host.
    The draws are made on the CPU generator either way, so a batch is the same on every device.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: Optional[int] = None,
    ):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        super().__init__(labels)
        self.images = images
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(-1, 1, 1)
        self.crop_padding = crop_padding
        self._targets = self._labels.to(images.device)  # what batches return; `labels` stays on the CPU

    @property
    def augments(self) -> bool:
        return self.crop_padding is not None

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device) -> "InMemorySource":
        """The same split held on `device`."""
        if torch.device(device) == self.device:
            return self
        moved = InMemorySource(self.images.to(device), self._labels, self.mean.flatten().tolist(),
                               self.std.flatten().tolist(), self.crop_padding)
        moved.mean, moved.std = self.mean.to(device), self.std.to(device)  # exactly the same values
        return moved

    def subset(self, indices: Tensor) -> "InMemorySource":
        """The samples at `indices`, gathered into a source of their own, normalised as this one."""
        indices = torch.as_tensor(indices, dtype=torch.long)
        part = InMemorySource(self.images[indices.to(self.device)], self._labels[indices], self.mean.flatten().tolist(),
                              self.std.flatten().tolist(), self.crop_padding)
        part.mean, part.std = self.mean, self.std  # exactly the same values
        return part

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
        for indices in self.index_batches(batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
            yield self._batch(indices, augment, generator, shard)

    def take(self, indices: Indices, *, augment: bool = False, generator: Optional[torch.Generator] = None) -> Batch:
        return self._batch(torch.as_tensor(indices, dtype=torch.long), augment, generator, None)

    def _batch(self, indices: Tensor, augment: bool, generator: Optional[torch.Generator],
               shard: Optional[Shard]) -> Batch:
        crops = None
        if augment and self.crop_padding is not None:
            crops = CropFlip.draw(len(indices), self.crop_padding, generator)  # for the whole batch, then sharded
        if shard is not None:
            rank, size = shard
            indices = indices[rank::size]
            crops = crops.rows(slice(rank, None, size)) if crops is not None else None
        indices = indices.to(self.device, non_blocking=True)
        images = self.images[indices]
        if crops is not None:  # on the stored pixels: zero padding is black, as in the usual recipe
            images = crops.apply(images)
        images = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        return (images - self.mean) / self.std, self._targets[indices]


class CropFlip:
    """Per-sample crop offsets and horizontal flips of one batch, drawn on the CPU generator."""

    def __init__(self, offset_y: Tensor, offset_x: Tensor, flip: Tensor, padding: int):
        self.offset_y, self.offset_x, self.flip, self.padding = offset_y, offset_x, flip, padding

    @classmethod
    def draw(cls, batch: int, padding: int, generator: Optional[torch.Generator]) -> "CropFlip":
        offset_y = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
        offset_x = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
        flip = torch.rand(batch, generator=generator) < 0.5
        return cls(offset_y, offset_x, flip, padding)

    def rows(self, which: slice) -> "CropFlip":
        return CropFlip(self.offset_y[which], self.offset_x[which], self.flip[which], self.padding)

    def apply(self, images: Tensor) -> Tensor:
        """The crops of a [B, C, H, W] batch (zero padding), as one gather on the batch's device. A flip is
        the crop window read with its columns in reverse order, so both fit in the same indexing."""
        batch, channels, height, width = images.shape
        device, padding = images.device, self.padding
        rows = self.offset_y.to(device)[:, None] + torch.arange(height, device=device)  # [B, H]
        cols = self.offset_x.to(device)[:, None] + torch.arange(width, device=device)  # [B, W]
        cols = torch.where(self.flip.to(device)[:, None], cols.flip(1), cols)
        padded = F.pad(images, (padding, padding, padding, padding))
        return padded[
            torch.arange(batch, device=device)[:, None, None, None],
            torch.arange(channels, device=device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]


def random_crop_flip(images: Tensor, padding: int, generator: Optional[torch.Generator]) -> Tensor:
    """Per-sample random crop (zero padding) and horizontal flip of a [B, C, H, W] batch."""
    return CropFlip.draw(len(images), padding, generator).apply(images)
