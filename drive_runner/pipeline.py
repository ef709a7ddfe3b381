"""One job in its run directory: dense warm-up -> pruning -> sparse training -> evaluation, or whatever the
job's runner does (drive_runner/runners), with the records every job keeps.

`run(cfg, run_dir)` is free of Hydra so it can be driven from Python and tests as well as from the CLI. It
decides what the launch does with the directory (start, continue an interrupted attempt, or report a
finished one), hands the job to the runner its method (or trainer) needs, and writes summary.json whatever
the outcome: `completed`, `interrupted` (the state is saved; the same command continues) or `failed`.
"""

from __future__ import annotations

import contextlib
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from drive_runner import distributed
from drive_runner.data import ensure_data
from drive_runner.errors import DriveRunnerError, TrainingDiverged
from drive_runner.instantiation import label
from drive_runner.interrupts import Interrupted, StopRequests
from drive_runner.methods import build_method
from drive_runner.pruning.targets import target_density
from drive_runner.run_state import STATE_FILE, Attempt, DirectoryLock, begin_attempt, read_state
from drive_runner.runners import runner_for
from drive_runner.runners.records import Phases
from drive_runner.runners.setup import prepare
from drive_runner.tracking.console import Console, SilentConsole
from drive_runner.tracking.provenance import write_sources
from drive_runner.tracking.rundir import FollowerRunDirectory, RunDirectory
from drive_runner.tracking.tracker import Tracker
from drive_runner.tracking.wandb_logger import WandbLogger
from drive_runner.train.acceleration import resolve_device
from drive_runner.validation import validate

CHECKPOINTS_PUBLISHED = ("final.pt", "masks.pt", "exit.pt")  # whichever the run wrote


@dataclass
class JobInfo:
    """Facts about the job that come from outside the config (Hydra or the caller)."""

    group: str | None = None  # sweep or experiment name, the W&B group
    overrides: list[str] = field(default_factory=list)
    in_sweep: bool = False  # one result line instead of the full table: the sweep prints its own


def run(cfg: DictConfig, run_dir: str | Path, job: JobInfo | None = None, console: Console | None = None) -> dict:
    """Run one job, or continue it from its saved training state; returns its summary. A job that already
    completed in `run_dir` is not run again. On failure the summary says `failed` and the error is
    re-raised; on a stop signal it says `interrupted` and Interrupted is raised."""
    validate(cfg)
    ensure_data(cfg.dataset)  # before any directory: a dataset that is not there is refused in one line
    job = job or JobInfo()
    method = build_method(cfg.method, cfg.schedule)
    runner = runner_for(cfg, method)
    world = distributed.from_environment()
    if world.parallel:
        runner.check_parallel(cfg, world)
    distributed.start(world, resolve_device(cfg.hardware, world.local_rank))
    try:
        console = (console or Console()) if world.is_main else SilentConsole()
        directory = RunDirectory(run_dir) if world.is_main else FollowerRunDirectory(run_dir)
        with DirectoryLock(directory) if world.is_main else contextlib.nullcontext():
            attempt = _shared_attempt(directory, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True), cfg.resume)
            if attempt.finished is not None:
                console.line(f"already done: {directory.path} holds this job's completed run "
                             f"(test_acc {attempt.finished.get('test_acc', float('nan')):.4f}); nothing to run (to run "
                             f"it again, give another directory or remove this one)")
                return attempt.finished
            return _attempt(cfg, directory, attempt, job, console, lambda setup: runner(setup, method))
    finally:
        distributed.stop()


def _shared_attempt(directory: RunDirectory, config: dict, resume: str) -> Attempt:
    """Rank 0 decides what this launch does with the directory (and moves earlier records); the other
    ranks follow its decision and read the same training state. A refusal on rank 0 is raised on all."""
    world = distributed.current()
    if not world.parallel:
        return begin_attempt(directory, config, resume)
    decision: Attempt | BaseException
    if world.is_main:
        try:
            decision = begin_attempt(directory, config, resume)
        except Exception as error:  # noqa: BLE001 - every rank raises it below
            decision = error
        shared = distributed.broadcast_value(
            decision if isinstance(decision, BaseException) else (decision.number, decision.saved is not None,
                                                                  decision.finished))
    else:
        shared = distributed.broadcast_value(None)
    if isinstance(shared, BaseException):
        raise shared
    if world.is_main:
        return decision
    number, has_state, finished = shared
    return Attempt(number, read_state(directory.checkpoints / STATE_FILE) if has_state else None, finished)


