"""`drive-run`: the Hydra entry point.

Before Hydra starts, every job's config (each combination of a `-m` sweep) is composed and
validated, and the run or sweep directory is checked, so a bad value stops the command before any
work, and before any directory exists, with one line naming the key. Hydra then runs the jobs; a
job's failure is recorded in its run directory and, in a sweep, does not stop the other jobs. Errors
reach the user as one line on stderr and a non-zero exit; set DRIVE_RUN_DEBUG=1 for the full traceback.

Directories are named after the work (tracking/naming.py), so the same command launched again finds
it: a finished job is reported done and not run again, an interrupted one continues from its training
state, and a sweep whose jobs are all done runs nothing. A stop signal (Ctrl-C, SIGTERM, Slurm's
SIGUSR2) ends a run with one line and exit code 128 + the signal; in a sweep it stops launching jobs
and the sweep report still lists what finished.

Torch, Hydra's composition and the pipeline are imported inside the functions that use them, so
`--help` and `--version` answer at once.
"""

from __future__ import annotations

import functools
import gc
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

from drive_runner.cli.usage import CONFIG_GROUPS, answered_info_flag, run_usage
from drive_runner.launch_rank import environment_rank
from drive_runner.tracking.naming import command_name, register_resolvers

EXIT_CONFIG_ERROR = 2
EXIT_RUN_FAILED = 1
register_resolvers()  # job processes (joblib, submitit) resolve their directory names through it
_launcher_pid: int | None = None  # the process that launched the jobs: an interruption there stops them all

# Flags after which Hydra prints information instead of running jobs; no validation is needed.
_INFO_FLAGS = {"--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc", "--experimental-rerun"}


def _task(cfg):
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from drive_runner.cli.compose import one_line
    from drive_runner.interrupts import Interrupted
    from drive_runner.pipeline import JobInfo, run

    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    experiment = hydra_cfg.runtime.choices.get("experiment")
    group = Path(hydra_cfg.sweep.dir).name if multirun else (experiment if experiment not in (None, "null") else None)
    if cfg.table.name:  # one W&B group per table run
        group = f"{cfg.table.name}-{group}"
    job = JobInfo(group=group, overrides=list(hydra_cfg.overrides.task), in_sweep=multirun)
    try:
        return run(cfg, hydra_cfg.runtime.output_dir, job)
    except Interrupted as interrupted:
        if os.getpid() == _launcher_pid:  # the command itself was interrupted: stop launching jobs
            raise
        interrupted.forward()  # a job process of its own: submitit requeues it on SIGUSR2
        print(f"drive-run: job {hydra_cfg.job.num} interrupted ({interrupted}); its state is saved",
              file=sys.stderr, flush=True)
        return None
    except Exception as error:  # noqa: BLE001 - recorded in the job's summary.json, reported by main()
        if multirun:  # the sweep goes on and lists the failure at the end
            print(f"drive-run: job {hydra_cfg.job.num} failed: {one_line(error)}", file=sys.stderr, flush=True)
        else:  # not re-raised: Hydra would print its own multi-line report first
            _single_run_errors.append((error, Path(hydra_cfg.runtime.output_dir) / "error.log"))
        return None


_single_run_errors: list[tuple[BaseException, Path]] = []


def _fail(message: str, code: int) -> int:
    print(f"drive-run: error: {message}", file=sys.stderr, flush=True)
    return code


# ----------------------------------------------------------------------------- validation before Hydra runs
def _is_hydra(key: str) -> bool:
    return key == "hydra" or key.startswith(("hydra.", "hydra/"))


def check_names(overrides: list[str], options) -> None:
    """Top-level keys and group options, checked before Hydra reads any file: a typo lists what exists
    (and a name of thousands of characters never reaches the file system as a config path). `options(group)`
    lists a group's options as Hydra sees them (one's own config directories included)."""
    from drive_runner.config import Config
    from drive_runner.errors import ConfigError, shorten
    from drive_runner.methods.registry import registry

    top_level = sorted({*Config.__dataclass_fields__, *CONFIG_GROUPS})
    for item in overrides:
        key, has_value, value = item.partition("=")
        key = key.lstrip("+~")
        if _is_hydra(key):
            continue
        head = re.split(r"[./@]", key, maxsplit=1)[0]
        if head not in top_level:
            raise ConfigError(shorten(key), f"unknown key; top-level keys are {', '.join(top_level)}")
        if key in CONFIG_GROUPS and has_value and not item.startswith("~"):
            if key == "method" and value in registry().problems:  # an installed method that cannot be used
                raise ConfigError("method", registry().problems[value])
            allowed = options(key)
            if value not in allowed and value != "null":
                raise ConfigError(key, f"unknown option '{shorten(value)}'; allowed: {', '.join(allowed)}")


