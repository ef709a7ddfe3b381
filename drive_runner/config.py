"""Typed schemas for every config group, registered in Hydra's ConfigStore.

Each group's options are defined where the code that reads them lives (models/options.py,
data/options.py, pruning/options.py, structured/options.py, train/options.py, memory/options.py);
this module adds the hardware and logger groups and the top level, and registers them all. Each YAML
file in conf/<group>/ starts from one of these schemas (its defaults list names
`/schema/<group>@_here_: <schema>`), so Hydra rejects unknown keys and wrong types while composing.
Ranges and cross-key rules are checked by `drive_runner.validation`, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from drive_runner.data.options import DATASET_OPTIONS, DatasetConfig
from drive_runner.memory.options import NeuroFluxConfig
from drive_runner.models.options import MODEL_OPTIONS, ModelConfig
from drive_runner.pruning.options import METHOD_OPTIONS, SCHEDULE_OPTIONS, MethodConfig, PruneConfig, ScheduleConfig
from drive_runner.structured.options import PruneTrainConfig
from drive_runner.train.options import TrainerConfig


# --------------------------------------------------------------------------- hardware
@dataclass
class HardwareConfig:
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "fp32"  # fp32 | bf16 (autocast)
    channels_last: Optional[bool] = None  # None = on for conv nets on CUDA
    cudnn_benchmark: bool = True  # cuDNN picks the fastest convolution kernels per shape (CUDA)
    compile: bool = False  # torch.compile the forward pass of training and evaluation
    compile_backend: str = "inductor"
    data_on_device: Optional[bool] = None  # None = on CUDA without a memory budget: in-memory datasets on the device
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
    init_timeout_s: float = 10.0  # longest wait for an online start before falling back to an offline run


# --------------------------------------------------------------------------- table
@dataclass
class TableConfig:
    """Set by `table=<name>` (conf/table/<name>.yaml): a published table run as one sweep."""

    name: Optional[str] = None
    reference: Optional[str] = None  # the paper's numbers: drive_runner/tables/references/<reference>.yaml
    recipe: str = "quick"  # which of `grids` runs: quick (fits the budget the table states) | paper
    grids: Any = None  # recipe -> list of grids, each {key: value or list of values to sweep}
    limit: Optional[int] = None  # run only the first N jobs (smoke tests, a quick look)


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
    table: TableConfig = field(default_factory=TableConfig)
    sparsity: float = 0.9  # fraction of prunable weights removed
    compression: Optional[float] = None  # log10 of N/kept; when set it replaces sparsity
    seed: int = 0
    # auto: continue an interrupted run in the same directory, report a finished one as done |
    # never: refuse a directory that holds an earlier run | must: fail unless there is a run to continue
    resume: str = "auto"


SCHEMAS = {
    "model": MODEL_OPTIONS,
    "dataset": DATASET_OPTIONS,
    "method": {**METHOD_OPTIONS, "prunetrain": PruneTrainConfig},
    "schedule": SCHEDULE_OPTIONS,
    "trainer": {"base": TrainerConfig, "neuroflux": NeuroFluxConfig},
    "hardware": {"base": HardwareConfig},
    "logger": {"base": LoggerConfig},
}


def register_schemas() -> None:
    """Store every schema under schema/<group>/<name> (not in the user-facing groups, so
    `method=` lists only real methods) and the top-level schema as `base_config`; and register the
    table sweeper (hydra/sweeper=table) and the process launcher (hydra/launcher=processes) with Hydra by
    hand: Hydra's plugin scan does not see packages installed in editable mode."""
    from hydra.core.plugins import Plugins

    from drive_runner.tracking.naming import register_resolvers

    register_resolvers()

    plugins = Plugins.instance()  # first: its scan re-executes Hydra's plugin modules, the basic sweeper's too
    from hydra_plugins.drive_runner_launcher.process_launcher import ProcessLauncher
    from hydra_plugins.drive_runner_launcher.process_launcher import register as register_process_launcher
    from hydra_plugins.drive_runner_table_sweeper.table_sweeper import TableSweeper

    plugins.register(TableSweeper)
    plugins.register(ProcessLauncher)
    register_process_launcher()
    store = ConfigStore.instance()
    store.store(name="base_config", node=Config)
    for group, schemas in SCHEMAS.items():
        for name, node in schemas.items():
            store.store(group=f"schema/{group}", name=name, node=node)

