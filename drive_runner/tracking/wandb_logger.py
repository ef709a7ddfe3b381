"""Weights & Biases logging: one W&B run per job, written inside the run directory.

A tracking failure must never cost a result or stall a run: an online start waits at most
`logger.init_timeout_s` and then falls back to an offline run in the same directory (to sync later),
and every later call goes through `_guarded`: the first exception is reported as a warning and W&B
is switched off for the rest of the run.
"""

from __future__ import annotations

import functools
import netrc
import os
import shutil
from pathlib import Path
from typing import Callable

MODES = ("auto", "offline", "online", "disabled")


def has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """`auto` means online when an API key is configured and offline otherwise (WANDB_MODE wins if set)."""
    if mode != "auto":
        return mode
    return os.environ.get("WANDB_MODE") or ("online" if has_api_key() else "offline")


def _guarded(method: Callable) -> Callable:
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        if self.run is None:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - any W&B failure is survivable by design
            self._disable(f"W&B {method.__name__} failed ({type(error).__name__}: {error}); W&B logging is off for this run")
            return None

    return call


class WandbLogger:
    def __init__(
        self,
        cfg,
        run_dir: Path,
        *,
        config: dict,
        name: str,
        group: str | None,
        warn: Callable[[str], None],
        run_id: str | None = None,
    ):
        """`run_id`: the W&B id of the run this job continues (a resumed job keeps its W&B run)."""
        self.run = None
        self.mode = resolve_mode(cfg.mode) if cfg.name == "wandb" else "disabled"
        self._warn = warn
        self._log_artifacts = bool(cfg.log_artifacts)
        if self.mode == "disabled":
            return
        arguments = dict(project=cfg.project, entity=cfg.entity, group=group, name=name, tags=list(cfg.tags) or None,
                         dir=str(run_dir), config=config, id=run_id, resume="allow" if run_id else None)
        try:
            # W&B's own banner lines (login, sync hints) would interleave with the run's; ours say what matters.
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb

            self._wandb = wandb
            earlier = set(Path(run_dir, "wandb").glob("run-*"))
            try:
                self.run = self._start(arguments, self.mode, float(cfg.init_timeout_s))
            except Exception as error:  # noqa: BLE001 - an unreachable server or a refused key: keep the log offline
                if self.mode != "online":
                    raise
                self._fall_back_offline(arguments, run_dir, float(cfg.init_timeout_s), error, earlier)
        except Exception as error:  # noqa: BLE001
            self._disable(f"W&B could not start ({type(error).__name__}: {error}); continuing without it")

    def _start(self, arguments: dict, mode: str, timeout_s: float):
        settings = self._wandb.Settings(silent=True, console="off", x_disable_stats=True, init_timeout=timeout_s)
        return self._wandb.init(**arguments, mode=mode, reinit="create_new", settings=settings)

    def _fall_back_offline(self, arguments: dict, run_dir: Path, timeout_s: float, error: Exception,
                           earlier: set[Path]) -> None:
        """An offline run in the run directory instead, and the failed online attempt's directory
        removed, so `wandb sync` later uploads exactly one run for this job."""
        for attempt in set(Path(run_dir, "wandb").glob("run-*")) - earlier:
            shutil.rmtree(attempt, ignore_errors=True)
        self.run = self._start(arguments, "offline", timeout_s)
        self.mode = "offline"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self._warn(f"W&B did not start online within {timeout_s:g} s ({reason}); logging offline instead, "
                   f"upload later with: wandb sync {Path(self.run.dir).parent}")

    def _disable(self, message: str) -> None:
        self._warn(message)
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish(exit_code=1, quiet=True)
            except Exception:  # noqa: BLE001
                pass

    @_guarded
    def log(self, metrics: dict, step: int | None = None) -> None:
        self.run.log(metrics, step=step)

    @_guarded
    def log_table(self, key: str, rows: list[dict]) -> None:
        if not rows:
            return
        columns = list(rows[0])
        self.run.log({key: self._wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in rows])})

    @_guarded
    def log_images(self, images: dict[str, Path]) -> None:
        if images:
            self.run.log({f"figures/{name}": self._wandb.Image(str(path)) for name, path in images.items()})

    @_guarded
    def update_summary(self, values: dict) -> None:
        self.run.summary.update(values)

    @_guarded
    def log_files(self, name: str, kind: str, paths: list[Path]) -> None:
        if not self._log_artifacts:
            return
        artifact = self._wandb.Artifact(name=name, type=kind)
        for path in paths:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    @property
    def run_path(self) -> str | None:
        return getattr(self.run, "dir", None)

    @property
    def run_id(self) -> str | None:
        return getattr(self.run, "id", None)

    def finish(self, failed: bool = False, interrupted_code: int | None = None) -> None:
        """End the W&B run: completed, failed, or interrupted (marked preempting, so W&B shows it can resume)."""
        if self.run is None:
            return
        try:
            if interrupted_code is not None:
                self.run.mark_preempting()
            self.run.finish(exit_code=interrupted_code if interrupted_code is not None else int(failed))
        except Exception as error:  # noqa: BLE001
            self._warn(f"W&B finish failed ({type(error).__name__}: {error})")
        self.run = None
