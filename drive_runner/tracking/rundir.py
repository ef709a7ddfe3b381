"""The run directory: every file a run leaves behind, each written so a crash never leaves half a file.

    config.yaml        the resolved config
    metrics.jsonl      one JSON object per epoch and phase event, appended as they happen
    summary.json       the result (written atomically, `status` is its last key)
    checkpoints/       final.pt (model + masks + architecture), masks.pt, and while the run is going
                       state.pt (its training state, to continue after an interruption)
    attempts/<n>/      the records of an earlier, interrupted attempt, kept apart from this run's
    run.log            the console lines with timestamps
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any

import torch

from drive_runner.errors import ConfigError, shorten

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"


def _replace_atomically(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename over the target.

    The temporary file is created with mode 0666 minus the umask, like any file a program opens, so
    collaborators can read results (tempfile.mkstemp would make it private to its owner)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    """Plain JSON: NaN/inf become null (JSON has no such numbers), tensors become numbers."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if torch.is_tensor(value):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_text_atomic(path: Path, text: str) -> None:
    _replace_atomically(Path(path), lambda stream: stream.write(text.encode()))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def save_torch_atomic(path: Path, obj: Any) -> None:
    _replace_atomically(Path(path), lambda stream: torch.save(obj, stream))


def read_summary(run_dir: Path) -> dict | None:
    path = Path(run_dir) / SUMMARY
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check_output_directory(key: str, path: str) -> None:
    """Refuse, before anything is written, a run (or sweep) directory that cannot take this run: an
    empty path, or one that cannot be created and written (a file in the way, no permission, a name the
    file system refuses). One that holds earlier work is fine: finished jobs are reported done and
    interrupted ones continue."""
    if not str(path).strip():
        raise ConfigError(key, "must name a directory; got an empty path")
    target = Path(path)
    try:
        if target.exists() and not target.is_dir():
            raise ConfigError(key, f"{path} is a file, not a directory")
        _probe_writable(target)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConfigError(key, f"cannot create and write the directory {shorten(str(path), 120)}: {reason}") from None


def _probe_writable(target: Path) -> None:
    """Create the directory and a file in it, then remove what the probe created."""
    created = []
    ancestor = target.absolute()
    while not ancestor.exists():
        created.append(ancestor)
        ancestor = ancestor.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".drive-run-probe-{secrets.token_hex(4)}"
        probe.touch()
        probe.unlink()
    finally:
        for directory in created:  # deepest first
            try:
                directory.rmdir()
            except OSError:
                pass


class RunDirectory:
    writable = True

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"

    def write_config(self, yaml_text: str) -> None:
        write_text_atomic(self.path / "config.yaml", yaml_text)

    def write_json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.path / name, obj)

    def append_metrics(self, record: dict) -> None:
        """One JSON object per line; each line is written whole and flushed at once."""
        record = {"time": round(time.time(), 3), **record}
        with open(self.path / METRICS, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(_jsonable(record)) + "\n")

    def read_metrics(self) -> list[dict]:
        path = self.path / METRICS
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def metrics_bytes(self) -> int:
        """How much of metrics.jsonl is written (a training state records it, to continue from there)."""
        path = self.path / METRICS
        return path.stat().st_size if path.exists() else 0

    def restore_metrics(self, records: bytes) -> None:
        """Start metrics.jsonl over with `records`: what an interrupted attempt had logged up to its saved state."""
        _replace_atomically(self.path / METRICS, lambda stream: stream.write(records))

    def write_summary(self, summary: dict) -> None:
        """`status` goes last, so a reader that sees it knows every other key was written with it."""
        status = summary.get("status")
        ordered = {k: v for k, v in summary.items() if k != "status"}
        ordered["status"] = status
        write_json_atomic(self.path / SUMMARY, ordered)

    def save_checkpoint(self, name: str, payload: dict) -> Path:
        path = self.checkpoints / name
        save_torch_atomic(path, payload)
        return path

    def remove_checkpoint(self, name: str) -> None:
        (self.checkpoints / name).unlink(missing_ok=True)

    def write_error(self, text: str) -> None:
        write_text_atomic(self.path / "error.log", text)


class FollowerRunDirectory(RunDirectory):
    """The run directory as a data-parallel rank other than 0 sees it: the same path, read, never written
    (rank 0 writes every record, checkpoint and training state of the job)."""

    writable = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"

    def write_config(self, yaml_text: str) -> None:
        pass

    def write_json(self, name: str, obj: Any) -> None:
        pass

    def append_metrics(self, record: dict) -> None:
        pass

    def restore_metrics(self, records: bytes) -> None:
        pass

    def write_summary(self, summary: dict) -> None:
        pass

    def save_checkpoint(self, name: str, payload: dict) -> Path:
        return self.checkpoints / name

    def remove_checkpoint(self, name: str) -> None:
        pass

    def write_error(self, text: str) -> None:
        pass
