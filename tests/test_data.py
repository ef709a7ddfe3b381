"""Dataset loaders, run for real on tiny files written in each dataset's on-disk format (no downloads)."""

from __future__ import annotations

import pickle
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets
import torchvision.datasets.utils
from PIL import Image

from drive_runner.data import DataBundle, build_dataset, dataset_names
from drive_runner.errors import ConfigError, DatasetNotFoundError

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pixels(inputs: torch.Tensor, mean, std) -> torch.Tensor:
    """Undo the normalisation: back to 0..255 pixel values."""
    return (inputs * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)) * 255


def whole_split(source, **kwargs):
    inputs, targets = zip(*source.batches(64, shuffle=False, **kwargs))
    return torch.cat(inputs), torch.cat(targets)


# --------------------------------------------------------------------------- registry and config
def test_registered_names():
    assert dataset_names() == ["cifar10", "cifar100", "digits", "fashion_mnist", "imagenet", "mnist", "synthetic",
                               "tinyimagenet"]


def test_unknown_dataset_lists_the_allowed_names():
    with pytest.raises(ConfigError) as err:
        build_dataset({"name": "svhn"})
    assert err.value.key == "dataset"
    assert "unknown dataset 'svhn'" in str(err.value) and "digits, fashion_mnist, imagenet" in str(err.value)


def test_unknown_key_and_wrong_type_name_the_key():
    with pytest.raises(ConfigError) as err:
        build_dataset({"name": "digits", "image_sise": 32})
    assert err.value.key == "dataset.image_sise"
    with pytest.raises(ConfigError) as err:
        build_dataset({"name": "digits", "image_size": "large"})
    assert err.value.key == "dataset.image_size"


# --------------------------------------------------------------------------- digits
def test_digits_split_is_stratified_and_fixed_across_run_seeds():
    bundle = build_dataset({"name": "digits", "test_fraction": 0.25}, seed=0)
    assert isinstance(bundle, DataBundle) and bundle.input_shape == (1, 8, 8) and bundle.num_classes == 10
    train, test = bundle.train.labels, bundle.test.labels
    assert len(train) + len(test) == 1797
    assert len(test) == int(np.ceil(0.25 * 1797))
    for digit in range(10):
        in_class = int((train == digit).sum() + (test == digit).sum())
        assert abs(int((test == digit).sum()) - 0.25 * in_class) <= 1

    other_seed = build_dataset({"name": "digits", "test_fraction": 0.25}, seed=7)
    assert torch.equal(whole_split(other_seed.test)[0], whole_split(bundle.test)[0])
    assert torch.equal(other_seed.test.labels, test)
    other_split = build_dataset({"name": "digits", "test_fraction": 0.25, "split_seed": 1})
    assert not torch.equal(other_split.test.labels, test)


