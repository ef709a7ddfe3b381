"""Checks of a composed config that its types alone cannot express: the ranges declared on the schema fields,
numbers that do not fit, and what the method, the runner it needs, the model and the dataset need of each
other (the method's and the runner's own rules live with them).

Runs before any work (the CLI calls it on every job of a sweep before the first one starts), and raises
ConfigError naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from drive_runner.config import Config
from drive_runner.errors import ConfigError
from drive_runner.ranges import RULE, check

INT64_MAX = 2**63 - 1
TYPED_GROUPS = ("model", "dataset", "method", "schedule", "trainer", "hardware", "logger", "prune", "table")


def validate(cfg: DictConfig, *, memory: bool = True) -> None:
    """Raise ConfigError for the first problem found. `memory=False` leaves out the batch-size checks
    against hardware.memory_budget_mb (drive-memory reports them instead of refusing)."""
    from drive_runner.methods import build_method
    from drive_runner.runners import runner_for

    check_unknown_keys(cfg)
    check_ranges(cfg)
    check_representable(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))  # the keys without a rule of their own
    _check_hardware(cfg.hardware)
    method = build_method(cfg.method, cfg.schedule)
    check_ranges(method.options, "method")
    method.check_config(cfg)
    runner = runner_for(cfg, method)
    input_shape, num_classes, model = _model_to_check(cfg)
    runner.check(cfg, method, model, input_shape, num_classes, memory)


def check_unknown_keys(cfg: DictConfig) -> None:
    """Keys added with `+key=value` that no schema declares are typos, not settings. (A node of one's own,
    untyped, is checked against its constructor when it is built; a method's against its options.)"""
    top_fields = {f.name for f in dataclasses.fields(Config)}
    for key in cfg:
        check(str(key), key in top_fields, f"unknown key; top-level keys are {', '.join(sorted(top_fields))}")
    for group in TYPED_GROUPS:
        node = cfg[group]
        schema = OmegaConf.get_type(node)
        if not dataclasses.is_dataclass(schema):
            continue
        fields = {f.name for f in dataclasses.fields(schema)}
        shown = ", ".join(sorted(name for name in fields if not name.startswith("_")))
        for key in node:
            check(f"{group}.{key}", key in fields, f"unknown key; {group} keys are {shown}")


def check_ranges(node: Any, prefix: str = "") -> None:
    """The rule declared on every field of every typed node (drive_runner.ranges), recursively."""
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    rules = {f.name: f.metadata.get(RULE) for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) \
        else {}
    for key in node:
        path = f"{prefix}.{key}" if prefix else str(key)
        if OmegaConf.is_missing(node, key):
            continue
        value = node[key]
        if rules.get(key) is not None:
            rules[key](path, OmegaConf.to_container(value, enum_to_str=True) if isinstance(value, (DictConfig, ListConfig)) else value)
        check_ranges(value, path)


def check_representable(node: Any, prefix: str = "") -> None:
    """Every number anywhere in the config is finite and fits in 64 bits: inf, nan or 1e400 (which
    parses as inf) would otherwise reach the run and fail far from the key that caused it."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix and isinstance(key, str) else f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, float):
            check(path, math.isfinite(value), f"must be a finite number, got {value!r}")
        elif isinstance(value, int) and not isinstance(value, bool):
            check(path, abs(value) <= INT64_MAX, f"must be an integer of at most 64 bits, got {value}")
        else:
            check_representable(value, path)


def _check_hardware(hardware) -> None:
    import torch

    check("hardware.device", hardware.device != "cuda" or torch.cuda.is_available(),
          "cuda requested but no CUDA device is available; use auto or cpu")
    if hardware.compile:
        from torch._dynamo import list_backends

        backends = list_backends(exclude_tags=())
        check("hardware.compile_backend", hardware.compile_backend in backends,
              f"unknown torch.compile backend {hardware.compile_backend!r}; allowed: {', '.join(backends)}")


def _model_to_check(cfg: DictConfig):
    """The dataset's input shape and class count (read without loading the built-in datasets), and the model
    built for them: a built-in one on the meta device, where nothing is allocated (its builder checks the image
    size); one's own on the CPU, run once on a blank image to check it takes the images and scores the classes."""
    import torch

    from drive_runner.data import describe
    from drive_runner.instantiation import has_target
    from drive_runner.models import build_model

    input_shape, num_classes = describe(cfg.dataset)
    if not has_target(cfg.model):
        with torch.device("meta"):
            return input_shape, num_classes, build_model(cfg.model, input_shape, num_classes, initialised=False)
    with torch.random.fork_rng(devices=[]):  # building it draws weights: not from the caller's generator
        model = build_model(cfg.model, input_shape=input_shape, num_classes=num_classes)
    _check_output(cfg, model, input_shape, num_classes)
    return input_shape, num_classes, model


def _check_output(cfg: DictConfig, model, input_shape, num_classes: int) -> None:
    """A model of one's own takes the dataset's images and gives one score per class."""
    import torch

    from drive_runner.instantiation import label

    name = label(cfg.model)
    model.eval()
    try:
        with torch.no_grad():
            output = model(torch.zeros((1, *input_shape)))
    except Exception as error:  # noqa: BLE001 - the model's own complaint, quoted
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ConfigError("model", f"{name} cannot take the images of {label(cfg.dataset)} (shape "
                                   f"{tuple(input_shape)}): {type(error).__name__}: {reason}") from None
    if not torch.is_tensor(output) or output.dim() != 2 or output.shape[1] != num_classes:
        shape = tuple(output.shape) if torch.is_tensor(output) else type(output).__name__
        raise ConfigError("model", f"{name} gives {shape} for one image, but {label(cfg.dataset)} has {num_classes} "
                                   f"classes: it must give (1, {num_classes}); a constructor that takes num_classes "
                                   "gets the dataset's, or set model.num_classes")
