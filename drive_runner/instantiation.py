"""Building what a config names by `_target_` (a user's model, dataset or method), through Hydra's own
`instantiate`, so Hydra's rules for targets apply unchanged; every failure becomes one line naming the key.

A node's `name` is drive-runner's label for it (run directories, summaries, reports) and is not passed to
the constructor; its other keys are the constructor's arguments. Facts drive-runner knows (the dataset's
class count, say) are passed to a constructor whose signature names them, unless the config sets them.
"""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from drive_runner.errors import ConfigError, shorten

LABEL_KEY = "name"


def has_target(node: Any) -> bool:
    """Whether a config node names its constructor by `_target_`."""
    return isinstance(node, (Mapping, DictConfig)) and "_target_" in node and node.get("_target_") is not None


def label(node: Any) -> str:
    """What a node is called in names and reports: its `name`; else the `name` its target class declares (a
    method's); else its target's last component."""
    name = node.get(LABEL_KEY) if isinstance(node, (Mapping, DictConfig)) else None
    if name:
        return str(name)
    from hydra.utils import (
        get_object,  # on use: `drive-run --help` answers without importing Hydra's machinery
    )

    path = str(node["_target_"])
    try:
        declared = getattr(get_object(path), LABEL_KEY, None)
    except Exception:  # noqa: BLE001 - a target that cannot be imported is refused by validation, not here
        declared = None
    return declared if isinstance(declared, str) and declared else path.rpartition(".")[2]


def locate(path: str, key: str) -> Any:
    """The object a dotted path names; refused in one line when it cannot be imported."""
    from hydra.utils import get_object

    try:
        return get_object(path)
    except Exception as error:  # noqa: BLE001 - ImportError, AttributeError, ValueError: all the user's to fix
        cause = error.__cause__ or error
        reason = " ".join(str(cause).split()) or type(cause).__name__
        return _refuse_import(path, key, f"{type(cause).__name__}: {reason}")


def _refuse_import(path: str, key: str, reason: str):
    module = path.rpartition(".")[0] or path
    raise ConfigError(key, f"cannot import {shorten(path)} ({shorten(reason, 160)}); check that the module {module} "
                           "is on PYTHONPATH (or installed) and defines it")


def arguments(node: Any, reserved: tuple[str, ...] = (LABEL_KEY,)) -> dict:
    """The constructor's arguments: the node without drive-runner's own keys and Hydra's `_..._` keys."""
    container = OmegaConf.to_container(node, resolve=True, enum_to_str=True) if isinstance(node, DictConfig) else dict(node)
    return {k: v for k, v in container.items() if k not in reserved and not str(k).startswith("_")}


def build(node: Any, key: str, provided: Mapping[str, Any] = (), reserved: tuple[str, ...] = (LABEL_KEY,),
          target: Any = None) -> Any:
    """Instantiate `node` (a config with `_target_`); `provided` facts go to the constructor when its
    signature names them and the config leaves them out, `reserved` keys are drive-runner's and not passed.
    `key` is the node's place in the config; `target` the object `_target_` names, when already imported."""
    path = str(node["_target_"])
    target = target if target is not None else locate(path, f"{key}._target_")
    kwargs = arguments(node, reserved)
    accepted = _parameters(target)
    if accepted is not None:
        for name in kwargs:
            if name not in accepted:
                raise ConfigError(f"{key}.{name}", f"{path} does not take {name}; it takes "
                                                   f"{', '.join(accepted) or 'no arguments'}")
    extra = {name: value for name, value in dict(provided).items()
             if name not in kwargs and accepted is not None and name in accepted}
    special = {k: v for k, v in (OmegaConf.to_container(node, enum_to_str=True) if isinstance(node, DictConfig) else node).items()
               if str(k).startswith("_") and k != "_target_"}
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    config = {"_target_": path, "_convert_": "all", **special, **kwargs}
    try:
        return instantiate(config, **extra)
    except InstantiationException as error:
        cause = error.__cause__ or error
        reason = " ".join(str(cause).split()) or type(cause).__name__
        raise ConfigError(key, f"{path}(...) failed: {type(cause).__name__}: {shorten(reason, 200)}") from None


def _parameters(target: Any) -> list[str] | None:
    """The keyword arguments a callable takes, or None when it takes any (**kwargs) or cannot be inspected."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return [name for name, p in signature.parameters.items()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
