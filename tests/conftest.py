"""Shared test helpers: compose configs the way the CLI does, and run the real `drive-run` command.

Every test runs on the CPU (`hardware.device=cpu`, even where a GPU exists). Commands started as
subprocesses also pin their thread count (`hardware.threads=1`), so two of them compare exactly; the
in-process tests keep the thread count the environment gives, and must pass with OMP_NUM_THREADS=1
and with 2 threads (float32 tolerances hold for either summation order). Under pytest-xdist (`make test`
starts one test process per core) each test process uses one torch thread: more threads than cores made
a ResNet-20 PruneTrain test take 118 s instead of 11 s.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from drive_runner.cli.compose import compose_config

REPO = Path(__file__).resolve().parents[1]
DRIVE_RUN = Path(sys.executable).with_name("drive-run")
ON_THE_CPU = ["hardware.device=cpu"]
PINNED_THREADS = ["hardware.threads=1"]


def make_cfg(*overrides: str):
    """The composed config for these overrides (as the CLI composes it), on the CPU unless they say otherwise."""
    return compose_config(list(overrides), defaults=ON_THE_CPU)


def quick_cfg(*overrides: str):
    """A seconds-long digits run without W&B, for pipeline tests (magnitude pruning unless a method is given)."""
    method = [] if any(o.startswith("method=") for o in overrides) else ["method=magnitude"]
    return make_cfg("dataset=digits", "model=lenet300", "logger=none", "trainer.epochs=1", *method, *overrides)


def run_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 300, pinned: bool = True
            ) -> subprocess.CompletedProcess:
    """Run the installed `drive-run` console script as a user would, offline; on the CPU with one thread
    unless `args` set those keys (or `pinned=False`, for arguments that must stand alone)."""
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    environment.pop("WANDB_API_KEY", None)
    environment.update(env or {})
    given = {a.split("=", 1)[0] for a in args}
    pins = [p for p in ON_THE_CPU + PINNED_THREADS if pinned and p.split("=", 1)[0] not in given]
    return subprocess.run(
        [str(DRIVE_RUN), *args, *pins], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def pytest_configure(config):
    if "DRIVE_RUNNER_CACHE" not in os.environ:  # the suite's digits cache, not the user's (its workers share it)
        cache = tempfile.mkdtemp(prefix="drive-runner-cache-")
        os.environ["DRIVE_RUNNER_CACHE"] = cache
        atexit.register(shutil.rmtree, cache, ignore_errors=True)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_wandb(tmp_path, monkeypatch):
    """W&B never reaches a server and never writes outside the test's directory."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / ".wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / ".wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / ".wandb-data"))
