"""End-to-end runs of the real `drive-run` command on the digits data (the issue's acceptance commands)."""

import os
import stat
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import DRIVE_RUN, read_json, run_cli


def test_magnitude_lenet300_acceptance(tmp_path: Path):
    run_dir = tmp_path / "D"
    result = run_cli(
        "dataset=digits", "model=lenet300", "method=magnitude", "sparsity=0.9", "trainer.epochs=5",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "completed"
    assert list(summary)[-1] == "status"
    assert abs(summary["achieved_sparsity"] - 0.9) <= 0.001
    assert summary["test_acc"] >= 0.90
    for key in ("method", "model", "dataset", "seed", "target_sparsity", "params_total", "params_nonzero",
                "flops_dense", "flops_sparse", "collapsed_layers", "timings_s"):
        assert key in summary
    assert set(summary["timings_s"]) >= {"warmup", "prune", "train", "eval", "total"}
    assert summary["flops_sparse"] < summary["flops_dense"]
    layer_nonzero = sum(layer["nonzero"] for layer in summary["layers"])
    assert layer_nonzero == summary["params_nonzero"] - summary["params_unprunable"]
    assert {layer["name"] for layer in summary["layers"]} == {"fc1.weight", "fc2.weight", "fc3.weight"}

    checkpoint = torch.load(run_dir / "checkpoints" / "final.pt", weights_only=True)
    prunable = [checkpoint["state_dict"][f"{layer}.weight"] for layer in ("fc1", "fc2", "fc3")]
    zeros = sum(int((w == 0).sum()) for w in prunable)
    total = sum(w.numel() for w in prunable)
    assert zeros == round(0.9 * total)
    masks = torch.load(run_dir / "checkpoints" / "masks.pt", weights_only=True)
    assert sum(int(m.sum()) for m in masks.values()) == total - zeros

    assert (run_dir / "config.yaml").read_text().count("name: magnitude") == 1
    events = [line for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    assert sum('"event": "epoch"' in line for line in events) == 5


@pytest.mark.parametrize(
    "argument, key",
    [("sparsity=1.5", "sparsity"), ("method=nope", "method"), ("trainer.epochs=-1", "trainer.epochs")],
)
def test_bad_input_gives_one_line_and_writes_nothing(tmp_path: Path, argument, key):
    result = run_cli(argument, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"drive-run: error: {key}")
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists()


def test_sweep_leaves_four_completed_summaries(tmp_path: Path):
    result = run_cli(
        "-m", "dataset=digits", "model=lenet300", "method=random,magnitude", "sparsity=0.5,0.9",
        "trainer.epochs=1", "logger=none", cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    summaries = [read_json(p) for p in tmp_path.glob("outputs/sweeps/*/*/summary.json")]
    assert len(summaries) == 4
    assert all(s["status"] == "completed" for s in summaries)
    assert {(s["method"], round(s["target_sparsity"], 6)) for s in summaries} == {
        ("random", 0.5), ("random", 0.9), ("magnitude", 0.5), ("magnitude", 0.9)
    }
    assert "| magnitude |" in result.stdout  # the comparison table
    (sweep_dir,) = tmp_path.glob("outputs/sweeps/*")
    assert read_json(sweep_dir / "sweep_summary.json")["failed"] == 0


def test_joblib_sweep_gives_the_same_results_as_the_basic_launcher(tmp_path: Path):
    common = ["-m", "dataset=digits", "model=lenet300", "method=random,magnitude", "sparsity=0.9",
              "trainer.epochs=1", "logger=none"]
    basic = run_cli(*common, "hydra.sweep.dir=basic", cwd=tmp_path)
    joblib = run_cli(*common, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=joblib", cwd=tmp_path)
    assert basic.returncode == 0 and joblib.returncode == 0, basic.stderr + joblib.stderr
    jobs = sorted(p.parent.name for p in (tmp_path / "basic").glob("*/summary.json"))
    assert len(jobs) == 2 and jobs == sorted(p.parent.name for p in (tmp_path / "joblib").glob("*/summary.json"))
    for job in jobs:  # the same job gets the same directory name under either launcher
        a = read_json(tmp_path / "basic" / job / "summary.json")
        b = read_json(tmp_path / "joblib" / job / "summary.json")
        assert a["status"] == b["status"] == "completed"
        assert a["method"] == b["method"] and a["run_dir"] != b["run_dir"]
        # Same masks, same data order, the same pinned thread count: the same numbers.
        assert a["layers"] == b["layers"]
        assert (a["test_loss"], a["test_acc"]) == (b["test_loss"], b["test_acc"])


def test_a_failing_job_does_not_lose_the_others(tmp_path: Path):
    # lr 1e12 diverges: that job fails at run time, after validation (missing data is refused before any job).
    result = run_cli(
        "-m", "trainer.lr=0.1,1e12", "dataset=digits", "model=lenet300", "method=magnitude", "trainer.epochs=1",
        "logger=none", "hydra.sweep.dir=S", cwd=tmp_path,
    )
    assert result.returncode != 0
    summaries = [read_json(path) for path in (tmp_path / "S").glob("*/summary.json")]
    assert sorted(s["status"] for s in summaries) == ["completed", "failed"]
    failed = next(s for s in summaries if s["status"] == "failed")
    assert "diverged" in failed["error"] and "trainer.lr=1000000000000.0" in failed["overrides"]
    assert "1 of 2 jobs did not complete" in result.stdout
    assert "the 1 that failed need a change to their config" in result.stdout  # issue 21, item 8
    assert "trainer.lr=1000000000000.0" in result.stdout and "Traceback" not in result.stderr


def test_quickstart_announces_itself_first_and_ends_with_the_summary_table(tmp_path: Path):
    result = run_cli("experiment=quickstart", "hydra.run.dir=Q", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "Q" / "summary.json")
    assert summary["status"] == "completed" and summary["dataset"] == "digits"
    assert summary["test_acc"] > 0.9
    lines = result.stdout.splitlines()
    assert lines[0] == "drive-run: drive on lenet300/digits into Q"  # printed before any data or model loads
    progress = [line for line in lines if line.startswith("[prune] step")]
    assert progress[0] == "[prune] step 1/100, density 0.9772" and progress[-1].startswith("[prune] step 100/100")
    assert "test accuracy (top-1)" in result.stdout  # the final summary table


def test_the_same_command_twice_at_once_runs_its_job_once(tmp_path: Path):
    args = [str(DRIVE_RUN), "dataset=digits", "model=lenet300", "method=random", "trainer.epochs=0", "logger=none"]
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    codes = sorted(process.returncode for process in (first, second))
    assert len(list(tmp_path.glob("outputs/runs/*"))) == 1  # one job, one directory
    assert len(list(tmp_path.glob("outputs/runs/*/attempts"))) == 0
    # The other one found the job running (refused, exit 2) or already done (exit 0).
    assert codes[0] == 0 and codes[1] in (0, 2)
    if codes[1] == 2:
        assert any("is in use by a run that is still going" in err for _, err in outputs)


def test_help_is_drive_runs_own_and_lists_the_groups(tmp_path: Path):
    result = run_cli("--help", cwd=tmp_path, pinned=False)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith("usage: drive-run [-m]")
    for text in ("method      dense drive gmp grasp imp magnitude prunetrain random snip synflow", "sparsity=S",
                 "trainer.epochs=N", "README.md"):
        assert text in result.stdout
    assert "schema" not in result.stdout and "Hydra" not in result.stdout.split("options:")[0]
    version = run_cli("--version", cwd=tmp_path, pinned=False)
    assert version.returncode == 0 and version.stdout.strip() == "drive-run (drive-runner 0.1.0)"
    memory = subprocess.run([str(DRIVE_RUN.with_name("drive-memory")), "--help"], capture_output=True, text=True)
    assert memory.returncode == 0 and memory.stdout.startswith("usage: drive-memory")


def test_a_closed_pipe_ends_the_output_quietly(tmp_path: Path):
    # `true` exits without reading, so every write of drive-run meets a closed pipe.
    result = subprocess.run(["bash", "-c", f"set -o pipefail; {DRIVE_RUN} --help | true"], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""


def test_leaving_keeps_the_collector_off_the_imported_modules_and_exits_with_the_code():
    """Issue 21, item 12: Python's teardown spent about a second collecting torch's objects at every exit."""
    import gc

    from drive_runner.cli.run import leave

    try:
        with pytest.raises(SystemExit) as leaving:
            leave(3)
        assert leaving.value.code == 3 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_results_are_readable_by_collaborators_under_umask_022(tmp_path: Path):
    from drive_runner.pipeline import run
    from tests.conftest import quick_cfg

    previous = os.umask(0o022)
    try:
        run(quick_cfg("logger=wandb", "logger.mode=offline"), tmp_path / "run")
    finally:
        os.umask(previous)
    files = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert {"summary.json", "config.yaml", "final.pt", "masks.pt", "metrics.jsonl"} <= {p.name for p in files}
    private = [f"{p} {stat.filemode(p.stat().st_mode)}" for p in files if p.stat().st_mode & 0o044 != 0o044]
    assert not private


def test_an_unreachable_wandb_server_falls_back_to_an_offline_run(tmp_path: Path):
    from tests.wandb_offline import offline_run

    # Port 9 on the loopback interface (discard): nothing listens, nothing leaves the machine.
    env = {"WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "0123456789" * 4, "WANDB_MODE": "online"}
    result = run_cli("dataset=digits", "model=lenet300", "method=magnitude", "trainer.epochs=1", "logger.mode=online",
                     "hydra.run.dir=R", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert read_json(tmp_path / "R" / "summary.json")["status"] == "completed"
    warning = [line for line in result.stderr.splitlines() if "W&B did not start online within 10 s" in line]
    assert len(warning) == 1 and "wandb sync" in warning[0]
    logged = offline_run(tmp_path / "R")  # exactly one W&B run in the run directory, holding the results
    assert logged["summary"]["status"] == "completed"
    assert not list((tmp_path / "R" / "wandb").glob("run-*"))  # the failed online attempt is gone
