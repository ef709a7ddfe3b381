"""`hydra/launcher=processes`: a job whose process dies loses only itself."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.conftest import DRIVE_RUN, read_json, run_cli
from tests.test_resume import BASE, logged, records


def job_process(parent: int, job_dir: Path) -> int:
    """The process running the job in `job_dir`: a child of one of the launcher's threads whose command
    line names the job's number."""
    number = yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]["job"]["num"]
    pids = [int(pid) for task in Path(f"/proc/{parent}/task").iterdir() for pid in (task / "children").read_text().split()]
    (pid,) = [pid for pid in pids if f"/{number}.in.pkl".encode() in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return pid


def test_a_killed_job_loses_only_itself_and_the_relaunch_continues_just_that_job(tmp_path: Path):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=processes", "hydra.launcher.n_jobs=2", *BASE, "method=magnitude",
            "trainer.epochs=6", "seed=0,1,2", f"hydra.sweep.dir={sweep_dir}"]
    process = subprocess.Popen([str(DRIVE_RUN), *args], cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "WANDB_MODE": "offline"})
    deadline = time.monotonic() + 240
    while not (running := [d for d in sweep_dir.glob("*seed*") if logged("train", 3)(records(d))]):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(job_process(process.pid, running[0]), signal.SIGKILL)  # it has saved its state at least once
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1  # not every job completed
    assert "was killed by SIGKILL; the other jobs go on" in err
    statuses = {job["dir"]: job["status"] for job in read_json(sweep_dir / "sweep_summary.json")["jobs"]}
    assert sorted(statuses.values()) == ["completed", "completed", "did not finish"]
    finished = {d: (Path(d) / "summary.json").stat().st_mtime_ns for d, s in statuses.items() if s == "completed"}

    again = run_cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 already done, skipped" in again.stdout
    (killed,) = [Path(d) for d, s in statuses.items() if s != "completed"]
    assert read_json(killed / "summary.json")["attempt"] == 2  # continued from its saved state
    assert all((Path(d) / "summary.json").stat().st_mtime_ns == t for d, t in finished.items())
