"""The training-state checkpoint and the attempts of a run: what makes a run survive any interruption.

`checkpoints/state.pt` holds everything a run needs to continue exactly where it was: the model (its
architecture too, after structured pruning), the masks, the optimizer and LR schedule, epoch and step,
every RNG, the method's own position (IMP's level, a scorer's pruning step, GMP's ramp, PruneTrain's
history), the pipeline's phase, and how far metrics.jsonl and W&B had got. The pipeline registers each
of those parts once; `save()` writes them atomically at the end of every epoch, between pruning steps
and at a stop signal. It is removed when the run completes (final.pt then holds the model).

A relaunch into the same directory is a new attempt: the earlier attempt's records move to
`attempts/<n>/`, and the new metrics.jsonl starts with exactly the records the saved state had seen,
so every epoch appears once.
"""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import yaml

from drive_runner.errors import CheckpointError, ConfigError
from drive_runner.structured import architecture
from drive_runner.tracking.naming import differing_keys, identity
from drive_runner.tracking.provenance import changed, code_sources, read_sources
from drive_runner.tracking.rundir import METRICS, SUMMARY, RunDirectory, read_summary

FORMAT = "drive-runner/state-v1"
STATE_FILE = "state.pt"
# Records of an attempt that a later attempt must not append to (run.log is copied, not moved: Hydra
# holds it open).
ATTEMPT_RECORDS = (METRICS, SUMMARY, "error.log", "wandb")
# Between pruning steps the state is saved at most this often (every epoch end always saves).
PRUNE_STEP_SAVE_INTERVAL_S = 30.0


class Stateful(Protocol):
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class RandomState:
    """Python's, NumPy's, torch's and CUDA's global random number generators."""

    def state_dict(self) -> dict:
        kind, keys, position, has_gauss, cached = np.random.get_state()
        state = {"python": random.getstate(), "numpy": [kind, torch.from_numpy(keys.copy()), position, has_gauss, cached],
                 "torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        random.setstate(state["python"])
        kind, keys, position, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy(), position, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class ModelState:
    """The model's architecture and weights with its masks; a shrunken architecture is rebuilt first."""

    def __init__(self, model: torch.nn.Module, engine):
        self.model, self.engine = model, engine

    def state_dict(self) -> dict:
        return {"architecture": architecture.describe(self.model),
                "weights": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                "engine": self.engine.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state["architecture"] != architecture.describe(self.model):  # structured pruning had shrunk it
            device = next(self.model.parameters()).device
            architecture.apply(self.model, state["architecture"]).to(device)
            self.engine.rebind()
        self.model.load_state_dict(state["weights"])
        self.engine.load_state_dict(state["engine"])


class RunState:
    """The parts of a run that make up its training state, saved and restored together, in order."""

    def __init__(self, directory: RunDirectory):
        self.directory = directory
        self.path = directory.checkpoints / STATE_FILE
        self._parts: dict[str, Stateful] = {}
        self._last_save = 0.0

    def register(self, name: str, part: Stateful) -> None:
        self._parts[name] = part

    def save(self) -> None:
        if not self.directory.writable:  # a data-parallel rank other than 0: rank 0 saves the job's state
            return
        payload = {"format": FORMAT, "saved_at": time.time()}
        payload.update({name: part.state_dict() for name, part in self._parts.items()})
        self.directory.save_checkpoint(STATE_FILE, payload)
        self._last_save = time.monotonic()

    def save_if_due(self) -> None:
        """Between pruning steps: save unless the last save is recent."""
        if time.monotonic() - self._last_save >= PRUNE_STEP_SAVE_INTERVAL_S:
            self.save()

    def restore(self, saved: dict) -> None:
        for name, part in self._parts.items():
            part.load_state_dict(saved[name])


def read_state(path: Path) -> dict | None:
    """The saved training state, None when there is none; refused with one line when it is unreadable."""
    if not path.exists():
        return None
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - truncated, empty or not ours
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} cannot be read ({reason}); delete it to start the run over, "
                              "or relaunch with resume=never into a new directory") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} training state")
    return payload


@dataclass
class Attempt:
    """What a launch found in its run directory."""

    number: int  # 1 for the first attempt
    saved: dict | None  # the training state to continue from
    finished: dict | None  # the summary of a run that already completed


