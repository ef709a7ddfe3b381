"""Composing drive-run's config through Hydra's public API, outside Hydra's entry point: the command line
read as Hydra reads it (`-m`, `-cp`, `-cn`, `-cd`), the config search path it implies, the jobs of a sweep,
and any composition error turned into the one line a user sees."""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import dataclass, field

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.config_search_path import ConfigSearchPath, SearchPathQuery
from hydra.core.global_hydra import GlobalHydra
from hydra.core.object_type import ObjectType
from hydra.core.plugins import Plugins
from hydra.errors import MissingConfigException
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from drive_runner.config import register_schemas
from drive_runner.errors import ConfigError, shorten

CONFIG_MODULE = "drive_runner.conf"
CONFIG_NAME = "config"


class ConfigDirectory(SearchPathPlugin):
    """`-cd DIR` while drive-run composes outside Hydra's entry point: DIR joins the config search path where
    Hydra's own --config-dir puts it (just before the structured configs), so every check sees what the run will."""

    directory: str | None = None

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if ConfigDirectory.directory is not None:
            search_path.prepend(provider="command-line", path=f"file://{ConfigDirectory.directory}",
                                anchor=SearchPathQuery(provider="schema"))


register_schemas()
Plugins.instance().register(ConfigDirectory)


@dataclass
class CommandLine:
    """What `drive-run` was asked: the overrides, and Hydra's flags that change which configs compose."""

    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    config_path: str | None = None  # -cp: the primary config's directory (or pkg://module)
    config_name: str = CONFIG_NAME  # -cn
    config_dir: str | None = None  # -cd: a directory of one's own configs, searched after the package's

    @classmethod
    def parse(cls, argv: list[str]) -> "CommandLine":
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        parser.add_argument("-m", "--multirun", action="store_true")
        parser.add_argument("-cp", "--config-path")
        parser.add_argument("-cn", "--config-name")
        parser.add_argument("-cd", "--config-dir")
        known, rest = parser.parse_known_args(argv)
        return cls([a for a in rest if not a.startswith("-")], known.multirun, known.config_path,
                   known.config_name or CONFIG_NAME, known.config_dir)



@contextlib.contextmanager
def initialised(line: CommandLine):
    """Hydra initialised for the command line's primary config (the package's unless -cp names another) and its
    config directory (-cd)."""
    folder = os.path.abspath(line.config_dir) if line.config_dir is not None else None
    if folder is not None and not os.path.isdir(folder):
        raise ConfigError("--config-dir", f"no such directory: {folder}")
    path = line.config_path
    ConfigDirectory.directory = folder  # read while Hydra initialises its search path
    try:
        if path is None or path == f"pkg://{CONFIG_MODULE}":
            context = initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3")
        elif path.startswith("pkg://"):
            context = initialize_config_module(config_module=path[len("pkg://"):], version_base="1.3")
        else:
            context = initialize_config_dir(config_dir=os.path.abspath(path), version_base="1.3")
        with context:
            yield
    finally:
        ConfigDirectory.directory = None


def group_options(group: str, line: CommandLine) -> list[str]:
    """The options of a config group as Hydra sees them for this command line (the user's config directories
    and the methods of installed packages included); within `initialised`."""
    loader = GlobalHydra.instance().config_loader()
    return sorted(loader.get_group_options(group, results_filter=ObjectType.CONFIG, config_name=line.config_name))


def compose_job(line: CommandLine, overrides: list[str], with_hydra: bool = True) -> DictConfig:
    """One job's config (with its hydra node unless `with_hydra` is false); within `initialised`. An unknown
    nested key is reported with the keys its group does have, any other error as one line naming its key."""
    try:
        return compose(config_name=line.config_name, overrides=overrides, return_hydra_config=with_hydra)
    except Exception as error:
        raise _as_config_error(error, line, overrides) from None


def _as_config_error(error: Exception, line: CommandLine, overrides: list[str]) -> Exception:
    if "Error resolving interpolation '${dataset}'" in str(error):  # the recipe follows the dataset option's name
        return ConfigError("dataset", "a dataset of one's own needs a config file (the recipe follows the name of the "
                                      "dataset= option): put it in DIR/dataset/NAME.yaml and run with --config-dir DIR "
                                      "dataset=NAME (docs/extending.md)")
    cause = error.__cause__
    full_key = getattr(cause, "full_key", None) if isinstance(cause, OmegaConfBaseException) else None
    group, _, key = (full_key or "").rpartition(".")
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and key == "_target_" and "." not in group:
        return ConfigError(full_key, f"the built-in {group} configs take no _target_; for a {group} of one's own "
                                     f"named on the command line, drop the chosen one first: ~{group} "
                                     f"+{group}._target_=package.Name +{group}.<argument>=... (docs/extending.md)")
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and full_key and "." in full_key:
        rest = [o for o in overrides if o.partition("=")[0].lstrip("+~") != full_key]
        if rest != overrides:
            group, _, _ = full_key.rpartition(".")
            node = OmegaConf.select(compose(config_name=line.config_name, overrides=rest), group)
            if node is not None and hasattr(node, "keys"):
                keys = ", ".join(sorted(str(k) for k in node.keys() if not str(k).startswith("_")))
                return ConfigError(full_key, f"unknown key; {group} keys are {keys}")
    if full_key:
        return ConfigError(full_key, one_line(error).split(": ", 1)[-1])
    return error


def compose_config(overrides: list[str], defaults: list[str] = ()) -> DictConfig:
    """drive-run's config for these overrides (and -cd/-cp/-cn among them), without running anything (scripts,
    tools, tests). `defaults` are overrides that apply unless `overrides` sets the same key."""
    line = CommandLine.parse(list(overrides))
    keys = {item.split("=", 1)[0] for item in line.overrides}
    line.overrides = [*(item for item in defaults if item.split("=", 1)[0] not in keys), *line.overrides]
    with initialised(line):
        return compose_job(line, line.overrides, with_hydra=False)


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
