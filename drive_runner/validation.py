"""Checks of a composed config that types alone cannot express: ranges, names, cross-key rules.

Runs before any work (the CLI calls it on every job of a sweep before the first one starts), and
raises ConfigError naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from drive_runner.config import Config
from drive_runner.errors import ConfigError

MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit; derived seeds stay within torch's 64-bit range
MAX_IMAGE_SIZE = 1024  # px; larger images are no use to these CNNs and exhaust memory first
INT64_MAX = 2**63 - 1


def _check(key: str, ok: bool, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, allowed)


def _value(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, throw_on_missing=True)


def _number(low: float | None = None, high: float | None = None, *, integer=False, low_open=False,
            high_open=False, optional=False) -> Callable[[str, Any], None]:
    """A range rule; the error text spells out the interval, e.g. 'must be a number in [0, 1)'."""

    def rule(key: str, value: Any) -> None:
        if value is None and optional:
            return
        kind = "an integer" if integer else "a number"
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        interval = f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"
        message = f"must be {kind} in {interval}" + (" or null" if optional else "") + f", got {value!r}"
        valid_type = isinstance(value, int) if integer else isinstance(value, (int, float))
        finite = isinstance(value, int) or math.isfinite(value)  # ints are exact, however large
        _check(key, valid_type and not isinstance(value, bool) and finite, message)
        if low is not None:
            _check(key, value > low if low_open else value >= low, message)
        if high is not None:
            _check(key, value < high if high_open else value <= high, message)

    return rule


def _choice(*options: str) -> Callable[[str, Any], None]:
    def rule(key: str, value: Any) -> None:
        _check(key, value in options, f"must be one of {', '.join(options)}, got {value!r}")

    return rule


def _batch_size(key: str, value: Any) -> None:
    ok = value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
    _check(key, ok, f"must be an integer >= 1 or auto, got {value!r}")


RULES: dict[str, Callable[[str, Any], None]] = {
    "sparsity": _number(0, 1, high_open=True),
    "compression": _number(0, optional=True),
    "seed": _number(0, MAX_SEED, integer=True),
    "resume": _choice("auto", "never", "must"),
    "trainer.epochs": _number(0, integer=True),
    "trainer.batch_size": _batch_size,
    "trainer.eval_batch_size": _number(1, integer=True),
    "trainer.lr": _number(0, low_open=True),
    "trainer.momentum": _number(0, 1, high_open=True),
    "trainer.weight_decay": _number(0),
    "trainer.lr_gamma": _number(0, 1, low_open=True),
    "trainer.lr_warmup_epochs": _number(0),
    "trainer.eval_every": _number(1, integer=True),
    "trainer.optimizer": _choice("sgd", "adam"),
    "trainer.lr_schedule": _choice("multistep", "cosine", "constant"),
    "trainer.lr_reference_batch": _number(1, integer=True),
    "trainer.lr_scaling": _choice("linear", "none"),
    "hardware.memory_margin_mb": _number(0),
    "method.warmup_epochs": _number(0, integer=True),
    "method.iterations": _number(1, integer=True),
    "prune.scope": _choice("global", "layerwise"),
    "prune.ablation": _choice("none", "shuffle", "reinit"),
    "table.limit": _number(1, integer=True, optional=True),
    "hardware.device": _choice("auto", "cpu", "cuda"),
    "hardware.precision": _choice("fp32", "bf16"),
    "hardware.memory_budget_mb": _number(0, low_open=True, optional=True),
    "hardware.num_workers": _number(0, integer=True),
    "hardware.threads": _number(1, integer=True, optional=True),
    "logger.name": _choice("wandb", "none"),
    "logger.mode": _choice("auto", "offline", "online", "disabled"),
    "logger.init_timeout_s": _number(0, 300, low_open=True),
    "model.conv_init": _choice("kaiming_fan_in", "kaiming_fan_out"),
    "model.linear_init": _choice("kaiming", "default"),
    "model.bn_init": _choice("constant", "uniform"),
    "dataset.image_size": _number(1, MAX_IMAGE_SIZE, integer=True, optional=True),
    "dataset.channels": _number(1, integer=True, optional=True),
}

# Rules for keys only some options of a group have (checked when the key is present).
OPTIONAL_RULES: dict[str, Callable[[str, Any], None]] = {
    "method.dtype": _choice("float32", "float64"),
    "method.variant": _choice("global", "layerwise"),
    "method.num_examples": _number(1, integer=True, optional=True),
    "method.bn_mode": _choice("eval", "train"),
    "method.examples_per_class": _number(1, integer=True),
    "method.temperature": _number(0, low_open=True),
    "method.rewind_step": _number(0, integer=True),
    "method.batches_per_iter": _number(1, integer=True),
    "method.alpha": _number(0),
    "method.beta": _number(0),
    "method.gamma": _number(0),
    "method.normalization": _choice("sum", "max", "none"),
    "method.combine": _choice("sum", "product"),
    "method.convergence_term": _choice("grad", "hessian_grad"),
    "method.after_prune": _choice("continue", "rewind_init", "rewind_step"),
    "method.control": _choice("none", "reinit", "shuffle"),
    "schedule.fraction": _number(0, 1, low_open=True, high_open=True),
    "trainer.epochs_per_block": _number(1, integer=True, optional=True),
    "trainer.group_ratio": _number(1, low_open=True),
    "trainer.reserve": _number(0, 1, high_open=True),
    "trainer.min_block_batch": _number(1, integer=True),
    "trainer.max_block_batch": _number(1, integer=True),
    "trainer.min_aux_filters": _number(1, integer=True),
    "trainer.min_steps_per_epoch": _number(1, integer=True),
    "trainer.block_weight_decay": _number(0),
    "trainer.cache": _choice("auto", "memory", "disk"),
    "trainer.cache_precision": _choice("fp16", "bf16", "fp32"),
    "trainer.cache_aug": _choice("auto", "feature", "none"),
    "trainer.val_fraction": _number(0, 1, low_open=True, high_open=True),
    "trainer.exit_tolerance": _number(0),
    "schedule.interval_steps": _number(1, integer=True),
    "schedule.initial_sparsity": _number(0, 1, high_open=True),
    "schedule.start_epoch": _number(0, integer=True, optional=True),
    "schedule.end_epoch": _number(1, integer=True, optional=True),
    "model.stem": _choice("auto", "cifar", "imagenet"),
    "dataset.test_fraction": _number(0, 1, low_open=True, high_open=True),
    "dataset.num_classes": _number(2, integer=True),
    "dataset.num_train": _number(1, integer=True),
    "dataset.num_test": _number(1, integer=True),
}


def _registered_names() -> dict[str, list[str]]:
    from drive_runner.data import dataset_names
    from drive_runner.models import model_names
    from drive_runner.pruning.methods import method_names
    from drive_runner.pruning.schedules import SCHEDULE_NAMES

    return {
        "model": model_names(),
        "dataset": dataset_names(),
        "method": method_names(),
        "schedule": sorted(SCHEDULE_NAMES),
        "trainer": ["backprop", "neuroflux"],
    }


def check_unknown_keys(cfg: DictConfig) -> None:
    """Keys added with `+key=value` that no schema declares are typos, not settings."""
    top_fields = {f.name for f in dataclasses.fields(Config)}
    for key in cfg:
        _check(str(key), key in top_fields, f"unknown key; top-level keys are {', '.join(sorted(top_fields))}")
    for group in ("model", "dataset", "method", "schedule", "trainer", "hardware", "logger", "prune"):
        node = cfg[group]
        schema = OmegaConf.get_type(node)
        if not dataclasses.is_dataclass(schema):
            continue
        fields = {f.name for f in dataclasses.fields(schema)}
        for key in node:
            _check(f"{group}.{key}", key in fields, f"unknown key; {group} keys are {', '.join(sorted(fields))}")


def check_representable(node: Any, prefix: str = "") -> None:
    """Every number anywhere in the config is finite and fits in 64 bits: inf, nan or 1e400 (which
    parses as inf) would otherwise reach the run and fail far from the key that caused it."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix and isinstance(key, str) else f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, float):
            _check(path, math.isfinite(value), f"must be a finite number, got {value!r}")
        elif isinstance(value, int) and not isinstance(value, bool):
            _check(path, abs(value) <= INT64_MAX, f"must be an integer of at most 64 bits, got {value}")
        else:
            check_representable(value, path)