def test_digits_come_from_the_cache_without_scikit_learn_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    """Issue 21, item 12: importing scikit-learn took a second of every digits job; after the first job the
    images and the split come from a cache file and are the same tensors."""
    import subprocess
    import sys

    monkeypatch.setenv("DRIVE_RUNNER_CACHE", str(tmp_path))
    first = build_dataset({"name": "digits", "test_fraction": 0.25}, seed=0)
    [cached] = tmp_path.glob("digits-*-test0.25-seed0.pt")
    probe = ("import sys; from drive_runner.data import build_dataset; build_dataset({'name': 'digits', "
             "'test_fraction': 0.25}); print(sorted(m for m in sys.modules if m.startswith('sklearn')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
    cached.write_bytes(b"half a file")
    again = build_dataset({"name": "digits", "test_fraction": 0.25}, seed=0)
    for split in ("train", "test"):
        for ours, theirs in zip(whole_split(getattr(first, split)), whole_split(getattr(again, split))):
            assert torch.equal(ours, theirs)
    assert torch.load(cached, weights_only=True)["test"].numel() == len(first.test.labels)


def test_a_validation_split_is_held_out_of_the_training_images_the_same_for_every_seed():
    """Issue 22: dataset.validation_size moves that many training images, drawn once for every run seed, to a
    validation split; the test split is untouched, and holding out every image is refused."""
    whole = build_dataset({"name": "digits"})
    held = build_dataset({"name": "digits", "validation_size": 200}, seed=0)
    other_seed = build_dataset({"name": "digits", "validation_size": 200}, seed=5)
    assert (held.train.num_samples, held.validation.num_samples) == (whole.train.num_samples - 200, 200)
    everything = torch.cat([whole_split(held.train)[0], whole_split(held.validation)[0]])
    assert sorted(map(tuple, everything.flatten(1).tolist())) == sorted(map(tuple, whole_split(whole.train)[0]
                                                                             .flatten(1).tolist()))
    assert torch.equal(whole_split(held.validation)[0], whole_split(other_seed.validation)[0])
    assert torch.equal(whole_split(held.test)[0], whole_split(whole.test)[0]) and whole.validation is None
    with pytest.raises(ConfigError) as refused:
        build_dataset({"name": "digits", "validation_size": 1437})
    assert refused.value.key == "dataset.validation_size"


def test_digits_are_normalised_with_train_statistics():
    inputs, _ = whole_split(build_dataset({"name": "digits"}).train)
    assert inputs.shape == (1437, 1, 8, 8)
    assert abs(inputs.mean().item()) < 1e-4 and abs(inputs.std().item() - 1) < 1e-3


def test_digits_resized_to_three_channels():
    bundle = build_dataset({"name": "digits", "image_size": 32, "channels": 3})
    assert bundle.input_shape == (3, 32, 32)
    inputs, targets = next(bundle.test.batches(16, shuffle=True, generator=generator(0), augment=True))
    assert inputs.shape == (16, 3, 32, 32) and inputs.dtype == torch.float32 and targets.dtype == torch.int64
    assert torch.equal(inputs[:, 0], inputs[:, 1]) and torch.equal(inputs[:, 0], inputs[:, 2])


def test_digits_reject_other_channel_counts():
    with pytest.raises(ConfigError) as err:
        build_dataset({"name": "digits", "channels": 2})
    assert err.value.key == "dataset.channels"


# --------------------------------------------------------------------------- synthetic
def test_synthetic_shapes_and_determinism():
    cfg = {"name": "synthetic", "num_classes": 4, "num_train": 40, "num_test": 12, "channels": 1, "image_size": 16}
    bundle = build_dataset(cfg, seed=3)
    assert bundle.input_shape == (1, 16, 16) and bundle.num_classes == 4
    assert (bundle.train.num_samples, bundle.test.num_samples) == (40, 12)
    inputs, targets = whole_split(bundle.train)
    assert inputs.shape == (40, 1, 16, 16) and targets.min() >= 0 and targets.max() < 4

    same = build_dataset(cfg, seed=3)
    assert torch.equal(whole_split(same.train)[0], inputs) and torch.equal(same.train.labels, targets)
    assert not torch.equal(whole_split(build_dataset(cfg, seed=4).train)[0], inputs)
    assert build_dataset({"name": "synthetic"}).input_shape == (3, 32, 32)


# --------------------------------------------------------------------------- batches / take
def test_each_sample_once_per_shuffled_epoch_and_drop_last():
    source = build_dataset({"name": "synthetic", "num_train": 10}, seed=0).train
    everything, labels = source.take(range(10))
    batches = list(source.batches(3, shuffle=True, generator=generator(1)))
    assert [len(x) for x, _ in batches] == [3, 3, 3, 1] and source.num_batches(3) == 4
    seen = torch.cat([x for x, _ in batches])
    order = [int((everything == row).flatten(1).all(1).nonzero()) for row in seen]
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert torch.equal(torch.cat([y for _, y in batches]), labels[order])

    dropped = list(source.batches(3, shuffle=True, generator=generator(1), drop_last=True))
    assert [len(x) for x, _ in dropped] == [3, 3, 3] and source.num_batches(3, drop_last=True) == 3
    same = list(source.batches(3, shuffle=True, generator=generator(1)))
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batches, same))


def test_take_returns_the_requested_samples_in_order():
    source = build_dataset({"name": "synthetic", "num_train": 10}, seed=0).train
    everything, labels = source.take(torch.arange(10))
    inputs, targets = source.take([7, 2, 7])
    assert torch.equal(inputs, everything[[7, 2, 7]]) and torch.equal(targets, labels[[7, 2, 7]])