def _refuse_a_sweep_without_multirun(overrides: list[str]) -> None:
    """`key=a,b` lists the values of a sweep, which only -m runs: say so, instead of Hydra's "ambiguous value"."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from drive_runner.errors import ConfigError

    for override in OverridesParser.create().parse_overrides([o for o in overrides if "," in o]):
        if override.is_sweep_override():
            key = override.get_key_element().lstrip("+~")
            raise ConfigError(key, f"{override.input_line} lists several values, a sweep: add -m to run one job per "
                                   f"value (drive-run -m {override.input_line} ...), or give one value")


def _is_plain_value(override: str) -> bool:
    """`key=value` for a value key (seed=1, method.iterations=20): it changes no defaults list."""
    key = override.split("=", 1)[0]
    return "=" in override and not key.startswith(("+", "~")) and not _is_hydra(key) and "/" not in key \
        and key not in CONFIG_GROUPS


def _composed_jobs(line, jobs: list[list[str]]):
    """Every job's config with its hydra node. Jobs that differ only in plain values share one Hydra
    composition, with the values applied as Hydra applies them (OmegaConf.update, merged): composing a
    table's hundreds of jobs one by one takes minutes. Anything that fails is composed in full, which
    words the error."""
    import copy

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from drive_runner.cli.compose import compose_job

    parser = OverridesParser.create()
    bases: dict = {}
    for job in jobs:
        structure = tuple(o for o in job if not _is_plain_value(o))
        if structure not in bases:
            bases[structure] = compose_job(line, list(structure))
        cfg = copy.deepcopy(bases[structure])
        try:
            for override in parser.parse_overrides([o for o in job if _is_plain_value(o)]):
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        except Exception:  # noqa: BLE001 - the full composition raises the same error, worded for the user
            cfg = compose_job(line, job)
        yield cfg


def _table_jobs(line, options) -> list[list[str]]:
    """The jobs `table=NAME` will launch: its grids, as the table sweeper expands them."""
    from drive_runner.cli.compose import compose_job
    from drive_runner.tables.grid import table_jobs

    arguments = line.overrides
    table_arguments = [a for a in arguments if a.split("=", 1)[0].lstrip("+~").split(".")[0] == "table"]
    check_names(table_arguments, options)
    return table_jobs(compose_job(line, table_arguments).table, arguments)


def prevalidate(argv: list[str]) -> tuple[list, Path, bool, list[Path]]:
    """Compose and validate every job's config and check where the results will go, as Hydra will compose
    them for this command line (-cp, -cn and -cd included); raise ConfigError (or a Hydra error) on the
    first problem. Returns (job configs, run or sweep directory, multirun, every job's directory)."""
    from omegaconf import open_dict

    from drive_runner.cli.compose import CommandLine, group_options, initialised
    from drive_runner.errors import ConfigError
    from drive_runner.sweep_jobs import expand_sweep
    from drive_runner.tracking.rundir import check_output_directory
    from drive_runner.validation import validate

    line = CommandLine.parse(argv)
    multirun = line.multirun
    keys = {a.split("=", 1)[0].lstrip("+~") for a in line.overrides}
    if not multirun and "table" not in keys:
        _refuse_a_sweep_without_multirun(line.overrides)
    if {"sparsity", "compression"} <= keys:
        raise ConfigError("compression", "give sparsity= or compression=, not both")
    configs, job_dirs = [], []
    with initialised(line):
        options = functools.cache(functools.partial(group_options, line=line))  # listed once per group
        if "table" in keys:  # a published table: the union of its grids, always a sweep
            multirun, jobs = True, _table_jobs(line, options)
        else:
            jobs = expand_sweep(line.overrides) if multirun else [line.overrides]
        for job in jobs:
            check_names(job, options)
        for cfg in _composed_jobs(line, jobs):
            if not configs:  # every job of a sweep shares the sweep directory
                output_dir = str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)
            job_dirs.append(Path(cfg.hydra.sweep.dir, cfg.hydra.sweep.subdir) if multirun else Path(cfg.hydra.run.dir))
            with open_dict(cfg):
                del cfg["hydra"]
            validate(cfg)
            configs.append(cfg)
    check_output_directory("hydra.sweep.dir" if multirun else "hydra.run.dir", output_dir)
    return configs, Path(output_dir), multirun, job_dirs


