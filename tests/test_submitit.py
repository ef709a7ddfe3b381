"""Sweeps through hydra-submitit-launcher, as on Slurm, with submitit's local executor standing in for
the cluster: a job that receives the preemption signal mid-run saves its state, is requeued by
submitit, continues from its checkpoint, and ends exactly as an uninterrupted job does."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.conftest import DRIVE_RUN, read_json
from tests.test_resume import DRIVE, assert_same_run, logged, records, relaunch


def task_pid(job_dir: Path) -> int | None:
    """The process running a submitit_local job: the child of the controller whose pid is the job id."""
    hydra_file = job_dir / ".hydra" / "hydra.yaml"
    if not hydra_file.exists():
        return None
    controller = str(yaml.safe_load(hydra_file.read_text())["hydra"]["job"]["id"])
    children = Path(f"/proc/{controller}/task/{controller}/children")
    pids = children.read_text().split() if children.exists() else []
    return int(pids[0]) if pids else None


def test_a_preempted_job_is_requeued_and_resumes_to_the_uninterrupted_result(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", *DRIVE, "seed=0,1", f"hydra.sweep.dir={sweep_dir}"]
    process = subprocess.Popen([str(DRIVE_RUN), *args], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    deadline = time.monotonic() + 240
    preempted = None
    while preempted is None:
        assert process.poll() is None and time.monotonic() < deadline
        for job_dir in sweep_dir.glob("*seed0-*"):
            pid = task_pid(job_dir) if logged("train", 4)(records(job_dir)) else None
            if pid:
                os.kill(pid, signal.SIGUSR2)  # what Slurm sends on preemption or before the time limit
                preempted = job_dir
        time.sleep(0.02)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    summary = read_json(preempted / "summary.json")
    assert summary["status"] == "completed" and summary["attempt"] == 2
    first_attempt = read_json(preempted / "attempts" / "1" / "summary.json")
    assert first_attempt["status"] == "interrupted" and first_attempt["signal"] == "SIGUSR2"
    reference = tmp_path / "reference"
    relaunch(DRIVE, reference, tmp_path)
    assert_same_run(preempted, reference)
    other = next(sweep_dir.glob("*seed1-*"))
    assert read_json(other / "summary.json")["status"] == "completed"
    assert not (other / "attempts").exists()
