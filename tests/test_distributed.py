"""Data-parallel jobs: `torchrun --nproc_per_node=2 -m drive_runner ...` on the CPU with the gloo backend.

The two processes train one model on their shards of each batch; rank 0 alone writes the run directory.
Against one process running the same command: masks found at initialisation are identical (every rank
scores the same data, and every mask change is taken from rank 0 and checked on all ranks), masks found
after DDP training overlap all but a few rounding-order ties, and test accuracy agrees within noise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ON_THE_CPU, PINNED_THREADS, read_json, run_cli

BASE = ["dataset=digits", "model=lenet300", "logger=none", "sparsity=0.9", *ON_THE_CPU, *PINNED_THREADS]
VOLATILE = ("timings_s", "run_dir", "attempt")


def torchrun(*args: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "drive_runner",
         *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_environment())


def _environment() -> dict:
    environment = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    environment.pop("WANDB_API_KEY", None)
    return environment


def masks(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "masks.pt")


def agreement(first: dict, second: dict) -> float:
    """The fraction of kept weights the two masks keep in common."""
    common = sum(int((first[name] & second[name]).sum()) for name in first)
    return common / sum(int(mask.sum()) for mask in first.values())


def test_two_processes_find_the_masks_of_one_and_write_one_run_directory(tmp_path: Path):
    args = [*BASE, "method=snip", "trainer.epochs=2"]
    parallel = torchrun(*args, f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    single = run_cli(*args, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]

    ddp, one = masks(tmp_path / "ddp"), masks(tmp_path / "one")
    assert all(torch.equal(ddp[name], one[name]) for name in one)
    summary_ddp, summary_one = read_json(tmp_path / "ddp" / "summary.json"), read_json(tmp_path / "one" / "summary.json")
    assert summary_ddp["status"] == "completed"
    assert summary_ddp["achieved_sparsity"] == summary_one["achieved_sparsity"]
    assert abs(summary_ddp["test_acc"] - summary_one["test_acc"]) <= 0.02  # the same gradients, summed in another order
    # One writer: the announcement, every log line and every epoch record appear once.
    assert sum(line.startswith("drive-run: snip on") for line in parallel.stdout.splitlines()) == 1
    log = (tmp_path / "ddp" / "run.log").read_text().splitlines()
    assert len(log) == len(set(line.split("]", 2)[-1] for line in log))
    epochs = [r for r in map(_json, (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "one"]  # nothing written beside the run


def _json(line: str) -> dict:
    import json

    return json.loads(line)


@pytest.mark.slow
@pytest.mark.parametrize("method", [
    ["method=drive", "method.warmup_epochs=2", "method.iterations=10", "trainer.epochs=4"],
    ["method=imp", "sparsity=0.75", "schedule.fraction=0.5", "trainer.epochs=2", "method.rewind_step=5"],
    ["method=gmp", "trainer.epochs=4"],
], ids=["drive", "imp-rewind", "gmp"])
def test_methods_that_train_to_find_their_mask_agree_with_one_process(tmp_path: Path, method: list[str]):
    args = [*BASE, *method]
    parallel = torchrun(*args, f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    single = run_cli(*args, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    assert agreement(masks(tmp_path / "ddp"), masks(tmp_path / "one")) >= 0.99
    accuracy = [read_json(tmp_path / run / "summary.json")["test_acc"] for run in ("ddp", "one")]
    assert abs(accuracy[0] - accuracy[1]) <= 0.03


@pytest.mark.slow
def test_prunetrain_reconfigures_every_rank_alike(tmp_path: Path):
    args = [*BASE, "method=prunetrain", "model=resnet20", "dataset.image_size=16", "trainer.epochs=4",
            "method.interval=2", "method.penalty_ratio=0.9", "method.threshold=0.02"]
    parallel = torchrun(*args, f"hydra.run.dir={tmp_path / 'ddp'}", cwd=tmp_path)
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    summary = read_json(tmp_path / "ddp" / "summary.json")
    assert summary["status"] == "completed"
    assert summary["channels_final"] != summary["channels_initial"]  # it did shrink, on both ranks alike


@pytest.mark.slow
def test_a_stopped_parallel_job_resumes_to_the_uninterrupted_result(tmp_path: Path):
    args = [*BASE, "method=drive", "method.warmup_epochs=2", "method.iterations=10", "trainer.epochs=6"]
    uninterrupted = torchrun(*args, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    run_dir = tmp_path / "stopped"
    process = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "drive_runner",
         *args, f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=_environment(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.exists() and '"phase": "train", "epoch": 4' in metrics.read_text()):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)  # torchrun hands it to both ranks
    process.wait(timeout=120)
    assert read_json(run_dir / "summary.json")["status"] == "interrupted"
    resumed = torchrun(*args, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole, again = read_json(tmp_path / "whole" / "summary.json"), read_json(run_dir / "summary.json")
    assert again["attempt"] == 2
    assert {k: v for k, v in again.items() if k not in VOLATILE} == {k: v for k, v in whole.items() if k not in VOLATILE}


@pytest.mark.slow
def test_a_slurm_style_job_with_two_tasks_is_one_data_parallel_run(tmp_path: Path):
    """hydra/launcher=slurm_ddp's mechanism, on submitit's local executor: two tasks of one job."""
    args = [*BASE, "method=snip", "trainer.epochs=2"]
    result = run_cli("-m", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2", *args,
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (job_dir,) = [p for p in (tmp_path / "sweep").iterdir() if p.name.startswith("snip-")]
    single = run_cli(*args, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    assert all(torch.equal(a, b) for a, b in zip(masks(job_dir).values(), masks(tmp_path / "one").values()))
    logs = sorted((tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2 and "pruned:" in logs[0].read_text() and "pruned:" not in logs[1].read_text()
