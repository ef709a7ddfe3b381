"""Tiny ImageNet and ImageNet: JPEG files decoded by DataLoader workers, behind the batch-source interface.

Expected layouts under the data root:

    tiny-imagenet-200/                 (what tiny-imagenet-200.zip extracts to; downloaded if missing)
        wnids.txt                      one WordNet id per line: the 200 classes
        train/<wnid>/images/*.JPEG     500 training images per class
        val/images/*.JPEG              10,000 validation images in ONE folder, used as the test split;
        val/val_annotations.txt        their labels: tab-separated filename, wnid, 4 box ints per line

    imagenet/                          (never downloaded: the licence requires a manual download)
        train/<wnid>/*.JPEG            the ILSVRC-2012 training images, one folder per class
        val/<wnid>/*.JPEG              the validation images, which must first be moved into class
                                       folders (e.g. with the widely used valprep.sh script)

Class indices follow the sorted wnids, as torchvision's ImageFolder would number them.

Determinism: every sample of an epoch gets a seed drawn from the caller's generator, and its random
transform runs under that seed, so the batches depend only on the generator, not on the number of
workers or on which worker loads which sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import torch
from omegaconf import DictConfig
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate

from .bundle import Batch, BatchSource, DataBundle, Indices, Shard
from .registry import Native, data_root, fetch, missing_dataset, register

# The image files torchvision's ImageFolder reads.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TINY_LAYOUT = (
    "wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt (tiny-imagenet-200.zip)"
)
IMAGENET_LAYOUT = "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG, with the validation images moved into class folders"

Sample = Tuple[Path, int]
Transform = Callable[[Image.Image], Tensor]


class ImageFiles(Dataset):
    """Decodes one image file; a key is (index, seed) and a seed makes the transform's randomness reproducible."""

    def __init__(self, samples: Sequence[Sample], transform: Transform):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: Tuple[int, Optional[int]]) -> Tuple[Tensor, int]:
        index, seed = key
        path, label = self.samples[index]
        with Image.open(path) as image:
            image = image.convert("RGB")  # a few Tiny ImageNet/ImageNet files are greyscale or CMYK
        if seed is None:
            return self.transform(image), label
        with torch.random.fork_rng(devices=[]):  # torchvision's random transforms read the global CPU RNG
            torch.default_generator.manual_seed(seed)
            return self.transform(image), label


class ImageFileSource(BatchSource):
    """A split of image files; `train_transform` (random) is used when augmentation is requested, if given."""

    def __init__(
        self,
        samples: Sequence[Sample],
        eval_transform: Transform,
        train_transform: Optional[Transform] = None,
        num_workers: int = 0,
    ):
        super().__init__(torch.tensor([label for _, label in samples], dtype=torch.long))
        self.samples = samples
        self.eval_transform = eval_transform
        self.train_transform = train_transform
        self.num_workers = num_workers

    @property
    def augments(self) -> bool:
        return self.train_transform is not None

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
        dataset, seeds = self._dataset(augment, self.num_samples, generator)  # one seed per sample index
        order = self.index_batches(batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last)
        if shard is not None:
            order = [batch[shard[0]::shard[1]] for batch in order]
        loader = DataLoader(
            dataset,
            # Keys are made batch by batch as the loader asks, so an ImageNet epoch is never listed whole.
            batch_sampler=(_keys(batch, None if seeds is None else seeds[batch]) for batch in order),
            num_workers=self.num_workers,
            # Worker seeds come from this fixed generator rather than the global RNG, which stays untouched.
            generator=torch.Generator().manual_seed(0),
        )
        yield from loader

    def take(self, indices: Indices, *, augment: bool = False, generator: Optional[torch.Generator] = None) -> Batch:
        indices = torch.as_tensor(indices, dtype=torch.long)
        dataset, seeds = self._dataset(augment, len(indices), generator)  # one seed per requested sample
        return default_collate([dataset[key] for key in _keys(indices, seeds)])

    def _dataset(
        self, augment: bool, count: int, generator: Optional[torch.Generator]
    ) -> Tuple[ImageFiles, Optional[Tensor]]:
        """The dataset with the transform to use, and `count` transform seeds (None for the deterministic transform)."""
        if augment and self.train_transform is not None:
            return ImageFiles(self.samples, self.train_transform), torch.randint(2**62, (count,), generator=generator)
        return ImageFiles(self.samples, self.eval_transform), None


def _keys(indices: Tensor, seeds: Optional[Tensor]) -> List[Tuple[int, Optional[int]]]:
    """ImageFiles keys: each sample index paired with its transform seed (None when the transform is not random)."""
    return list(zip(indices.tolist(), [None] * len(indices) if seeds is None else seeds.tolist()))


def image_files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMG_EXTENSIONS)


def transforms():
    """torchvision's transforms, imported on use: torchvision takes seconds to import."""
    from torchvision import transforms as T

    return T