def validate(cfg: DictConfig, *, memory: bool = True) -> None:
    """Raise ConfigError for the first problem found. `memory=False` leaves out the batch-size checks
    against hardware.memory_budget_mb (drive-memory reports them instead of refusing)."""
    check_unknown_keys(cfg)
    for group, names in _registered_names().items():
        value = _value(cfg, f"{group}.name")
        _check(f"{group}.name", value in names, f"unknown {group} '{value}'; allowed: {', '.join(names)}")
    for key, rule in RULES.items():
        rule(key, _value(cfg, key))
    for key, rule in OPTIONAL_RULES.items():
        if OmegaConf.select(cfg, key, default=None) is not None:
            rule(key, _value(cfg, key))
    check_representable(OmegaConf.to_container(cfg, resolve=True))  # the keys without a rule of their own
    milestones = list(_value(cfg, "trainer.lr_milestones"))
    _check("trainer.lr_milestones", all(isinstance(m, int) and m >= 0 for m in milestones),
           f"must be a list of epochs >= 0, got {milestones}")
    warmup, epochs = cfg.method.warmup_epochs, cfg.trainer.epochs
    _check("method.warmup_epochs", warmup <= epochs,
           f"{cfg.method.name} trains {warmup} dense epochs before pruning, more than trainer.epochs={epochs} "
           f"(the warm-up is part of the budget); set method.warmup_epochs=0 to prune at initialisation"
           + ("" if epochs else " and evaluate without training"))
    _check_hardware(cfg.hardware)
    _check_buildable(cfg, memory)


