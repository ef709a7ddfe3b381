"""The benchmark scripts run end to end (tiny settings) and print the numbers they promise."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


def bench(script: str, *overrides: str) -> str:
    """One thread, as every command the suite starts: beside the other test process on 2 cores, a second
    thread per process made these benchmarks ten times slower."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / script), *overrides], capture_output=True,
                            text=True, cwd=REPO, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pruning_time_benchmark_prints_both_times_and_the_ratio():
    out = bench("bench_pruning_time.py", "trainer.epochs=2", "sparsity=0.5")
    assert "DRIVE find-mask" in out and "IMP find-mask" in out and "ratio IMP / DRIVE" in out
    assert "training steps" in out


def test_prunetrain_benchmark_prints_both_runs():
    out = bench("bench_prunetrain.py", "trainer.epochs=2", "dataset.image_size=16", "method.interval=1")
    assert "accuracy" in out and "training FLOPs" in out and "epoch time" in out and "-epoch means" in out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit() and "|" in line]
    assert len(rows) == 2  # one row per epoch with both runs side by side


@pytest.mark.parametrize("overrides", [["model=lenet300", "dataset.image_size=8", "trainer.epochs=2",
                                        "trainer.epochs_per_block=1"]])
def test_neuroflux_benchmark_prints_both_runs(overrides):
    out = bench("bench_neuroflux.py", *overrides)
    for label in ("backprop", "neuroflux", "speed-up", "parameters", "within the budget"):
        assert label in out


def test_checkpoint_benchmark_prints_both_epoch_times_and_the_overhead():
    out = bench("bench_checkpoint.py", "model=lenet300", "trainer.epochs=1")
    assert out.count("s/epoch with the checkpoint") == 5 and "overhead" in out and "adds" in out and "state.pt" in out


def test_throughput_benchmark_prints_every_row_and_both_goals():
    out = bench("bench_throughput.py", "--models", "lenet5", "--images", "32", "--batch", "16", "--repeats", "1",
                "--workers", "0")
    for label in ("plain loop + DataLoader", "plain loop + in-memory source", "session, no masks",
                  "session, 90% sparse", "+ channels_last", "+ bf16", "all tricks", "mask-engine overhead",
                  "data path"):
        assert label in out


def test_mask_overhead_benchmark_pairs_the_two_sessions_and_gives_the_ratios_interval():
    out = bench("bench_throughput.py", "--mask-overhead", "--models", "lenet5", "--images", "32", "--batch", "16",
                "--workers", "0", "--min-rounds", "2", "--max-rounds", "3")
    found = re.search(r"lenet5: mask-engine time ratio ([\d.]+)x, 95% interval \[([\d.]+), ([\d.]+)\] .* over "
                      r"(\d) pairs of 32 images: (within|over|undecided at) 1.03", out)
    assert found, out
    ratio, low, high = map(float, found.groups()[:3])
    assert low <= ratio <= high and 2 <= int(found.group(4)) <= 3


def test_gpu_checks_refuse_to_report_without_a_gpu():
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gpu_checks.py")], capture_output=True, text=True,
                            cwd=REPO, timeout=120, env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "no CUDA device" in result.stdout


def test_synflow_benchmark_prints_its_table_and_the_drive_iteration(tmp_path):
    out = bench("bench_synflow.py", "--model", "resnet20", "--image-size", "8", "--classes", "10", "--iterations", "3",
                "--drive-batch", "4", "--drive-iterations", "1", "--synaptic-flow", str(tmp_path / "missing"))
    assert "Synaptic-Flow not found" in out
    for label in ("ours before (float64)", "ours now (float32)", "method.dtype=float64", "mask overlap", "training steps"):
        assert label in out


def test_fixed_cost_benchmark_prints_every_command_the_ratio_and_the_sweep():
    out = bench("bench_fixed_cost.py", "--runs", "1", "--sweep", "2")
    for label in ("python -c 'import torch'", "torch._dynamo", "no-op job", "drive-run --help", "peak",
                  "no-op job / bare import torch", "sweep of 2 no-op jobs", "each job after the first adds"):
        assert label in out


def test_machine_effects_compares_masks_across_threads_and_kernels():
    out = bench("machine_effects.py", "masks", "--seeds", "1", "--models", "lenet300", "--scorers", "snip")
    rows = [line for line in out.splitlines() if line.startswith("| lenet300")]
    assert len(rows) == 4  # two sparsities x two precisions
    assert all("| snip |" in row and "%" in row for row in rows)


def test_machine_effects_trains_under_both_kernels_and_pairs_the_seeds(tmp_path):
    out = bench("machine_effects.py", "accuracy", "--seeds", "2", "--scorers", "random", "--sparsities", "0.5",
                "--out", str(tmp_path), "trainer.epochs=1", "dataset.image_size=8", "trainer.batch_size=256")
    row = next(line for line in out.splitlines() if line.startswith("| random | 0.5 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert "±" in cells[2] and "±" in cells[3] and "[" in cells[4] and cells[5].endswith("%")
