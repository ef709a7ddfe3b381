"""Composing drive-run's config outside Hydra's entry point, and turning any composition error into
the one line a user sees."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from hydra.errors import MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from drive_runner.config import register_schemas
from drive_runner.errors import shorten

CONFIG_MODULE = "drive_runner.conf"
CONFIG_NAME = "config"

register_schemas()


def compose_config(overrides: list[str], defaults: list[str] = ()) -> DictConfig:
    """drive-run's config for these overrides, without running anything (scripts, tools, tests).
    `defaults` are overrides that apply unless `overrides` sets the same key."""
    keys = {item.split("=", 1)[0] for item in overrides}
    chosen = [item for item in defaults if item.split("=", 1)[0] not in keys]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(config_name=CONFIG_NAME, overrides=[*chosen, *overrides])


def one_line(error: BaseException) -> str:
    """Hydra and OmegaConf errors are multi-line; keep the part that names the key and the problem."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, name = error.missing_cfg_file.rpartition("/")
        if group:
            return f"{group}: unknown option '{shorten(name)}'; allowed: {', '.join(sorted(error.options))}"
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else None
    if isinstance(error, OmegaConfBaseException):
        cause = error
    if cause is not None and getattr(cause, "full_key", None):
        message = str(getattr(cause, "msg", None) or cause).strip().splitlines()[0]
        return f"{cause.full_key}: {message}"
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(error).__name__
