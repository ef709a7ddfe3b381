"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Each YAML file in conf/<group>/ starts from one of these schemas (its defaults list names
`/schema/<group>@_here_: <schema>`), so Hydra rejects unknown keys and wrong types while composing.
Ranges and cross-key rules are checked by `drive_runner.validation`, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


# --------------------------------------------------------------------------- model
@dataclass
class ModelConfig:
    name: str = MISSING
    # Weight init of conv/linear layers (METHODS.md §6.3): Kaiming normal with ReLU gain.
    conv_init: str = "kaiming_fan_in"  # kaiming_fan_in | kaiming_fan_out
    linear_init: str = "kaiming"  # kaiming | default (PyTorch's U(+-1/sqrt(fan_in)))
    bn_init: str = "constant"  # constant (gamma=1) | uniform (gamma ~ U[0,1], open_lth)


@dataclass
class ResNet18Config(ModelConfig):
    stem: str = "auto"  # auto (CIFAR stem up to 64 px, ImageNet stem above) | cifar | imagenet


# --------------------------------------------------------------------------- dataset
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


# --------------------------------------------------------------------------- method
@dataclass
class MethodConfig:
    name: str = MISSING
    warmup_epochs: int = 0  # dense epochs before pruning; part of trainer.epochs
    iterations: int = 1  # pruning steps along the schedule's density path


@dataclass
class RandomMethodConfig(MethodConfig):
    variant: str = "global"  # global (one ranking, per-layer density is binomial) | layerwise (exact per layer)


@dataclass
class SnipConfig(MethodConfig):
    num_examples: Optional[int] = None  # None = 10 x #classes
    bn_mode: str = "eval"  # eval | train


@dataclass
class GraspConfig(MethodConfig):
    examples_per_class: int = 10
    temperature: float = 200.0
    bn_mode: str = "eval"  # eval | train (the official code scores in train mode)
    reinit_linear: bool = False  # Xavier re-init of the scoring copy's Linear layers (official option)


@dataclass
class ImpConfig(MethodConfig):
    rewind_step: int = 0  # optimizer step whose full state the weights rewind to (0 = initialisation)
    prune_output_layer: Optional[bool] = None  # None = open_lth presets: kept dense for LeNet/VGG, pruned for ResNets


@dataclass
class PruneTrainConfig(MethodConfig):
    penalty_ratio: float = 0.2  # r: lambda R / (CE + lambda R) on the first mini-batch
    threshold: float = 1e-4  # a group is dead when all its |w| are below this
    interval: int = 10  # epochs between reconfigurations


@dataclass
class SynflowConfig(MethodConfig):
    iterations: int = 100


@dataclass
class DriveConfig(MethodConfig):
    warmup_epochs: int = 2
    iterations: int = 100
    batches_per_iter: int = 1  # fresh mini-batches averaged per pruning step
    alpha: float = 1.0  # weight of the magnitude term |theta|
    beta: float = 1.0  # weight of the connection-sensitivity term |theta * g|
    gamma: float = 1.0  # weight of the convergence-sensitivity term
    normalization: str = "sum"  # sum | max | none, applied to each term over the unpruned weights
    combine: str = "sum"  # sum | product of the normalised terms
    convergence_term: str = "grad"  # grad (|g|) | hessian_grad (|theta * Hg|, GraSP-style)
    bn_mode: str = "train"  # train (buffers snapshotted and restored) | eval
    after_prune: str = "continue"  # continue | rewind_init | rewind_step
    rewind_step: int = 0  # with after_prune=rewind_step: the warm-up step to rewind to


# --------------------------------------------------------------------------- schedule
@dataclass
class ScheduleConfig:
    name: str = MISSING  # oneshot | exponential | linear | cubic | imp_levels


@dataclass
class CubicScheduleConfig(ScheduleConfig):
    """Gradual magnitude pruning (Zhu & Gupta 2017): s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3."""

    initial_sparsity: float = 0.0
    start_epoch: Optional[int] = None  # None = epoch round(T/16) (10 of 160)
    end_epoch: Optional[int] = None  # None = epoch T/2 (80 of 160); the mask freezes at its end
    interval_steps: int = 100  # dt, optimizer steps between pruning events


@dataclass
class ImpLevelsConfig(ScheduleConfig):
    fraction: float = 0.2  # of the surviving weights removed per level
    exact_target: bool = True  # the last level removes less, to land exactly on round(N * d)


# --------------------------------------------------------------------------- prune (mask machinery)
@dataclass
class PruneConfig:
    scope: str = "global"  # global | layerwise
    exclude: List[str] = field(default_factory=list)  # parameter names never pruned
    include_bias: bool = False


