"""End-to-end runs of the real `drive-run` command on the digits data (the issue's acceptance commands)."""

import time
from pathlib import Path

import pytest
import torch

from tests.conftest import read_json, run_cli


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
    for job in ("0", "1"):
        a = read_json(tmp_path / "basic" / job / "summary.json")
        b = read_json(tmp_path / "joblib" / job / "summary.json")
        assert a["status"] == b["status"] == "completed"
        assert a["method"] == b["method"] and a["run_dir"] != b["run_dir"]
        # Same masks, same data order; joblib workers run with fewer CPU threads, so float sums may
        # differ in the last digits.
        assert a["layers"] == b["layers"]
        assert a["test_loss"] == pytest.approx(b["test_loss"], rel=1e-4)
        assert abs(a["test_acc"] - b["test_acc"]) <= 1 / 360


def test_a_failing_job_does_not_lose_the_others(tmp_path: Path):
    # cifar10 is not on disk and cannot be downloaded: that job fails at run time, after validation.
    result = run_cli(
        "-m", "dataset=digits,cifar10", "model=lenet300", "method=magnitude", "trainer.epochs=1",
        "dataset.download=false", "logger=none", "hydra.sweep.dir=S", cwd=tmp_path,
    )
    assert result.returncode != 0
    assert read_json(tmp_path / "S" / "0" / "summary.json")["status"] == "completed"
    failed = read_json(tmp_path / "S" / "1" / "summary.json")
    assert failed["status"] == "failed" and "cifar10" in failed["error"]
    assert "1 of 2 jobs failed" in result.stdout
    assert "dataset=digits" in result.stdout and "Traceback" not in result.stderr


def test_quickstart_finishes_within_a_minute(tmp_path: Path):
    started = time.perf_counter()
    result = run_cli("experiment=quickstart", "hydra.run.dir=Q", cwd=tmp_path)
    elapsed = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    summary = read_json(tmp_path / "Q" / "summary.json")
    assert summary["status"] == "completed" and summary["dataset"] == "digits"
    assert summary["test_acc"] > 0.9
    assert elapsed < 60, f"quickstart took {elapsed:.0f}s"
    assert "test accuracy (top-1)" in result.stdout  # the final summary table


def test_runs_started_together_get_different_directories(tmp_path: Path):
    import subprocess

    from tests.conftest import DRIVE_RUN

    args = [str(DRIVE_RUN), "dataset=digits", "model=lenet300", "method=random", "trainer.epochs=0", "logger=none"]
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    assert len(list(tmp_path.glob("outputs/runs/*/summary.json"))) == 2