def _table_line(table, jobs: int) -> str:
    """What a table's launch is: its jobs, the wall-clock its reference file expects, and whether the command
    line changed what it measures."""
    from drive_runner.tables.references import load_reference, reference_names

    expected = ""
    if table.name in reference_names():
        time = load_reference(table.name).expected_time.get(table.recipe)
        whole = f" for the whole table (table.limit={table.limit} runs the first {jobs})" if table.limit else ""
        expected = f"; expected {time}{whole}" if time else ""
    changed = (f"; {', '.join(table.changed)} change{'s' if len(table.changed) == 1 else ''} what it measures, so its "
               "report leaves out the paper's numbers") if table.changed else ""
    return f"table {table.name} ({table.recipe} recipe): {jobs} jobs{expected}{changed};"


def _list_table_jobs(argv: list[str]) -> None:
    """`drive-run table=NAME --cfg job`: after the table's config, every job it would launch, one line each, and
    their count."""
    from drive_runner.cli.compose import CommandLine, group_options, initialised

    line = CommandLine.parse([a for a in argv if a not in ("--cfg", "-c", "job")])
    with initialised(line):
        jobs = _table_jobs(line, functools.partial(group_options, line=line))
    for number, job in enumerate(jobs):
        print(f"{number:4d}  {' '.join(job)}")
    print(f"{len(jobs)} jobs", flush=True)


def _ensure_data(configs: list) -> None:
    """Every job's dataset is on disk (or downloaded now, where allowed) before anything is launched."""
    import json

    from omegaconf import OmegaConf

    from drive_runner.data import ensure_data

    seen = set()
    for cfg in configs:
        key = json.dumps(OmegaConf.to_container(cfg.dataset, resolve=True, enum_to_str=True), sort_keys=True)
        if key not in seen:
            seen.add(key)
            ensure_data(cfg.dataset)


def _completed(job_dir: Path, cfg) -> bool:
    """Whether the directory holds this job's completed run; one it cannot take (another config or code, or the
    resume policy) is refused here, before anything is launched."""
    from omegaconf import OmegaConf

    from drive_runner.run_state import completed_run

    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return completed_run(job_dir, config, str(cfg.resume)) is not None


