"""The run directory: every file a run leaves behind, each written so a crash never leaves half a file.

    config.yaml        the resolved config
    metrics.jsonl      one JSON object per epoch and phase event, appended as they happen
    summary.json       the result (written atomically, `status` is its last key)
    checkpoints/       final.pt (model + masks + architecture), masks.pt
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


def check_output_directory(key: str, path: str, multirun: bool) -> None:
    """Refuse, before anything is written, a run (or sweep) directory that cannot take this run: an
    empty path, one that already holds completed results, or one that cannot be created and written
    (a file in the way, no permission, a name the file system refuses)."""
    if not str(path).strip():
        raise ConfigError(key, "must name a directory; got an empty path")
    target = Path(path)
    try:
        if target.exists() and not target.is_dir():
            raise ConfigError(key, f"{path} is a file, not a directory")
        runs = [target] + ([p for p in target.iterdir() if p.is_dir()] if multirun and target.is_dir() else [])
        if any((read_summary(run) or {}).get("status") == "completed" for run in runs):
            raise ConfigError(key, f"{path} already holds completed results; choose a new directory")
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
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"

    def write_config(self, yaml_text: str) -> None:
        write_text_atomic(self.path / "config.yaml", yaml_text)

    def append_metrics(self, record: dict) -> None:
        """One JSON object per line; each line is written whole and flushed at once."""
        record = {"time": round(time.time(), 3), **record}
        with open(self.path / METRICS, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(_jsonable(record)) + "\n")

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
