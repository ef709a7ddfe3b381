"""Model registry: maps the names users type (`model=vgg16`) to builder functions, and builds a model of one's
own that a config names by `_target_`.

A builder has the signature `builder(input_shape, num_classes, cfg) -> nn.Module`; it builds the
architecture for the dataset's (C, H, W) and class count, and `build_model` then applies the
initialisation selected by the config, so every family is initialised the same way. A model of one's own
keeps the initialisation its constructor gives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Dict, List, Tuple

from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.instantiation import build, has_target
from drive_runner.models.init import initialise

InputShape = Tuple[int, int, int]
Builder = Callable[[InputShape, int, Any], nn.Module]

_BUILDERS: Dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator that registers `builder` under `name`."""

    def decorate(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorate


def model_names() -> List[str]:
    return sorted(_BUILDERS)


def option(cfg: Any, key: str, default: Any) -> Any:
    """Reads `key` from a DictConfig, a dict or an attribute object, falling back to `default`."""
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def require_image_size(model: str, input_shape: InputShape, minimum: int, suggested: int, also: str = "") -> None:
    """Fails early, with the key to change, when pooling would shrink the image below one pixel; `also` is what
    else the suggested run needs to train (the suggestion must run)."""
    size = min(input_shape[1:])
    if size < minimum:
        raise ConfigError(
            "dataset.image_size",
            f"{model} needs images of at least {minimum} px, got {size}; set dataset.image_size={suggested}{also}",
        )


def build_model(cfg: Any, input_shape: InputShape, num_classes: int, initialised: bool = True) -> nn.Module:
    """Builds the model named by `cfg.name` (or by `_target_`) for this input shape and class count, then
    initialises a built-in one (`initialised=False` skips that, for shape checks on the meta device).

    All randomness comes from torch's global RNG, so `torch.manual_seed(s)` beforehand fixes the weights.
    """
    if has_target(cfg):
        return build_own_model(cfg, input_shape, num_classes)
    name = option(cfg, "name", None)
    if name not in _BUILDERS:
        raise ConfigError("model", f"unknown model {name!r}; allowed: {', '.join(model_names())}")
    model = _BUILDERS[name](tuple(input_shape), num_classes, cfg)
    if initialised:
        initialise(
            model,
            conv_init=option(cfg, "conv_init", "kaiming_fan_in"),
            linear_init=option(cfg, "linear_init", "kaiming"),
            bn_init=option(cfg, "bn_init", "constant"),
        )
    return model


def build_own_model(cfg: Any, input_shape: InputShape, num_classes: int) -> nn.Module:
    """A model a config names by `_target_` (any callable returning an nn.Module); a constructor that takes
    `num_classes`, `in_channels` or `input_shape` gets the dataset's unless the config sets them."""
    facts = {"num_classes": num_classes, "in_channels": input_shape[0], "input_shape": tuple(input_shape)}
    model = build(cfg, "model", provided=facts)
    if not isinstance(model, nn.Module):
        raise ConfigError("model._target_", f"{cfg['_target_']} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def chain_units(features: nn.Sequential) -> list[nn.Module]:
    """Split a conv chain into local-learning units: each starts at a conv and keeps the layers (BN, ReLU,
    pool) up to the next conv."""
    units: list[list[nn.Module]] = []
    for module in features:
        if isinstance(module, nn.Conv2d) or not units:
            units.append([])
        units[-1].append(module)
    return [nn.Sequential(*unit) for unit in units]