def _announce(configs: list, output_dir: Path, multirun: bool, job_dirs: list[Path]) -> bool:
    """The first line, as soon as the command is known to be good (data and models load after it), from
    rank 0 of a data-parallel job alone. Returns whether there is anything to run."""
    done = sum(_completed(job_dir, cfg) for job_dir, cfg in zip(job_dirs, configs))
    if environment_rank() != 0:  # the same decision as rank 0's, unsaid
        return done < len(configs) if multirun else not done
    if multirun:
        if done == len(configs):
            print(f"drive-run: all {done} jobs of this sweep are already done in {output_dir}; nothing to run "
                  f"(drive-report {output_dir} prints the results; to run them again, give another "
                  f"hydra.sweep.dir or remove {output_dir})", flush=True)
            return False
        already = f" ({done} already done, skipped)" if done else ""
        what = _table_line(configs[0].table, len(configs)) if configs[0].table.name else f"sweep of {len(configs)} jobs"
        print(f"drive-run: {what} into {output_dir}{already}", flush=True)
        return True
    cfg = configs[0]
    if done:
        print(f"drive-run: already done: {output_dir} holds this job's completed run; nothing to run (to run it "
              f"again, give another hydra.run.dir or remove {output_dir})", flush=True)
        return False
    from omegaconf import OmegaConf

    from drive_runner.instantiation import label
    from drive_runner.run_state import earlier_code

    print(f"drive-run: {label(cfg.method)} on {label(cfg.model)}/{label(cfg.dataset)} into {output_dir}", flush=True)
    earlier = earlier_code(output_dir, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    if earlier is not None:
        sibling, files = earlier
        print(f"drive-run: a new run: {', '.join(files[:5])} changed since the run in {sibling}", flush=True)
    return True


# ----------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if answered_info_flag(argv, "drive-run", run_usage):
        return 0
    global _launcher_pid
    debug = os.environ.get("DRIVE_RUN_DEBUG") == "1"
    from drive_runner.cli.compose import CommandLine, one_line

    os.environ["DRIVE_RUN_ID"] = command_name(CommandLine.parse(argv).overrides)
    _launcher_pid = os.getpid()
    if {"--cfg", "-c"} & set(argv) and any(a.startswith("table=") for a in argv):  # the config, then the jobs
        from drive_runner.cli.compose import one_line

        code = _launch(argv, debug)
        try:
            _list_table_jobs(argv)
        except Exception as error:  # noqa: BLE001 - one line, as every composition error
            return _fail(one_line(error), EXIT_CONFIG_ERROR)
        return code
    if not _INFO_FLAGS.intersection(argv):
        try:
            checked = prevalidate(argv)
            _ensure_data(checked[0])
            if not _announce(*checked):
                return 0
        except Exception as error:  # noqa: BLE001 - every composition error becomes one line
            if debug:
                raise
            return _fail(one_line(error), EXIT_CONFIG_ERROR)
    return _launch(argv, debug)


def _launch(argv: list[str], debug: bool) -> int:
    import hydra

    from drive_runner.cli.compose import CONFIG_MODULE, CONFIG_NAME, one_line
    from drive_runner.errors import ConfigError, DriveRunnerError
    from drive_runner.interrupts import Interrupted
    from drive_runner.report import sweep

    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    sweep.reset()
    _single_run_errors.clear()
    hydra_main = hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=CONFIG_NAME, version_base="1.3")(_task)
    saved_argv = sys.argv
    sys.argv = ["drive-run", *_absolute_config_path(argv)]
    try:
        hydra_main()
        if _single_run_errors:
            error, error_log = _single_run_errors[0]
            if not isinstance(error, DriveRunnerError) and not debug:
                where = f" (traceback in {error_log})" if error_log.exists() else ""
                return _fail(f"{type(error).__name__}: {one_line(error)}{where}", EXIT_RUN_FAILED)
            raise error
    except (Interrupted, KeyboardInterrupt) as interrupted:
        return _interrupted(interrupted, argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else _fail(exit_.code, EXIT_RUN_FAILED)
    except ConfigError as error:
        return _fail(str(error), EXIT_CONFIG_ERROR)
    except DriveRunnerError as error:
        return _fail(str(error), EXIT_RUN_FAILED)
    except Exception as error:  # noqa: BLE001 - a bug outside any run: one line (the traceback with DRIVE_RUN_DEBUG=1)
        _report_unfinished_sweep()
        if debug:
            raise
        return _fail(f"{type(error).__name__}: {one_line(error)}", EXIT_RUN_FAILED)
    finally:
        sys.argv = saved_argv
    if sweep.last_report() and sweep.last_report().failed:
        return EXIT_RUN_FAILED
    return 0


def _absolute_config_path(argv: list[str]) -> list[str]:
    """A relative `-cp DIR` taken from the working directory, as a user means it (Hydra would take it from
    drive-runner's own package)."""
    argv = list(argv)
    for index, item in enumerate(argv):
        flag, equals, value = item.partition("=")
        if flag in ("-cp", "--config-path"):
            if equals and not value.startswith("pkg://"):
                argv[index] = f"{flag}={os.path.abspath(value)}"
            elif not equals and index + 1 < len(argv) and not argv[index + 1].startswith("pkg://"):
                argv[index + 1] = os.path.abspath(argv[index + 1])
    return argv


def _report_unfinished_sweep():
    """The sweep report of a sweep that ended before Hydra's end-of-sweep callback (an interruption, a
    launcher that broke): rebuilt from the run directories. Returns the outcome, or None outside a sweep."""
    from drive_runner.report import sweep

    sweep_dir = sweep.running_sweep_dir()
    if sweep_dir is None or not sweep_dir.is_dir() or sweep.last_report() is not None:
        return None
    outcome = sweep.collect(sweep_dir)
    sweep.write_and_print(outcome)
    return outcome


def _interrupted(interrupted: BaseException, argv: list[str]) -> int:
    """One line, the sweep report of what finished, and 128 + the signal as the exit code."""
    import signal

    signum = getattr(interrupted, "signum", signal.SIGINT)
    outcome = _report_unfinished_sweep()
    if outcome is not None:
        done = sum(job.status == "completed" for job in outcome.jobs)
        where = f"; {done} of {len(outcome.jobs)} jobs started have finished"
    else:
        where = ""
    print(f"drive-run: interrupted by {signal.Signals(signum).name}{where}; the same command continues from the "
          "saved state", file=sys.stderr, flush=True)
    return 128 + signum


def entry() -> None:
    leave(quiet_on_closed_pipe(main))


def leave(code: int) -> NoReturn:
    """Exit with `code`, leaving the objects of the imported modules to the operating system: once torch and its
    compiler are imported, Python's teardown spends about a second collecting them. gc.freeze keeps the
    collector off them; atexit handlers, stream flushes and module finalisation still run."""
    gc.freeze()
    sys.exit(code)


def quiet_on_closed_pipe(command) -> int:
    """Run `command()`; when stdout is a pipe the reader closed (`drive-run --help | head -3`), stop
    quietly instead of printing a BrokenPipeError."""
    try:
        code = command()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit would fail
        return 0
