"""Dataset name -> builder, and what every builder shares: typed config, data root, missing-data errors.

Builders register themselves with `@register("name")`; importing `drive_runner.data` imports them all. A
config with `_target_` names a dataset of one's own instead (data/external.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..errors import ConfigError, DatasetNotFoundError
from ..instantiation import has_target
from .bundle import DataBundle
from .external import build_own_dataset, describe_own
from .options import DATASET_OPTIONS

# A builder gets the dataset config (typed, defaults filled in), the run seed and the loader worker count.
Builder = Callable[[DictConfig, int, int], DataBundle]
_BUILDERS: Dict[str, Builder] = {}
# A dataset read from files: makes sure they are there (downloading them if allowed) without reading them.
Prepare = Callable[[DictConfig], None]
_PREPARE: Dict[str, Prepare] = {}


@dataclass(frozen=True)
class Native:
    """A dataset's native image shape and class count, and the shapes it can be given, known without loading it."""

    channels: int
    image_size: int
    num_classes: int
    channel_options: Tuple[int, ...] | None = None  # channel counts a config may ask for; None = any
    resizable: bool = True  # False: only the native image size


_NATIVE: Dict[str, Native] = {}


def register(name: str, native: Native, prepare: Prepare | None = None) -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        _BUILDERS[name] = builder
        _NATIVE[name] = native
        if prepare is not None:
            _PREPARE[name] = prepare
        return builder

    return add


def dataset_names() -> List[str]:
    return sorted(_BUILDERS)


def _typed(cfg: Any) -> DictConfig:
    """`cfg` (a DictConfig or a plain dict) merged onto its dataset's schema, so keys it leaves out take
    the defaults of data/options.py (tests can pass `{"name": ...}`)."""
    name = cfg.get("name")
    if name not in _BUILDERS:
        raise ConfigError("dataset", f"unknown dataset {name!r}; allowed: {', '.join(dataset_names())}")
    try:
        return OmegaConf.merge(OmegaConf.structured(DATASET_OPTIONS.get(name, DATASET_OPTIONS["base"])), cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"dataset.{exc.full_key}", str(exc).splitlines()[0]) from exc


def build_dataset(cfg: Any, seed: int = 0, num_workers: int = 2, on_device: bool = False) -> DataBundle:
    """Build the dataset `cfg` names. `on_device`: the data will live on the GPU, so a dataset that can be
    decoded into memory is, unless its config says otherwise (`in_memory`)."""
    if has_target(cfg):
        return build_own_dataset(cfg, seed, num_workers, on_device)
    describe(cfg)  # the shape rules, refused before anything is read
    typed = _typed(cfg)
    if "in_memory" in typed and typed.in_memory is None:
        typed.in_memory = on_device
    return _held_out(_BUILDERS[typed.name](typed, seed, num_workers), int(typed.validation_size))


def _held_out(bundle: DataBundle, size: int) -> DataBundle:
    if size == 0:
        return bundle
    if size >= bundle.train.num_samples:
        raise ConfigError("dataset.validation_size", f"holds out {size:,} of the {bundle.train.num_samples:,} training "
                                                     f"images of {bundle.name}, leaving none to train on")
    return bundle.holding_out(size)


def ensure_data(cfg: Any) -> None:
    """The files of a dataset read from disk are there (downloaded first where dataset.download allows), checked
    before any run directory exists: a dataset that is not there is refused in one line (ConfigError naming
    dataset.root, with dataset.download and where the files are expected), and a folder the attempt created and
    left empty is removed."""
    if has_target(cfg):
        return
    typed = _typed(cfg)
    prepare = _PREPARE.get(typed.name)
    if prepare is None:
        return
    created = [folder for folder in (data_root(typed), *data_root(typed).parents) if not folder.exists()]
    try:
        prepare(typed)
    except DatasetNotFoundError as error:
        for folder in created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise ConfigError("dataset.root", str(error)) from None


def describe(cfg: Any) -> tuple[tuple[int, int, int], int]:
    """The (C, H, W) input shape and class count `cfg` will give, without touching the disk, so a
    channel count or size the dataset cannot give, or a model/dataset mismatch, is caught before any work.
    (A dataset of one's own is read here unless its config gives its channels, image size and classes.)"""
    if has_target(cfg):
        return describe_own(cfg)
    typed = _typed(cfg)
    native = _NATIVE[typed.name]
    channels = typed.channels or native.channels
    if native.channel_options is not None and channels not in native.channel_options:
        allowed = " or ".join(map(str, native.channel_options))
        raise ConfigError("dataset.channels", f"{typed.name} can be given {allowed} channels; got {channels}")
    size = typed.image_size or native.image_size
    if not native.resizable and size != native.image_size:
        raise ConfigError("dataset.image_size", f"{typed.name} supports only its native {native.image_size} px; got {size}")
    return (channels, size, size), typed.get("num_classes") or native.num_classes


def data_root(cfg: DictConfig) -> Path:
    """`cfg.root` as an absolute path; a relative root is taken from the current working directory."""
    return Path(cfg.root).expanduser().resolve()


def missing_dataset(name: str, folder: Path, reason: str, layout: str, downloadable: bool = False) -> DatasetNotFoundError:
    """The one-line error for a dataset that is not on disk: where it should be, why it is not, what to do.

    `layout` describes what `folder` should contain; `downloadable`: turning dataset.download on would fetch it."""
    reason = " ".join(reason.split())  # an exception text may span lines; the CLI prints one
    fetch_it = ", or dataset.download=true to fetch it" if downloadable else ""
    return DatasetNotFoundError(
        f"dataset '{name}' not found at {folder} ({reason}); that folder should hold {layout}. Put the files there, "
        f"or set dataset.root to the folder that holds {folder.name}/ (now {folder.parent}){fetch_it}; to run "
        f"without it, use dataset=digits (bundled with scikit-learn)"
    )


def fetch(name: str, folder: Path, *, download: bool, url: str, md5: str | None, layout: str) -> None:
    """Make sure `folder` exists, downloading and extracting the official archive next to it if allowed."""
    if folder.is_dir():
        return
    if not download:
        raise missing_dataset(name, folder, "dataset.download=false", layout, downloadable=True)
    from torchvision.datasets.utils import download_and_extract_archive  # on use: torchvision imports slowly

    try:
        download_and_extract_archive(url, download_root=str(folder.parent), md5=md5, remove_finished=True)
    except Exception as exc:  # network, disk or checksum trouble: all the user's to fix, none a bug here
        raise missing_dataset(name, folder, f"download from {url} failed: {type(exc).__name__}: {exc}", layout) from exc
    if not folder.is_dir():
        raise missing_dataset(name, folder, f"the archive from {url} did not contain it", layout)