# --------------------------------------------------------------------------- trainer
@dataclass
class TrainerConfig:
    name: str = "backprop"
    epochs: int = 160
    batch_size: Any = 128  # an int >= 1, or auto: the largest power of two that fits hardware.memory_budget_mb
    eval_batch_size: int = 512
    optimizer: str = "sgd"  # sgd | adam
    lr: float = 0.1
    lr_reference_batch: int = 128  # the batch size `lr` is meant for
    lr_scaling: str = "linear"  # linear | none: LR scaling when the batch size is chosen for a memory budget
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    lr_schedule: str = "multistep"  # multistep | cosine | constant
    lr_milestones: List[int] = field(default_factory=lambda: [80, 120])  # epochs
    lr_gamma: float = 0.1
    lr_warmup_epochs: int = 0  # linear warm-up of the learning rate, in epochs
    eval_every: int = 1  # test-set evaluation every N epochs (the last epoch is always evaluated)


@dataclass
class NeuroFluxConfig(TrainerConfig):
    """NeuroFlux (METHODS.md §3): block-wise local learning under a memory budget."""

    epochs_per_block: Optional[int] = None  # None = max(10, ceil(epochs / #blocks))
    group_ratio: float = 2.0  # a new block starts when per-sample memory changes by more than this factor
    reserve: float = 0.10  # fraction of the budget kept free (fragmentation)
    min_block_batch: int = 8
    max_block_batch: int = 1024
    min_aux_filters: int = 16
    min_steps_per_epoch: int = 16  # caps a block's batch so each block epoch still has this many steps
    block_weight_decay: float = 5e-4
    cache: str = "auto"  # auto (memory-mapped file on disk when larger than the budget) | memory | disk
    cache_precision: str = "fp16"  # fp16 | bf16 | fp32
    cache_aug: str = "auto"  # auto (feature when the dataset augments) | feature | none
    val_fraction: float = 0.1  # training images held out to choose the exit
    exit_tolerance: float = 1.0  # points of validation accuracy the chosen exit may trail the best one


# --------------------------------------------------------------------------- hardware
@dataclass
class HardwareConfig:
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (autocast, CUDA only)
    memory_budget_mb: Optional[float] = None  # None = unlimited
    memory_margin_mb: float = 0.0  # added to every measured peak (allocator slack)
    num_workers: int = 2  # data-loader workers for on-disk image datasets
    threads: Optional[int] = None  # torch CPU threads; None = torch's default


# --------------------------------------------------------------------------- logger
@dataclass
class LoggerConfig:
    name: str = "wandb"  # wandb | none
    mode: str = "auto"  # auto (online with an API key, else offline) | offline | online | disabled
    project: str = "drive-runner"
    entity: Optional[str] = None
    group: Optional[str] = None  # None = the sweep or experiment name
    tags: List[str] = field(default_factory=list)
    log_artifacts: bool = True


# --------------------------------------------------------------------------- top level
@dataclass
class Config:
    model: ModelConfig = MISSING
    dataset: DatasetConfig = MISSING
    method: MethodConfig = MISSING
    schedule: ScheduleConfig = MISSING
    trainer: TrainerConfig = MISSING
    hardware: HardwareConfig = MISSING
    logger: LoggerConfig = MISSING
    prune: PruneConfig = field(default_factory=PruneConfig)
    sparsity: float = 0.9  # fraction of prunable weights removed
    compression: Optional[float] = None  # log10 of N/kept; when set it replaces sparsity
    seed: int = 0


SCHEMAS = {
    "model": {"base": ModelConfig, "resnet18": ResNet18Config},
    "dataset": {"base": DatasetConfig, "digits": DigitsConfig, "synthetic": SyntheticConfig},
    "method": {
        "base": MethodConfig, "random": RandomMethodConfig, "snip": SnipConfig, "grasp": GraspConfig,
        "synflow": SynflowConfig, "imp": ImpConfig, "drive": DriveConfig, "prunetrain": PruneTrainConfig,
    },
    "schedule": {"base": ScheduleConfig, "cubic": CubicScheduleConfig, "imp_levels": ImpLevelsConfig},
    "trainer": {"base": TrainerConfig, "neuroflux": NeuroFluxConfig},
    "hardware": {"base": HardwareConfig},
    "logger": {"base": LoggerConfig},
}


def register_schemas() -> None:
    """Store every schema under schema/<group>/<name> (not in the user-facing groups, so
    `method=` lists only real methods) and the top-level schema as `base_config`."""
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)


def target_density(cfg) -> float:
    """Density of the prunable set: from `compression` (log10 of N/kept) when set, else 1 - sparsity."""
    if cfg.compression is not None:
        return 10.0 ** (-float(cfg.compression))
    return round(1.0 - float(cfg.sparsity), 12)  # 1 - 0.9 is 0.09999999999999998 in floating point
