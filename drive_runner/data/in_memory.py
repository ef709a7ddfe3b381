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

from .bundle import Batch, BatchSource, Indices


class InMemorySource(BatchSource):
    """Samples kept as stored (uint8 in 0..255 or float already in model units) and normalised per batch.

    `crop_padding` switches augmentation on: a random crop of the original size out of the image
    zero-padded by that many pixels on each side, plus a random horizontal flip. The padding is in raw
    pixel space, before normalisation, as in the usual CIFAR recipe. None means the split has no augmentation.
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
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.crop_padding = crop_padding

    @property
    def augments(self) -> bool:
        return self.crop_padding is not None

    def batches(
        self,
        batch_size: int,
        *,
        shuffle: bool,
        generator: Optional[torch.Generator] = None,
        augment: bool = False,
        drop_last: bool = False,
    ) -> Iterator[Batch]:
        for indices in self.index_batches(batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last):
            yield self.take(indices, augment=augment, generator=generator)

    def take(self, indices: Indices, *, augment: bool = False, generator: Optional[torch.Generator] = None) -> Batch:
        indices = torch.as_tensor(indices, dtype=torch.long)
        images = self.images[indices]
        images = images.float().div_(255) if images.dtype == torch.uint8 else images.float()
        if augment and self.crop_padding is not None:
            images = random_crop_flip(images, self.crop_padding, generator)
        return (images - self.mean) / self.std, self._labels[indices]


def random_crop_flip(images: Tensor, padding: int, generator: Optional[torch.Generator]) -> Tensor:
    """Per-sample random crop (zero padding) and horizontal flip of a [B, C, H, W] batch, as one gather.

    A flip is the crop window read with its columns in reverse order, so both fit in the same indexing.
    """
    batch, channels, height, width = images.shape
    offset_y = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    offset_x = torch.randint(0, 2 * padding + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    rows = offset_y[:, None] + torch.arange(height)  # [B, H]
    cols = offset_x[:, None] + torch.arange(width)  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    padded = F.pad(images, (padding, padding, padding, padding))
    return padded[
        torch.arange(batch)[:, None, None, None],
        torch.arange(channels)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]
