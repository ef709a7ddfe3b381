"""Measured training memory and hardware.memory_budget_mb for backprop (docs/neuroflux.md)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from drive_runner.errors import ConfigError
from drive_runner.memory.accounting import MB, fit_memory_model, saved_bytes_of_step, static_bytes
from drive_runner.memory.budget import choose_batch_size, grown_batch_size
from drive_runner.models import build_model
from drive_runner.pipeline import run
from tests.conftest import quick_cfg, run_cli

SHAPE = (1, 16, 16)


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return build_model({"name": "resnet20"}, SHAPE, 10)


def test_static_memory_counts_parameters_gradients_momentum_and_buffers():
    model = nn.Sequential(nn.Linear(10, 20), nn.BatchNorm1d(20))
    params = (10 * 20 + 20 + 20 + 20) * 4
    buffers = (20 + 20) * 4 + 8  # running mean and var, num_batches_tracked (int64)
    assert static_bytes([model], optimizer_state_slots=1) == 3 * params + buffers
    assert static_bytes([model], optimizer_state_slots=2) == 4 * params + buffers


def test_saved_tensors_grow_linearly_and_the_fit_predicts_other_batches():
    model = small_cnn()
    memory = fit_memory_model(model, SHAPE, 10, optimizer_state_slots=1, device=torch.device("cpu"))
    for batch in (1, 8, 24):
        saved, _ = saved_bytes_of_step(model, torch.randn(batch, *SHAPE), torch.zeros(batch, dtype=torch.long))
        assert saved == pytest.approx(memory.fixed + batch * memory.per_sample, rel=1e-6)
    assert memory.peak(8) == memory.static + memory.fixed + int(8 * memory.per_sample)


def test_parameters_saved_by_autograd_are_not_counted_twice():
    layer = nn.Linear(1000, 1000, bias=False)  # backward keeps the (transposed) weight
    saved, _ = saved_bytes_of_step(layer, torch.randn(2, 1000), torch.zeros(2, dtype=torch.long))
    assert saved < 1000 * 1000 * 4 / 10  # the 4 MB weight is static memory, not an activation


def test_scoring_leaves_batchnorm_statistics_untouched():
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit_memory_model(model, SHAPE, 10, optimizer_state_slots=1, device=torch.device("cpu"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def batch_choice(*overrides):
    cfg = quick_cfg("model=resnet20", "dataset.image_size=16", *overrides)
    return choose_batch_size(small_cnn(), SHAPE, 10, 1437, cfg.trainer, cfg.hardware, torch.device("cpu")), cfg


def test_auto_picks_the_largest_power_of_two_whose_measured_peak_fits():
    model = small_cnn()
    memory = fit_memory_model(model, SHAPE, 10, optimizer_state_slots=1, device=torch.device("cpu"))
    budget_mb = (memory.peak(32) + memory.peak(64)) / 2 / MB
    choice, cfg = batch_choice("trainer.batch_size=auto", f"hardware.memory_budget_mb={budget_mb}")
    assert choice.batch_size == 32
    assert choice.lr_scale == pytest.approx(32 / cfg.trainer.lr_reference_batch)
    saved, _ = saved_bytes_of_step(model, torch.randn(32, *SHAPE), torch.zeros(32, dtype=torch.long))
    assert memory.static + saved <= budget_mb * MB


def test_an_explicit_batch_over_the_budget_is_refused_with_the_one_that_fits():
    model = small_cnn()
    memory = fit_memory_model(model, SHAPE, 10, optimizer_state_slots=1, device=torch.device("cpu"))
    with pytest.raises(ConfigError) as error:
        batch_choice("trainer.batch_size=64", f"hardware.memory_budget_mb={memory.peak(20) / MB}")
    assert error.value.key == "trainer.batch_size" and "largest power-of-two batch that fits is 16" in str(error.value)


def test_a_budget_below_batch_one_is_refused_with_the_need():
    with pytest.raises(ConfigError) as error:
        batch_choice("trainer.batch_size=auto", "hardware.memory_budget_mb=1")
    assert error.value.key == "hardware.memory_budget_mb"
    assert "needs" in str(error.value) and "the budget is 1 MB" in str(error.value)


def test_auto_needs_a_budget():
    with pytest.raises(ConfigError, match="trainer.batch_size"):
        batch_choice("trainer.batch_size=auto")


def test_backprop_under_a_budget_reports_its_measured_peak(tmp_path: Path):
    summary = run(quick_cfg("model=resnet20", "dataset.image_size=16", "trainer.batch_size=auto",
                            "hardware.memory_budget_mb=12"), tmp_path)
    memory = summary["memory"]
    assert memory["within_budget"] and memory["measured_peak_mb"] <= 12
    assert memory["batch_size"] >= 1 and memory["batch_size"] & (memory["batch_size"] - 1) == 0
    assert memory["measured_peak_mb"] == pytest.approx(memory["model_peak_mb"], rel=0.1)


def test_cli_stops_before_training_when_batch_one_does_not_fit(tmp_path: Path):
    result = run_cli("dataset=digits", "dataset.image_size=32", "model=vgg11", "trainer=backprop", "method=dense",
                     "trainer.batch_size=auto", "hardware.memory_budget_mb=50", "logger=none", cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "hardware.memory_budget_mb" in lines[0] and "50 MB" in lines[0]
    assert "Traceback" not in result.stderr


def test_memory_profile_command_prints_layers_and_the_largest_batch(tmp_path: Path):
    import subprocess
    import sys

    command = Path(sys.executable).with_name("drive-memory")
    result = subprocess.run([str(command), "model=resnet20", "dataset=digits", "dataset.image_size=16",
                             "hardware.memory_budget_mb=12"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "layer1.0.conv1" in result.stdout and "largest power-of-two batch within 12 MB" in result.stdout


def conv_pair(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Conv2d(width, 8, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


def test_a_model_that_shrank_gets_the_largest_measured_batch_within_the_budget_and_the_bound():
    """PruneTrain's dynamic mini-batch: the same budget, a narrower model, a larger batch, the LR scale
    linear in it from the run's start (batch 32 at lr x 0.5)."""
    cfg = quick_cfg("trainer.batch_size=auto")
    shape, cpu = (1, 8, 8), torch.device("cpu")
    wide = fit_memory_model(conv_pair(32), shape, 10, optimizer_state_slots=1, device=cpu)
    budget_mb = (wide.peak(32) + wide.peak(64)) / 2 / MB
    hardware = SimpleNamespace(memory_budget_mb=budget_mb, memory_margin_mb=0.0)
    narrow = conv_pair(8)

    def grow(trainer=cfg.trainer, current=32, max_batch=4 * 32):
        return grown_batch_size(narrow, shape, 10, 1437, trainer, hardware, cpu, current=current, start_batch=32,
                                start_lr_scale=0.5, max_batch=max_batch)

    def fits(batch: int, memory) -> bool:
        saved, _ = saved_bytes_of_step(narrow, torch.randn(batch, *shape), torch.zeros(batch, dtype=torch.long))
        return memory.static + saved <= budget_mb * MB

    choice = grow(max_batch=1024)
    assert choice.batch_size > 32 and fits(choice.batch_size, choice.memory) and not fits(2 * choice.batch_size, choice.memory)
    assert choice.lr_scale == pytest.approx(0.5 * choice.batch_size / 32)
    assert grow(max_batch=choice.batch_size // 2).batch_size == choice.batch_size // 2  # the bound holds
    assert grow(max_batch=48).batch_size == 32  # no power of two between 32 and 48: the batch stays
    assert grow(current=4 * choice.batch_size, max_batch=8 * choice.batch_size).batch_size == 4 * choice.batch_size  # never shrinks
    unscaled = quick_cfg("trainer.batch_size=auto", "trainer.lr_scaling=none").trainer
    assert grow(trainer=unscaled, max_batch=1024).lr_scale == 0.5
