"""Typed schemas for every config group, registered in Hydra's ConfigStore: the one place every default is written.

Each group's options are defined where the code that reads them lives (models/options.py, data/options.py,
pruning/options.py, train/options.py, memory/options.py, and each method's module in drive_runner/methods);
this module adds the hardware, logger and table groups and the top level, and registers them all. A YAML
file in conf/<group>/ starts from one of these schemas (its defaults list names
`/schema/<group>@_here_: <schema>`) and carries only what differs from it, so Hydra rejects unknown keys and
wrong types while composing, choices are enums, and ranges and cross-key rules are checked by
`drive_runner.validation` before any work starts. The model, dataset and method groups are typed `Any`:
a user's config there names its constructor by `_target_` and is checked against that constructor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from drive_runner.data.options import DATASET_OPTIONS
from drive_runner.memory.options import NeuroFluxConfig
from drive_runner.models.options import MODEL_OPTIONS
from drive_runner.pruning.options import SCHEDULE_OPTIONS, PruneConfig
from drive_runner.ranges import one_of_rule, ranged, ruled
from drive_runner.train.options import RECIPE_FIELDS, TrainerConfig

MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit; derived seeds stay within torch's 64-bit range


# --------------------------------------------------------------------------- hardware
class Device(StrEnum):
    auto = "auto"  # CUDA when present, else the CPU
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    fp32 = "fp32"
    bf16 = "bf16"  # autocast on the run's device


@dataclass
class HardwareConfig:
    device: Device = Device.auto
    precision: Precision = Precision.fp32
    channels_last: Optional[bool] = None  # None = on for conv nets on CUDA
    cudnn_benchmark: bool = True  # cuDNN picks the fastest convolution kernels per shape (CUDA)
    compile: bool = False  # torch.compile the forward pass of training and evaluation (masks and hooks hold)
    compile_backend: str = "inductor"  # any torch.compile backend, e.g. aot_eager to check tracing without a compiler
    # None = on CUDA without a memory budget: in-memory datasets (digits, MNIST, CIFAR, synthetic, one's own
    # in memory) live on the device as stored
    data_on_device: Optional[bool] = None
    # None = unlimited; a number bounds training memory (measured)
    memory_budget_mb: Optional[float] = ranged(None, 0, low_open=True, optional=True)
    memory_margin_mb: float = ranged(0.0, 0)  # added to every measured peak (allocator slack)
    num_workers: int = ranged(2, 0, integer=True)  # data-loader workers for datasets read from files
    threads: Optional[int] = ranged(None, 1, integer=True, optional=True)  # torch CPU threads; None = torch's default


# --------------------------------------------------------------------------- logger
class LoggerMode(StrEnum):
    auto = "auto"  # online with an API key, else offline
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    name: str = ruled("wandb", one_of_rule("wandb", "none"))
    mode: LoggerMode = LoggerMode.auto
    project: str = "drive-runner"
    entity: Optional[str] = None
    group: Optional[str] = None  # None = the sweep or experiment name
    tags: List[str] = field(default_factory=list)
    log_artifacts: bool = True
    # longest wait for an online start before falling back to an offline run
    init_timeout_s: float = ranged(10.0, 0, 300, low_open=True)


# --------------------------------------------------------------------------- table
@dataclass
class TableConfig:
    """Set by `table=<name>` (conf/table/<name>.yaml): a published table run as one sweep."""

    name: Optional[str] = None
    reference: Optional[str] = None  # the paper's numbers: drive_runner/tables/references/<reference>.yaml
    recipe: str = "quick"  # which of `grids` runs: quick (fits the budget the table states) | paper
    grids: Any = None  # recipe -> list of grids, each {key: value or list of values to sweep}
    limit: Optional[int] = ranged(None, 1, integer=True, optional=True)  # run only the first N jobs (a quick look)
    # Command-line overrides that change what the table measures (its dataset, a model, a recipe): set by the
    # table's sweep, they leave the paper's numbers out of the report and say why.
    changed: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------- top level
class Resume(StrEnum):
    auto = "auto"  # continue an interrupted run in the same directory, report a finished one as done
    never = "never"  # refuse a directory that holds an earlier run
    must = "must"  # fail unless there is a run to continue


@dataclass
class Config:
    model: Any = MISSING
    dataset: Any = MISSING
    method: Any = MISSING
    schedule: Any = MISSING
    trainer: Any = MISSING
    hardware: HardwareConfig = MISSING
    logger: LoggerConfig = MISSING
    prune: PruneConfig = field(default_factory=PruneConfig)
    table: TableConfig = field(default_factory=TableConfig)
    sparsity: float = ranged(0.9, 0, 1, high_open=True)  # fraction of prunable weights removed (density = 1 - it)
    compression: Optional[float] = ranged(None, 0, optional=True)  # log10 of N/kept; when set it replaces sparsity
    seed: int = ranged(0, 0, MAX_SEED, integer=True)  # model init, data order, pruning randomness
    resume: Resume = Resume.auto


def _recipe_shape() -> Any:
    """trainer=backprop's schema: TrainerConfig with the recipe's fields left unset, so merging it after the
    recipe keeps the recipe's values (the generic recipe, TrainerConfig's defaults, is merged before it)."""
    shape = OmegaConf.structured(TrainerConfig)
    for name in RECIPE_FIELDS:
        shape[name] = MISSING
    return shape


SCHEMAS = {
    "model": MODEL_OPTIONS,
    "dataset": DATASET_OPTIONS,
    "schedule": SCHEDULE_OPTIONS,
    "hardware": {"base": HardwareConfig},
    "logger": {"base": LoggerConfig},
}


def register_schemas() -> None:
    """Store every schema under schema/<group>/<name> (not in the user-facing groups, so `method=` lists only
    real methods), the generic recipe as schema/recipe/generic (and schema/without_recipe/neuroflux, which drops it and
    the dataset's recipe for trainer=neuroflux), every method's options (filled in with its
    `_target_` and name) as schema/method/<name>, `method/<name>` for a method of an installed package that
    has no config file, and the top-level schema as `base_config`; and register the table sweeper
    (hydra/sweeper=table) and the process launcher (hydra/launcher=processes) with Hydra by hand: Hydra's
    plugin scan does not see packages installed in editable mode."""
    from hydra.core.plugins import Plugins

    from drive_runner.methods.registry import method_schema, registry
    from drive_runner.tracking.naming import register_resolvers

    register_resolvers()

    plugins = Plugins.instance()  # first: its scan re-executes Hydra's plugin modules, the basic sweeper's too
    from hydra_plugins.drive_runner_launcher.process_launcher import ProcessLauncher
    from hydra_plugins.drive_runner_launcher.process_launcher import (
        register as register_process_launcher,
    )
    from hydra_plugins.drive_runner_table_sweeper.table_sweeper import TableSweeper

    plugins.register(TableSweeper)
    plugins.register(ProcessLauncher)
    register_process_launcher()
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)
    store.store(group="schema/recipe", name="generic", node=TrainerConfig)
    store.store(group="schema/trainer", name="backprop", node=_recipe_shape())
    store.store(group="schema/trainer", name="neuroflux", node=NeuroFluxConfig)
    # trainer=neuroflux takes no recipe: its trainer node holds NeuroFlux's own keys alone.
    store.store(group="schema/without_recipe", name="neuroflux", package="_global_",
                node={"defaults": [{"override /schema/recipe@trainer": None}, {"override /recipe": None}]})
    found = registry()
    for name, cls in found.methods.items():
        store.store(group="schema/method", name=name, node=method_schema(cls))
        if name in found.entry_point_names:
            store.store(group="method", name=name, node=method_schema(cls), provider=found.origins[name])