def normalised(*steps: Callable) -> Transform:
    T = transforms()
    return T.Compose([*steps, T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def prepare_tinyimagenet(cfg: DictConfig) -> Path:
    """tiny-imagenet-200/ with the files it must hold, downloaded first when missing and dataset.download allows."""
    folder = data_root(cfg) / "tiny-imagenet-200"
    fetch(
        "tinyimagenet",
        folder,
        download=cfg.download,
        url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
        md5="90528d7ca1a48142e341f4ef8d21d0de",
        layout=TINY_LAYOUT,
    )
    for required in ("wnids.txt", "train", "val/images", "val/val_annotations.txt"):
        if not (folder / required).exists():
            raise missing_dataset("tinyimagenet", folder, f"{required} is missing", TINY_LAYOUT)
    return folder


@register("tinyimagenet", Native(channels=3, image_size=64, num_classes=200, channel_options=(3,)),
          prepare=prepare_tinyimagenet)
def build_tinyimagenet(cfg: DictConfig, seed: int, num_workers: int) -> DataBundle:
    """64x64 images; `image_size` resizes them. Train augmentation: 4 px padded random crop + flip."""
    folder = prepare_tinyimagenet(cfg)

    wnids = sorted((folder / "wnids.txt").read_text().split())
    index = {wnid: i for i, wnid in enumerate(wnids)}
    train = [(path, index[wnid]) for wnid in wnids for path in image_files(folder / "train" / wnid / "images")]
    test = []
    for line in (folder / "val" / "val_annotations.txt").read_text().splitlines():
        if line.strip():
            filename, wnid = line.split("\t")[:2]
            if wnid not in index:
                reason = f"val_annotations.txt names {wnid}, which is not in wnids.txt"
                raise missing_dataset("tinyimagenet", folder, reason, TINY_LAYOUT)
            test.append((folder / "val" / "images" / filename, index[wnid]))

    T = transforms()
    size = cfg.image_size or 64
    resize = [T.Resize((size, size))] if size != 64 else []
    if cfg.in_memory:
        return DataBundle(
            name="tinyimagenet", input_shape=(3, size, size), num_classes=len(wnids),
            train=decoded(train, resize, num_workers, crop_padding=4 if cfg.augment else None),
            test=decoded(test, resize, num_workers),
        )
    eval_transform = normalised(*resize)
    train_transform = None
    if cfg.augment:
        train_transform = normalised(*resize, T.RandomCrop(size, padding=4), T.RandomHorizontalFlip())
    return DataBundle(
        name="tinyimagenet",
        input_shape=(3, size, size),
        num_classes=len(wnids),
        train=ImageFileSource(train, eval_transform, train_transform, num_workers),
        test=ImageFileSource(test, eval_transform, num_workers=num_workers),
    )


def decoded(samples: Sequence[Sample], resize: list, num_workers: int, crop_padding: Optional[int] = None):
    """Every image of a split decoded once (in loader workers) into one uint8 [N, 3, H, W] tensor: the
    same pixels ToTensor would give, times 255, with the same padded crop and flip made per batch."""
    from .in_memory import InMemorySource

    T = transforms()
    to_uint8 = T.Compose([*resize, T.PILToTensor()])
    loader = DataLoader(ImageFiles(samples, to_uint8), batch_sampler=[_keys(chunk, None) for chunk in
                                                                      torch.arange(len(samples)).split(1024)],
                        num_workers=num_workers)
    images = torch.cat([batch for batch, _ in loader])
    labels = torch.tensor([label for _, label in samples], dtype=torch.long)
    return InMemorySource(images, labels, IMAGENET_MEAN, IMAGENET_STD, crop_padding)


def prepare_imagenet(cfg: DictConfig) -> Path:
    """imagenet/ with its train/ and val/ folders (never downloaded: the licence requires a manual download)."""
    folder = data_root(cfg) / "imagenet"
    for split in ("train", "val"):
        if not (folder / split).is_dir():
            reason = f"no {split}/ folder; ImageNet cannot be downloaded automatically (licence)"
            raise missing_dataset("imagenet", folder, reason, IMAGENET_LAYOUT)
    return folder


@register("imagenet", Native(channels=3, image_size=224, num_classes=1000, channel_options=(3,)),
          prepare=prepare_imagenet)
def build_imagenet(cfg: DictConfig, seed: int, num_workers: int) -> DataBundle:
    """Standard recipe: RandomResizedCrop + flip for training; resize to 256/224 of the size, centre crop for eval."""
    folder = prepare_imagenet(cfg)

    wnids = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    index = {wnid: i for i, wnid in enumerate(wnids)}
    val_wnids = sorted(p.name for p in (folder / "val").iterdir() if p.is_dir())
    if not val_wnids or not set(val_wnids) <= set(index):
        reason = "val/ must hold one folder per training class; arrange the validation images into val/<wnid>/"
        raise missing_dataset("imagenet", folder, reason, IMAGENET_LAYOUT)
    train = [(path, index[wnid]) for wnid in wnids for path in image_files(folder / "train" / wnid)]
    test = [(path, index[wnid]) for wnid in val_wnids for path in image_files(folder / "val" / wnid)]

    T = transforms()
    size = cfg.image_size or 224
    eval_transform = normalised(T.Resize(round(size * 256 / 224)), T.CenterCrop(size))
    train_transform = normalised(T.RandomResizedCrop(size), T.RandomHorizontalFlip()) if cfg.augment else None
    return DataBundle(
        name="imagenet",
        input_shape=(3, size, size),
        num_classes=len(wnids),
        train=ImageFileSource(train, eval_transform, train_transform, num_workers),
        test=ImageFileSource(test, eval_transform, num_workers=num_workers),
    )
