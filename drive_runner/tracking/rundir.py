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
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

SUMMARY = "summary.json"
METRICS = "metrics.jsonl"


def _replace_atomically(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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
