"""Which methods exist and how a config becomes one: the built-in modules of this package, the
`drive_runner.methods` entry points of installed packages, and any Method class a config names by `_target_`.

A method config is its options: `_target_` (the class), `name` and the fields of the class's options
dataclass. The registry stores each class's options, filled in with its `_target_` and `name`, as the
schema `schema/method/<name>`; a YAML file in conf/method starts from it, and an entry-point method that
has no file gets `method/<name>` itself, so `method=<name>` works either way.
"""

from __future__ import annotations

import importlib
import pkgutil
import zlib
from dataclasses import dataclass, field, is_dataclass
from importlib.metadata import entry_points

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from drive_runner.errors import ConfigError
from drive_runner.instantiation import locate
from drive_runner.methods.base import Method, MethodOptions

ENTRY_POINT_GROUP = "drive_runner.methods"
PACKAGE = "drive_runner.methods"
# Report colours of methods that do not choose their own: far from the built-in methods' colours.
OTHER_COLOURS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
                 "#756bb1", "#636363", "#9c9ede", "#cedb9c", "#e7cb94", "#e7969c", "#de9ed6")


@dataclass
class Registry:
    methods: dict[str, type[Method]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # name -> where it comes from, for messages
    entry_point_names: list[str] = field(default_factory=list)
    # name -> why method=<name> cannot be used (an entry point that failed to load, a name registered twice)
    problems: dict[str, str] = field(default_factory=dict)

    def add(self, cls: type[Method], origin: str) -> None:
        name = cls.name
        if name in self.methods and self.methods[name] is not cls:
            self.problems[name] = (f"two methods are named {name}: {_path(self.methods[name])} ({self.origins[name]}) "
                                   f"and {_path(cls)} ({origin}); rename one of them")
            return
        self.methods[name], self.origins[name] = cls, origin


_registry: Registry | None = None


def registry() -> Registry:
    """Every named method: the built-in ones first, then those of installed packages' entry points."""
    global _registry
    if _registry is None:
        found = Registry()
        package = importlib.import_module(PACKAGE)
        for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{PACKAGE}.{module_info.name}")
            for cls in vars(module).values():
                if _is_method(cls) and cls.__module__ == module.__name__ and cls.name:
                    found.add(cls, "drive_runner")
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            _add_entry_point(found, entry_point)
        _registry = found
    return _registry


def _add_entry_point(found: Registry, entry_point) -> None:
    package = entry_point.dist.name if entry_point.dist else entry_point.value.split(":")[0].split(".")[0]
    origin = f"package {package}"
    try:
        cls = entry_point.load()
    except Exception as error:  # noqa: BLE001 - any failure of a third-party import is reported, not raised
        found.problems[entry_point.name] = (f"the {ENTRY_POINT_GROUP} entry point '{entry_point.name}' of {origin} "
                                            f"failed to load ({type(error).__name__}: {error}); fix or reinstall "
                                            f"{package}")
        return
    if not _is_method(cls) or not cls.name:
        found.problems[entry_point.name] = (f"the {ENTRY_POINT_GROUP} entry point '{entry_point.name}' of {origin} "
                                            f"names {entry_point.value}, which is not a drive_runner.methods.Method "
                                            "subclass with a name")
        return
    found.entry_point_names.append(cls.name)
    found.add(cls, origin)


def _is_method(obj) -> bool:
    return isinstance(obj, type) and issubclass(obj, Method)


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def method_names() -> list[str]:
    return sorted(registry().methods)


def method_schema(cls: type[Method]) -> DictConfig:
    """The class's options with their defaults, its `_target_` and its name: what a config of it starts from."""
    if not (is_dataclass(cls.options) and issubclass(cls.options, MethodOptions)):
        raise ConfigError("method._target_", f"{_path(cls)}.options must be a dataclass deriving from "
                                             "drive_runner.methods.MethodOptions")
    schema = OmegaConf.structured(cls.options)
    schema._target_ = _path(cls)
    schema.name = cls.name or cls.__name__
    return schema


def method_class(node) -> type[Method]:
    """The class a method config names: by `_target_`, else by `name` among the registered methods."""
    target = node.get("_target_") if not OmegaConf.is_missing(node, "_target_") else None
    if target:
        cls = locate(str(target), "method._target_")
        if not _is_method(cls):
            raise ConfigError("method._target_", f"{target} is not a pruning method: expected a subclass of "
                                                 "drive_runner.methods.Method (docs/extending.md)")
        return cls
    return lookup(str(node.get("name")))


def lookup(name: str) -> type[Method]:
    found = registry()
    if name in found.problems:
        raise ConfigError("method", found.problems[name])
    if name not in found.methods:
        raise ConfigError("method", f"unknown method '{name}'; allowed: {', '.join(method_names())}")
    return found.methods[name]


def method_options(cls: type[Method], node) -> DictConfig:
    """The config's method node checked against the class's options: unknown keys and wrong types are refused."""
    schema = method_schema(cls)
    try:
        return OmegaConf.merge(schema, node)
    except ConfigKeyError as error:
        keys = ", ".join(sorted(k for k in schema if not str(k).startswith("_")))
        raise ConfigError(f"method.{error.full_key}", f"unknown key; method keys are {keys}") from None
    except OmegaConfBaseException as error:
        raise ConfigError(f"method.{error.full_key}", str(error).splitlines()[0]) from None


def build_method(method_cfg, schedule_cfg) -> Method:
    """The method a config describes, with its options typed and checked."""
    cls = method_class(method_cfg)
    return cls(method_options(cls, method_cfg), schedule_cfg)


def method_colour(name: str) -> str:
    """A method's colour in every figure: its own, or one derived from its name alone (the same in every report)."""
    cls = registry().methods.get(name)
    if cls is not None and cls.colour:
        return cls.colour
    return OTHER_COLOURS[zlib.crc32(name.encode()) % len(OTHER_COLOURS)]