# --------------------------------------------------------------------------- CIFAR
def cifar_images(first: int, count: int) -> np.ndarray:
    """uint8 [count, 3, 32, 32] with a pattern unique per image and asymmetric left-right and top-bottom."""
    index = np.arange(first, first + count)[:, None, None, None]
    c, h, w = np.meshgrid(np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    return ((index * 11 + c * 60 + h * 3 + w * 5) % 256).astype(np.uint8)


def write_pickle(path: Path, images: np.ndarray, label_key: bytes, labels: list) -> None:
    with open(path, "wb") as f:
        pickle.dump({b"data": images.reshape(len(images), -1), label_key: labels, b"batch_label": b"x"}, f)


def write_cifar10(root: Path) -> tuple[np.ndarray, list, np.ndarray, list]:
    """Five train batches of 2 images and a test batch of 3; returns what the loader should give back."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for batch in range(5):
        labels = [(2 * batch + i) % 10 for i in range(2)]
        write_pickle(folder / f"data_batch_{batch + 1}", cifar_images(2 * batch, 2), b"labels", labels)
    write_pickle(folder / "test_batch", cifar_images(100, 3), b"labels", [9, 0, 4])
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, f)
    return cifar_images(0, 10), [i % 10 for i in range(10)], cifar_images(100, 3), [9, 0, 4]


def test_cifar10_returns_the_files_images_and_labels_in_order(tmp_path):
    train_images, train_labels, test_images, test_labels = write_cifar10(tmp_path)
    bundle = build_dataset({"name": "cifar10", "root": str(tmp_path), "download": False})
    assert bundle.input_shape == (3, 32, 32) and bundle.num_classes == 10
    assert bundle.train.num_samples == 10 and bundle.train.labels.tolist() == train_labels

    def same_pixels(inputs, images):
        return torch.allclose(pixels(inputs, CIFAR10_MEAN, CIFAR10_STD), torch.from_numpy(images).float(), atol=1e-3)

    inputs, targets = whole_split(bundle.train)
    assert same_pixels(inputs, train_images) and targets.tolist() == train_labels
    inputs, targets = whole_split(bundle.test, augment=True)  # the test split has no augmentation
    assert same_pixels(inputs, test_images) and targets.tolist() == test_labels
    inputs, targets = bundle.train.take([7, 3])
    assert same_pixels(inputs, train_images[[7, 3]]) and targets.tolist() == [7, 3]


def test_cifar100_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_pickle(folder / "train", cifar_images(0, 4), b"fine_labels", [99, 5, 42, 0])
    write_pickle(folder / "test", cifar_images(50, 2), b"fine_labels", [1, 77])
    bundle = build_dataset({"name": "cifar100", "root": str(tmp_path), "download": False})
    assert bundle.num_classes == 100 and bundle.test.labels.tolist() == [1, 77]
    inputs, targets = whole_split(bundle.train)
    expected = torch.from_numpy(cifar_images(0, 4)).float()
    assert torch.allclose(pixels(inputs, CIFAR100_MEAN, CIFAR100_STD), expected, atol=1e-3)
    assert targets.tolist() == [99, 5, 42, 0]


def crop_candidates(image: torch.Tensor, padding: int = 4) -> dict:
    """Every zero-padded crop window of `image`, plain and mirrored, keyed by (dy, dx, flipped)."""
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    size = image.shape[-1]
    candidates = {}
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            window = padded[:, dy : dy + size, dx : dx + size]
            candidates[(dy, dx, False)] = window
            candidates[(dy, dx, True)] = window.flip(-1)
    return candidates


def test_cifar_augmentation_is_a_padded_crop_and_flip(tmp_path):
    train_images, *_ = write_cifar10(tmp_path)
    bundle = build_dataset({"name": "cifar10", "root": str(tmp_path), "download": False})
    candidates = crop_candidates(torch.from_numpy(train_images[5]).float())
    seen = set()
    for seed in range(40):
        inputs, targets = bundle.train.take([5], augment=True, generator=generator(seed))
        assert inputs.shape == (1, 3, 32, 32) and targets.tolist() == [5]
        augmented = pixels(inputs[0], CIFAR10_MEAN, CIFAR10_STD)
        matches = [key for key, window in candidates.items() if torch.allclose(augmented, window, atol=1e-3)]
        assert len(matches) == 1, "not a zero-padded crop (or its mirror image) of the original"
        seen.add(matches[0])
    assert {flipped for _, _, flipped in seen} == {False, True}
    assert any(dy != 4 or dx != 4 for dy, dx, _ in seen), "never shifted"


def test_cifar_augmentation_is_reproducible_and_can_be_switched_off(tmp_path):
    write_cifar10(tmp_path)
    cfg = {"name": "cifar10", "root": str(tmp_path), "download": False}
    train = build_dataset(cfg).train

    def epoch(seed):
        return list(train.batches(4, shuffle=True, generator=generator(seed), augment=True))

    first, again, other = epoch(0), epoch(0), epoch(1)
    assert [x.shape for x, _ in first] == [(4, 3, 32, 32), (4, 3, 32, 32), (2, 3, 32, 32)]
    assert all(torch.equal(a, b) and torch.equal(y, z) for (a, y), (b, z) in zip(first, again))
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(first, other))

    plain = build_dataset({**cfg, "augment": False}).train
    assert torch.equal(plain.take([3], augment=True, generator=generator(0))[0], plain.take([3])[0])


def test_cifar_supports_only_native_size_and_channels(tmp_path):
    write_cifar10(tmp_path)
    cfg = {"name": "cifar10", "root": str(tmp_path), "download": False}
    with pytest.raises(ConfigError) as err:
        build_dataset({**cfg, "image_size": 64})
    assert err.value.key == "dataset.image_size"
    with pytest.raises(ConfigError) as err:
        build_dataset({**cfg, "channels": 1})
    assert err.value.key == "dataset.channels"
    assert build_dataset({**cfg, "image_size": 32, "channels": 3}).input_shape == (3, 32, 32)


# --------------------------------------------------------------------------- missing data and downloads
def test_missing_cifar_without_download_is_one_actionable_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset({"name": "cifar10", "root": "data", "download": False})  # relative to the working directory
    message = str(err.value)
    assert str(tmp_path.resolve() / "data" / "cifar-10-batches-py") in message
    assert "'cifar10'" in message and "dataset=digits" in message and "download=false" in message
    assert "\n" not in message


def test_failed_download_becomes_dataset_not_found(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure\nin name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset({"name": "cifar100", "root": str(tmp_path)})
    message = str(err.value)
    assert "download from https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz failed" in message
    assert str(tmp_path / "cifar-100-python") in message and "\n" not in message


def test_download_is_used_when_the_folder_is_missing(tmp_path, monkeypatch):
    calls = []

    def fake_download(url, download_root, md5=None, **kwargs):
        calls.append((url, md5))
        write_cifar10(Path(download_root))

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", fake_download)
    bundle = build_dataset({"name": "cifar10", "root": str(tmp_path)})
    assert calls == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")]
    assert bundle.train.num_samples == 10
    build_dataset({"name": "cifar10", "root": str(tmp_path)})
    assert len(calls) == 1, "downloaded again although the folder is there"


# --------------------------------------------------------------------------- Tiny ImageNet
TINY_COLOURS = {"n02": (250, 10, 10), "n01": (10, 250, 10), "n03": (10, 10, 250)}


def write_image(path: Path, colour, size=(64, 64)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


def write_tiny_imagenet(root: Path) -> list[str]:
    """Three classes (listed unsorted in wnids.txt), 2 train images each, 5 val images; returns the val wnids."""
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("n02\nn01\nn03\n")
    for wnid, colour in TINY_COLOURS.items():
        for i in range(2):
            write_image(folder / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", colour)
    val_wnids = ["n03", "n01", "n01", "n02", "n03"]
    lines = []
    for i, wnid in enumerate(val_wnids):
        write_image(folder / "val" / "images" / f"val_{i}.JPEG", TINY_COLOURS[wnid])
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return val_wnids


def test_tinyimagenet_labels_follow_wnids_and_val_annotations(tmp_path):
    val_wnids = write_tiny_imagenet(tmp_path)
    bundle = build_dataset({"name": "tinyimagenet", "root": str(tmp_path), "download": False}, num_workers=0)
    assert bundle.num_classes == 3 and bundle.input_shape == (3, 64, 64)
    index = {"n01": 0, "n02": 1, "n03": 2}  # sorted wnids
    assert bundle.test.labels.tolist() == [index[w] for w in val_wnids]
    assert bundle.train.labels.tolist() == [0, 0, 1, 1, 2, 2]

    inputs, targets = whole_split(bundle.test)
    assert inputs.shape == (5, 3, 64, 64) and inputs.dtype == torch.float32
    assert targets.tolist() == [index[w] for w in val_wnids]
    colours = pixels(inputs, IMAGENET_MEAN, IMAGENET_STD).mean(dim=(2, 3))
    expected = torch.tensor([TINY_COLOURS[w] for w in val_wnids], dtype=torch.float32)
    assert torch.allclose(colours, expected, atol=3), "val images paired with the wrong annotations"


def test_tinyimagenet_batches_are_deterministic_for_any_worker_count(tmp_path):
    write_tiny_imagenet(tmp_path)
    cfg = {"name": "tinyimagenet", "root": str(tmp_path), "download": False}

    def epoch(num_workers, seed):
        train = build_dataset(cfg, num_workers=num_workers).train
        return list(train.batches(4, shuffle=True, generator=generator(seed), augment=True))

    first = epoch(0, 0)
    assert [tuple(x.shape) for x, _ in first] == [(4, 3, 64, 64), (2, 3, 64, 64)]
    assert sorted(torch.cat([y for _, y in first]).tolist()) == [0, 0, 1, 1, 2, 2]
    for again in (epoch(0, 0), epoch(2, 0)):
        assert all(torch.equal(a, b) and torch.equal(y, z) for (a, y), (b, z) in zip(first, again))
    assert not all(torch.equal(a, b) for (a, _), (b, _) in zip(first, epoch(0, 1)))


def test_tinyimagenet_resize(tmp_path):
    write_tiny_imagenet(tmp_path)
    bundle = build_dataset({"name": "tinyimagenet", "root": str(tmp_path), "image_size": 32}, num_workers=0)
    assert bundle.input_shape == (3, 32, 32)
    assert bundle.train.take([0, 5], augment=True, generator=generator(0))[0].shape == (2, 3, 32, 32)
    assert bundle.test.take([1])[0].shape == (1, 3, 32, 32)


@pytest.mark.parametrize("size", [64, 32])
def test_tinyimagenet_in_memory_holds_the_pixels_the_files_give(tmp_path, size):
    write_tiny_imagenet(tmp_path)
    cfg = {"name": "tinyimagenet", "root": str(tmp_path), "download": False, "image_size": size}
    files, memory = build_dataset(cfg, num_workers=0), build_dataset({**cfg, "in_memory": True}, num_workers=0)
    assert memory.train.images.dtype == torch.uint8 and memory.input_shape == files.input_shape
    for split in ("train", "test"):
        (from_files, labels), (from_memory, same_labels) = whole_split(getattr(files, split)), whole_split(getattr(memory, split))
        assert torch.equal(labels, same_labels)
        assert torch.allclose(from_files, from_memory, atol=1e-5)
    assert memory.train.augments and memory.train.take([0, 1], augment=True, generator=generator(0))[0].shape == (2, 3, size, size)


def test_missing_tinyimagenet_message_shows_the_val_layout(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset({"name": "tinyimagenet", "root": str(tmp_path), "download": False})
    message = str(err.value)
    assert str(tmp_path / "tiny-imagenet-200") in message and "val/val_annotations.txt" in message
    assert "dataset=digits" in message and "\n" not in message


# --------------------------------------------------------------------------- ImageNet
def write_imagenet(root: Path) -> None:
    for split, count in (("train", 3), ("val", 2)):
        for c, wnid in enumerate(("n0001", "n0002")):
            for i in range(count):
                write_image(root / "imagenet" / split / wnid / f"{i}.JPEG", (100 * c, 50, 20), size=(90, 70))


def test_imagenet_eval_gives_the_centre_crop_size(tmp_path):
    write_imagenet(tmp_path)
    bundle = build_dataset({"name": "imagenet", "root": str(tmp_path), "image_size": 48}, num_workers=0)
    assert bundle.input_shape == (3, 48, 48) and bundle.num_classes == 2
    assert bundle.train.labels.tolist() == [0, 0, 0, 1, 1, 1] and bundle.test.labels.tolist() == [0, 0, 1, 1]
    inputs, targets = whole_split(bundle.test)
    assert inputs.shape == (4, 3, 48, 48) and targets.tolist() == [0, 0, 1, 1]
    inputs, _ = next(bundle.train.batches(6, shuffle=True, generator=generator(0), augment=True))
    assert inputs.shape == (6, 3, 48, 48)


def test_imagenet_is_never_downloaded_and_val_must_be_in_class_folders(tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset({"name": "imagenet", "root": str(tmp_path)})
    assert "licence" in str(err.value) and str(tmp_path / "imagenet") in str(err.value)

    write_image(tmp_path / "imagenet" / "train" / "n0001" / "0.JPEG", (0, 0, 0))
    write_image(tmp_path / "imagenet" / "val" / "ILSVRC2012_val_00000001.JPEG", (0, 0, 0))
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset({"name": "imagenet", "root": str(tmp_path)})
    assert "val/<wnid>/" in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- MNIST, Fashion-MNIST
def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", train: int = 12, test: int = 6) -> dict:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"train": (rng.integers(0, 256, (train, 28, 28)), np.arange(train) % 10),
              "test": (rng.integers(0, 256, (test, 28, 28)), (np.arange(test) + 3) % 10)}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", arrays[split][0])
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", arrays[split][1])
    return arrays


@pytest.mark.parametrize("name, folder, mean, std", [("mnist", "MNIST", 0.1307, 0.3081),
                                                     ("fashion_mnist", "FashionMNIST", 0.2860, 0.3530)])
def test_mnist_reads_torchvisions_idx_files_in_sample_order(tmp_path, name, folder, mean, std):
    arrays = write_mnist(tmp_path, folder)
    bundle = build_dataset({"name": name, "root": str(tmp_path), "download": False})
    assert bundle.input_shape == (1, 28, 28) and bundle.num_classes == 10
    assert bundle.train.num_samples == 12 and bundle.test.num_samples == 6
    inputs, targets = whole_split(bundle.test)
    assert targets.tolist() == arrays["test"][1].tolist()
    expected = torch.from_numpy(arrays["test"][0]).float().unsqueeze(1)
    assert torch.allclose(pixels(inputs, (mean,), (std,)), expected, atol=1e-3)


def test_mnist_resizes_and_repeats_channels_for_cifar_models(tmp_path):
    write_mnist(tmp_path)
    bundle = build_dataset({"name": "mnist", "root": str(tmp_path), "image_size": 32, "channels": 3})
    inputs, _ = bundle.train.take([0, 1])
    assert bundle.input_shape == (3, 32, 32) and inputs.shape == (2, 3, 32, 32)
    assert torch.equal(inputs[:, 0], inputs[:, 2])


def test_missing_or_broken_mnist_files_get_one_line(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset({"name": "mnist", "root": str(tmp_path), "download": False})
    assert str(tmp_path / "MNIST") in str(err.value) and "dataset.download=false" in str(err.value)

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DatasetNotFoundError, match="download failed"):
        build_dataset({"name": "mnist", "root": str(tmp_path)})
    write_mnist(tmp_path)
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").write_bytes(b"\x1f\x8b gzip, not IDX")
    with pytest.raises(DatasetNotFoundError, match="not an uncompressed IDX file"):
        build_dataset({"name": "mnist", "root": str(tmp_path)})


# --------------------------------------------------------------------------- missing data, before any directory
def test_missing_data_is_refused_before_any_directory_naming_root_and_download(tmp_path, monkeypatch, capsys):
    """Issue 21, item 2: a dataset that is not on disk (and not allowed, or not able, to be downloaded) stops the
    command with exit 2 and one line naming dataset.root, dataset.download and where the files go; no run
    directory, no offline W&B run and no empty ./data are left behind."""
    from drive_runner.cli.run import main

    monkeypatch.chdir(tmp_path)
    assert main(["dataset=mnist", "model=lenet300", f"dataset.root={tmp_path / 'nowhere'}",
                 "dataset.download=false"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith("drive-run: error: dataset.root: dataset 'mnist' not found at ")
    assert f"{tmp_path / 'nowhere' / 'MNIST'}" in line and "dataset.download=true to fetch it" in line
    assert "raw/ with train-images-idx3-ubyte" in line

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", offline)
    assert main(["method=magnitude", "sparsity=0.9"]) == 2  # the default: CIFAR-10 under ./data, download allowed
    line = capsys.readouterr().err.strip()
    assert line.startswith("drive-run: error: dataset.root: dataset 'cifar10' not found at ")
    assert "download from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz failed" in line
    assert "dataset.download=true" not in line  # it was on: the fix is the files, or another root
    assert list(tmp_path.iterdir()) == []


def test_a_dataset_is_downloaded_before_the_run_directory_exists(tmp_path, monkeypatch, capsys):
    from drive_runner.data import ensure_data

    made = []

    def fake_download(url, download_root, md5=None, **kwargs):
        made.append(url)
        write_cifar10(Path(download_root))

    monkeypatch.setattr(torchvision.datasets.utils, "download_and_extract_archive", fake_download)
    ensure_data({"name": "cifar10", "root": str(tmp_path / "data")})
    assert (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").is_file() and len(made) == 1
    ensure_data({"name": "cifar10", "root": str(tmp_path / "data")})
    assert len(made) == 1  # there: not fetched again