def begin_attempt(directory: RunDirectory, config: dict, resume: str) -> Attempt:
    """Decide what this launch does with its directory: continue, report done, or start; move an earlier
    attempt's records to attempts/<n>/ so this attempt's files hold only this run's records."""
    finished = completed_run(directory.path, config, resume)
    if finished is not None:
        return Attempt(0, None, finished)
    saved = read_state(directory.checkpoints / STATE_FILE)
    earlier = [name for name in ATTEMPT_RECORDS if (directory.path / name).exists()]
    kept_apart = _attempts_kept(directory)
    if earlier:
        kept_apart += 1
        _move_records(directory, earlier, kept_apart, saved)
    return Attempt(kept_apart + 1, saved, None)


def completed_run(run_dir: Path, config: dict, resume: str = "auto") -> dict | None:
    """What a launch finds in its directory, decided before anything is written there: the summary of this
    job's completed run, or None (an empty directory, or an interrupted run of this job to continue). Refused
    (ConfigError) when the directory cannot take this job: it holds a run of another config or other code,
    resume=never and it holds any earlier run, or resume=must and it holds nothing to continue."""
    run_dir = Path(run_dir)
    used = [name for name in (*ATTEMPT_RECORDS, "config.yaml", f"checkpoints/{STATE_FILE}") if (run_dir / name).exists()]
    if resume == "never" and used:
        raise ConfigError("resume", f"{run_dir} holds an earlier run and resume=never; choose another directory "
                                    "(hydra.run.dir) or use resume=auto")
    check_same_job(run_dir, config)
    summary = read_summary(run_dir)
    if summary and summary.get("status") == "completed":
        return summary
    if resume == "must" and not (run_dir / "checkpoints" / STATE_FILE).exists():
        raise ConfigError("resume", f"resume=must but {run_dir} holds no training state to continue")
    return None


def check_same_job(run_dir: Path, config: dict) -> None:
    """A directory that holds an earlier run takes only the same job: the same config and the same code."""
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.exists():
        return
    try:
        before = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return
    keys = differing_keys(identity(before), identity(config))
    if keys:
        raise ConfigError("hydra.run.dir", f"{run_dir} holds a run with a different config ({_few(keys)} "
                                           "differ); choose another directory or relaunch with the same config")
    files = changed(read_sources(run_dir), code_sources(config))
    if files:
        raise ConfigError("hydra.run.dir", f"{run_dir} holds a run of other code ({_few(files)} changed since "
                                           "it ran); choose another directory, or leave hydra.run.dir out and the "
                                           "run gets a directory of its own")


def earlier_code(run_dir: Path, config: dict) -> tuple[Path, list[str]] | None:
    """A finished run of this job's config with other code, beside `run_dir` (the job's directory name less its
    hash), and the files that changed since; None when there is none. A job's identity covers its code, so an
    edit sends the job to a new directory: this says why."""
    run_dir = Path(run_dir)
    prefix = run_dir.name.rpartition("-")[0]
    current = code_sources(config)
    if not prefix or not current or not run_dir.parent.is_dir():
        return None
    for sibling in sorted(run_dir.parent.glob(f"{prefix}-*")):
        if sibling == run_dir or (read_summary(sibling) or {}).get("status") != "completed":
            continue
        try:
            before = yaml.safe_load((sibling / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        files = changed(read_sources(sibling), current)
        if files and not differing_keys(identity(before), identity(config)):
            return sibling, files
    return None


def _few(items: list[str]) -> str:
    return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def _attempts_kept(directory: RunDirectory) -> int:
    attempts = directory.path / "attempts"
    return max((int(p.name) for p in attempts.iterdir() if p.name.isdigit()), default=0) if attempts.is_dir() else 0


def _move_records(directory: RunDirectory, names: list[str], number: int, saved: dict | None) -> None:
    """attempts/<number>/ gets the earlier attempt's records; metrics.jsonl restarts with what the saved
    state had seen (nothing when there is no state: the run starts over)."""
    target = directory.path / "attempts" / str(number)
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.move(str(directory.path / name), str(target / name))
    log = directory.path / "run.log"
    if log.exists():  # Hydra's handler has it open in append mode: copy, then empty it in place
        shutil.copyfile(log, target / "run.log")
        os.truncate(log, 0)
    kept = saved["tracker"]["metrics_bytes"] if saved else 0
    if kept and (target / METRICS).exists():
        with open(target / METRICS, "rb") as old:
            directory.restore_metrics(old.read(kept))


class DirectoryLock:
    """One live run per directory: a second launch into a directory in use is refused (the lock goes
    with the process, so a killed run never leaves it behind)."""

    def __init__(self, directory: RunDirectory):
        self.path = directory.path / ".lock"
        self._handle = None

    def __enter__(self) -> "DirectoryLock":
        self._handle = open(self.path, "a+")
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise ConfigError("hydra.run.dir", f"{self.path.parent} is in use by a run that is still going; "
                                               "wait for it or choose another directory") from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()
