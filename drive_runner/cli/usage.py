"""What `drive-run --help`, `drive-memory --help` and `--version` print.

Read from the installed config groups, not from Hydra, so the text stays short, lists only the
groups a user picks from (not the internal schema/* ones) and appears without importing torch.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from drive_runner import __version__

CONFIG_GROUPS = ("model", "dataset", "method", "schedule", "trainer", "recipe", "hardware", "logger", "experiment",
                 "table")


def group_options(group: str) -> list[str]:
    """The options of a config group: the YAML files of conf/<group>/."""
    folder = resources.files("drive_runner.conf") / group
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def version_line(program: str) -> str:
    return f"{program} (drive-runner {__version__})"


def answered_info_flag(argv: list[str], program: str, usage) -> bool:
    """Print the usage for --help/-h or the version for --version/-V; True when one was asked for."""
    if {"--help", "-h"} & set(argv):
        print(usage(), end="")
        return True
    if {"--version", "-V"} & set(argv):
        print(version_line(program))
        return True
    return False


def _readme() -> str:
    """Where the full documentation is: the checkout's README when installed from one."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    return str(readme) if readme.is_file() else "README.md in the drive-runner source tree"


def _groups() -> str:
    width = max(map(len, CONFIG_GROUPS))
    return "\n".join(f"  {group:<{width}}  {' '.join(group_options(group))}" for group in CONFIG_GROUPS)


COMMON_KEYS = """\
  sparsity=S | compression=C      fraction of prunable weights removed, or log10 of N / kept
  seed=N                          model init, data order, pruning randomness
  trainer.epochs=N                the whole budget (a method's warm-up is part of it; IMP trains it per level)
  trainer.batch_size=N|auto       auto: the largest batch within hardware.memory_budget_mb
  trainer.lr=LR  trainer.lr_milestones=[E1,E2]
  method.warmup_epochs=N  method.iterations=N
  prune.scope=global|layerwise    prune.exclude=[NAME,...]
  hardware.device=auto|cpu|cuda   hardware.precision=fp32|bf16   hardware.memory_budget_mb=MB
  logger.mode=auto|offline|online|disabled
  resume=auto|never|must          auto: the same command continues an interrupted run, skips a finished one
  hydra.run.dir=DIR               (hydra.sweep.dir=DIR with -m)
  hydra/launcher=joblib|processes|slurm|submitit_local   where a sweep's jobs run"""


def run_usage() -> str:
    return f"""\
usage: drive-run [-m] [-cd DIR] [GROUP=OPTION | KEY=VALUE ...]

Composes a model, a dataset, a pruning method, a sparsity schedule, a training recipe and hardware
settings from configs and runs dense warm-up -> pruning -> sparse training -> evaluation, logging to a
run directory (outputs/) and to Weights & Biases.

examples:
  drive-run experiment=quickstart
  drive-run dataset=digits model=lenet300 method=magnitude sparsity=0.9 trainer.epochs=5
  drive-run -m method=snip,synflow,drive sparsity=0.5,0.9,0.98 seed=0,1,2
  drive-run table=snip_mnist dataset.root=DATA    # a published table; then: drive-report outputs/tables/...

config groups (GROUP=OPTION):
{_groups()}

keys people change most (KEY=VALUE):
{COMMON_KEYS}

options:
  -m, --multirun   one job per combination of comma-separated values (a sweep)
  -cd, --config-dir DIR
                   configs of your own (DIR/model, DIR/dataset, DIR/method, ...): a model, dataset or
                   method named by _target_ (docs/extending.md)
  --cfg job        print the composed config instead of running
  --hydra-help     Hydra's own options
  -V, --version    print the version
  -h, --help       this text

Errors name the key to fix; DRIVE_RUN_DEBUG=1 shows full tracebacks.
Documentation: {_readme()}
"""


def memory_usage() -> str:
    return f"""\
usage: drive-memory [-cd DIR] [GROUP=OPTION | KEY=VALUE ...]

Prints a model's measured training-memory profile for the same overrides as drive-run: the bytes
autograd saves per layer and sample, the modelled peak at every power-of-two batch, and with
hardware.memory_budget_mb=MB the largest batch that fits. Trains nothing and needs no data on disk.

example:
  drive-memory model=vgg11 dataset=digits dataset.image_size=32 hardware.memory_budget_mb=140

config groups (GROUP=OPTION):
{_groups()}

Documentation: {_readme()}
"""
