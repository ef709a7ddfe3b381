"""`drive-run`: the Hydra entry point.

Before Hydra starts, every job's config (each combination of a `-m` sweep) is composed and
validated, so a bad value stops the command before any work with one line naming the key. Hydra then
runs the jobs; a job's failure is recorded in its run directory and, in a sweep, does not stop the
other jobs. Errors reach the user as one line on stderr and a non-zero exit; set DRIVE_RUN_DEBUG=1
for the full traceback.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

import hydra
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from drive_runner.config import register_schemas
from drive_runner.errors import ConfigError, DriveRunnerError
from drive_runner.tracking import sweep
from drive_runner.tracking.rundir import read_summary

CONFIG_MODULE = "drive_runner.conf"
CONFIG_NAME = "config"
EXIT_CONFIG_ERROR = 2
EXIT_RUN_FAILED = 1

# Flags after which Hydra prints information instead of running jobs; no validation is needed.
_INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc",
               "--experimental-rerun", "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd"}

register_schemas()


def new_run_id() -> str:
    """Timestamp plus random suffix: two runs started in the same second still get different directories."""
    return f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{secrets.token_hex(3)}"


def _task(cfg: DictConfig):
    from drive_runner.pipeline import JobInfo, run

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    experiment = hydra_cfg.runtime.choices.get("experiment")
    group = Path(hydra_cfg.sweep.dir).name if multirun else (experiment if experiment not in (None, "null") else None)
    job = JobInfo(group=group, overrides=list(hydra_cfg.overrides.task), in_sweep=multirun)
    try:
        return run(cfg, hydra_cfg.runtime.output_dir, job)
    except Exception as error:  # noqa: BLE001 - recorded in the job's summary.json, reported by main()
        if multirun:  # the sweep goes on and lists the failure at the end
            print(f"drive-run: job {hydra_cfg.job.num} failed: {one_line(error)}", file=sys.stderr, flush=True)
        else:  # not re-raised: Hydra would print its own multi-line report first
            _single_run_errors.append(error)
        return None


_single_run_errors: list[BaseException] = []


_hydra_main = hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME, version_base="1.3")(_task)


def compose_config(overrides: list[str], defaults: list[str] = ()) -> DictConfig:
    """drive-run's config for these overrides, without running anything (scripts, tools, tests).
    `defaults` are overrides that apply unless `overrides` sets the same key."""
    keys = {item.split("=", 1)[0] for item in overrides}
    chosen = [item for item in defaults if item.split("=", 1)[0] not in keys]
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        return compose(config_name=CONFIG_NAME, overrides=[*chosen, *overrides])


# ----------------------------------------------------------------------------- error text
def one_line(error: BaseException) -> str:
    """Hydra and OmegaConf errors are multi-line; keep the part that names the key and the problem."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, name = error.missing_cfg_file.rpartition("/")
        if group:
            return f"{group}: unknown option '{name}'; allowed: {', '.join(sorted(error.options))}"
    cause = error.__cause__ if isinstance(error.__cause__, OmegaConfBaseException) else None
    if isinstance(error, OmegaConfBaseException):
        cause = error
    if cause is not None and getattr(cause, "full_key", None):
        message = str(getattr(cause, "msg", None) or cause).strip().splitlines()[0]
        return f"{cause.full_key}: {message}"
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(error).__name__


def _fail(message: str, code: int) -> int:
    print(f"drive-run: error: {message}", file=sys.stderr, flush=True)
    return code


# ----------------------------------------------------------------------------- validation before Hydra runs
def _job_overrides(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override list of every job the command will launch (one unless it is a -m sweep)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = OverridesParser.create().parse_overrides(overrides)
    if not multirun:
        return [overrides]
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def _check_target_dirs(hydra_overrides: list[str], multirun: bool) -> None:
    """Refuse to launch into a directory that already holds finished results (Hydra would overwrite them)."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    for item in hydra_overrides:
        if not item.startswith(f"{key}="):
            continue
        target = Path(item.split("=", 1)[1])
        runs = [target] + ([p for p in target.iterdir() if p.is_dir()] if multirun and target.is_dir() else [])
        if any((read_summary(run) or {}).get("status") == "completed" for run in runs):
            raise ConfigError(key, f"{target} already holds completed results; choose a new directory")


def prevalidate(argv: list[str]) -> None:
    """Compose and validate every job's config; raise ConfigError (or a Hydra error) on the first bad one."""
    from drive_runner.validation import validate

    multirun = "-m" in argv or "--multirun" in argv
    arguments = [a for a in argv if not a.startswith("-")]
    is_hydra = lambda a: a.lstrip("+~").startswith(("hydra.", "hydra/"))  # noqa: E731
    _check_target_dirs([a for a in arguments if is_hydra(a)], multirun)
    user_overrides = [a for a in arguments if not is_hydra(a)]
    if any(a.split("=", 1)[0] == "sparsity" for a in user_overrides) and any(
        a.split("=", 1)[0] == "compression" for a in user_overrides
    ):
        raise ConfigError("compression", "give sparsity= or compression=, not both")
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        for job in _job_overrides(user_overrides, multirun):
            validate(compose(config_name=CONFIG_NAME, overrides=job))


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("DRIVE_RUN_DEBUG") == "1"
    os.environ["DRIVE_RUN_ID"] = new_run_id()
    if not _INFO_FLAGS.intersection(argv):
        try:
            prevalidate(argv)
        except Exception as error:  # noqa: BLE001 - every composition error becomes one line
            if debug:
                raise
            return _fail(one_line(error), EXIT_CONFIG_ERROR)

    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    sweep.reset()
    _single_run_errors.clear()
    saved_argv = sys.argv
    sys.argv = ["drive-run", *argv]
    try:
        _hydra_main()
        if _single_run_errors:
            raise _single_run_errors[0]
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else _fail(exit_.code, EXIT_RUN_FAILED)
    except ConfigError as error:
        return _fail(str(error), EXIT_CONFIG_ERROR)
    except DriveRunnerError as error:
        return _fail(str(error), EXIT_RUN_FAILED)
    except Exception as error:  # noqa: BLE001 - a bug: one line here, the traceback in the run's error.log
        if debug:
            raise
        return _fail(f"{type(error).__name__}: {one_line(error)} (traceback in the run directory's error.log)",
                     EXIT_RUN_FAILED)
    finally:
        sys.argv = saved_argv
    if sweep.last_report() and sweep.last_report().failed:
        return EXIT_RUN_FAILED
    return 0


def entry() -> None:
    sys.exit(main())