def _attempt(cfg: DictConfig, directory: RunDirectory, attempt: Attempt, job: JobInfo, console: Console,
             make_runner) -> dict:
    directory.write_config(OmegaConf.to_yaml(cfg, resolve=True))
    write_sources(directory, OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    phases = Phases()
    names = {"method": label(cfg.method), "model": label(cfg.model), "dataset": label(cfg.dataset)}
    summary: dict = {**names, "seed": int(cfg.seed), "overrides": list(job.overrides), "run_dir": str(directory.path)}
    logger_cfg = cfg.logger if distributed.current().is_main else OmegaConf.merge(cfg.logger, {"mode": "disabled"})
    wandb = WandbLogger(
        logger_cfg, directory.path, config=OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        name=f"{names['method']}-{names['model']}-{names['dataset']}-d{target_density(cfg):.4g}-seed{cfg.seed}",
        group=cfg.logger.group or job.group, warn=console.warn,
        run_id=attempt.saved["tracker"]["wandb_id"] if attempt.saved else None,
    )
    tracker = Tracker(directory, console, wandb)
    summary["attempt"] = attempt.number
    if attempt.saved:
        console.line(f"resuming attempt {attempt.number} from the training state saved "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(attempt.saved['saved_at']))} "
                     f"(earlier attempts' records are in {directory.path / 'attempts'})")
        if wandb.mode == "offline":
            tracker.replay_to_wandb()
    try:
        with StopRequests() as stop:
            setup = prepare(cfg, directory, tracker, console, phases, stop, attempt.saved)
            summary.update(make_runner(setup).run())
        summary["timings_s"]["total"] = phases.total()
        summary["status"] = "completed"
        directory.write_summary(summary)
        directory.remove_checkpoint(STATE_FILE)  # final.pt holds the finished model
        _publish(summary, directory, wandb)
        console.result_line(summary) if job.in_sweep else console.summary_table(summary)
        wandb.finish()
        return summary
    except Interrupted as interrupted:
        summary["timings_s"] = {**phases.seconds, "total": phases.total()}
        summary["status"] = "interrupted"
        summary["signal"] = signal.Signals(interrupted.signum).name
        directory.write_summary(summary)
        tracker.event("interrupted", signal=summary["signal"])
        wandb.finish(interrupted_code=interrupted.exit_code)
        console.line(f"interrupted by {summary['signal']}: state saved in {directory.checkpoints / STATE_FILE}; "
                     "the same command continues the run")
        raise
    except BaseException as error:
        summary["timings_s"] = {**phases.seconds, "total": phases.total()}
        summary["error"] = f"{type(error).__name__}: {error}" if not isinstance(error, DriveRunnerError) else str(error)
        if not isinstance(error, DriveRunnerError):
            directory.write_error(traceback.format_exc())
        summary["status"] = "failed"
        directory.write_summary(summary)
        if isinstance(error, TrainingDiverged):  # resuming would replay the steps that diverged
            directory.remove_checkpoint(STATE_FILE)
        tracker.event("failed", error=summary["error"])
        wandb.finish(failed=True)
        raise


def _publish(summary: dict, directory: RunDirectory, wandb: WandbLogger) -> None:
    """The result to W&B: summary values, and the run's model checkpoints as one artifact."""
    wandb.update_summary({k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))})
    files = [directory.checkpoints / name for name in CHECKPOINTS_PUBLISHED if (directory.checkpoints / name).exists()]
    wandb.log_files(f"model-{summary['method']}-{summary['model']}-{summary['dataset']}-seed{summary['seed']}",
                    "model", files)
