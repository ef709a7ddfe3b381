"""The speed settings change how a run computes, never what it computes: bf16 autocast, channels_last,
torch.compile and data held on the device all give a run whose masks hold and whose accuracy matches
the plain fp32 run. Checked on the CPU (the same code paths a GPU takes, minus CUDA itself)."""

from __future__ import annotations

import pytest
import torch

from drive_runner.data.in_memory import InMemorySource
from drive_runner.pipeline import run
from drive_runner.train.acceleration import Acceleration
from tests.conftest import quick_cfg

CONV = ["model=lenet5", "dataset.image_size=16", "trainer.lr=0.02", "method=snip", "sparsity=0.9"]
COMPILED = ["hardware.compile=true", "hardware.compile_backend=aot_eager"]  # traced as inductor would be, no C compiler


def augmented_source(count: int = 12) -> InMemorySource:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 8, 8), dtype=torch.uint8, generator=generator)
    return InMemorySource(images, torch.arange(count) % 3, (0.5, 0.4, 0.3), (0.2, 0.2, 0.2), crop_padding=2)


def test_the_shards_of_a_batch_are_its_rows_with_the_same_augmentation():
    source = augmented_source()
    whole = list(source.batches(8, shuffle=True, generator=torch.Generator().manual_seed(3), augment=True))
    shards = [list(source.batches(8, shuffle=True, generator=torch.Generator().manual_seed(3), augment=True,
                                  shard=(rank, 2))) for rank in range(2)]
    for index, (inputs, targets) in enumerate(whole):
        for rank in range(2):
            shard_inputs, shard_targets = shards[rank][index]
            assert torch.equal(shard_inputs, inputs[rank::2])
            assert torch.equal(shard_targets, targets[rank::2])


def test_a_source_moved_to_its_own_device_is_itself_and_batches_are_made_where_it_lives():
    source = augmented_source()
    assert source.to(torch.device("cpu")) is source
    inputs, targets = source.take([0, 1], augment=True, generator=torch.Generator().manual_seed(0))
    assert inputs.device == source.device == targets.device


def test_channels_last_applies_to_conv_nets_and_their_inputs():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten())
    hardware = quick_cfg("hardware.channels_last=true").hardware
    acceleration = Acceleration.from_config(hardware, torch.device("cpu"), model)
    assert acceleration.channels_last
    acceleration.prepare_model(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert acceleration.prepare_inputs(torch.zeros(2, 3, 8, 8)).is_contiguous(memory_format=torch.channels_last)
    mlp = torch.nn.Linear(4, 2)
    assert not Acceleration.from_config(hardware, torch.device("cpu"), mlp).channels_last
    assert not Acceleration.from_config(quick_cfg().hardware, torch.device("cpu"), model).channels_last  # auto: CUDA only


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> dict:
    """The fp32, eager, host-data run the others are compared with."""
    return run(quick_cfg(*CONV), tmp_path_factory.mktemp("plain"))


@pytest.mark.parametrize("settings", [
    ["hardware.precision=bf16"],
    ["hardware.channels_last=true"],
    ["hardware.data_on_device=true"],
    COMPILED,
], ids=["bf16", "channels_last", "data_on_device", "compile"])
def test_a_faster_setting_gives_the_same_run(tmp_path, plain, settings):
    fast = run(quick_cfg(*CONV, *settings), tmp_path / "fast")
    assert fast["status"] == "completed"
    assert fast["achieved_sparsity"] == plain["achieved_sparsity"]
    tolerance = 0.05 if "bf16" in settings[0] else 0.02  # bf16 rounds every product to 8 bits of mantissa
    assert abs(fast["test_acc"] - plain["test_acc"]) <= tolerance


def test_a_compiled_model_keeps_the_masks_that_change_while_it_trains(tmp_path):
    summary = run(quick_cfg(*CONV, "method=gmp", "trainer.epochs=2", *COMPILED), tmp_path / "compiled")
    assert summary["status"] == "completed"  # the pipeline verifies every masked weight is zero after training
    assert summary["achieved_sparsity"] == pytest.approx(0.9, abs=1e-3)


@pytest.mark.slow
def test_inductor_compiles_a_run_to_the_eager_result(tmp_path):
    """The real compiler (a C++ toolchain on the CPU, Triton on a GPU); a minute of compiling."""
    settings = [*CONV, "method=gmp", "trainer.epochs=2"]
    eager = run(quick_cfg(*settings), tmp_path / "eager")
    compiled = run(quick_cfg(*settings, "hardware.compile=true"), tmp_path / "inductor")
    assert compiled["achieved_sparsity"] == eager["achieved_sparsity"]
    assert abs(compiled["test_acc"] - eager["test_acc"]) <= 0.02