def _check_hardware(hardware) -> None:
    import torch

    _check("hardware.device", hardware.device != "cuda" or torch.cuda.is_available(),
           "cuda requested but no CUDA device is available; use auto or cpu")
    if hardware.compile:
        from torch._dynamo import list_backends

        backends = list_backends(exclude_tags=())
        _check("hardware.compile_backend", hardware.compile_backend in backends,
               f"unknown torch.compile backend {hardware.compile_backend!r}; allowed: {', '.join(backends)}")


def _check_buildable(cfg: DictConfig, memory: bool) -> None:
    """Method-specific checks (e.g. which schedules it takes), the model/dataset fit and the prunable
    set, on the meta device (shapes are checked, nothing is allocated or loaded); with a memory budget,
    one measured step of the real model on the CPU."""
    import torch

    from drive_runner.data import describe
    from drive_runner.models import build_model
    from drive_runner.pruning.methods import build_method

    method = build_method(cfg.method, cfg.schedule)
    method.check_config(cfg)
    _check("prune.ablation", cfg.prune.ablation == "none" or (method.target_density(0.5) < 1.0
                                                              and not method.prunes_during_training),
           f"{cfg.method.name} fixes no mask before sparse training, so there is none to shuffle or re-initialise; "
           "use it with random, magnitude, snip, grasp, synflow, drive or imp")
    input_shape, num_classes = describe(cfg.dataset)
    with torch.device("meta"):
        model = build_model(cfg.model, input_shape=input_shape, num_classes=num_classes, initialised=False)
    if cfg.trainer.name == "neuroflux":
        _check("method", cfg.method.name == "dense",
               "trainer=neuroflux trains a dense network with local losses; use method=dense (its default)")
        _check("model", hasattr(model, "units"), f"NeuroFlux cannot split {cfg.model.name} into units; "
               "use a LeNet, VGG, AlexNet or CIFAR-stem ResNet")
        return
    _check_target(cfg, method, model)
    if memory:
        _check_memory_budget(cfg, input_shape, num_classes)


def _check_target(cfg: DictConfig, method, model) -> None:
    """Something stays prunable, and the target keeps at least one of its weights."""
    from drive_runner.pruning.masks import find_prunable, keep_count
    from drive_runner.pruning.targets import most_extreme_target, target_density

    excluded = [*cfg.prune.exclude, *method.excluded_tensors(model, cfg.model.name)]
    prunable = find_prunable(model, excluded, bool(cfg.prune.include_bias))
    density = method.target_density(target_density(cfg))
    if density >= 1.0:  # the method removes no weight by count (dense, structured)
        return
    _check("prune.exclude", bool(prunable),
           f"every prunable tensor of {cfg.model.name} is excluded ({', '.join(excluded)}); leave at least one")
    sizes = [t.param.numel() for t in prunable]
    layerwise = cfg.prune.scope == "layerwise" or cfg.method.get("variant") == "layerwise"
    kept = sum(keep_count(n, density) for n in sizes) if layerwise else keep_count(sum(sizes), density)
    sparsity, compression = most_extreme_target(max(sizes) if layerwise else sum(sizes))
    key = "compression" if cfg.compression is not None else "sparsity"
    _check(key, kept > 0,
           f"the target density {density:.3g} keeps none of the {sum(sizes):,} prunable weights of {cfg.model.name}; "
           f"the most that keeps one weight is sparsity={sparsity:.10g} (compression={compression:.4g})")


def _check_memory_budget(cfg: DictConfig, input_shape, num_classes: int) -> None:
    """A budget too small for batch 1, an explicit batch over it, or batch_size=auto without one."""
    import torch

    from drive_runner.memory.budget import check_budget, measure
    from drive_runner.models import build_model

    memory = None
    if cfg.hardware.memory_budget_mb is not None:
        model = build_model(cfg.model, input_shape=input_shape, num_classes=num_classes)
        memory = measure(model, input_shape, num_classes, cfg.trainer, cfg.hardware, torch.device("cpu"))
    check_budget(memory, cfg.trainer, cfg.hardware)
